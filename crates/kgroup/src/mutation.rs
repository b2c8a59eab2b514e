//! Test-only bug switches (`mutations` feature): two known client bugs that
//! can be put back into the engine so the simulator's invariant checker can
//! be shown to catch them (issue 8, "trust in the simulator").
//!
//! The feature is never in the default features and the switch is off until
//! [`Group::set_mutation`] turns it on, so an engine built without it, or
//! with it but never switched, behaves exactly as the normal one. Each bug is
//! one `#[cfg(feature = "mutations")]` branch at the line where the correct
//! engine does the opposite:
//!
//! - stale last-assigned state ([`Mutation::StaleLastAssigned`]) in
//!   `membership::complete_revocation`, where an eager revoke releases;
//! - stale commit generation ([`Mutation::StaleCommitGeneration`]) in
//!   `offsets::poll_commit_request`, where the request's sender is built.

use crate::assignor::RebalanceProtocol;
use crate::group::Group;
use crate::membership::AfterRevoke;

/// A deliberately reintroduced bug.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutation {
    /// The double-bounce bug of seed 000 (franz-go's `lastAssigned` kept
    /// across an eager revoke): after an eager revoke the engine keeps the
    /// revoked partitions as owned instead of clearing them. The next
    /// JoinGroup claims them in `owned_partitions`, and a later assignment
    /// that hands them back does not list them in `Assigned.added`, so the
    /// application never picks them up again.
    StaleLastAssigned,
    /// OffsetCommit carries the generation the commit was made (or its
    /// marks queued) in, instead of the generation current when it is sent:
    /// a commit held across a rebalance (cooperative Join→Sync, a retry, a
    /// coordinator move) goes out with a stale generation.
    StaleCommitGeneration,
}

impl Group {
    /// Turn a reintroduced bug on (`Some`) or off (`None`, the default).
    /// Test-only: exists only with the `mutations` feature.
    pub fn set_mutation(&mut self, mutation: Option<Mutation>) {
        self.mutation = mutation;
        self.offsets.mutation = mutation;
    }

    /// The bug switched on, if any.
    pub fn mutation(&self) -> Option<Mutation> {
        self.mutation
    }
}

/// [`Mutation::StaleCommitGeneration`]: the generation an OffsetCommit
/// carries, `made_in` (when the commit was made) instead of `current`.
pub(crate) fn commit_generation(mutation: Option<Mutation>, current: i32, made_in: i32) -> i32 {
    if mutation == Some(Mutation::StaleCommitGeneration) {
        made_in
    } else {
        current
    }
}

impl Group {
    /// [`Mutation::StaleLastAssigned`]: whether a completed revocation keeps
    /// its partitions as owned (eager revoke before a rejoin only).
    pub(crate) fn keeps_revoked(&self, then: &AfterRevoke) -> bool {
        self.mutation == Some(Mutation::StaleLastAssigned)
            && self.identity.mode == RebalanceProtocol::Eager
            && matches!(then, AfterRevoke::Rejoin(_))
    }
}
