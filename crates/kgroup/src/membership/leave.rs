//! Leaving: `close()` and `leave()`, and LeaveGroup (PROTOCOL.md §2.6, Java's
//! `maybeLeaveGroup` and `onLeavePrepare`).
//!
//! Best effort: sent once, never retried, its response only ends the
//! `Leaving` state. The member resets before the response arrives
//! (`resetGenerationOnLeaveGroup`). Partitions are revoked, or reported lost
//! when a rebalance is in progress or the generation was reset, as Java's
//! `onLeavePrepare` does. A static member sends nothing unless asked to
//! (`Group::leave`).

use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::{ApiKey, GroupId, LeaveGroupRequest, LeaveGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::{LeaveState, Phase};
use crate::event::{Event, LostReason};
use crate::group::{Conn, Group, Pending, Role, Transmit};
use crate::timer::{Timer, TimerTable};

impl Group {
    /// Start leaving: revoke (or lose, mid-rebalance), let the final commit
    /// go out with the generation that still owns the partitions, then send
    /// LeaveGroup when `send_leave` and there is someone to tell.
    pub(crate) fn start_leaving(&mut self, now: Instant, send_leave: bool, reason: &str) {
        match self.phase {
            Phase::Left | Phase::Failed(_) | Phase::Leaving(_) => return,
            _ => {}
        }
        let rebalancing = matches!(self.phase, Phase::Joining(_) | Phase::AwaitingSync(_));
        if rebalancing || self.identity.generation < 0 {
            // A held `Assigned` is dropped with the loss (see `lose_all`).
            self.lose_all(LostReason::LeftDuringRebalance);
        } else {
            self.flush_held_assigned();
            // Still owned until the final commit is answered. Partitions
            // whose revocation is under way were announced already: the
            // application hears `Revoked` once per partition.
            let announced: &[_] = match &self.phase {
                Phase::Revoking(r) => &r.partitions,
                _ => &[],
            };
            let partitions: Vec<_> = self
                .ownership
                .owned
                .iter()
                .filter(|tp| !announced.contains(tp))
                .cloned()
                .collect();
            if !partitions.is_empty() {
                self.events.push_back(Event::Revoked { partitions });
            }
        }
        self.rejoin_wanted = None;
        self.rejoin_since = None;
        self.offsets.close(now);
        // A JoinGroup or SyncGroup in flight on the coordinator connection
        // can be parked for minutes: abandon it and leave on a new
        // connection. Anything else (an OffsetCommit above all) is answered
        // within the request timeout and is waited for: abandoning a commit
        // and sending it again on another connection lets the first copy,
        // still on the wire, land after newer commits and move the committed
        // offset back (simulator seed 200134, heavy faults).
        if self.coordinator.conn().is_some_and(|c| {
            c.pending
                .as_ref()
                .is_some_and(|p| matches!(p.api, ApiKey::JoinGroup | ApiKey::SyncGroup))
        }) {
            let id = self.new_connection_id();
            if let Some(conn) = self.coordinator.conn_mut() {
                *conn = Conn::new(id);
            }
            self.timers.stop(Timer::CoordinatorRequest);
        }
        self.timers.stop(Timer::Heartbeat);
        self.timers.stop(Timer::JoinBackoff);
        self.timers.stop(Timer::MetadataRefresh);
        // The final commit is bounded by the request timeout.
        self.timers
            .set(Timer::RebalanceDeadline, now + self.config.request_timeout);
        self.phase = Phase::Leaving(LeaveState {
            member_id: self.identity.member_id.clone(),
            reason: reason.to_owned(),
            send_leave,
            ready: false,
            sent: false,
        });
    }

    /// The final commit is answered: leave.
    pub(crate) fn complete_close_commit(&mut self, _now: Instant) -> bool {
        let waiting = matches!(&self.phase, Phase::Leaving(l) if !l.ready);
        if !waiting || self.offsets.blocking_rebalance() {
            return false;
        }
        self.leave_now();
        true
    }

    /// Reset (Java's `resetGenerationOnLeaveGroup`, before the response)
    /// and let LeaveGroup go, or be done when there is nothing to send.
    pub(crate) fn leave_now(&mut self) {
        let Phase::Leaving(state) = &mut self.phase else {
            return;
        };
        state.ready = true;
        let can_send =
            state.send_leave && !state.member_id.is_empty() && self.coordinator.known().is_some();
        self.ownership.owned.clear();
        self.identity.generation = -1;
        self.identity.member_id = StrBytes::default();
        self.identity.watch = None;
        self.timers = TimerTable::default();
        if !can_send {
            self.finish_leaving();
        }
    }

    /// LeaveGroup, when leaving.
    pub(crate) fn poll_leave(&mut self, now: Instant, version: i16) -> Option<Transmit> {
        let Phase::Leaving(state) = &self.phase else {
            return None;
        };
        if state.sent || !state.ready {
            return None;
        }
        let mut request =
            LeaveGroupRequest::default().with_group_id(GroupId(self.wired.group_id.clone()));
        if version <= 2 {
            request = request.with_member_id(state.member_id.clone());
        } else {
            let mut member = MemberIdentity::default()
                .with_member_id(state.member_id.clone())
                .with_group_instance_id(self.wired.instance_id.clone());
            if version >= 5 {
                member = member.with_reason(Some(StrBytes::from_string(state.reason.clone())));
            }
            request = request.with_members(vec![member]);
        }
        let timeout = self.config.request_timeout;
        match self.send(
            now,
            Role::Coordinator,
            ApiKey::LeaveGroup,
            version,
            &request,
            timeout,
        ) {
            Ok(t) => {
                if let Phase::Leaving(state) = &mut self.phase {
                    state.sent = true;
                }
                Some(t)
            }
            Err(_) => {
                self.finish_leaving();
                None
            }
        }
    }

    /// The LeaveGroup response: whatever it says, we are gone.
    pub(crate) fn on_leave_response(&mut self, _now: Instant, pending: Pending, frame: Bytes) {
        // Decoded only to surface a malformed response in traces.
        if let Err(e) = crate::wire::decode_response_lenient::<LeaveGroupResponse>(
            ApiKey::LeaveGroup,
            pending.version,
            frame,
        ) && e.error_code().is_none()
        {
            self.warn_wire(ApiKey::LeaveGroup, e);
        }
        self.finish_leaving();
    }

    /// Leaving ends (response, failure, or nothing to send).
    pub(crate) fn finish_leaving(&mut self) {
        if matches!(self.phase, Phase::Leaving(_)) {
            self.phase = Phase::Left;
            self.events.push_back(Event::Left);
        }
    }
}
