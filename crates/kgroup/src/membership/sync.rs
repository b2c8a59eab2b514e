//! SyncGroup: sending the leader's assignments (or none, as follower), its
//! error matrix (PROTOCOL.md §2.4, Java's `SyncGroupResponseHandler`), and
//! applying the assignment received (Java's `onJoinComplete`).
//!
//! Applying: eager members own nothing at this point and take everything;
//! cooperative members compute `revoked = owned − assigned` and
//! `added = assigned − owned`, revoke first, then report the assignment, and
//! rejoin at once when anything was revoked (KIP-429), so the freed
//! partitions can move in the next round.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, GroupId, SyncGroupRequest, SyncGroupResponse};

use super::{AfterRevoke, GroupError, Phase, SyncState};
use crate::TopicPartition;
use crate::assignor::{PreviousAssignment, RebalanceProtocol};
use crate::event::{Committed, Event, LostReason, RejoinReason};
use crate::group::{Group, Pending, Role, Transmit};
use crate::offsets::FetchId;
use crate::timer::Timer;
use crate::wire::consumer_protocol::{Assignment, CONSUMER_PROTOCOL_TYPE};

/// An `Assigned` waiting for the OffsetFetch of its `added` partitions.
#[derive(Debug)]
pub(crate) struct HeldAssigned {
    /// The engine's fetch for `added`; `None` when it was superseded by a
    /// generation change and could not be re-made yet.
    pub fetch: Option<FetchId>,
    pub generation: i32,
    pub member_id: String,
    pub partitions: Vec<TopicPartition>,
    pub added: Vec<TopicPartition>,
}

impl HeldAssigned {
    /// The event, with `committed` completed: every `added` partition not in
    /// `committed` is [`Committed::NotFetched`].
    pub fn into_event(self, mut committed: BTreeMap<TopicPartition, Committed>) -> Event {
        committed.retain(|tp, _| self.added.binary_search(tp).is_ok());
        for tp in &self.added {
            committed.entry(tp.clone()).or_insert(Committed::NotFetched);
        }
        Event::Assigned {
            generation: self.generation,
            member_id: self.member_id,
            partitions: self.partitions,
            added: self.added,
            committed,
        }
    }
}

/// An assignment received, waiting for a revocation to be acknowledged.
#[derive(Debug)]
pub(crate) struct NewAssignment {
    pub generation: i32,
    pub partitions: BTreeSet<TopicPartition>,
    pub added: Vec<TopicPartition>,
    pub rejoin: bool,
}

impl Group {
    /// SyncGroup, when joined and (leader) the assignments are ready.
    pub(crate) fn poll_sync(&mut self, now: Instant, version: i16) -> Option<Transmit> {
        let Phase::AwaitingSync(state) = &mut self.phase else {
            return None;
        };
        if state.sent {
            return None;
        }
        let assignments = match &mut state.leader {
            Some(leader) => leader.assignments.clone()?,
            None => Vec::new(),
        };
        let protocol = state.protocol.clone();
        let mut request = SyncGroupRequest::default()
            .with_group_id(GroupId(self.wired.group_id.clone()))
            .with_generation_id(self.identity.generation)
            .with_member_id(self.identity.member_id.clone())
            .with_assignments(assignments);
        if version >= 3 {
            request = request.with_group_instance_id(self.wired.instance_id.clone());
        }
        if version >= 5 {
            request = request
                .with_protocol_type(Some(self.wired.protocol_type.clone()))
                .with_protocol_name(Some(protocol));
        }
        // The broker holds a follower's SyncGroup until the leader's arrives,
        // at most the rebalance timeout.
        let timeout = self.join_timeout();
        match self.send(
            now,
            Role::Coordinator,
            ApiKey::SyncGroup,
            version,
            &request,
            timeout,
        ) {
            Ok(t) => {
                if let Phase::AwaitingSync(state) = &mut self.phase {
                    state.sent = true;
                }
                Some(t)
            }
            Err(source) => {
                self.fail_wire(ApiKey::SyncGroup, source);
                None
            }
        }
    }

    /// A SyncGroup response.
    pub(crate) fn on_sync_response(&mut self, now: Instant, pending: Pending, frame: Bytes) {
        if !matches!(self.phase, Phase::AwaitingSync(_)) {
            return;
        }
        let response = match crate::wire::decode_response_lenient::<SyncGroupResponse>(
            ApiKey::SyncGroup,
            pending.version,
            frame,
        ) {
            Ok((_, r)) => r,
            Err(e) => match e.error_code() {
                Some(code) => return self.on_sync_error(now, &pending, code),
                None => {
                    self.warn_wire(ApiKey::SyncGroup, e);
                    self.mark_coordinator_unknown(now);
                    self.rejoin_now(now, RejoinReason::Retry("unreadable SyncGroup response"));
                    return;
                }
            },
        };
        if response.error_code != 0 {
            return self.on_sync_error(now, &pending, response.error_code);
        }
        if !self.is_current(&pending.tag) {
            // Java (KAFKA-8104): the generation was reset meanwhile; rejoin
            // rather than apply an assignment for a membership we left.
            self.rejoin_now(now, RejoinReason::Reset(LostReason::IllegalGeneration));
            return;
        }
        let Phase::AwaitingSync(SyncState { protocol, .. }) = &self.phase else {
            return;
        };
        if pending.version >= 5 {
            let type_ok = response
                .protocol_type
                .as_ref()
                .is_none_or(|t| t.as_str() == CONSUMER_PROTOCOL_TYPE);
            let name_ok = response
                .protocol_name
                .as_ref()
                .is_none_or(|n| n == protocol);
            if !type_ok || !name_ok {
                return self
                    .fail_broker(ApiKey::SyncGroup, ResponseError::InconsistentGroupProtocol);
            }
        }
        self.session_alive(now);
        if let Phase::AwaitingSync(SyncState {
            leader: Some(leader),
            ..
        }) = &self.phase
            && (!leader.withheld.is_empty()
                || (leader.skipped && self.identity.mode == RebalanceProtocol::Cooperative))
        {
            // The assignment is in force from now: arm the follow-up for the
            // partitions it held back (see `Group::maybe_follow_up`). A
            // restarted static leader (KIP-814 SkipAssignment) cannot know
            // what the stored assignment withheld: its predecessor's
            // follow-up died with it, and the claimants may be new
            // incarnations too (a coordinator reload brings back a stored
            // generation whose second round never completed: `kgroup sim
            // --faults heavy --scenario static-restart`, seeds 631 and 746),
            // so it follows up once, in a cooperative generation.
            let due = now + self.config.rebalance_timeout;
            self.identity.follow_up = Some((self.identity.generation, due));
        }
        self.apply_assignment(now, &response.assignment);
    }

    fn on_sync_error(&mut self, now: Instant, pending: &Pending, code: i16) {
        let Some(error) = ResponseError::try_from_code(code) else {
            return;
        };
        let current = self.is_current(&pending.tag);
        match error {
            ResponseError::RebalanceInProgress => {
                // No reset (KAFKA-14016 reverted KAFKA-13891's).
                self.rejoin_now(now, RejoinReason::RebalanceInProgress("SyncGroup"));
            }
            ResponseError::IllegalGeneration => {
                if current {
                    self.reset_generation(LostReason::IllegalGeneration);
                }
                self.rejoin_now(now, RejoinReason::Reset(LostReason::IllegalGeneration));
            }
            ResponseError::UnknownMemberId => {
                if current {
                    self.hard_reset(LostReason::UnknownMember);
                }
                self.rejoin_now(now, RejoinReason::Reset(LostReason::UnknownMember));
            }
            ResponseError::CoordinatorNotAvailable | ResponseError::NotCoordinator => {
                // The rediscovery backoff is the wait (KIP-580).
                self.mark_coordinator_unknown(now);
                self.rejoin_now(now, RejoinReason::Retry("coordinator moved"));
            }
            ResponseError::FencedInstanceId if !current => {
                self.rejoin_now(now, RejoinReason::Retry("stale fencing"));
            }
            ResponseError::FencedInstanceId if self.fenced_by_a_failover() => {
                // The SyncGroup twin of the JoinGroup case (see
                // `retry_fenced_after_failover`): joined under the old
                // coordinator, synced with its successor, which loaded a
                // record that maps our instance id to an earlier member id
                // (`kgroup sim --seed 537 --faults heavy --scenario
                // static-restart`).
                self.retry_fenced_after_failover(now, ApiKey::SyncGroup);
            }
            ResponseError::InvalidRequest => {
                // librdkafka's mock coordinator answers a follower whose
                // SyncGroup arrives after the leader's with INVALID_REQUEST
                // (rdkafka_mock_cgrp.c, rd_kafka_mock_cgrp_classic_check_state),
                // and librdkafka itself rejoins on every SyncGroup error but a
                // fenced instance (rd_kafka_cgrp_handle_SyncGroup_memberstate).
                // Java would fail the call; a group member that can rejoin
                // should, so: warn, keep the member id, rejoin after a growing
                // backoff (a broker that always refuses cannot make us spin).
                self.warn_broker(ApiKey::SyncGroup, error);
                let delay = self.join_backoff.next_delay(&mut self.rng);
                self.timers.set(Timer::JoinBackoff, now + delay);
                self.rejoin_now(now, RejoinReason::Retry("SyncGroup refused as invalid"));
            }
            // FENCED_INSTANCE_ID (current), GROUP_AUTHORIZATION_FAILED,
            // INCONSISTENT_GROUP_PROTOCOL and anything else: fatal.
            _ => self.fail_broker(ApiKey::SyncGroup, error),
        }
    }

    /// SyncGroup got no response: forget the coordinator, rejoin once found.
    pub(crate) fn on_sync_failure(&mut self, now: Instant) {
        self.mark_coordinator_unknown(now);
        if matches!(self.phase, Phase::AwaitingSync(_)) {
            self.rejoin_now(now, RejoinReason::Retry("SyncGroup failed in transport"));
        }
    }

    /// Java's `onJoinComplete`.
    fn apply_assignment(&mut self, now: Instant, payload: &[u8]) {
        let generation = self.identity.generation;
        let assignment = if payload.is_empty() {
            // A leader that left us out (PROTOCOL.md §4.6): treat as empty
            // and report it (Java would throw, librdkafka takes it as empty).
            self.warn_assignment(generation, "empty assignment bytes".to_owned());
            Assignment::default()
        } else {
            match Assignment::decode(payload) {
                Ok((_, a)) => a,
                Err(e) => {
                    // Name the coordinator that relayed the leader's bytes.
                    let e = match self.coordinator.broker_ref().0 {
                        Some(id) if e.broker().is_none() => e.with_broker(id),
                        _ => e,
                    };
                    self.warn_assignment(generation, e.to_string());
                    self.enter_stable_then_rejoin(now, RejoinReason::InvalidAssignment);
                    return;
                }
            }
        };
        let assigned: BTreeSet<TopicPartition> = assignment.partitions.into_iter().collect();
        if let Some(tp) = assigned
            .iter()
            .find(|tp| !self.subscription.contains(&tp.topic))
        {
            // Java's `checkAssignmentMatchedSubscription`: do not take it, rejoin.
            let detail = format!("{tp} is not in the subscription");
            self.warn_assignment(generation, detail);
            self.enter_stable_then_rejoin(now, RejoinReason::InvalidAssignment);
            return;
        }
        let revoked: Vec<TopicPartition> = self
            .ownership
            .owned
            .difference(&assigned)
            .cloned()
            .collect();
        let added: Vec<TopicPartition> = assigned
            .difference(&self.ownership.owned)
            .cloned()
            .collect();
        self.ownership.previous = PreviousAssignment {
            partitions: assigned.iter().cloned().collect(),
            generation: Some(generation),
        };
        let next = NewAssignment {
            generation,
            partitions: assigned,
            added,
            rejoin: !revoked.is_empty(),
        };
        if revoked.is_empty() {
            self.finish_assignment(now, next);
        } else {
            self.phase = Phase::Stable;
            self.revoke(now, revoked, AfterRevoke::Assign(next));
        }
    }

    /// The assignment is in force: report it, after reading the committed
    /// offsets of the `added` partitions when `fetch_committed_on_assign`
    /// (on by default; Java's consumer refreshes committed offsets before it
    /// fetches records). Partitions kept from the previous assignment
    /// (cooperative) keep the position the application has: not fetched.
    pub(crate) fn finish_assignment(&mut self, now: Instant, a: NewAssignment) {
        if a.generation != self.identity.generation {
            // Reset while the revocation waited: the assignment is void.
            self.phase = Phase::Stable;
            return;
        }
        self.ownership.owned = a.partitions;
        self.phase = Phase::Stable;
        let mut added: BTreeSet<TopicPartition> = a.added.into_iter().collect();
        if let Some(held) = self.held_assigned.take() {
            // The previous `Assigned` still waits for its fetch and nothing
            // of it was revoked (a revocation emits it first): it is not
            // emitted; this one reports its partitions as added instead.
            if let Some(id) = held.fetch {
                self.assign_fetches.insert(id);
            }
            added.extend(
                held.added
                    .into_iter()
                    .filter(|tp| self.ownership.owned.contains(tp)),
            );
        }
        let held = HeldAssigned {
            fetch: None,
            generation: a.generation,
            member_id: self.identity.member_id.as_str().to_owned(),
            partitions: self.ownership.owned.iter().cloned().collect(),
            added: added.into_iter().collect(),
        };
        if self.config.fetch_on_assign && !held.added.is_empty() {
            // Hand the new generation first, then read its new partitions'
            // committed offsets; `Assigned` follows the fetch's answer.
            self.sync_offsets(now);
            match self.offsets.fetch(now, held.added.iter().cloned()) {
                Ok(id) => {
                    self.assign_fetches.insert(id);
                    self.held_assigned = Some(HeldAssigned {
                        fetch: Some(id),
                        ..held
                    });
                }
                // Closing, or the view disagrees: report without offsets.
                Err(_) => self.events.push_back(held.into_event(BTreeMap::new())),
            }
        } else {
            self.events.push_back(held.into_event(BTreeMap::new()));
        }
        if self.identity.watch.is_some() {
            self.timers
                .set(Timer::MetadataRefresh, now + self.config.metadata_max_age);
        }
        if a.rejoin {
            self.request_rejoin(now, RejoinReason::CooperativeRevoke);
        }
    }

    fn enter_stable_then_rejoin(&mut self, now: Instant, reason: RejoinReason) {
        self.phase = Phase::Stable;
        self.request_rejoin(now, reason);
    }

    fn warn_assignment(&mut self, generation: i32, detail: String) {
        let (group, member) = self.names();
        self.events
            .push_back(Event::Warning(GroupError::InvalidAssignment {
                group,
                member,
                generation,
                detail,
            }));
    }
}
