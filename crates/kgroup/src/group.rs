//! [`Group`]: the public object that composes the layers into one Sans-IO
//! consumer-group member.
//!
//! It owns the two broker connections the protocol needs (a bootstrap
//! connection for ApiVersions, FindCoordinator and Metadata; a dedicated
//! coordinator connection for the group APIs, as Java's
//! `AbstractCoordinator` does), the single timer table, the event queue and
//! the reusable output buffer. The protocol logic lives in
//! [`crate::coordinator`] (finding the coordinator) and
//! [`crate::membership`] (JoinGroup, SyncGroup, Heartbeat, LeaveGroup).
//!
//! # The driving loop
//!
//! Stated once (see `docs/architecture.md`); every adapter and the simulator
//! follow it:
//!
//! 1. Feed one input: [`Group::handle_response`],
//!    [`Group::handle_transport_error`], [`Group::handle_timeout`] or a
//!    command ([`Group::subscribe`], [`Group::ack_revoked`], ...).
//! 2. Drain **every** output: call [`Group::poll_transmit`] until it returns
//!    `None` and send each [`Transmit`] on the connection it names; call
//!    [`Group::poll_event`] until it returns `None`.
//! 3. Ask [`Group::poll_timeout`] for the next deadline, then wait for a
//!    response, a command, or that instant (call `handle_timeout` then), and
//!    go to 1.
//!
//! Outputs only change after an input, so once both queues are drained and the
//! deadline is read, the engine has nothing to do until the next input.

use std::collections::{BTreeSet, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Encodable, HeaderVersion, StrBytes};

use crate::TopicPartition;
use crate::backoff::Backoff;
use crate::config::Config;
use crate::coordinator::Coordinator;
use crate::event::{Event, RejoinReason};
use crate::membership::{self, BrokerRef, GroupError, Identity, Ownership, Phase};
use crate::offsets::{CommitId, CommitRefused, CommittedOffset, FetchId, FetchRefused, Offsets};
use crate::rng::Rng;
use crate::timer::{Timer, TimerTable};
use crate::wire::WireError;
use crate::wire::negotiate::{NegotiatedVersions, Negotiation};

/// Initial capacity of the reusable request buffer: a heartbeat or a commit
/// of a few partitions fits without growing it.
const OUT_BUFFER_CAPACITY: usize = 4096;

/// What a request timeout is reported as.
const REQUEST_TIMED_OUT: &str = "request timed out";

/// Client software name sent in ApiVersions v3+ (KIP-511).
pub const CLIENT_SOFTWARE_NAME: &str = "kgroup";
/// Client software version sent in ApiVersions v3+ (KIP-511).
pub const CLIENT_SOFTWARE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Identifies one request until its response, failure or timeout. It is the
/// request's correlation id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub i32);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "req#{}", self.0)
    }
}

/// Identifies one logical connection. A new id for the same role (bootstrap
/// or coordinator) means "open a new connection"; the previous connection of
/// that role is abandoned and should be closed by the adapter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnectionId(pub u32);

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn#{}", self.0)
    }
}

/// A broker named by FindCoordinator (or Metadata).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BrokerNode {
    /// Broker (node) id.
    pub node_id: i32,
    /// Host name or address.
    pub host: Arc<str>,
    /// TCP port.
    pub port: i32,
}

impl fmt::Display for BrokerNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "broker {} ({}:{})", self.node_id, self.host, self.port)
    }
}

/// Which broker a request is for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Broker {
    /// Any bootstrap broker (ApiVersions, FindCoordinator, Metadata); the
    /// adapter picks one, as Java's least-loaded node.
    Any,
    /// A specific broker: the group coordinator.
    Node(BrokerNode),
}

/// Where to send a [`Transmit`]: a logical connection to a broker.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Destination {
    /// The logical connection (open it on first use).
    pub connection: ConnectionId,
    /// The broker at its other end.
    pub broker: Broker,
}

/// A request to write to a connection: a complete frame, size prefix included.
#[derive(Clone, Debug)]
pub struct Transmit {
    /// Hand this back with the response or the failure.
    pub id: RequestId,
    /// Where to send it.
    pub destination: Destination,
    /// The API (for traces; the frame carries it too).
    pub api: ApiKey,
    /// The frame bytes, size prefix included.
    pub bytes: Bytes,
}

/// Why a request got no response, as the adapter saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransportError {
    /// The connection could not be opened.
    ConnectFailed(String),
    /// The connection broke (reset, EOF, framing error).
    Disconnected(String),
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportError::ConnectFailed(why) => write!(f, "connect failed: {why}"),
            TransportError::Disconnected(why) => write!(f, "disconnected: {why}"),
        }
    }
}

/// The member's state, as an application or a trace sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupState {
    /// Not subscribed yet.
    Idle,
    /// Looking for the coordinator before (re)joining.
    FindingCoordinator,
    /// JoinGroup to send or in flight (including the KIP-394 second step).
    Joining,
    /// Joined; waiting for the assignment (leader: computing it).
    AwaitingSync,
    /// Member of a generation with an assignment; heartbeating.
    Stable,
    /// `Revoked` was emitted and awaits `ack_revoked()` (gated mode).
    Revoking,
    /// LeaveGroup on its way.
    Leaving,
    /// Left the group (after `close`/`leave`).
    Left,
    /// Stopped by a fatal error (reported as `Event::Fatal`).
    Failed,
}

impl GroupState {
    /// Lower-case name for traces.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Idle => "idle",
            GroupState::FindingCoordinator => "finding-coordinator",
            GroupState::Joining => "joining",
            GroupState::AwaitingSync => "awaiting-sync",
            GroupState::Stable => "stable",
            GroupState::Revoking => "revoking",
            GroupState::Leaving => "leaving",
            GroupState::Left => "left",
            GroupState::Failed => "failed",
        }
    }
}

impl fmt::Display for GroupState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which of the two connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Bootstrap,
    Coordinator,
}

/// The membership a request was sent under (PROTOCOL.md §0.3, Java's
/// `sentGeneration`): its response acts only if this is still current.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Tag {
    pub generation: i32,
    pub member_id: StrBytes,
    pub coordinator_epoch: u64,
}

/// The one request in flight on a connection.
#[derive(Debug)]
pub(crate) struct Pending {
    pub id: RequestId,
    pub api: ApiKey,
    pub version: i16,
    pub tag: Tag,
    /// For OffsetCommit/OffsetFetch: the offsets component's tag.
    pub offsets_tag: Option<crate::offsets::RequestTag>,
}

/// One logical connection: its id, its ApiVersions negotiation (per broker,
/// before first use, PROTOCOL.md §0.5) and the request in flight. One request
/// at a time (PROTOCOL.md §0.1).
#[derive(Debug)]
pub(crate) struct Conn {
    pub id: ConnectionId,
    /// `Err` only if the client software name were invalid (it is a
    /// constant that matches the broker's pattern; tested).
    pub negotiation: Result<Negotiation, WireError>,
    pub pending: Option<Pending>,
}

impl Conn {
    pub(crate) fn new(id: ConnectionId) -> Self {
        Self {
            id,
            // ApiVersions v3 names the client (KIP-511).
            negotiation: Negotiation::new(CLIENT_SOFTWARE_NAME, CLIENT_SOFTWARE_VERSION),
            pending: None,
        }
    }

    /// Negotiated versions, when ready.
    pub(crate) fn ready(&self) -> Option<&NegotiatedVersions> {
        self.negotiation.as_ref().ok()?.versions()
    }
}

/// Strings sent in every request, kept as `StrBytes` so building a request
/// clones reference counts, never bytes.
#[derive(Debug)]
pub(crate) struct Wired {
    pub group_id: StrBytes,
    pub instance_id: Option<StrBytes>,
    pub protocol_type: StrBytes,
}

/// One consumer-group member as a Sans-IO state machine. See the module
/// documentation for the driving loop.
#[derive(Debug)]
pub struct Group {
    pub(crate) config: Config,
    pub(crate) wired: Wired,
    pub(crate) rng: Rng,
    pub(crate) timers: TimerTable,
    pub(crate) events: VecDeque<Event>,
    pub(crate) out: BytesMut,
    next_correlation: i32,
    next_connection: u32,
    pub(crate) bootstrap: Conn,
    pub(crate) coordinator: Coordinator,
    pub(crate) phase: Phase,
    pub(crate) identity: Identity,
    pub(crate) ownership: Ownership,
    /// Topics the application subscribed to.
    pub(crate) subscription: BTreeSet<String>,
    /// A rejoin wanted but not started (held, or waiting for the state to allow it).
    pub(crate) rejoin_wanted: Option<RejoinReason>,
    /// When the wanted rejoin was first noticed: the rebalance deadline counts from here.
    pub(crate) rejoin_since: Option<Instant>,
    /// `hold_rebalance()` is in force.
    pub(crate) held: bool,
    pub(crate) join_backoff: Backoff,
    pub(crate) heartbeat_backoff: Backoff,
    /// A heartbeat is due (its timer fired while the connection was busy).
    pub(crate) heartbeat_due: bool,
    /// The leader's metadata watch is due.
    pub(crate) metadata_due: bool,
    /// The offsets sub-state machine (OffsetCommit/OffsetFetch).
    pub(crate) offsets: Offsets,
    /// Coordinator epoch the offsets component was last told is ready.
    pub(crate) offsets_coordinator: Option<u64>,
    /// An `Assigned` held until the OffsetFetch of its new partitions
    /// answers (`fetch_committed_on_assign`, on by default).
    pub(crate) held_assigned: Option<membership::HeldAssigned>,
    /// OffsetFetches the engine made for `Assigned` (not the application's):
    /// their `FetchDone` is consumed here, never emitted. Each id leaves the
    /// set at its `FetchDone`, which the offsets component always sends.
    pub(crate) assign_fetches: BTreeSet<FetchId>,
    /// A reintroduced bug (`mutations` feature, test-only).
    #[cfg(feature = "mutations")]
    pub(crate) mutation: Option<crate::mutation::Mutation>,
}

impl Group {
    /// A member for `config`, not yet subscribed. Nothing is sent until
    /// [`Group::subscribe`].
    pub fn new(config: Config, now: Instant) -> Self {
        let wired = Wired {
            group_id: StrBytes::from_string(config.group_id.clone()),
            instance_id: config.instance_id.clone().map(StrBytes::from_string),
            protocol_type: StrBytes::from_static_str("consumer"),
        };
        let rng = Rng::new(config.seed);
        let join_backoff = Backoff::new(config.retry_backoff, config.retry_backoff_max);
        let heartbeat_backoff = Backoff::new(config.retry_backoff, config.retry_backoff_max);
        let coordinator = Coordinator::new(&config);
        let offsets = Offsets::new(config.offsets.clone(), now)
            .unwrap_or_else(|e| unreachable!("validated by ConfigBuilder::build: {e}"));
        let mut group = Self {
            config,
            wired,
            rng,
            timers: TimerTable::default(),
            events: VecDeque::new(),
            out: BytesMut::with_capacity(OUT_BUFFER_CAPACITY),
            next_correlation: 0,
            next_connection: 0,
            bootstrap: Conn::new(ConnectionId(0)),
            coordinator,
            phase: Phase::Idle,
            identity: Identity::new(),
            ownership: Ownership::default(),
            subscription: BTreeSet::new(),
            rejoin_wanted: None,
            rejoin_since: None,
            held: false,
            join_backoff,
            heartbeat_backoff,
            heartbeat_due: false,
            metadata_due: false,
            offsets,
            offsets_coordinator: None,
            held_assigned: None,
            assign_fetches: BTreeSet::new(),
            #[cfg(feature = "mutations")]
            mutation: None,
        };
        group.bootstrap = Conn::new(group.new_connection_id());
        group
    }

    /// The configuration this member runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    // ----- commands -------------------------------------------------------

    /// Subscribe to `topics` (replacing the previous subscription). The first
    /// call starts the member; later changes trigger a rejoin.
    pub fn subscribe<I, S>(&mut self, now: Instant, topics: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let topics: BTreeSet<String> = topics.into_iter().map(Into::into).collect();
        if topics == self.subscription && !matches!(self.phase, Phase::Idle) {
            return;
        }
        self.subscription = topics;
        self.on_subscription_changed(now);
        self.progress(now);
    }

    /// Keep a rebalance from starting (e.g. between a poll and the end of a
    /// batch). Heartbeats go on; a wanted rejoin waits until
    /// [`Group::allow_rebalance`] or until the rebalance timeout is near.
    pub fn hold_rebalance(&mut self) {
        self.held = true;
    }

    /// Let a held rebalance go on.
    pub fn allow_rebalance(&mut self, now: Instant) {
        self.held = false;
        self.progress(now);
    }

    /// Acknowledge the last `Revoked` event (gated mode): the rebalance goes
    /// on. Does nothing when no revocation is pending.
    pub fn ack_revoked(&mut self, now: Instant) {
        self.on_revoke_acked(now);
        self.progress(now);
    }

    /// Close the member. A dynamic member revokes its partitions and sends
    /// LeaveGroup (with a reason, v5+); a static member (KIP-345) revokes
    /// locally and does not leave, so a restart within the session timeout
    /// gets its partitions back without a rebalance. Ends with `Event::Left`.
    pub fn close(&mut self, now: Instant) {
        let leave = self.config.instance_id.is_none();
        self.start_leaving(now, leave, "the consumer is being closed");
        self.progress(now);
    }

    /// Leave the group now, static member or not (LeaveGroup v3+ with the
    /// instance id for a static member), as Java's `close` with
    /// `LEAVE_GROUP` does. Ends with `Event::Left`.
    pub fn leave(&mut self, now: Instant, reason: &str) {
        self.start_leaving(now, true, reason);
        self.progress(now);
    }

    /// Commit `offsets` (the next offset to consume, per partition). Refused
    /// locally, never sent, for a partition not owned now or during an eager
    /// rebalance; the result comes as one
    /// `Event::Offsets(OffsetEvent::CommitDone)` with the returned id. See
    /// `docs/offsets.md`.
    pub fn commit(
        &mut self,
        now: Instant,
        offsets: Vec<(TopicPartition, CommittedOffset)>,
    ) -> Result<CommitId, CommitRefused> {
        let id = self.offsets.commit(now, offsets);
        self.progress(now);
        id
    }

    /// Record that everything before `offset` on `tp` was processed
    /// (librdkafka's offset store): committed by auto-commit, before a
    /// revocation completes, and on close.
    pub fn mark_processed(
        &mut self,
        now: Instant,
        tp: TopicPartition,
        offset: impl Into<CommittedOffset>,
    ) -> Result<(), CommitRefused> {
        let r = self.offsets.mark_processed(tp, offset);
        self.progress(now);
        r
    }

    /// Read the committed offsets of owned `partitions`; the result comes as
    /// one `Event::Offsets(OffsetEvent::FetchDone)`.
    pub fn fetch_committed(
        &mut self,
        now: Instant,
        partitions: impl IntoIterator<Item = TopicPartition>,
    ) -> Result<FetchId, FetchRefused> {
        let id = self.offsets.fetch(now, partitions);
        self.progress(now);
        id
    }

    /// The offsets component (marks, configuration), read-only.
    pub fn offsets(&self) -> &Offsets {
        &self.offsets
    }

    // ----- outputs --------------------------------------------------------

    /// The next request to send, if any. Call until `None`.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        if let Some(t) = self.poll_coordinator_transmit(now) {
            return Some(t);
        }
        self.poll_bootstrap_transmit(now)
    }

    /// The next event, if any. Call until `None`.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next deadline: call [`Group::handle_timeout`] at that instant if
    /// nothing else happens first.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next().map(|(at, _)| at)
    }

    /// The next deadline and which timer it is (for traces).
    pub fn poll_timeout_reason(&self) -> Option<(Instant, Timer)> {
        self.timers.next()
    }

    // ----- inputs ---------------------------------------------------------

    /// A response frame (without its 4-byte size prefix) for request `id`.
    /// Responses for requests the engine no longer waits for are ignored.
    pub fn handle_response(&mut self, now: Instant, id: RequestId, frame: Bytes) {
        if let Some(pending) = take_pending(&mut self.coordinator.conn_mut(), id) {
            self.timers.stop(Timer::CoordinatorRequest);
            self.on_coordinator_response(now, pending, frame);
        } else if let Some(pending) = take_pending(&mut Some(&mut self.bootstrap), id) {
            self.timers.stop(Timer::BootstrapRequest);
            self.on_bootstrap_response(now, pending, frame);
        }
        self.progress(now);
    }

    /// Request `id` failed in transport (connect failure, disconnect). The
    /// engine treats its connection as gone and opens a new one when needed.
    pub fn handle_transport_error(&mut self, now: Instant, id: RequestId, err: TransportError) {
        if let Some(pending) = take_pending(&mut self.coordinator.conn_mut(), id) {
            self.timers.stop(Timer::CoordinatorRequest);
            self.on_coordinator_failure(now, pending, err.to_string());
        } else if let Some(pending) = take_pending(&mut Some(&mut self.bootstrap), id) {
            self.timers.stop(Timer::BootstrapRequest);
            self.on_bootstrap_failure(now, pending, err.to_string());
        }
        self.progress(now);
    }

    /// Fire every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.timers.take_expired(Timer::CoordinatorRequest, now)
            && let Some(pending) = self.coordinator.conn_mut().and_then(|c| c.pending.take())
        {
            self.on_coordinator_failure(now, pending, REQUEST_TIMED_OUT.to_owned());
        }
        if self.timers.take_expired(Timer::BootstrapRequest, now)
            && let Some(pending) = self.bootstrap.pending.take()
        {
            self.on_bootstrap_failure(now, pending, REQUEST_TIMED_OUT.to_owned());
        }
        // Backoffs only gate sending: poll_transmit checks that they are disarmed.
        self.timers.take_expired(Timer::CoordinatorBackoff, now);
        self.timers.take_expired(Timer::JoinBackoff, now);
        if self.timers.take_expired(Timer::Heartbeat, now) {
            self.heartbeat_due = true;
        }
        if self.timers.take_expired(Timer::MetadataRefresh, now) {
            self.metadata_due = true;
        }
        if self.timers.take_expired(Timer::Session, now) {
            self.on_session_expired(now);
        }
        if self.timers.take_expired(Timer::RebalanceDeadline, now) {
            self.on_rebalance_deadline(now);
        }
        if self.timers.take_expired(Timer::Offsets, now) {
            self.offsets.handle_timeout(now);
        }
        self.progress(now);
    }

    // ----- introspection ----------------------------------------------------

    /// The member's state.
    pub fn state(&self) -> GroupState {
        match &self.phase {
            Phase::Idle => GroupState::Idle,
            Phase::Joining(_) if self.coordinator.known().is_none() => {
                GroupState::FindingCoordinator
            }
            Phase::Joining(_) => GroupState::Joining,
            Phase::AwaitingSync(_) => GroupState::AwaitingSync,
            Phase::Stable => GroupState::Stable,
            Phase::Revoking(_) => GroupState::Revoking,
            Phase::Leaving(_) => GroupState::Leaving,
            Phase::Left => GroupState::Left,
            Phase::Failed(_) => GroupState::Failed,
        }
    }

    /// Member id ("" before the first join or after a reset).
    pub fn member_id(&self) -> &str {
        self.identity.member_id.as_str()
    }

    /// Current generation (-1 when not a member).
    pub fn generation(&self) -> i32 {
        self.identity.generation
    }

    /// Partitions owned now, sorted.
    pub fn owned(&self) -> &BTreeSet<TopicPartition> {
        &self.ownership.owned
    }

    /// The coordinator, when known.
    pub fn coordinator(&self) -> Option<&BrokerNode> {
        self.coordinator.known()
    }

    /// Whether a rebalance is under way on this member's side (a rejoin is
    /// wanted or started, or a revocation awaits its acknowledgement).
    pub fn is_rebalancing(&self) -> bool {
        self.rejoin_wanted.is_some()
            || matches!(
                self.phase,
                Phase::Joining(_) | Phase::AwaitingSync(_) | Phase::Revoking(_)
            )
    }

    /// The fatal error that stopped the member, if any.
    pub fn fatal_error(&self) -> Option<&GroupError> {
        match &self.phase {
            Phase::Failed(e) => Some(e),
            _ => None,
        }
    }

    // ----- crate-internal plumbing -----------------------------------------

    pub(crate) fn new_connection_id(&mut self) -> ConnectionId {
        self.next_connection = self.next_connection.wrapping_add(1);
        ConnectionId(self.next_connection)
    }

    fn next_request_id(&mut self) -> RequestId {
        // Correlation ids stay non-negative, as Java's do.
        self.next_correlation = if self.next_correlation == i32::MAX {
            0
        } else {
            self.next_correlation + 1
        };
        RequestId(self.next_correlation)
    }

    /// The tag of the current membership.
    pub(crate) fn current_tag(&self) -> Tag {
        Tag {
            generation: self.identity.generation,
            member_id: self.identity.member_id.clone(),
            coordinator_epoch: self.coordinator.epoch(),
        }
    }

    /// Whether a response tagged `tag` is about the current membership.
    pub(crate) fn is_current(&self, tag: &Tag) -> bool {
        tag.generation == self.identity.generation
            && tag.member_id == self.identity.member_id
            && tag.coordinator_epoch == self.coordinator.epoch()
    }

    /// Encode `body` as a request on the connection of `role` and register it
    /// as that connection's request in flight, with its timeout.
    pub(crate) fn send<T: Encodable + HeaderVersion>(
        &mut self,
        now: Instant,
        role: Role,
        api: ApiKey,
        version: i16,
        body: &T,
        timeout: Duration,
    ) -> Result<Transmit, WireError> {
        let id = self.next_request_id();
        let tag = self.current_tag();
        self.out.clear();
        crate::wire::encode_request_into(
            &mut self.out,
            api,
            version,
            id.0,
            &self.config.client_id,
            body,
        )?;
        let bytes = self.out.split().freeze();
        let pending = Pending {
            id,
            api,
            version,
            tag,
            offsets_tag: None,
        };
        let destination = match role {
            Role::Bootstrap => {
                self.bootstrap.pending = Some(pending);
                self.timers.set(Timer::BootstrapRequest, now + timeout);
                Destination {
                    connection: self.bootstrap.id,
                    broker: Broker::Any,
                }
            }
            Role::Coordinator => {
                let dest = self.coordinator.destination();
                if let Some(conn) = self.coordinator.conn_mut() {
                    conn.pending = Some(pending);
                }
                self.timers.set(Timer::CoordinatorRequest, now + timeout);
                dest.unwrap_or(Destination {
                    connection: self.bootstrap.id,
                    broker: Broker::Any,
                })
            }
        };
        Ok(Transmit {
            id,
            destination,
            api,
            bytes,
        })
    }

    /// The group's name and our member id, for error messages.
    pub(crate) fn names(&self) -> (String, String) {
        (
            self.config.group_id.clone(),
            self.identity.member_id.as_str().to_owned(),
        )
    }

    /// Report a fatal error: lose what is owned, stop.
    pub(crate) fn fail(&mut self, error: GroupError) {
        if matches!(self.phase, Phase::Failed(_)) {
            return;
        }
        self.lose_all(crate::event::LostReason::Fatal);
        self.timers = TimerTable::default();
        self.rejoin_wanted = None;
        self.events.push_back(Event::Fatal(error.clone()));
        self.phase = Phase::Failed(error);
    }
}

/// Take the pending request of `conn` if it is `id`.
fn take_pending(conn: &mut Option<&mut Conn>, id: RequestId) -> Option<Pending> {
    let conn = conn.as_mut()?;
    if conn.pending.as_ref().is_some_and(|p| p.id == id) {
        conn.pending.take()
    } else {
        None
    }
}

// ----- request scheduling and response dispatch ------------------------------

impl Group {
    /// The next request on the coordinator connection: ApiVersions first,
    /// then by phase. One at a time: nothing is sent while a request (a
    /// parked JoinGroup included) is in flight.
    fn poll_coordinator_transmit(&mut self, now: Instant) -> Option<Transmit> {
        let conn = self.coordinator.conn()?;
        if conn.pending.is_some() {
            return None;
        }
        if conn.ready().is_none() {
            return self.poll_api_versions(now, Role::Coordinator);
        }
        let api = match &self.phase {
            Phase::Leaving(l) if !l.ready => return self.poll_offsets_request(now),
            Phase::Leaving(_) => ApiKey::LeaveGroup,
            Phase::Joining(_) => ApiKey::JoinGroup,
            Phase::AwaitingSync(s) if !s.sent => ApiKey::SyncGroup,
            Phase::AwaitingSync(_) | Phase::Stable | Phase::Revoking(_) => ApiKey::Heartbeat,
            Phase::Idle | Phase::Left | Phase::Failed(_) => return None,
        };
        let version = self.required_version(Role::Coordinator, api)?;
        match api {
            ApiKey::LeaveGroup => self.poll_leave(now, version),
            ApiKey::JoinGroup => self.poll_join(now, version),
            ApiKey::SyncGroup => self
                .poll_sync(now, version)
                .or_else(|| self.poll_heartbeat_on_coordinator(now)),
            _ => self
                .poll_heartbeat(now, version)
                .or_else(|| self.poll_offsets_request(now)),
        }
    }

    fn poll_heartbeat_on_coordinator(&mut self, now: Instant) -> Option<Transmit> {
        let version = self.required_version(Role::Coordinator, ApiKey::Heartbeat)?;
        self.poll_heartbeat(now, version)
    }

    /// The next request on the bootstrap connection: ApiVersions first, then
    /// FindCoordinator, then the leader's Metadata.
    fn poll_bootstrap_transmit(&mut self, now: Instant) -> Option<Transmit> {
        if self.bootstrap.pending.is_some() || self.timers.get(Timer::CoordinatorBackoff).is_some()
        {
            return None;
        }
        let wants_coordinator = self.needs_coordinator() && self.coordinator.known().is_none();
        let wants_metadata = self.wants_metadata();
        if !wants_coordinator && !wants_metadata {
            return None;
        }
        if self.bootstrap.ready().is_none() {
            return self.poll_api_versions(now, Role::Bootstrap);
        }
        if wants_coordinator {
            return self.poll_find_coordinator(now);
        }
        let version = self.required_version(Role::Bootstrap, ApiKey::Metadata)?;
        self.poll_metadata(now, version)
    }

    fn wants_metadata(&self) -> bool {
        let leader_assigning = matches!(
            &self.phase,
            Phase::AwaitingSync(membership::SyncState { leader: Some(l), .. })
                if l.assignments.is_none() && !l.metadata_requested
        );
        let watching = matches!(
            self.phase,
            Phase::Stable | Phase::Revoking(_) | Phase::AwaitingSync(_)
        ) && self.metadata_due
            && self.identity.watch.is_some();
        leader_assigning || watching
    }

    /// The negotiated version of `api` on the connection of `role`; a broker
    /// without it is a fatal error (`WireError::MissingApi`).
    fn required_version(&mut self, role: Role, api: ApiKey) -> Option<i16> {
        let conn = match role {
            Role::Bootstrap => Some(&self.bootstrap),
            Role::Coordinator => self.coordinator.conn(),
        }?;
        match conn.ready()?.require(api) {
            Ok(v) => Some(v),
            Err(source) => {
                self.fail_wire(api, source);
                None
            }
        }
    }

    fn poll_api_versions(&mut self, now: Instant, role: Role) -> Option<Transmit> {
        let conn = match role {
            Role::Bootstrap => Some(&mut self.bootstrap),
            Role::Coordinator => self.coordinator.conn_mut(),
        }?;
        let negotiation = match &mut conn.negotiation {
            Ok(n) => n,
            Err(e) => {
                let e = e.clone();
                self.fail_wire(ApiKey::ApiVersions, e);
                return None;
            }
        };
        let (version, request) = negotiation.poll_request()?;
        let timeout = self.config.request_timeout;
        match self.send(now, role, ApiKey::ApiVersions, version, &request, timeout) {
            Ok(t) => Some(t),
            Err(e) => {
                self.fail_wire(ApiKey::ApiVersions, e);
                None
            }
        }
    }

    fn on_api_versions_response(&mut self, now: Instant, role: Role, frame: Bytes) {
        let conn = match role {
            Role::Bootstrap => Some(&mut self.bootstrap),
            Role::Coordinator => self.coordinator.conn_mut(),
        };
        let Some(Ok(negotiation)) = conn.map(|c| &mut c.negotiation) else {
            return;
        };
        let Err(e) = negotiation.handle_response_frame(frame) else {
            return;
        };
        if e.class() == crate::ErrorClass::Fatal {
            self.fail_wire(ApiKey::ApiVersions, e);
            return;
        }
        self.warn_wire(ApiKey::ApiVersions, e);
        match role {
            Role::Bootstrap => self.reset_bootstrap(now),
            Role::Coordinator => self.mark_coordinator_unknown(now),
        }
    }

    fn on_coordinator_response(&mut self, now: Instant, pending: Pending, frame: Bytes) {
        if pending.tag.coordinator_epoch == self.coordinator.epoch() {
            self.coordinator.responded();
        }
        match pending.api {
            ApiKey::ApiVersions => self.on_api_versions_response(now, Role::Coordinator, frame),
            ApiKey::JoinGroup => self.on_join_response(now, pending, frame),
            ApiKey::SyncGroup => self.on_sync_response(now, pending, frame),
            ApiKey::Heartbeat => self.on_heartbeat_response(now, pending, frame),
            ApiKey::LeaveGroup => self.on_leave_response(now, pending, frame),
            ApiKey::OffsetCommit | ApiKey::OffsetFetch => {
                self.on_offsets_response(now, pending, frame)
            }
            _ => {}
        }
    }

    fn on_bootstrap_response(&mut self, now: Instant, pending: Pending, frame: Bytes) {
        match pending.api {
            ApiKey::ApiVersions => self.on_api_versions_response(now, Role::Bootstrap, frame),
            ApiKey::FindCoordinator => self.on_find_coordinator_response(now, pending, frame),
            ApiKey::Metadata => self.on_metadata_response(now, pending, frame),
            _ => {}
        }
    }

    fn transport_warning(&mut self, api: ApiKey, broker: BrokerRef, detail: String) {
        let (group, member) = self.names();
        self.events.push_back(Event::Warning(GroupError::Transport {
            group,
            member,
            api,
            broker,
            detail,
        }));
    }

    fn on_coordinator_failure(&mut self, now: Instant, pending: Pending, detail: String) {
        let broker = self.coordinator.broker_ref();
        let timed_out = detail == REQUEST_TIMED_OUT;
        self.transport_warning(pending.api, broker, detail);
        match pending.api {
            ApiKey::OffsetCommit | ApiKey::OffsetFetch => {
                self.on_offsets_failure(now, &pending, timed_out)
            }
            ApiKey::JoinGroup => self.on_join_failure(now),
            ApiKey::SyncGroup => self.on_sync_failure(now),
            ApiKey::Heartbeat => self.on_heartbeat_failure(now),
            ApiKey::LeaveGroup => self.finish_leaving(),
            _ => self.mark_coordinator_unknown(now),
        }
    }

    fn on_bootstrap_failure(&mut self, now: Instant, pending: Pending, detail: String) {
        self.transport_warning(pending.api, BrokerRef(None), detail);
        self.reset_bootstrap(now);
        if pending.api == ApiKey::Metadata {
            self.on_metadata_failure(now);
        }
    }

    /// The bootstrap connection is gone: use a new one after a backoff.
    fn reset_bootstrap(&mut self, now: Instant) {
        let id = self.new_connection_id();
        self.bootstrap = Conn::new(id);
        self.timers.stop(Timer::BootstrapRequest);
        self.bootstrap_backoff(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_software_name_and_version_pass_the_brokers_pattern() {
        assert!(Conn::new(ConnectionId(1)).negotiation.is_ok());
    }

    #[test]
    fn request_ids_stay_non_negative_and_wrap() {
        let config = Config::builder("g")
            .assignor(crate::assignor::builtin("range").unwrap())
            .build()
            .unwrap();
        let mut g = Group::new(config, crate::test_origin());
        g.next_correlation = i32::MAX - 1;
        assert_eq!(g.next_request_id(), RequestId(i32::MAX));
        assert_eq!(g.next_request_id(), RequestId(0));
    }
}
