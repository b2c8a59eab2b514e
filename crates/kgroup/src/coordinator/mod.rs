//! Finding the group coordinator, and losing it.
//!
//! Owns where the coordinator is (`CoordinatorState`), the dedicated
//! connection to it, the FindCoordinator exchange on the bootstrap connection
//! and its error handling (PROTOCOL.md §2.2, Java's
//! `AbstractCoordinator.FindCoordinatorResponseHandler` and
//! `markCoordinatorUnknown`). Every change of coordinator bumps an epoch:
//! requests are tagged with it, so a response from a coordinator we already
//! gave up on is ignored (PROTOCOL.md §0.3).
//!
//! Rediscovery uses exponential backoff with seeded jitter (KIP-580,
//! `retry.backoff.ms` .. `retry.backoff.max.ms`). Losing the coordinator
//! never resets the membership (KAFKA-13214): the member keeps its id,
//! generation and partitions while its session has not expired.

use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, FindCoordinatorRequest, FindCoordinatorResponse};

use crate::backoff::Backoff;
use crate::config::Config;
use crate::group::{BrokerNode, Conn, Destination, Group, Pending, Role, Transmit};
use crate::membership::{BrokerRef, GroupError, Phase};
use crate::timer::Timer;

/// Where the coordinator is. (One per member: the size difference between
/// the variants does not matter.)
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum CoordinatorState {
    /// Not known: FindCoordinator is (or will be, after the backoff) asked.
    Unknown,
    /// Known, with our dedicated connection to it.
    Known { node: BrokerNode, conn: Conn },
}

/// The coordinator sub-state machine.
#[derive(Debug)]
pub(crate) struct Coordinator {
    state: CoordinatorState,
    epoch: u64,
    backoff: Backoff,
}

impl Coordinator {
    pub(crate) fn new(config: &Config) -> Self {
        Self {
            state: CoordinatorState::Unknown,
            epoch: 0,
            backoff: Backoff::new(config.retry_backoff, config.retry_backoff_max),
        }
    }

    /// The coordinator, when known.
    pub(crate) fn known(&self) -> Option<&BrokerNode> {
        match &self.state {
            CoordinatorState::Known { node, .. } => Some(node),
            CoordinatorState::Unknown => None,
        }
    }

    /// Our connection to it, when known.
    pub(crate) fn conn_mut(&mut self) -> Option<&mut Conn> {
        match &mut self.state {
            CoordinatorState::Known { conn, .. } => Some(conn),
            CoordinatorState::Unknown => None,
        }
    }

    /// Our connection to it, when known.
    pub(crate) fn conn(&self) -> Option<&Conn> {
        match &self.state {
            CoordinatorState::Known { conn, .. } => Some(conn),
            CoordinatorState::Unknown => None,
        }
    }

    /// Where coordinator requests go.
    pub(crate) fn destination(&self) -> Option<Destination> {
        match &self.state {
            CoordinatorState::Known { node, conn } => Some(Destination {
                connection: conn.id,
                broker: crate::group::Broker::Node(node.clone()),
            }),
            CoordinatorState::Unknown => None,
        }
    }

    /// Changes whenever the coordinator is found or lost.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// A response came from the current coordinator: its backoff starts over.
    pub(crate) fn responded(&mut self) {
        self.backoff.reset();
    }

    /// The broker id, for error messages.
    pub(crate) fn broker_ref(&self) -> BrokerRef {
        BrokerRef(self.known().map(|n| n.node_id))
    }
}

impl Group {
    /// Whether the member needs a coordinator now.
    pub(crate) fn needs_coordinator(&self) -> bool {
        match &self.phase {
            Phase::Idle | Phase::Left | Phase::Failed(_) => false,
            // Closing: the final commit still needs a coordinator; LeaveGroup
            // does not (best effort, PROTOCOL.md §2.6).
            Phase::Leaving(l) => !l.ready,
            _ => true,
        }
    }

    /// FindCoordinator on the bootstrap connection, if one is due.
    pub(crate) fn poll_find_coordinator(&mut self, now: Instant) -> Option<Transmit> {
        if !self.needs_coordinator()
            || self.coordinator.known().is_some()
            || self.timers.get(Timer::CoordinatorBackoff).is_some()
        {
            return None;
        }
        let version = self.bootstrap.ready()?.version(ApiKey::FindCoordinator)?;
        let mut request = FindCoordinatorRequest::default();
        if version <= 3 {
            request = request.with_key(self.wired.group_id.clone());
        } else {
            request = request.with_coordinator_keys(vec![self.wired.group_id.clone()]);
        }
        // key_type 0 = group (v1+); the default is already 0.
        let timeout = self.config.request_timeout;
        match self.send(
            now,
            Role::Bootstrap,
            ApiKey::FindCoordinator,
            version,
            &request,
            timeout,
        ) {
            Ok(t) => Some(t),
            Err(source) => {
                let (group, member) = self.names();
                self.fail(GroupError::Wire {
                    group,
                    member,
                    api: ApiKey::FindCoordinator,
                    broker: BrokerRef(None),
                    source,
                });
                None
            }
        }
    }

    /// A FindCoordinator response (PROTOCOL.md §2.2).
    pub(crate) fn on_find_coordinator_response(
        &mut self,
        now: Instant,
        pending: Pending,
        frame: Bytes,
    ) {
        let decoded = crate::wire::decode_response_lenient::<FindCoordinatorResponse>(
            ApiKey::FindCoordinator,
            pending.version,
            frame,
        );
        let response = match decoded {
            Ok((_, r)) => r,
            Err(e) => {
                if let Some(code) = e.error_code() {
                    self.on_find_coordinator_error(now, code);
                } else {
                    self.bootstrap_backoff(now);
                }
                return;
            }
        };
        let (code, node_id, host, port) = if pending.version <= 3 {
            (
                response.error_code,
                response.node_id.0,
                response.host.clone(),
                response.port,
            )
        } else {
            match response.coordinators.first() {
                Some(c) => (c.error_code, c.node_id.0, c.host.clone(), c.port),
                None => {
                    self.bootstrap_backoff(now);
                    return;
                }
            }
        };
        if code != 0 {
            self.on_find_coordinator_error(now, code);
            return;
        }
        if node_id < 0 || host.is_empty() || !(0..=65535).contains(&port) {
            // A "found" coordinator without an address is as good as none.
            self.bootstrap_backoff(now);
            return;
        }
        let node = BrokerNode {
            node_id,
            host: host.as_str().into(),
            port,
        };
        self.coordinator_found(now, node);
    }

    fn on_find_coordinator_error(&mut self, now: Instant, code: i16) {
        let Some(error) = ResponseError::try_from_code(code) else {
            self.bootstrap_backoff(now);
            return;
        };
        match error {
            ResponseError::CoordinatorNotAvailable
            | ResponseError::NotCoordinator
            | ResponseError::CoordinatorLoadInProgress
            | ResponseError::RequestTimedOut
            | ResponseError::NetworkException => self.bootstrap_backoff(now),
            // GROUP_AUTHORIZATION_FAILED and every other non-retriable error
            // are fatal, as Java's `fatalFindCoordinatorException`.
            _ => {
                let (group, member) = self.names();
                self.fail(GroupError::Broker {
                    group,
                    member,
                    api: ApiKey::FindCoordinator,
                    broker: BrokerRef(None),
                    error,
                });
            }
        }
    }

    /// Wait before the next request on the bootstrap connection
    /// (FindCoordinator, Metadata), KIP-580 exponential with jitter.
    pub(crate) fn bootstrap_backoff(&mut self, now: Instant) {
        let delay = self.coordinator.backoff.next_delay(&mut self.rng);
        self.timers.set(Timer::CoordinatorBackoff, now + delay);
    }

    fn coordinator_found(&mut self, now: Instant, node: BrokerNode) {
        let _ = now;
        self.timers.stop(Timer::CoordinatorBackoff);
        let conn = Conn::new(self.new_connection_id());
        self.coordinator.epoch += 1;
        self.coordinator.state = CoordinatorState::Known { node, conn };
    }

    /// Forget the coordinator (Java's `markCoordinatorUnknown`): a new
    /// connection will be opened to whatever FindCoordinator names next. The
    /// request in flight on the old connection, if any, is abandoned.
    pub(crate) fn mark_coordinator_unknown(&mut self, now: Instant) {
        if self.coordinator.known().is_none() {
            return;
        }
        self.coordinator.state = CoordinatorState::Unknown;
        self.coordinator.epoch += 1;
        self.timers.stop(Timer::CoordinatorRequest);
        // Rediscover after a backoff that grows until the coordinator answers
        // again (KIP-580), so a dead coordinator that FindCoordinator keeps
        // naming is not hammered.
        self.bootstrap_backoff(now);
        self.on_coordinator_lost();
    }
}
