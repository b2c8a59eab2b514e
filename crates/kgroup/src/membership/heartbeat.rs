//! Heartbeat: the request and its error matrix (PROTOCOL.md §2.5, Java's
//! `HeartbeatResponseHandler`).
//!
//! Sent every `heartbeat.interval.ms` while joined (AwaitingSync, Stable,
//! Revoking: Java heartbeats in COMPLETING_REBALANCE and STABLE, KAFKA-10134)
//! and only when the coordinator connection is free: never behind a
//! JoinGroup. Errors for a generation or member id that is no longer ours are
//! ignored (KAFKA-9823).
//!
//! The heartbeat round is the engine's hot path: building the request clones
//! reference-counted strings into a reused buffer and decoding the response
//! allocates nothing (proved by `tests/heartbeat_alloc.rs`).

use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, GroupId, HeartbeatRequest, HeartbeatResponse};

use super::{AfterRevoke, Phase};
use crate::event::{LostReason, RejoinReason};
use crate::group::{Group, Pending, Role, Transmit};
use crate::timer::Timer;

impl Group {
    /// A heartbeat, when one is due.
    pub(crate) fn poll_heartbeat(&mut self, now: Instant, version: i16) -> Option<Transmit> {
        let joined = matches!(
            self.phase,
            Phase::AwaitingSync(_) | Phase::Stable | Phase::Revoking(_)
        );
        if !self.heartbeat_due || !joined || self.identity.generation < 0 {
            return None;
        }
        let mut request = HeartbeatRequest::default()
            .with_group_id(GroupId(self.wired.group_id.clone()))
            .with_generation_id(self.identity.generation)
            .with_member_id(self.identity.member_id.clone());
        if version >= 3 {
            request = request.with_group_instance_id(self.wired.instance_id.clone());
        }
        let timeout = self.config.request_timeout;
        match self.send(
            now,
            Role::Coordinator,
            ApiKey::Heartbeat,
            version,
            &request,
            timeout,
        ) {
            Ok(t) => {
                self.heartbeat_due = false;
                self.timers
                    .set(Timer::Heartbeat, now + self.config.heartbeat_interval);
                Some(t)
            }
            Err(source) => {
                self.fail_wire(ApiKey::Heartbeat, source);
                None
            }
        }
    }

    /// A Heartbeat response.
    pub(crate) fn on_heartbeat_response(&mut self, now: Instant, pending: Pending, frame: Bytes) {
        let code = match crate::wire::decode_response::<HeartbeatResponse>(
            ApiKey::Heartbeat,
            pending.version,
            frame,
        ) {
            Ok((_, r)) => r.error_code,
            Err(e) => {
                self.warn_wire(ApiKey::Heartbeat, e);
                self.mark_coordinator_unknown(now);
                return;
            }
        };
        if !self.is_current(&pending.tag) {
            return;
        }
        let Some(error) = ResponseError::try_from_code(code) else {
            self.heartbeat_backoff.reset();
            self.session_alive(now);
            return;
        };
        match error {
            ResponseError::RebalanceInProgress => {
                // Counted as a successful heartbeat for the session.
                self.session_alive(now);
                // Stable: a rebalance to join. Revoking after a cooperative
                // SyncGroup: the follow-up rejoin is coming anyway, but the
                // coordinator's timeout runs from now, so the notice counts
                // for the hold that may delay it (sim seed 2001644: the
                // notice was taken at the end of the revocation, the hold
                // outlasted the coordinator's timeout and the member was
                // removed, over and over).
                let notice = match &self.phase {
                    Phase::Stable => true,
                    Phase::Revoking(r) => matches!(r.then, AfterRevoke::Assign(_)),
                    _ => false,
                };
                if notice {
                    self.request_rejoin(now, RejoinReason::RebalanceInProgress("Heartbeat"));
                }
            }
            ResponseError::IllegalGeneration => {
                self.reset_and_rejoin(now, LostReason::IllegalGeneration, false);
            }
            ResponseError::UnknownMemberId => {
                self.reset_and_rejoin(now, LostReason::UnknownMember, true);
            }
            ResponseError::FencedInstanceId if self.fenced_by_a_failover() => {
                // Heartbeats go out between JoinGroup and SyncGroup too: the
                // same failover fencing as SyncGroup's.
                self.retry_fenced_after_failover(now, ApiKey::Heartbeat);
            }
            ResponseError::FencedInstanceId => {
                // Only for the current member id (checked above): another
                // process took our instance id. Fatal, as in Java.
                self.lose_all(LostReason::Fenced);
                self.fail_broker(ApiKey::Heartbeat, error);
            }
            ResponseError::CoordinatorNotAvailable | ResponseError::NotCoordinator => {
                self.mark_coordinator_unknown(now);
            }
            ResponseError::GroupAuthorizationFailed => {
                self.fail_broker(ApiKey::Heartbeat, error);
            }
            _ => {
                // Java's heartbeat thread only backs off on other errors.
                let delay = self.heartbeat_backoff.next_delay(&mut self.rng);
                self.timers.set(Timer::Heartbeat, now + delay);
            }
        }
    }

    /// A heartbeat got no response: the coordinator connection is gone.
    pub(crate) fn on_heartbeat_failure(&mut self, now: Instant) {
        self.mark_coordinator_unknown(now);
    }
}
