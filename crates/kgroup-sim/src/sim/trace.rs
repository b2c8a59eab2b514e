//! The run's trace: one line per notable step, folded into a 64-bit FNV-1a
//! hash as it is written, so "same seed, same trace, byte for byte" is one
//! integer comparison. Lines are kept only when asked (demo, debugging).

use crate::clock::{SimTime, fmt_time};

/// FNV-1a 64-bit offset basis and prime (Fowler, Noll, Vo).
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// A hashed, optionally recorded, trace.
#[derive(Clone, Debug)]
pub struct Trace {
    hash: u64,
    lines: Option<Vec<String>>,
    count: u64,
}

impl Trace {
    /// A trace that records its lines when `keep` is set.
    pub fn new(keep: bool) -> Self {
        Self {
            hash: FNV_OFFSET,
            lines: keep.then(Vec::new),
            count: 0,
        }
    }

    /// Append one line stamped with `at`.
    pub fn line(&mut self, at: SimTime, text: impl AsRef<str>) {
        let text = text.as_ref();
        let stamp = at.as_micros().to_le_bytes();
        for b in stamp.iter().chain(text.as_bytes()).chain(b"\n") {
            self.hash ^= u64::from(*b);
            self.hash = self.hash.wrapping_mul(FNV_PRIME);
        }
        self.count += 1;
        if let Some(lines) = &mut self.lines {
            lines.push(format!("{:>9} {text}", fmt_time(at)));
        }
    }

    /// The hash of everything written so far.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// Number of lines written.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The recorded lines (empty unless recording).
    pub fn lines(&self) -> &[String] {
        self.lines.as_deref().unwrap_or_default()
    }
}
