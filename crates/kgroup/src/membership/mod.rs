//! The classic group protocol proper: JoinGroup, SyncGroup, Heartbeat and
//! LeaveGroup, eager and cooperative (KIP-429), static membership (KIP-345),
//! member-id-required (KIP-394), SkipAssignment (KIP-814).
//!
//! What lives where:
//! - this file: the member's state (`Phase`, whose variants carry the data
//!   valid in them), its identity (`Identity`) and what it owns
//!   (`Ownership`), and the rebalance lifecycle (Java's `onJoinPrepare`:
//!   hold, revoke or lose, rejoin; resets per PROTOCOL.md §2.1);
//! - `join`, `sync`, `heartbeat`, `leave`: one API each, request and
//!   response handling per the error matrix of PROTOCOL.md §2;
//! - `leader`: the leader's work (decode subscriptions, Metadata, assignor,
//!   validation, metadata watch);
//! - `subscription`: this member's ConsumerProtocol subscription.
//!
//! "Owned now" and "previous assignment with its generation" are separate
//! state: after an eager revoke a member owns nothing, while its sticky user
//! data still carries the previous assignment (the double-bounce bug of the
//! seeds, franz-go #686, came from mixing the two).

pub mod error;
pub(crate) mod heartbeat;
pub(crate) mod hooks;
pub(crate) mod join;
pub(crate) mod leader;
pub(crate) mod leave;
pub(crate) mod subscription;
pub(crate) mod sync;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use kafka_protocol::protocol::StrBytes;

pub use error::{BrokerRef, GroupError};
pub(crate) use sync::HeldAssigned;

use crate::TopicPartition;
use crate::assignor::{PreviousAssignment, RebalanceProtocol};
use crate::config::RevokeMode;
use crate::event::{Event, LostReason, RejoinReason};
use crate::group::Group;
use crate::timer::Timer;

/// The member's state. Variants carry what is valid only in them.
#[derive(Debug)]
pub(crate) enum Phase {
    /// Not subscribed yet.
    Idle,
    /// JoinGroup to send (when the coordinator is known, its connection free
    /// and no backoff runs) or in flight.
    Joining(JoinState),
    /// Joined a generation; SyncGroup to send or in flight.
    AwaitingSync(SyncState),
    /// Member of a generation with its assignment applied.
    Stable,
    /// `Revoked` emitted, waiting for `ack_revoked()` (gated mode).
    Revoking(RevokeState),
    /// LeaveGroup to send or in flight.
    Leaving(LeaveState),
    /// Left; nothing more happens.
    Left,
    /// Stopped by a fatal error.
    Failed(GroupError),
}

/// Why the member is joining.
#[derive(Debug)]
pub(crate) struct JoinState {
    pub reason: RejoinReason,
}

/// Between JoinGroup and SyncGroup.
#[derive(Debug)]
pub(crate) struct SyncState {
    /// Selected protocol (assignor name).
    pub protocol: StrBytes,
    /// Leader's work, for the leader.
    pub leader: Option<leader::LeaderState>,
    /// SyncGroup sent.
    pub sent: bool,
}

/// `Revoked` emitted; the partitions are still owned (commits for them go
/// out) until the application acknowledged (gated mode; immediate mode
/// acknowledges at once) and the offsets component no longer blocks.
#[derive(Debug)]
pub(crate) struct RevokeState {
    pub partitions: Vec<TopicPartition>,
    pub then: AfterRevoke,
    pub acked: bool,
}

/// What follows an acknowledged revocation.
#[derive(Debug)]
pub(crate) enum AfterRevoke {
    /// Eager (or unsubscribed topics): rejoin.
    Rejoin(RejoinReason),
    /// Cooperative: apply the rest of the new assignment, then rejoin.
    Assign(sync::NewAssignment),
}

/// Closing: the final commit first, then LeaveGroup (or nothing).
#[derive(Debug)]
pub(crate) struct LeaveState {
    /// Member id LeaveGroup names.
    pub member_id: StrBytes,
    pub reason: String,
    /// Send LeaveGroup (dynamic member, or `leave()`).
    pub send_leave: bool,
    /// The final commit is done (or given up): identity reset, LeaveGroup may go.
    pub ready: bool,
    pub sent: bool,
}

/// Who this member is in the group.
#[derive(Debug)]
pub(crate) struct Identity {
    /// Member id ("" before the first join and after a hard reset).
    pub member_id: StrBytes,
    /// Generation (-1 when not a member of one).
    pub generation: i32,
    /// Rebalance protocol of the current generation.
    pub mode: RebalanceProtocol,
    /// Leader's metadata watch (KIP-814: kept even with SkipAssignment).
    pub watch: Option<leader::MetadataWatch>,
    /// Coordinator epoch under which the member id was issued.
    pub member_id_epoch: u64,
    /// Coordinator epoch in which a fencing after a failover was already
    /// retried (JoinGroup, SyncGroup, Heartbeat, OffsetCommit).
    pub fence_retried_epoch: Option<u64>,
    /// Leader only: the generation whose assignment withheld partitions
    /// (claimed by a member that must revoke them first), and the instant
    /// from which a follow-up rebalance is due if none started meanwhile.
    pub follow_up: Option<(i32, Instant)>,
}

impl Identity {
    pub(crate) fn new() -> Self {
        Self {
            member_id: StrBytes::default(),
            generation: -1,
            mode: RebalanceProtocol::Eager,
            watch: None,
            member_id_epoch: 0,
            fence_retried_epoch: None,
            follow_up: None,
        }
    }
}

/// What the member owns now, and what it was last assigned.
#[derive(Debug, Default)]
pub(crate) struct Ownership {
    /// Owned now: may be consumed and committed.
    pub owned: BTreeSet<TopicPartition>,
    /// The last completed assignment and its generation, for sticky user
    /// data. Survives an eager revoke.
    pub previous: PreviousAssignment,
}

impl Group {
    /// The member's rebalance protocol for a generation that selected
    /// `protocol`: cooperative only when this member runs cooperative (every
    /// configured assignor supports it, as Java decides) and the selected
    /// assignor supports it too (franz-go #366: follow the *selected* one).
    pub(crate) fn mode_for(&self, protocol: &str) -> RebalanceProtocol {
        let selected_coop = self
            .config
            .assignors
            .iter()
            .find(|a| a.name() == protocol)
            .is_some_and(|a| {
                a.supported_protocols()
                    .contains(&RebalanceProtocol::Cooperative)
            });
        if self.config.protocol == RebalanceProtocol::Cooperative && selected_coop {
            RebalanceProtocol::Cooperative
        } else {
            RebalanceProtocol::Eager
        }
    }

    /// A rebalance is wanted. It starts in [`Group::progress`] unless the
    /// application holds it.
    pub(crate) fn request_rejoin(&mut self, now: Instant, reason: RejoinReason) {
        if self.rejoin_wanted.is_none() {
            self.rejoin_wanted = Some(reason);
        }
        if self.rejoin_since.is_none() {
            self.rejoin_since = Some(now);
        }
    }

    /// Start (re)joining now, skipping the hold: used when the member is no
    /// longer in a stable generation anyway (resets, errors mid-rebalance).
    pub(crate) fn rejoin_now(&mut self, now: Instant, reason: RejoinReason) {
        self.rejoin_wanted = Some(reason);
        self.start_rejoin(now);
    }

    /// The instant by which a held or gated rebalance must go on: the
    /// rebalance timeout counted from when it was first wanted, minus one
    /// heartbeat interval and a tenth of the timeout. The coordinator's clock
    /// started when the rebalance began, which can be up to a heartbeat
    /// interval before our heartbeat told us (Kafka's `DelayedJoin` runs the
    /// rebalance timeout from `prepareRebalance`); the tenth covers the
    /// JoinGroup round trip. With a tenth only, a member that noticed late
    /// and acknowledged its revocation late was removed by the coordinator
    /// just before its own deadline, rejoined as a new member and started
    /// another round, over and over (`kgroup sim --seed 634 --faults heavy
    /// --scenario gated-rebalance`).
    fn rebalance_deadline(&self, since: Instant) -> Instant {
        let timeout = self.config.rebalance_timeout;
        let margin = timeout / 10 + self.config.heartbeat_interval;
        since + timeout.saturating_sub(margin)
    }

    /// Advance whatever can advance without an input: complete an
    /// acknowledged revocation, start a wanted rejoin, finish the final
    /// commit of a close; hand the offsets component what changed; keep the
    /// timers consistent with the phase. Repeats until nothing moves (bounded).
    pub(crate) fn progress(&mut self, now: Instant) {
        for _ in 0..8 {
            let mut moved = self.sync_offsets(now);
            moved |= self.complete_revocation(now);
            moved |= self.maybe_follow_up(now);
            moved |= self.maybe_start_rejoin(now);
            moved |= self.complete_close_commit(now);
            if !moved {
                break;
            }
        }
        self.sync_offsets(now);
        self.sync_timers(now);
    }

    fn maybe_start_rejoin(&mut self, now: Instant) -> bool {
        if !matches!(self.phase, Phase::Stable) || self.rejoin_wanted.is_none() {
            return false;
        }
        let since = self.rejoin_since.unwrap_or(now);
        let deadline = self.rebalance_deadline(since);
        if self.held && now < deadline {
            self.timers.set(Timer::RebalanceDeadline, deadline);
            return false;
        }
        if self.held
            && let Some(reason) = self.rejoin_wanted.clone()
        {
            self.events.push_back(Event::HoldExpired { reason });
        }
        self.start_rejoin(now);
        true
    }

    /// The leader's follow-up rebalance for partitions it withheld.
    ///
    /// KIP-429's second round normally comes from the claimant: told to give
    /// the partition up, it revokes and rejoins. A claimant that never does
    /// leaves the partition unassigned while the group is Stable: a static
    /// member restarted after the leader read its old record owns nothing to
    /// revoke, and the coordinator hands it the stored assignment without a
    /// rebalance (Kafka's `GroupCoordinator.updateStaticMemberAndRebalance`
    /// in Stable with an unchanged protocol). Found by `kgroup sim --seed 777
    /// --faults heavy --scenario static-restart`. So the leader rejoins
    /// itself when no rebalance started within the rebalance timeout of its
    /// SyncGroup: by then every claimant that was told has revoked and
    /// rejoined, or turned the partitions into `Lost` at its own rebalance
    /// deadline (0.9 × the timeout), so the next round cannot hand a withheld
    /// partition to a second live owner. (Rejoining right after SyncGroup
    /// races claimants still revoking; Java's leader never rejoins for this
    /// and relies on the claimant alone.) A static leader that got KIP-814
    /// `SkipAssignment` in a cooperative generation arms it too (see
    /// `on_sync_response`). Checked on every input: the heartbeat timer
    /// bounds the lateness to one heartbeat interval.
    fn maybe_follow_up(&mut self, now: Instant) -> bool {
        let Some((generation, due)) = self.identity.follow_up else {
            return false;
        };
        if generation != self.identity.generation {
            self.identity.follow_up = None;
            return false;
        }
        if now < due || !matches!(self.phase, Phase::Stable) {
            return false;
        }
        self.identity.follow_up = None;
        self.request_rejoin(now, RejoinReason::CooperativeRevoke);
        true
    }

    /// A revocation goes on once acknowledged and its commit is answered.
    fn complete_revocation(&mut self, now: Instant) -> bool {
        // Wait only for commits *of the revoked partitions*: during a
        // cooperative revoke the application keeps committing what it
        // retains, and those must not stall the revocation.
        let ready = matches!(&self.phase, Phase::Revoking(r)
            if r.acked && !self.offsets.has_pending_for(&r.partitions));
        if !ready {
            return false;
        }
        let Phase::Revoking(state) = std::mem::replace(&mut self.phase, Phase::Stable) else {
            return false;
        };
        self.timers.stop(Timer::RebalanceDeadline);
        #[cfg(feature = "mutations")]
        if self.keeps_revoked(&state.then) {
            self.after_revoke(now, state.then);
            return true;
        }
        self.release(&state.partitions);
        self.after_revoke(now, state.then);
        true
    }

    /// Keep heartbeat and session timers consistent with the phase.
    fn sync_timers(&mut self, now: Instant) {
        let heartbeating = self.identity.generation >= 0
            && matches!(
                self.phase,
                Phase::AwaitingSync(_) | Phase::Stable | Phase::Revoking(_)
            );
        if heartbeating {
            if self.timers.get(Timer::Heartbeat).is_none() && !self.heartbeat_due {
                self.timers
                    .set(Timer::Heartbeat, now + self.config.heartbeat_interval);
            }
            if self.timers.get(Timer::Session).is_none() {
                self.timers
                    .set(Timer::Session, now + self.config.session_timeout);
            }
        } else {
            self.timers.stop(Timer::Heartbeat);
            self.heartbeat_due = false;
        }
        if !matches!(self.phase, Phase::Stable | Phase::Revoking(_)) && self.rejoin_wanted.is_none()
        {
            self.timers.stop(Timer::RebalanceDeadline);
        }
        if matches!(self.phase, Phase::Left | Phase::Failed(_) | Phase::Idle) {
            self.timers.stop(Timer::Session);
            self.timers.stop(Timer::MetadataRefresh);
        }
    }

    /// A successful exchange with the coordinator: the session lives on.
    pub(crate) fn session_alive(&mut self, now: Instant) {
        self.timers
            .set(Timer::Session, now + self.config.session_timeout);
    }

    /// Java's `onJoinPrepare`: decide what to revoke or lose, then rejoin.
    pub(crate) fn start_rejoin(&mut self, now: Instant) {
        let reason = self.rejoin_wanted.take().unwrap_or(RejoinReason::Initial);
        // The coordinator's rebalance timeout runs from before we noticed;
        // a revocation that follows a hold keeps counting from the notice,
        // not from the end of the hold.
        let since = self.rejoin_since.take().unwrap_or(now);
        // Any rebalance is the follow-up a withholding leader waits for.
        self.identity.follow_up = None;
        self.timers.stop(Timer::RebalanceDeadline);
        self.events.push_back(Event::Rejoining {
            reason: reason.clone(),
        });
        if self.identity.generation < 0 || self.identity.member_id.is_empty() {
            // Resets already reported everything Lost; anything left is lost too.
            self.lose_all(LostReason::IllegalGeneration);
        }
        let revoke: Vec<TopicPartition> = match self.identity.mode {
            RebalanceProtocol::Eager => self.ownership.owned.iter().cloned().collect(),
            RebalanceProtocol::Cooperative => self
                .ownership
                .owned
                .iter()
                .filter(|tp| !self.subscription.contains(&tp.topic))
                .cloned()
                .collect(),
        };
        if revoke.is_empty() {
            self.phase = Phase::Joining(JoinState { reason });
            return;
        }
        self.revoke(since, revoke, AfterRevoke::Rejoin(reason));
    }

    /// Emit `Revoked`; in gated mode wait for the acknowledgement, else go on.
    /// The acknowledgement is due by the rebalance deadline counted from
    /// `since`: when the rebalance was first noticed (a revocation before
    /// rejoining, possibly after a hold), or now (a cooperative revocation
    /// after SyncGroup, before the follow-up rejoin).
    pub(crate) fn revoke(
        &mut self,
        since: Instant,
        partitions: Vec<TopicPartition>,
        then: AfterRevoke,
    ) {
        self.flush_held_assigned();
        self.events.push_back(Event::Revoked {
            partitions: partitions.clone(),
        });
        // Both modes pass through `Revoking`, where the commit-on-revoke
        // (auto-commit of the marks) goes out with the generation that still
        // owns the partitions; immediate mode does not wait for the
        // application, only for that commit. `progress` completes it.
        let acked = self.config.revoke_mode == RevokeMode::Immediate;
        let deadline = self.rebalance_deadline(since);
        self.timers.set(Timer::RebalanceDeadline, deadline);
        self.phase = Phase::Revoking(RevokeState {
            partitions,
            then,
            acked,
        });
    }

    fn release(&mut self, partitions: &[TopicPartition]) {
        for tp in partitions {
            self.ownership.owned.remove(tp);
        }
    }

    fn after_revoke(&mut self, now: Instant, then: AfterRevoke) {
        match then {
            AfterRevoke::Rejoin(reason) => {
                self.phase = Phase::Joining(JoinState { reason });
            }
            AfterRevoke::Assign(assignment) => self.finish_assignment(now, assignment),
        }
    }

    /// `ack_revoked()`.
    pub(crate) fn on_revoke_acked(&mut self, now: Instant) {
        let Phase::Revoking(state) = &mut self.phase else {
            return;
        };
        if !state.acked {
            state.acked = true;
            // Commit what the application marked before giving them up.
            let _ = self.offsets.flush_marks(now);
        }
    }

    /// The rebalance deadline fired: a held rebalance goes on (said so), or a
    /// revocation not acknowledged in time becomes a loss.
    pub(crate) fn on_rebalance_deadline(&mut self, now: Instant) {
        if let Phase::Leaving(state) = &mut self.phase
            && !state.ready
        {
            // The final commit took too long: give up on it and leave.
            self.offsets.abandon(now);
            self.leave_now();
            return;
        }
        if matches!(self.phase, Phase::Revoking(_)) {
            let Phase::Revoking(state) = std::mem::replace(&mut self.phase, Phase::Stable) else {
                return;
            };
            self.release(&state.partitions);
            self.events.push_back(Event::Lost {
                partitions: state.partitions,
                reason: LostReason::RevokeTimeout,
            });
            self.after_revoke(now, state.then);
        }
        // A held rejoin needs nothing here: `progress` runs next and sees
        // that the deadline has passed.
    }

    /// Report everything owned as lost and forget it.
    ///
    /// An `Assigned` still held for its OffsetFetch is dropped, not emitted:
    /// the application was never handed its new partitions, so they are not
    /// reported lost either. Emitting it here would hand the application
    /// partitions of a generation that may be long over (a member cut off
    /// in a parked JoinGroup learns of its loss only at the reset), while
    /// another member owns them already: `kgroup sim --seed 4 --faults heavy
    /// --scenario random` with a leader follow-up right after SyncGroup.
    pub(crate) fn lose_all(&mut self, reason: LostReason) {
        let untold = self.drop_held_assigned();
        let partitions: Vec<TopicPartition> = std::mem::take(&mut self.ownership.owned)
            .into_iter()
            .filter(|tp| !untold.contains(tp))
            .collect();
        if partitions.is_empty() {
            return;
        }
        self.events.push_back(Event::Lost { partitions, reason });
    }

    /// PROTOCOL.md §2.1 "generation reset": member id kept, generation −1,
    /// partitions lost (KAFKA-13419).
    pub(crate) fn reset_generation(&mut self, reason: LostReason) {
        self.lose_all(reason);
        self.identity.generation = -1;
        self.identity.watch = None;
        self.abandon_revocation();
    }

    /// PROTOCOL.md §2.1 "hard reset": member id "", generation −1,
    /// partitions lost.
    pub(crate) fn hard_reset(&mut self, reason: LostReason) {
        self.reset_generation(reason);
        self.identity.member_id = StrBytes::default();
    }

    /// A reset voids a pending revocation: those partitions were just lost.
    fn abandon_revocation(&mut self) {
        if matches!(self.phase, Phase::Revoking(_)) {
            self.phase = Phase::Stable;
            self.timers.stop(Timer::RebalanceDeadline);
        }
    }

    /// Reset, then rejoin at once.
    pub(crate) fn reset_and_rejoin(&mut self, now: Instant, reason: LostReason, hard: bool) {
        if hard {
            self.hard_reset(reason);
        } else {
            self.reset_generation(reason);
        }
        self.rejoin_now(now, RejoinReason::Reset(reason));
    }

    /// No successful heartbeat within the session timeout: the coordinator
    /// has (or soon will have) dropped us. Lose everything and rejoin as a new
    /// member, as librdkafka's `rd_kafka_cgrp_session_timeout_check`.
    pub(crate) fn on_session_expired(&mut self, now: Instant) {
        let member = !matches!(
            self.phase,
            Phase::Idle | Phase::Left | Phase::Failed(_) | Phase::Leaving(_)
        );
        if !member || self.identity.generation < 0 {
            return;
        }
        self.reset_and_rejoin(now, LostReason::SessionExpired, true);
    }

    /// The coordinator was lost: what was in flight on its connection is
    /// gone. Membership is kept (KAFKA-13214).
    pub(crate) fn on_coordinator_lost(&mut self) {
        if let Phase::AwaitingSync(state) = &mut self.phase {
            state.sent = false;
        }
        // Nobody to tell: leaving is done (a final commit still waiting is
        // re-sent to the next coordinator by the offsets component).
        if matches!(&self.phase, Phase::Leaving(l) if l.ready) {
            self.finish_leaving();
        }
    }

    /// The subscription changed.
    pub(crate) fn on_subscription_changed(&mut self, now: Instant) {
        match self.phase {
            Phase::Idle => {
                self.phase = Phase::Joining(JoinState {
                    reason: RejoinReason::Initial,
                });
                self.events.push_back(Event::Rejoining {
                    reason: RejoinReason::Initial,
                });
            }
            Phase::Left | Phase::Failed(_) | Phase::Leaving(_) => {}
            _ => self.request_rejoin(now, RejoinReason::SubscriptionChanged),
        }
    }

    /// Duration helper: JoinGroup's request timeout (Java's
    /// `JOIN_GROUP_TIMEOUT_LAPSE`: rebalance timeout + 5 s, at least the
    /// request timeout).
    pub(crate) fn join_timeout(&self) -> Duration {
        (self.config.rebalance_timeout + Duration::from_secs(5)).max(self.config.request_timeout)
    }
}
