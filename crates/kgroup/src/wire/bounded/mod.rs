//! Bounded decoding: walk a response against its schema *before*
//! `kafka-protocol` decodes it.
//!
//! `kafka-protocol` 0.18 reserves `Vec::with_capacity(count)` straight from
//! the wire count (`protocol/types.rs`, `Array` and `CompactArray`
//! decoders), and sizes `String` buffers from the wire length: a 20-byte
//! JoinGroup v9 response with a compact array count near `u32::MAX` asks for
//! hundreds of gigabytes and aborts the process. The validator here reads
//! every count and length first and rejects the frame when
//!
//! - a count or length is larger than the bytes that remain could hold
//!   (count × the minimum wire size of one element), or
//! - an array would need more memory than [`Limits`] allow for this frame
//!   (count × `size_of` the Rust element type > `dense_factor` × frame
//!   length + `dense_slack`), or all arrays and unknown tagged fields of the
//!   frame together would need more than `total_factor` × frame length +
//!   `dense_slack`, or
//! - a string is not UTF-8, a non-nullable value is null, a length is
//!   negative, or the body does not end where the schema ends.
//!
//! Nothing here allocates: the walk is a cursor over the frame. Recursion
//! depth is that of the static schemas (at most four levels), never chosen
//! by the input.

mod apis;
#[doc(hidden)]
pub mod sample;
pub(crate) mod schema;

use kafka_protocol::messages::ApiKey;

use self::schema::{Elem, Field, Kind, Schema};
use super::error::{BrokerLabel, VersionSpan, WireError};

/// Allocation limits for decoding one frame.
///
/// An array whose in-memory size (count × `size_of` element) exceeds
/// `dense_factor × frame length + dense_slack` is refused as a dense,
/// hostile frame ([`WireError::DenseFrame`]). See `docs/wire.md` for why the
/// default slack is 1 MiB rather than smaller: a legitimate OffsetCommit
/// response carries 6 wire bytes per partition that decode into a 32-byte
/// struct, so a large commit is denser than 2× by nature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Multiple of the frame length an array may occupy in memory.
    pub dense_factor: u64,
    /// Constant added to both bounds.
    pub dense_slack: u64,
    /// Multiple of the frame length all arrays and unknown tagged fields of
    /// one frame may occupy in memory together.
    pub total_factor: u64,
}

/// Default [`Limits::dense_factor`].
pub const DEFAULT_DENSE_FACTOR: u64 = 2;
/// Default [`Limits::dense_slack`]: 1 MiB.
pub const DEFAULT_DENSE_SLACK: u64 = 1024 * 1024;
/// Default [`Limits::total_factor`]: the densest legitimate responses
/// (OffsetCommit, ApiVersions: 6 wire bytes per 32-byte element) need about
/// 5.3× their frame.
pub const DEFAULT_TOTAL_FACTOR: u64 = 8;

/// Memory charged per unknown tagged field: the `(i32, Bytes)` entry of the
/// `BTreeMap` it is kept in, plus a share of the node.
const UNKNOWN_TAG_COST: u64 = 64;

impl Default for Limits {
    fn default() -> Self {
        Self {
            dense_factor: DEFAULT_DENSE_FACTOR,
            dense_slack: DEFAULT_DENSE_SLACK,
            total_factor: DEFAULT_TOTAL_FACTOR,
        }
    }
}

impl Limits {
    /// The largest single array allocation allowed for a frame of `frame_len` bytes.
    pub fn bound(&self, frame_len: usize) -> u64 {
        self.dense_factor
            .saturating_mul(frame_len as u64)
            .saturating_add(self.dense_slack)
    }

    /// The most memory all arrays and unknown tagged fields of a frame of
    /// `frame_len` bytes may need together.
    pub fn total_bound(&self, frame_len: usize) -> u64 {
        self.total_factor
            .saturating_mul(frame_len as u64)
            .saturating_add(self.dense_slack)
    }
}

/// The response schema kgroup has for `api`, if it decodes that API.
pub(crate) fn schema_for(api: ApiKey) -> Option<&'static Schema> {
    apis::RESPONSES.iter().find(|s| s.api == api)
}

/// Schema of the ConsumerProtocol Subscription body.
pub(crate) fn subscription_schema() -> &'static Schema {
    &apis::SUBSCRIPTION
}

/// Schema of the ConsumerProtocol Assignment body.
pub(crate) fn assignment_schema() -> &'static Schema {
    &apis::ASSIGNMENT
}

/// The APIs (and versions) the bounded validator covers.
pub fn validated_apis() -> impl Iterator<Item = (ApiKey, VersionSpan)> {
    apis::RESPONSES.iter().map(|s| (s.api, s.versions))
}

/// Validates a whole response frame (without its size prefix): the
/// response header of `header_version` (0 or 1) and the body of `api` at
/// `version`. Returns the header length.
pub(crate) fn validate_response(
    api: ApiKey,
    version: i16,
    header_version: i16,
    frame: &[u8],
    limits: &Limits,
) -> Result<usize, WireError> {
    let schema = schema_for(api).ok_or(WireError::UnsupportedVersion {
        api,
        version,
        supported: VersionSpan::new(0, -1),
        broker: BrokerLabel(None),
    })?;
    if !schema.versions.contains(version) {
        return Err(WireError::UnsupportedVersion {
            api,
            version,
            supported: schema.versions,
            broker: BrokerLabel(None),
        });
    }
    let mut walker = Walker {
        data: frame,
        pos: 0,
        api,
        version,
        flexible: false,
        frame_len: frame.len(),
        limits,
        spent: 0,
    };
    walker.fixed(4, "correlation_id")?;
    if header_version >= 1 {
        walker.flexible = true;
        walker.tags(&[], "response header")?;
    }
    let header_len = walker.pos;
    walker.flexible = version >= schema.flexible;
    walker.fields(schema.fields)?;
    walker.finish()?;
    Ok(header_len)
}

/// Validates a body of `schema` at `version` occupying `data`, where `data`
/// belongs to a frame of `frame_len` bytes. With `allow_trailing`, bytes
/// after the last known field are accepted (a newer ConsumerProtocol
/// version read as the newest known one). Returns the bytes the schema
/// covers.
pub(crate) fn validate_body(
    schema: &Schema,
    version: i16,
    data: &[u8],
    frame_len: usize,
    allow_trailing: bool,
    limits: &Limits,
) -> Result<usize, WireError> {
    let mut walker = Walker {
        data,
        pos: 0,
        api: schema.api,
        version,
        flexible: version >= schema.flexible,
        frame_len,
        limits,
        spent: 0,
    };
    walker.fields(schema.fields)?;
    if !allow_trailing {
        walker.finish()?;
    }
    Ok(walker.pos)
}

/// Length of a response header v1 (correlation id + tagged fields) at the
/// start of `frame`, if it is well formed.
pub(crate) fn header_len_v1(frame: &[u8]) -> Option<usize> {
    let limits = Limits::default();
    let mut walker = Walker {
        data: frame,
        pos: 0,
        api: ApiKey::ApiVersions,
        version: 0,
        flexible: true,
        frame_len: frame.len(),
        limits: &limits,
        spent: 0,
    };
    walker.fixed(4, "correlation_id").ok()?;
    walker.tags(&[], "response header").ok()?;
    Some(walker.pos)
}

/// A cursor over one frame.
struct Walker<'a> {
    data: &'a [u8],
    pos: usize,
    api: ApiKey,
    version: i16,
    flexible: bool,
    frame_len: usize,
    limits: &'a Limits,
    /// Memory the decoder will need for the arrays and unknown tags seen so far.
    spent: u64,
}

impl<'a> Walker<'a> {
    /// Charges `bytes` of decoder memory for `field`, refusing the frame
    /// when the total passes [`Limits::total_bound`].
    fn charge(&mut self, field: &'static str, count: u64, bytes: u64) -> Result<(), WireError> {
        self.spent = self.spent.saturating_add(bytes);
        let bound = self.limits.total_bound(self.frame_len);
        if self.spent > bound {
            return Err(WireError::DenseFrame {
                api: self.api,
                version: self.version,
                field,
                count,
                bytes: self.spent,
                bound,
                frame_len: self.frame_len as u64,
                broker: BrokerLabel(None),
            });
        }
        Ok(())
    }

    fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    fn decode_error(&self, detail: String) -> WireError {
        WireError::Decode {
            api: self.api,
            version: self.version,
            detail,
            broker: BrokerLabel(None),
        }
    }

    fn hostile(&self, field: &'static str, count: u64, min_size: usize) -> WireError {
        WireError::HostileCount {
            api: self.api,
            version: self.version,
            field,
            count,
            remaining: self.remaining() as u64,
            min_size: min_size as u64,
            broker: BrokerLabel(None),
        }
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], WireError> {
        let end = self.pos.checked_add(n);
        match end.and_then(|end| self.data.get(self.pos..end)) {
            Some(slice) => {
                self.pos += n;
                Ok(slice)
            }
            None => Err(self.decode_error(format!(
                "truncated at field {field}: need {n} bytes, {} remain",
                self.remaining()
            ))),
        }
    }

    fn fixed(&mut self, n: u8, field: &'static str) -> Result<(), WireError> {
        self.take(usize::from(n), field).map(|_| ())
    }

    fn int16(&mut self, field: &'static str) -> Result<i16, WireError> {
        let b = self.take(2, field)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn int32(&mut self, field: &'static str) -> Result<i32, WireError> {
        let b = self.take(4, field)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// An unsigned varint exactly as `kafka-protocol`'s `UnsignedVarInt`
    /// reads it: at most five bytes, excess high bits dropped.
    fn uvarint(&mut self, field: &'static str) -> Result<u32, WireError> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let b = u32::from(self.take(1, field)?[0]);
            value |= (b & 0x7f) << (i * 7);
            if b < 0x80 {
                break;
            }
        }
        Ok(value)
    }

    fn finish(&self) -> Result<(), WireError> {
        if self.remaining() > 0 {
            return Err(WireError::TrailingBytes {
                api: self.api,
                version: self.version,
                extra: self.remaining() as u64,
                broker: BrokerLabel(None),
            });
        }
        Ok(())
    }

    /// Walks a struct's fields, then (flexible) its tagged-field section.
    fn fields(&mut self, fields: &'static [Field]) -> Result<(), WireError> {
        for field in fields {
            if field.tag.is_none() && field.present(self.version) {
                self.kind(&field.kind, field.name)?;
            }
        }
        if self.flexible {
            self.tags(fields, "tagged fields")?;
        }
        Ok(())
    }

    /// A tagged-field section. Known tags are walked with their schema (the
    /// generated decoder reads them in place, ignoring the declared size, so
    /// the walk also requires the content to fill exactly that size); others
    /// are skipped by size.
    fn tags(&mut self, fields: &'static [Field], what: &'static str) -> Result<(), WireError> {
        let count = self.uvarint(what)?;
        // Each tagged field takes at least two bytes (tag and size).
        if u64::from(count) > (self.remaining() / 2) as u64 {
            return Err(self.hostile(what, u64::from(count), 2));
        }
        for _ in 0..count {
            let tag = self.uvarint(what)?;
            let size = self.uvarint(what)? as usize;
            if size > self.remaining() {
                return Err(self.hostile(what, size as u64, 1));
            }
            let known = fields
                .iter()
                .find(|f| f.tag == Some(tag) && f.present(self.version));
            match known {
                Some(field) => {
                    let start = self.pos;
                    self.kind(&field.kind, field.name)?;
                    if self.pos - start != size {
                        return Err(self.decode_error(format!(
                            "tagged field {} (tag {tag}) declares {size} bytes but holds {}",
                            field.name,
                            self.pos - start
                        )));
                    }
                }
                None => {
                    self.charge(what, 1, UNKNOWN_TAG_COST)?;
                    self.take(size, what)?;
                }
            }
        }
        Ok(())
    }

    /// A length prefix: `Ok(None)` for null, an error for null where not
    /// allowed or a negative length.
    fn length(
        &mut self,
        wide: bool,
        nullable: bool,
        field: &'static str,
    ) -> Result<Option<usize>, WireError> {
        let len: i64 = if self.flexible {
            i64::from(self.uvarint(field)?) - 1
        } else if wide {
            i64::from(self.int32(field)?)
        } else {
            i64::from(self.int16(field)?)
        };
        match len {
            -1 if nullable => Ok(None),
            -1 => Err(self.decode_error(format!("field {field} is null, which its type forbids"))),
            n if n < 0 => Err(self.decode_error(format!("field {field} has negative length {n}"))),
            n => Ok(Some(n as usize)),
        }
    }

    fn string(&mut self, nullable: bool, field: &'static str) -> Result<(), WireError> {
        let Some(len) = self.length(false, nullable, field)? else {
            return Ok(());
        };
        if len > self.remaining() {
            return Err(self.hostile(field, len as u64, 1));
        }
        let bytes = self.take(len, field)?;
        if std::str::from_utf8(bytes).is_err() {
            return Err(WireError::InvalidUtf8 {
                api: self.api,
                version: self.version,
                field,
                broker: BrokerLabel(None),
            });
        }
        Ok(())
    }

    fn kind(&mut self, kind: &Kind, field: &'static str) -> Result<(), WireError> {
        match kind {
            Kind::Fixed(n) => self.fixed(*n, field),
            Kind::Str { nullable } => self.string(*nullable, field),
            Kind::Bytes { nullable } => {
                let Some(len) = self.length(true, *nullable, field)? else {
                    return Ok(());
                };
                if len > self.remaining() {
                    return Err(self.hostile(field, len as u64, 1));
                }
                self.take(len, field).map(|_| ())
            }
            Kind::OptionalStruct(fields) => {
                let marker = self.take(1, field)?;
                if marker == [1] {
                    self.fields(fields)?;
                }
                Ok(())
            }
            Kind::Array(arr) => {
                let Some(count) = self.length(true, arr.nullable, field)? else {
                    return Ok(());
                };
                let min = self.elem_min_size(&arr.elem).max(1);
                if count > self.remaining() / min {
                    return Err(self.hostile(field, count as u64, min));
                }
                let bytes = (count as u64).saturating_mul(arr.mem as u64);
                let bound = self.limits.bound(self.frame_len);
                if bytes > bound {
                    return Err(WireError::DenseFrame {
                        api: self.api,
                        version: self.version,
                        field,
                        count: count as u64,
                        bytes,
                        bound,
                        frame_len: self.frame_len as u64,
                        broker: BrokerLabel(None),
                    });
                }
                self.charge(field, count as u64, bytes)?;
                for _ in 0..count {
                    match &arr.elem {
                        Elem::Fixed(n) => self.fixed(*n, field)?,
                        Elem::Str => self.string(false, field)?,
                        Elem::Struct(fields) => self.fields(fields)?,
                    }
                }
                Ok(())
            }
        }
    }

    /// The fewest wire bytes one value of `kind` can take at this version.
    fn kind_min_size(&self, kind: &Kind) -> usize {
        match kind {
            Kind::Fixed(n) => usize::from(*n),
            Kind::OptionalStruct(_) => 1,
            Kind::Str { .. } if self.flexible => 1,
            Kind::Str { .. } => 2,
            Kind::Bytes { .. } | Kind::Array(_) if self.flexible => 1,
            Kind::Bytes { .. } | Kind::Array(_) => 4,
        }
    }

    fn elem_min_size(&self, elem: &Elem) -> usize {
        match elem {
            Elem::Fixed(n) => usize::from(*n),
            Elem::Str => self.kind_min_size(&schema::STR),
            Elem::Struct(fields) => {
                let body: usize = fields
                    .iter()
                    .filter(|f| f.tag.is_none() && f.present(self.version))
                    .map(|f| self.kind_min_size(&f.kind))
                    .sum();
                body + usize::from(self.flexible)
            }
        }
    }
}
