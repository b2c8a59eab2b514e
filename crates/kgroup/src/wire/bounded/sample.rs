//! Schema-driven generator of valid response bodies, for tests and fuzzing.
//!
//! Not part of the engine's API (hidden from the docs): the cross-check
//! tests generate bodies from kgroup's schemas, decode them with
//! `kafka-protocol`, re-encode them with its encoder and require the same
//! bytes, which proves each schema matches the crate field for field; the
//! allocation test mutates these bodies.
//!
//! Known tagged fields are written only with non-default values (non-empty
//! arrays, `true`, a non-negative int64), because `kafka-protocol`'s encoder
//! omits tagged fields that hold their default; unknown tags use numbers
//! above every known one so the encoder writes them back in the same place.

use kafka_protocol::messages::ApiKey;

use super::schema::{Elem, Field, Kind, Schema};

/// A small deterministic generator (SplitMix64), seeded by the caller.
#[derive(Debug, Clone)]
pub struct SampleRng(u64);

impl SampleRng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }
}

/// A valid body (no response header) of `api` at `version`, or `None` when
/// kgroup has no schema for that API and version.
pub fn sample_body(api: ApiKey, version: i16, rng: &mut SampleRng) -> Option<Vec<u8>> {
    sample_body_with(api, version, rng, 4)
}

/// [`sample_body`] with up to `max_items` elements per array.
pub fn sample_body_with(
    api: ApiKey,
    version: i16,
    rng: &mut SampleRng,
    max_items: u64,
) -> Option<Vec<u8>> {
    let schema = super::schema_for(api)?;
    if !schema.versions.contains(version) {
        return None;
    }
    let mut out = Vec::new();
    Generator {
        rng,
        version,
        flexible: version >= schema.flexible,
        max_items,
    }
    .fields(schema.fields, &mut out);
    Some(out)
}

/// A valid response frame (header + body, no size prefix) with
/// `correlation_id`, using the response header version of `api`.
pub fn sample_frame(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    rng: &mut SampleRng,
) -> Option<Vec<u8>> {
    sample_frame_with(api, version, correlation_id, rng, 4)
}

/// [`sample_frame`] with up to `max_items` elements per array.
pub fn sample_frame_with(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    rng: &mut SampleRng,
    max_items: u64,
) -> Option<Vec<u8>> {
    let body = sample_body_with(api, version, rng, max_items)?;
    let mut out = correlation_id.to_be_bytes().to_vec();
    if crate::wire::codec::response_header_version(api, version) >= 1 {
        out.push(0);
    }
    out.extend_from_slice(&body);
    Some(out)
}

/// A valid ConsumerProtocol Subscription (`assignment == false`) or
/// Assignment body at `version` (0..=3), without the version prefix.
pub fn sample_consumer_protocol(assignment: bool, version: i16, rng: &mut SampleRng) -> Vec<u8> {
    let schema: &Schema = if assignment {
        super::assignment_schema()
    } else {
        super::subscription_schema()
    };
    let mut out = Vec::new();
    Generator {
        rng,
        version,
        flexible: false,
        max_items: 4,
    }
    .fields(schema.fields, &mut out);
    out
}

struct Generator<'r> {
    rng: &'r mut SampleRng,
    version: i16,
    flexible: bool,
    max_items: u64,
}

impl Generator<'_> {
    fn uvarint(out: &mut Vec<u8>, mut v: u32) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn length(&mut self, out: &mut Vec<u8>, len: Option<usize>, wide: bool) {
        if self.flexible {
            Self::uvarint(out, len.map_or(0, |n| n as u32 + 1));
        } else if wide {
            out.extend_from_slice(&len.map_or(-1, |n| n as i32).to_be_bytes());
        } else {
            out.extend_from_slice(&len.map_or(-1, |n| n as i16).to_be_bytes());
        }
    }

    fn text(&mut self, out: &mut Vec<u8>, nullable: bool) {
        if nullable && self.rng.chance(1, 5) {
            self.length(out, None, false);
            return;
        }
        let len = self.rng.below(9) as usize;
        self.length(out, Some(len), false);
        for _ in 0..len {
            let c = b"abcdefghijklmnopqrstuvwxyz0123456789-._"[self.rng.below(39) as usize];
            out.push(c);
        }
    }

    fn fields(&mut self, fields: &'static [Field], out: &mut Vec<u8>) {
        for field in fields {
            if field.tag.is_none() && field.present(self.version) {
                self.kind(&field.kind, out, false);
            }
        }
        if !self.flexible {
            return;
        }
        let mut tagged: Vec<(u32, Vec<u8>)> = Vec::new();
        for field in fields {
            if let Some(tag) = field.tag
                && field.present(self.version)
                && self.rng.chance(1, 2)
            {
                let mut content = Vec::new();
                self.kind(&field.kind, &mut content, true);
                tagged.push((tag, content));
            }
        }
        if self.rng.chance(1, 4) {
            let len = self.rng.below(6) as usize;
            let content = (0..len).map(|_| self.rng.below(256) as u8).collect();
            tagged.push((40 + self.rng.below(100) as u32, content));
        }
        Self::uvarint(out, tagged.len() as u32);
        for (tag, content) in tagged {
            Self::uvarint(out, tag);
            Self::uvarint(out, content.len() as u32);
            out.extend_from_slice(&content);
        }
    }

    /// One value; `non_default` for known tagged fields (see module docs).
    fn kind(&mut self, kind: &Kind, out: &mut Vec<u8>, non_default: bool) {
        match kind {
            Kind::Fixed(1) => out.push(u8::from(non_default || self.rng.chance(1, 2))),
            Kind::Fixed(n) => {
                for i in 0..*n {
                    let b = self.rng.below(256) as u8;
                    // A non-negative first byte keeps int64 tags off their -1 default.
                    out.push(if i == 0 && non_default { b & 0x7f } else { b });
                }
            }
            Kind::Str { nullable } => self.text(out, *nullable && !non_default),
            Kind::Bytes { nullable } => {
                if *nullable && !non_default && self.rng.chance(1, 5) {
                    self.length(out, None, true);
                } else {
                    let len = self.rng.below(12) as usize;
                    self.length(out, Some(len), true);
                    out.extend((0..len).map(|_| self.rng.below(256) as u8));
                }
            }
            Kind::OptionalStruct(fields) => {
                if !non_default && self.rng.chance(1, 3) {
                    out.push(0xff);
                } else {
                    out.push(1);
                    self.fields(fields, out);
                }
            }
            Kind::Array(arr) => {
                let min = u64::from(non_default);
                let count = (min + self.rng.below(self.max_items + 1 - min)) as usize;
                self.length(out, Some(count), true);
                for _ in 0..count {
                    match &arr.elem {
                        Elem::Fixed(n) => out.extend((0..*n).map(|_| self.rng.below(256) as u8)),
                        Elem::Str => self.text(out, false),
                        Elem::Struct(fields) => self.fields(fields, out),
                    }
                }
            }
        }
    }
}
