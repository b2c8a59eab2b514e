//! JoinGroup: the request (KIP-394 two-step join, KIP-345 instance id,
//! KIP-800 reason) and its error matrix (PROTOCOL.md §2.3, Java's
//! `AbstractCoordinator.JoinGroupResponseHandler`).
//!
//! JoinGroup parks on the broker for up to the rebalance timeout and blocks
//! the coordinator connection meanwhile, so no heartbeat goes out while it is
//! in flight, and its request timeout is the rebalance timeout + 5 s.

use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::{GroupError, Phase, SyncState, leader};
use crate::assignor::RebalanceProtocol;
use crate::event::{Event, LostReason, RejoinReason};
use crate::group::{Group, Pending, Role, Transmit};
use crate::timer::Timer;
use crate::wire::consumer_protocol::CONSUMER_PROTOCOL_TYPE;

/// KIP-800: Java truncates reasons to 255 characters.
const MAX_REASON_LEN: usize = 255;

impl Group {
    /// JoinGroup, when the member is joining and the connection allows it.
    pub(crate) fn poll_join(&mut self, now: Instant, version: i16) -> Option<Transmit> {
        let Phase::Joining(state) = &self.phase else {
            return None;
        };
        if self.timers.get(Timer::JoinBackoff).is_some() {
            return None;
        }
        let reason = truncate(&state.reason.to_string(), MAX_REASON_LEN);
        if self.wired.instance_id.is_some() && version < 5 {
            // Static membership needs JoinGroup v5 (KIP-345); Java fails with
            // UNSUPPORTED_VERSION in the same case.
            let (group, member) = self.names();
            self.fail(GroupError::Broker {
                group,
                member,
                api: ApiKey::JoinGroup,
                broker: self.coordinator.broker_ref(),
                error: ResponseError::UnsupportedVersion,
            });
            return None;
        }
        let protocols = match self.join_protocols() {
            Ok(p) => p,
            Err(source) => {
                self.fail_wire(ApiKey::JoinGroup, source);
                return None;
            }
        };
        let mut request = JoinGroupRequest::default()
            .with_group_id(kafka_protocol::messages::GroupId(
                self.wired.group_id.clone(),
            ))
            .with_session_timeout_ms(ms(self.config.session_timeout))
            .with_member_id(self.identity.member_id.clone())
            .with_protocol_type(self.wired.protocol_type.clone())
            .with_protocols(protocols);
        if version >= 1 {
            request = request.with_rebalance_timeout_ms(ms(self.config.rebalance_timeout));
        }
        if version >= 5 {
            request = request.with_group_instance_id(self.wired.instance_id.clone());
        }
        if version >= 8 {
            request = request.with_reason(Some(StrBytes::from_string(reason)));
        }
        let timeout = self.join_timeout();
        match self.send(
            now,
            Role::Coordinator,
            ApiKey::JoinGroup,
            version,
            &request,
            timeout,
        ) {
            Ok(t) => {
                // The subscription in this request is the one being joined with.
                self.rejoin_wanted = None;
                self.rejoin_since = None;
                // Parked on the broker: no heartbeats, and no local session
                // expiry while the broker holds our request.
                self.timers.stop(Timer::Heartbeat);
                self.timers.stop(Timer::Session);
                self.heartbeat_due = false;
                Some(t)
            }
            Err(source) => {
                self.fail_wire(ApiKey::JoinGroup, source);
                None
            }
        }
    }

    /// A JoinGroup response.
    pub(crate) fn on_join_response(&mut self, now: Instant, pending: Pending, frame: Bytes) {
        if !matches!(self.phase, Phase::Joining(_)) {
            return;
        }
        let response = match crate::wire::decode_response_lenient::<JoinGroupResponse>(
            ApiKey::JoinGroup,
            pending.version,
            frame,
        ) {
            Ok((_, r)) => r,
            Err(e) => match e.error_code() {
                Some(code) => return self.on_join_error(now, &pending, code, None),
                None => {
                    // Unreadable: the stream is not trustworthy; start over
                    // on a new connection (a transport-level failure).
                    self.warn_wire(ApiKey::JoinGroup, e);
                    self.mark_coordinator_unknown(now);
                    return;
                }
            },
        };
        if response.error_code != 0 {
            let member_id = response.member_id.clone();
            return self.on_join_error(now, &pending, response.error_code, Some(member_id));
        }
        self.on_join_success(now, pending, response);
    }

    fn on_join_error(
        &mut self,
        now: Instant,
        pending: &Pending,
        code: i16,
        member_id: Option<StrBytes>,
    ) {
        let Some(error) = ResponseError::try_from_code(code) else {
            return;
        };
        let current = self.is_current(&pending.tag);
        match error {
            ResponseError::MemberIdRequired => {
                // KIP-394: adopt the id and rejoin at once, no backoff.
                if let Some(id) = member_id.filter(|id| !id.is_empty()) {
                    self.identity.member_id = id;
                    self.identity.member_id_epoch = self.coordinator.epoch();
                }
                self.phase = Phase::Joining(super::JoinState {
                    reason: RejoinReason::MemberIdRequired,
                });
            }
            ResponseError::UnknownMemberId => {
                if current {
                    self.hard_reset(LostReason::UnknownMember);
                }
                self.join_again(RejoinReason::Reset(LostReason::UnknownMember));
            }
            ResponseError::RebalanceInProgress => {
                // KAFKA-10870: retriable, rejoin at once.
                self.join_again(RejoinReason::RebalanceInProgress("JoinGroup"));
            }
            ResponseError::CoordinatorLoadInProgress => {
                // Retriable JoinGroup failures wait a flat retry.backoff.ms (PROTOCOL.md §6).
                self.timers
                    .set(Timer::JoinBackoff, now + self.config.retry_backoff);
                self.join_again(RejoinReason::Retry("coordinator loading"));
            }
            ResponseError::CoordinatorNotAvailable | ResponseError::NotCoordinator => {
                // The rediscovery backoff is the wait (KIP-580).
                self.mark_coordinator_unknown(now);
                self.join_again(RejoinReason::Retry("coordinator moved"));
            }
            ResponseError::FencedInstanceId if !current => {
                self.join_again(RejoinReason::Retry("stale fencing"));
            }
            ResponseError::FencedInstanceId if self.fenced_by_a_failover() => {
                self.retry_fenced_after_failover(now, ApiKey::JoinGroup);
            }
            ResponseError::InconsistentGroupProtocol => {
                // No protocol in common with the group *now*: during a
                // rolling upgrade (seed 000: [range] → [cooperative-sticky,
                // range] → [cooperative-sticky]) a member of an older step
                // may linger until its session expires. As librdkafka does
                // (PROTOCOL.md §2.9), report it and retry with a growing
                // backoff instead of failing for good; Java treats it as fatal.
                self.warn_broker(ApiKey::JoinGroup, error);
                let delay = self.join_backoff.next_delay(&mut self.rng);
                self.timers.set(Timer::JoinBackoff, now + delay);
                self.join_again(RejoinReason::Retry("no protocol in common with the group"));
            }
            // FENCED_INSTANCE_ID,
            // INVALID_SESSION_TIMEOUT, INVALID_GROUP_ID,
            // GROUP_AUTHORIZATION_FAILED, GROUP_MAX_SIZE_REACHED,
            // UNSUPPORTED_VERSION and anything else: fatal, as in Java.
            _ => self.fail_broker(ApiKey::JoinGroup, error),
        }
    }

    /// A fencing (`FENCED_INSTANCE_ID` for our current member id) of a
    /// static member whose id was issued before the coordinator changed, not
    /// yet retried in this coordinator epoch.
    pub(crate) fn fenced_by_a_failover(&self) -> bool {
        let epoch = self.coordinator.epoch();
        self.wired.instance_id.is_some()
            && !self.identity.member_id.is_empty()
            && self.identity.member_id_epoch != epoch
            && self.identity.fence_retried_epoch != Some(epoch)
    }

    /// Rejoin once as a new incarnation of the instance after a fencing that
    /// [`Group::fenced_by_a_failover`] explains: our member id was issued by
    /// a coordinator we have since lost, and its successor loaded an older
    /// group record that maps our instance id to an earlier member id of
    /// ours (the record is written when a generation's assignment is
    /// stored, not when a member joins; found by `kgroup sim --faults
    /// heavy`; librdkafka #3437 looks alike). Whatever API met it (JoinGroup,
    /// SyncGroup between the two coordinators, a Heartbeat or OffsetCommit
    /// with the id the new coordinator never saw), the member hard-resets
    /// (partitions `Lost { Fenced }`) and joins with an empty member id; a
    /// second fencing in the same coordinator epoch is fatal, so a real
    /// duplicate instance id still fails.
    pub(crate) fn retry_fenced_after_failover(&mut self, now: Instant, api: ApiKey) {
        self.identity.fence_retried_epoch = Some(self.coordinator.epoch());
        self.warn_broker(api, ResponseError::FencedInstanceId);
        self.hard_reset(LostReason::Fenced);
        if matches!(self.phase, Phase::Joining(_)) {
            self.join_again(RejoinReason::Reset(LostReason::Fenced));
        } else {
            self.rejoin_now(now, RejoinReason::Reset(LostReason::Fenced));
        }
    }

    fn join_again(&mut self, reason: RejoinReason) {
        self.phase = Phase::Joining(super::JoinState { reason });
    }

    fn on_join_success(&mut self, now: Instant, pending: Pending, response: JoinGroupResponse) {
        if pending.version >= 7 {
            let ok = response
                .protocol_type
                .as_ref()
                .is_none_or(|t| t.as_str() == CONSUMER_PROTOCOL_TYPE);
            if !ok {
                return self
                    .fail_broker(ApiKey::JoinGroup, ResponseError::InconsistentGroupProtocol);
            }
        }
        let protocol = response.protocol_name.clone().unwrap_or_default();
        if !self
            .config
            .assignors
            .iter()
            .any(|a| a.name() == protocol.as_str())
        {
            let (group, member) = self.names();
            return self.fail(GroupError::UnknownProtocol {
                group,
                member,
                protocol: protocol.as_str().to_owned(),
            });
        }
        let previous_mode = self.identity.mode;
        if self.identity.member_id != response.member_id {
            self.identity.member_id_epoch = self.coordinator.epoch();
        }
        self.identity.member_id = response.member_id.clone();
        self.identity.generation = response.generation_id;
        self.identity.mode = self.mode_for(protocol.as_str());
        self.join_backoff.reset();
        self.session_alive(now);
        self.timers
            .set(Timer::Heartbeat, now + self.config.heartbeat_interval);
        let is_leader = !response.leader.is_empty() && response.leader == response.member_id;
        self.events.push_back(Event::Joined {
            member_id: response.member_id.as_str().to_owned(),
            generation: response.generation_id,
            leader: is_leader,
            protocol: protocol.as_str().to_owned(),
        });
        if previous_mode == RebalanceProtocol::Cooperative
            && self.identity.mode == RebalanceProtocol::Eager
            && !self.ownership.owned.is_empty()
        {
            // franz-go #1365: on a downgrade to eager the new assignment is a
            // full one; keep nothing from the cooperative era.
            self.flush_held_assigned();
            let partitions: Vec<_> = std::mem::take(&mut self.ownership.owned)
                .into_iter()
                .collect();
            self.events.push_back(Event::Revoked { partitions });
        }
        let leader_state = if is_leader {
            Some(leader::LeaderState::from_join(self, &response))
        } else {
            // A follower watches nothing; a former leader stops watching.
            self.identity.watch = None;
            None
        };
        self.phase = Phase::AwaitingSync(SyncState {
            protocol,
            leader: leader_state,
            sent: false,
        });
    }

    /// JoinGroup got no response (transport error or timeout): forget the
    /// coordinator and join again once it is found (membership kept).
    pub(crate) fn on_join_failure(&mut self, now: Instant) {
        self.mark_coordinator_unknown(now);
        if matches!(self.phase, Phase::Joining(_)) {
            self.join_again(RejoinReason::Retry("JoinGroup failed in transport"));
        }
    }

    pub(crate) fn fail_broker(&mut self, api: ApiKey, error: ResponseError) {
        let (group, member) = self.names();
        let broker = self.coordinator.broker_ref();
        self.fail(GroupError::Broker {
            group,
            member,
            api,
            broker,
            error,
        });
    }

    pub(crate) fn warn_broker(&mut self, api: ApiKey, error: ResponseError) {
        let (group, member) = self.names();
        let broker = self.coordinator.broker_ref();
        self.events.push_back(Event::Warning(GroupError::Broker {
            group,
            member,
            api,
            broker,
            error,
        }));
    }

    pub(crate) fn fail_wire(&mut self, api: ApiKey, source: crate::wire::WireError) {
        let (group, member) = self.names();
        let broker = self.coordinator.broker_ref();
        self.fail(GroupError::wire(group, member, api, broker, source));
    }

    pub(crate) fn warn_wire(&mut self, api: ApiKey, source: crate::wire::WireError) {
        let (group, member) = self.names();
        let broker = self.coordinator.broker_ref();
        self.events.push_back(Event::Warning(GroupError::wire(
            group, member, api, broker, source,
        )));
    }
}

/// A duration as the protocol's int32 milliseconds (config validation keeps
/// it in range; saturate anyway).
pub(crate) fn ms(d: std::time::Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => s.get(..i).unwrap_or(s).to_owned(),
        None => s.to_owned(),
    }
}
