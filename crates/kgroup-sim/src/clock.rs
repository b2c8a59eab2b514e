//! Virtual time.
//!
//! The simulator counts time as a [`Duration`] since the start of the run
//! ([`SimTime`]); the engines want an [`Instant`], so the clock maps virtual
//! time onto an anchor instant handed in by the caller. Nothing here reads a
//! real clock: the anchor is an opaque origin, and every trace and decision
//! uses only the offset from it, so two runs with different anchors are
//! identical.

use std::time::{Duration, Instant};

/// Virtual time since the start of a run.
pub type SimTime = Duration;

/// Maps virtual time to the `Instant`s the engines are driven with.
#[derive(Clone, Copy, Debug)]
pub struct VirtualClock {
    anchor: Instant,
}

impl VirtualClock {
    /// A clock whose time zero is `anchor`.
    pub fn new(anchor: Instant) -> Self {
        Self { anchor }
    }

    /// The instant for virtual time `t`.
    pub fn instant(&self, t: SimTime) -> Instant {
        self.anchor + t
    }

    /// The virtual time of `i`; instants before the anchor map to zero.
    pub fn since_start(&self, i: Instant) -> SimTime {
        i.saturating_duration_since(self.anchor)
    }
}

/// Formats a virtual time as `12.345s` for traces and timelines.
pub fn fmt_time(t: SimTime) -> String {
    format!("{}.{:03}s", t.as_secs(), t.subsec_millis())
}
