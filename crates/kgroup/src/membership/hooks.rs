//! Where the membership meets the offsets component ([`crate::offsets`]).
//!
//! The group owns one [`Offsets`] and drives it through these hook points:
//!
//! - **membership changes**: after every input, [`Group::sync_offsets`]
//!   hands a [`MembershipView`] (generation, member id, instance id, owned
//!   partitions, [`RebalancePhase`]) whenever one of them changed, so a
//!   commit is always built with the identity current when it is sent;
//! - **coordinator ready / lost**: the negotiated OffsetCommit/OffsetFetch
//!   versions when the coordinator connection is negotiated, and its loss;
//! - **before rejoin / on revoke**: a revocation (eager before JoinGroup,
//!   cooperative after SyncGroup) shows as `Revoking`; the rebalance goes on
//!   only once the application acknowledged it (gated mode) *and* no commit
//!   of the *revoked* partitions is in flight ([`Offsets::has_pending_for`]:
//!   the commit-on-revoke is answered; commits of kept partitions do not
//!   stall a cooperative revoke), bounded by the rebalance deadline;
//! - **on revoke ack**: [`Offsets::flush_marks`] commits the marked offsets;
//! - **on close**: [`Offsets::close`], then LeaveGroup once the final commit
//!   is answered (bounded by the request timeout), then [`Offsets::abandon`];
//! - **requests and responses**: OffsetCommit/OffsetFetch share the
//!   coordinator connection (one request at a time; heartbeats first), and
//!   their answers are routed back by [`RequestTag`];
//! - **events**: `CommitDone`/`FetchDone` reach the application as
//!   [`Event::Offsets`]; the membership actions an OffsetCommit error asks
//!   for (PROTOCOL.md §2.7: rediscover, rejoin, reset, fenced) are applied
//!   here.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, OffsetCommitResponse, OffsetFetchResponse};

use super::{HeldAssigned, Phase};
use crate::TopicPartition;
use crate::assignor::RebalanceProtocol;
use crate::event::{Committed, Event, LostReason, RejoinReason};
use crate::group::{Group, Pending, Role, Transmit};
use crate::offsets::{
    FetchError, FetchId, FetchedOffsets, MembershipAction, MembershipView, OffsetEvent,
    OffsetRequestBody, OffsetVersions, PartitionFetchError, RebalancePhase, RequestFailure,
};
use crate::timer::Timer;

impl Group {
    /// The rebalance phase as the offsets component sees it.
    fn rebalance_phase(&self) -> RebalancePhase {
        let member = self.identity.generation >= 0 && !self.identity.member_id.is_empty();
        if !member {
            return RebalancePhase::Unjoined;
        }
        match &self.phase {
            Phase::Stable => RebalancePhase::Stable,
            Phase::Revoking(_) => RebalancePhase::Revoking,
            // Closing: the final commit goes out before LeaveGroup.
            Phase::Leaving(l) if !l.ready => RebalancePhase::Revoking,
            Phase::Joining(_) | Phase::AwaitingSync(_) => {
                if self.config.protocol == RebalanceProtocol::Cooperative {
                    RebalancePhase::CooperativeJoining
                } else {
                    RebalancePhase::EagerJoining
                }
            }
            _ => RebalancePhase::Unjoined,
        }
    }

    /// Hand the offsets component what changed; collect its events and its
    /// deadline. Returns whether it reported anything the membership acted on.
    pub(crate) fn sync_offsets(&mut self, now: Instant) -> bool {
        let phase = self.rebalance_phase();
        let view = self.offsets.view();
        let unchanged = view.generation_id == self.identity.generation
            && view.member_id == self.identity.member_id.as_str()
            && view.phase == phase
            && view.owned == self.ownership.owned
            && view.group_instance_id.as_deref() == self.config.instance_id.as_deref();
        if !unchanged {
            let view = MembershipView {
                generation_id: self.identity.generation,
                member_id: self.identity.member_id.as_str().to_owned(),
                group_instance_id: self.config.instance_id.clone(),
                owned: self.ownership.owned.clone(),
                phase,
            };
            self.offsets.handle_membership(now, view);
        }
        self.sync_offsets_coordinator(now);
        let mut acted = false;
        while let Some(event) = self.offsets.poll_event() {
            match event {
                OffsetEvent::Membership { action, error, .. } => {
                    self.on_offsets_action(now, action, error);
                    acted = true;
                }
                OffsetEvent::FetchDone { id, result, .. } if self.assign_fetches.remove(&id) => {
                    // The engine's own fetch for an `Assigned`: its result
                    // goes into that event, not out as `FetchDone`.
                    self.on_assign_fetch_done(now, id, result);
                }
                other => self.events.push_back(Event::Offsets(other)),
            }
        }
        match self.offsets.poll_timeout() {
            Some(at) => self.timers.set(Timer::Offsets, at),
            None => self.timers.stop(Timer::Offsets),
        }
        acted
    }

    fn sync_offsets_coordinator(&mut self, now: Instant) {
        let epoch = self.coordinator.epoch();
        let versions = self
            .coordinator
            .conn()
            .and_then(|c| c.ready())
            .and_then(|v| {
                Some(OffsetVersions {
                    commit: v.version(ApiKey::OffsetCommit)?,
                    fetch: v.version(ApiKey::OffsetFetch)?,
                })
            });
        match versions {
            Some(v) if self.offsets_coordinator != Some(epoch) => {
                if self.offsets_coordinator.is_some() {
                    self.offsets.handle_coordinator_lost(now);
                }
                // A version outside kgroup's range leaves commits waiting
                // (and failing at their deadline) rather than failing the group.
                if self.offsets.handle_coordinator_ready(now, v).is_ok() {
                    self.offsets_coordinator = Some(epoch);
                }
            }
            None if self.offsets_coordinator.is_some() => {
                self.offsets.handle_coordinator_lost(now);
                self.offsets_coordinator = None;
            }
            _ => {}
        }
    }

    /// PROTOCOL.md §2.7: what an OffsetCommit/OffsetFetch error means for
    /// the membership (the offsets component already checked that it is
    /// about the current generation).
    fn on_offsets_action(&mut self, now: Instant, action: MembershipAction, error: ResponseError) {
        match action {
            MembershipAction::MarkCoordinatorUnknown => self.mark_coordinator_unknown(now),
            MembershipAction::RequestRejoin => {
                if matches!(self.phase, Phase::Stable) {
                    self.request_rejoin(now, RejoinReason::RebalanceInProgress("OffsetCommit"));
                }
            }
            MembershipAction::ResetGeneration => {
                self.reset_and_rejoin(now, LostReason::IllegalGeneration, false)
            }
            MembershipAction::HardReset => {
                self.reset_and_rejoin(now, LostReason::UnknownMember, true)
            }
            MembershipAction::Fenced if self.fenced_by_a_failover() => {
                self.retry_fenced_after_failover(now, ApiKey::OffsetCommit);
            }
            MembershipAction::Fenced => {
                self.lose_all(LostReason::Fenced);
                self.fail_broker(ApiKey::OffsetCommit, error);
            }
        }
    }

    /// The OffsetFetch made for a held `Assigned` finished.
    fn on_assign_fetch_done(
        &mut self,
        now: Instant,
        id: FetchId,
        result: Result<FetchedOffsets, FetchError>,
    ) {
        let Some(held) = self.held_assigned.take_if(|h| h.fetch == Some(id)) else {
            // An `Assigned` emitted or replaced meanwhile: nothing to do.
            return;
        };
        let committed: BTreeMap<TopicPartition, Committed> = match result {
            Ok(offsets) => held
                .added
                .iter()
                .map(|tp| {
                    let c = match offsets.get(tp) {
                        Some(Ok(Some(o))) => Committed::Offset(o.clone()),
                        Some(Ok(None)) => Committed::None,
                        Some(Err(e)) => Committed::Error(e.clone()),
                        None => Committed::Error(PartitionFetchError::MissingFromResponse),
                    };
                    (tp.clone(), c)
                })
                .collect(),
            Err(FetchError::Superseded { .. }) => {
                // The generation (or member id) changed before the answer,
                // with the partitions still owned (a revocation or loss
                // would have emitted the `Assigned` already): a cooperative
                // rejoin. The next assignment takes these partitions over
                // (its `Assigned` lists them as added; this one is never
                // emitted); only when Stable already, fetch again now.
                if !matches!(self.phase, Phase::Stable) {
                    self.held_assigned = Some(HeldAssigned {
                        fetch: None,
                        ..held
                    });
                    return;
                }
                match self.offsets.fetch(now, held.added.iter().cloned()) {
                    Ok(id) => {
                        self.assign_fetches.insert(id);
                        self.held_assigned = Some(HeldAssigned {
                            fetch: Some(id),
                            ..held
                        });
                        return;
                    }
                    // Not fetchable now (closing): report without offsets
                    // rather than wait for nothing.
                    Err(_) => BTreeMap::new(),
                }
            }
            Err(e) => held
                .added
                .iter()
                .map(|tp| (tp.clone(), Committed::FetchFailed(e.clone())))
                .collect(),
        };
        self.events.push_back(held.into_event(committed));
    }

    /// Emit a held `Assigned` now, before a revocation (`Revoked`, a clean
    /// leave), so the application never sees partitions leave that it was
    /// not told it had: its unanswered partitions are
    /// [`Committed::NotFetched`]. Its fetch's answer is then dropped. A loss
    /// drops it instead ([`Group::drop_held_assigned`]).
    pub(crate) fn flush_held_assigned(&mut self) {
        if let Some(held) = self.held_assigned.take() {
            self.events.push_back(held.into_event(BTreeMap::new()));
        }
    }

    /// Forget a held `Assigned` without emitting it (its partitions are
    /// being lost, see [`Group::lose_all`]); returns the partitions it would
    /// have added, which the application never saw. Its fetch's answer is
    /// then dropped.
    pub(crate) fn drop_held_assigned(&mut self) -> BTreeSet<TopicPartition> {
        self.held_assigned
            .take()
            .map(|held| held.added.into_iter().collect())
            .unwrap_or_default()
    }

    /// An OffsetCommit or OffsetFetch, when the offsets component has one.
    pub(crate) fn poll_offsets_request(&mut self, now: Instant) -> Option<Transmit> {
        let request = self.offsets.poll_request(now)?;
        let timeout = self.config.request_timeout;
        let api = request.api_key();
        let sent = match &request.body {
            OffsetRequestBody::Commit(body) => {
                self.send(now, Role::Coordinator, api, request.version, body, timeout)
            }
            OffsetRequestBody::Fetch(body) => {
                self.send(now, Role::Coordinator, api, request.version, body, timeout)
            }
        };
        match sent {
            Ok(t) => {
                if let Some(pending) = self.coordinator.conn_mut().and_then(|c| c.pending.as_mut())
                {
                    pending.offsets_tag = Some(request.tag);
                }
                Some(t)
            }
            Err(e) => {
                self.offsets.handle_request_failure(
                    now,
                    request.tag,
                    RequestFailure::Malformed(e.to_string()),
                );
                None
            }
        }
    }

    /// An OffsetCommit/OffsetFetch response.
    pub(crate) fn on_offsets_response(&mut self, now: Instant, pending: Pending, frame: Bytes) {
        let Some(tag) = pending.offsets_tag else {
            return;
        };
        let failure = match pending.api {
            ApiKey::OffsetCommit => {
                match crate::wire::decode_response::<OffsetCommitResponse>(
                    pending.api,
                    pending.version,
                    frame,
                ) {
                    Ok((_, r)) => {
                        self.offsets.handle_commit_response(now, tag, &r);
                        None
                    }
                    Err(e) => Some(e),
                }
            }
            ApiKey::OffsetFetch => {
                match crate::wire::decode_response::<OffsetFetchResponse>(
                    pending.api,
                    pending.version,
                    frame,
                ) {
                    Ok((_, r)) => {
                        self.offsets.handle_fetch_response(now, tag, &r);
                        None
                    }
                    Err(e) => Some(e),
                }
            }
            _ => None,
        };
        if let Some(e) = failure {
            self.offsets
                .handle_request_failure(now, tag, RequestFailure::Malformed(e.to_string()));
            self.warn_wire(pending.api, e);
            self.mark_coordinator_unknown(now);
        }
    }

    /// An OffsetCommit/OffsetFetch got no response.
    pub(crate) fn on_offsets_failure(&mut self, now: Instant, pending: &Pending, timed_out: bool) {
        if let Some(tag) = pending.offsets_tag {
            let failure = if timed_out {
                RequestFailure::TimedOut
            } else {
                RequestFailure::Disconnected
            };
            self.offsets.handle_request_failure(now, tag, failure);
        }
        self.mark_coordinator_unknown(now);
    }
}
