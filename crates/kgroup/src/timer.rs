//! Every deadline of the engine, in one table keyed by [`Timer`].
//!
//! As quinn-proto's `connection/timer.rs`: each kind of timer has one slot;
//! arming a slot replaces its deadline; [`TimerTable::next`] is the minimum,
//! which is what `Group::poll_timeout` reports (with its reason, as
//! firezone's `snownet` does, so traces say *why* the engine wants to wake).

use std::fmt;
use std::time::Instant;

/// The kinds of timer the engine runs. One deadline per kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Timer {
    /// The next heartbeat is due (`heartbeat.interval.ms`, or a backoff after a failure).
    Heartbeat,
    /// Local session expiry: no successful heartbeat within `session.timeout.ms`.
    Session,
    /// The request on the bootstrap connection has timed out.
    BootstrapRequest,
    /// The request on the coordinator connection has timed out
    /// (JoinGroup: rebalance timeout + 5 s, as Java's `JOIN_GROUP_TIMEOUT_LAPSE`).
    CoordinatorRequest,
    /// Retry FindCoordinator after a backoff (KIP-580 with seeded jitter).
    CoordinatorBackoff,
    /// Retry JoinGroup/SyncGroup after a backoff.
    JoinBackoff,
    /// A rebalance held by the application (`hold_rebalance`) or waiting for
    /// `ack_revoked` must go on now: the rebalance timeout is near.
    RebalanceDeadline,
    /// Refresh topic metadata (`metadata.max.age.ms`): partition-count changes
    /// trigger a rejoin of the leader.
    MetadataRefresh,
    /// Slot reserved for the offsets component (auto-commit interval, commit
    /// and fetch retries).
    Offsets,
}

impl Timer {
    /// Every timer kind, in table order.
    pub const ALL: [Timer; 9] = [
        Timer::Heartbeat,
        Timer::Session,
        Timer::BootstrapRequest,
        Timer::CoordinatorRequest,
        Timer::CoordinatorBackoff,
        Timer::JoinBackoff,
        Timer::RebalanceDeadline,
        Timer::MetadataRefresh,
        Timer::Offsets,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// Lower-case name for traces.
    pub fn as_str(self) -> &'static str {
        match self {
            Timer::Heartbeat => "heartbeat",
            Timer::Session => "session",
            Timer::BootstrapRequest => "bootstrap-request",
            Timer::CoordinatorRequest => "coordinator-request",
            Timer::CoordinatorBackoff => "coordinator-backoff",
            Timer::JoinBackoff => "join-backoff",
            Timer::RebalanceDeadline => "rebalance-deadline",
            Timer::MetadataRefresh => "metadata-refresh",
            Timer::Offsets => "offsets",
        }
    }
}

impl fmt::Display for Timer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One optional deadline per [`Timer`].
#[derive(Clone, Debug, Default)]
pub struct TimerTable {
    slots: [Option<Instant>; Timer::ALL.len()],
}

impl TimerTable {
    /// Arm `timer` to fire at `at` (replacing any earlier deadline).
    pub fn set(&mut self, timer: Timer, at: Instant) {
        if let Some(slot) = self.slots.get_mut(timer.index()) {
            *slot = Some(at);
        }
    }

    /// Disarm `timer`.
    pub fn stop(&mut self, timer: Timer) {
        if let Some(slot) = self.slots.get_mut(timer.index()) {
            *slot = None;
        }
    }

    /// The deadline of `timer`, if armed.
    pub fn get(&self, timer: Timer) -> Option<Instant> {
        self.slots.get(timer.index()).copied().flatten()
    }

    /// Whether `timer` is armed and due at `now`.
    pub fn is_expired(&self, timer: Timer, now: Instant) -> bool {
        self.get(timer).is_some_and(|at| at <= now)
    }

    /// Disarm `timer` and say whether it was due at `now`.
    pub fn take_expired(&mut self, timer: Timer, now: Instant) -> bool {
        let due = self.is_expired(timer, now);
        if due {
            self.stop(timer);
        }
        due
    }

    /// The earliest armed deadline and its timer (ties: table order).
    pub fn next(&self) -> Option<(Instant, Timer)> {
        Timer::ALL
            .iter()
            .filter_map(|&t| self.get(t).map(|at| (at, t)))
            .min_by_key(|&(at, t)| (at, t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn next_is_the_minimum_with_its_reason() {
        let t0 = crate::test_origin();
        let mut table = TimerTable::default();
        assert_eq!(table.next(), None);
        table.set(Timer::Session, t0 + Duration::from_secs(45));
        table.set(Timer::Heartbeat, t0 + Duration::from_secs(3));
        assert_eq!(
            table.next(),
            Some((t0 + Duration::from_secs(3), Timer::Heartbeat))
        );
        table.stop(Timer::Heartbeat);
        assert_eq!(
            table.next(),
            Some((t0 + Duration::from_secs(45), Timer::Session))
        );
        assert!(!table.take_expired(Timer::Session, t0));
        assert!(table.take_expired(Timer::Session, t0 + Duration::from_secs(45)));
        assert_eq!(table.next(), None);
    }
}
