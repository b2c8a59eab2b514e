//! [`Driver`]: the connection bookkeeping every I/O adapter needs, kept
//! Sans-IO so it is written (and tested) once.
//!
//! The engine ([`Group`]) names *logical* connections ([`ConnectionId`]) and
//! brokers ([`Broker`]); it never sees a socket. Between it and real sockets
//! sits this module, which owns, per connection:
//!
//! - the address it goes to: a bootstrap address (round robin, the next one
//!   after a failure, as librdkafka cycles its bootstrap list) for
//!   [`Broker::Any`], the coordinator's advertised host and port for
//!   [`Broker::Node`];
//! - its state: waiting out a reconnect backoff, connecting (with a connect
//!   deadline), open;
//! - the FIFO of request ids in flight. Kafka answers the requests of one
//!   connection in the order they were sent (the protocol guide's ordering
//!   guarantee), so each response frame must carry the correlation id at the
//!   head of the FIFO; anything else is a broken stream and the connection is
//!   dropped;
//! - a response deadline per request, a backstop behind the engine's own
//!   request timers: a connection whose peer stops answering is closed, so a
//!   half-open TCP connection cannot pin a request forever;
//! - frame reassembly ([`FrameDecoder`]).
//!
//! And per broker address, an exponential reconnect backoff with seeded
//! jitter (Java's `reconnect.backoff.ms`/`reconnect.backoff.max.ms`), using
//! the group's `retry.backoff` settings.
//!
//! An adapter only moves bytes and sleeps: it performs the [`IoAction`]s from
//! [`Driver::poll_action`] (connect, send, close), reports what its sockets
//! did ([`Driver::handle_connected`], [`Driver::handle_connect_failed`],
//! [`Driver::handle_data`], [`Driver::handle_closed`]), calls
//! [`Driver::handle_timeout`] at [`Driver::poll_timeout`], applies the
//! application's [`Command`]s, and hands out [`Driver::poll_event`]. The loop
//! is the engine's (see [`crate::group`]): after every input, drain
//! `poll_action` and `poll_event` until `None`, then wait for I/O, a command
//! or the deadline.
//!
//! Nothing here reads a clock or does I/O, so the whole path from bytes to
//! events can be tested with virtual time.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;

use crate::TopicPartition;
use crate::backoff::Backoff;
use crate::event::Event;
use crate::group::{Broker, ConnectionId, Group, RequestId, Transmit, TransportError};
use crate::offsets::{CommitId, CommitRefused, CommittedOffset, FetchId, FetchRefused};
use crate::rng::Rng;
use crate::wire::{DEFAULT_MAX_FRAME, FrameDecoder, peek_correlation_id};

/// Added to the engine's own request timeout before the driver gives up on a
/// connection: the engine's timer fires first; this only catches a peer that
/// never answers a request the engine already forgot.
const RESPONSE_GRACE: Duration = Duration::from_secs(2);
/// JoinGroup may be parked by the coordinator up to the rebalance timeout;
/// Java waits `rebalance.timeout.ms + 5 s` for it (`AbstractCoordinator`).
const JOIN_EXTRA: Duration = Duration::from_secs(5);
/// Salt mixed into the group's seed so the driver's jitter stream differs
/// from the engine's.
const SEED_SALT: u64 = 0x6b67_726f_7570_6472;

/// A broker address `host:port`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BrokerAddr {
    /// Host name or IP address.
    pub host: Arc<str>,
    /// TCP port.
    pub port: u16,
}

impl fmt::Display for BrokerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl BrokerAddr {
    /// Parse one `host:port` (IPv6 as `[::1]:9092`).
    pub fn parse(s: &str) -> Result<Self, DriverError> {
        let bad = |why: &'static str| DriverError::BadAddress {
            address: s.to_owned(),
            reason: why,
        };
        let s = s.trim();
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| bad("expected host:port"))?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() {
            return Err(bad("the host is empty"));
        }
        let port: u16 = port
            .parse()
            .map_err(|_| bad("the port is not a number in 1..=65535"))?;
        if port == 0 {
            return Err(bad("the port is not a number in 1..=65535"));
        }
        Ok(Self {
            host: host.into(),
            port,
        })
    }

    /// Parse a comma-separated bootstrap list (`h1:9092,h2:9092`).
    pub fn parse_list(s: &str) -> Result<Vec<Self>, DriverError> {
        let list = s
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .map(Self::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if list.is_empty() {
            return Err(DriverError::NoBootstrap);
        }
        Ok(list)
    }
}

/// What the driver refuses.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    /// A bootstrap address does not parse.
    #[error("bootstrap address {address:?} is invalid: {reason}")]
    BadAddress {
        /// The address as given.
        address: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The bootstrap list is empty.
    #[error("the bootstrap list is empty: give at least one host:port")]
    NoBootstrap,
}

impl DriverError {
    /// Always a configuration error.
    pub fn class(&self) -> crate::ErrorClass {
        crate::ErrorClass::Fatal
    }
}

/// Something the adapter must do on a socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IoAction {
    /// Open a connection to `addr` for `conn`, giving up after `timeout`;
    /// report [`Driver::handle_connected`] or [`Driver::handle_connect_failed`].
    Connect {
        /// The logical connection.
        conn: ConnectionId,
        /// Where to connect.
        addr: BrokerAddr,
        /// Connect timeout (the driver also enforces it with its own deadline).
        timeout: Duration,
    },
    /// Write all of `bytes` (one or more complete frames) to `conn`, in order.
    Send {
        /// The connection (already reported connected).
        conn: ConnectionId,
        /// Frame bytes, size prefixes included.
        bytes: Bytes,
    },
    /// Close `conn` (abandoned, timed out, or the stream broke) and drop
    /// whatever is still buffered for it. Do not report anything back.
    Close {
        /// The connection.
        conn: ConnectionId,
    },
}

/// An application command, for adapters that pass commands to the task
/// that owns the driver. Each maps to one [`Group`] method.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command {
    /// [`Group::subscribe`].
    Subscribe(Vec<String>),
    /// [`Group::hold_rebalance`].
    HoldRebalance,
    /// [`Group::allow_rebalance`].
    AllowRebalance,
    /// [`Group::ack_revoked`].
    AckRevoked,
    /// [`Group::close`].
    Close,
    /// [`Group::leave`] with a reason.
    Leave(String),
    /// [`Group::commit`].
    Commit(Vec<(TopicPartition, CommittedOffset)>),
    /// [`Group::mark_processed`].
    MarkProcessed(TopicPartition, i64),
    /// [`Group::fetch_committed`].
    FetchCommitted(Vec<TopicPartition>),
}

/// What [`Driver::apply`] returns: the command's own result, for the
/// commands that have one.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Reply {
    /// The command has no result.
    Done,
    /// Result of [`Command::Commit`]: the id of its `CommitDone`, or why it
    /// was refused (never sent).
    Commit(Result<CommitId, CommitRefused>),
    /// Result of [`Command::MarkProcessed`].
    Mark(Result<(), CommitRefused>),
    /// Result of [`Command::FetchCommitted`]: the id of its `FetchDone`.
    Fetch(Result<FetchId, FetchRefused>),
}

/// The typed command methods of an async member handle, for the adapters
/// (kgroup-tokio, kgroup-async-std) whose handles send [`Command`]s to a
/// member task: expands, inside an `impl` block of a type that has
/// `async fn apply(&self, Command) -> Reply` and a `group: String` field,
/// to `subscribe`, `hold_rebalance`, `allow_rebalance`, `ack_revoked`,
/// `commit`, `mark_processed`, `fetch_committed`, `close` and `leave`. One
/// definition keeps the adapters' APIs identical, with inherent methods (no
/// trait to import).
#[doc(hidden)]
#[macro_export]
macro_rules! async_command_methods {
    () => {
        /// Subscribe to `topics` (replacing the previous subscription).
        pub async fn subscribe<I, S>(&self, topics: I)
        where
            I: IntoIterator<Item = S>,
            S: Into<String>,
        {
            let topics = topics.into_iter().map(Into::into).collect();
            self.apply($crate::driver::Command::Subscribe(topics)).await;
        }

        /// Keep a rebalance from starting; heartbeats go on.
        pub async fn hold_rebalance(&self) {
            self.apply($crate::driver::Command::HoldRebalance).await;
        }

        /// Let a held rebalance go on.
        pub async fn allow_rebalance(&self) {
            self.apply($crate::driver::Command::AllowRebalance).await;
        }

        /// Acknowledge the last `Revoked` (gated revoke mode).
        pub async fn ack_revoked(&self) {
            self.apply($crate::driver::Command::AckRevoked).await;
        }

        /// Commit `offsets`; the result comes as an `Event::Offsets(CommitDone)`.
        pub async fn commit(
            &self,
            offsets: Vec<($crate::TopicPartition, $crate::offsets::CommittedOffset)>,
        ) -> Result<$crate::offsets::CommitId, $crate::offsets::CommitRefused> {
            self.apply($crate::driver::Command::Commit(offsets))
                .await
                .into_commit(&self.group)
        }

        /// Record `offset` (next to consume) on `tp` as processed, for auto-commit.
        pub async fn mark_processed(
            &self,
            tp: $crate::TopicPartition,
            offset: i64,
        ) -> Result<(), $crate::offsets::CommitRefused> {
            self.apply($crate::driver::Command::MarkProcessed(tp, offset))
                .await
                .into_mark(&self.group)
        }

        /// Read the committed offsets of owned partitions (`FetchDone` event).
        pub async fn fetch_committed(
            &self,
            partitions: Vec<$crate::TopicPartition>,
        ) -> Result<$crate::offsets::FetchId, $crate::offsets::FetchRefused> {
            self.apply($crate::driver::Command::FetchCommitted(partitions))
                .await
                .into_fetch(&self.group)
        }

        /// Start closing (commit marks, leave if dynamic); events go on until
        /// `Event::Left`.
        pub async fn close(&self) {
            self.apply($crate::driver::Command::Close).await;
        }

        /// Leave the group now, static member or not.
        pub async fn leave(&self, reason: &str) {
            self.apply($crate::driver::Command::Leave(reason.to_owned()))
                .await;
        }
    };
}

/// Typed results for adapters that pass commands to a member task: a reply
/// of another kind means the task ended before it could answer (the member
/// left or failed), which is reported as `Closed` for `group`.
impl Reply {
    /// The result of a [`Command::Commit`].
    pub fn into_commit(self, group: &str) -> Result<CommitId, CommitRefused> {
        match self {
            Reply::Commit(r) => r,
            _ => Err(CommitRefused::Closed {
                group: group.to_string(),
            }),
        }
    }

    /// The result of a [`Command::MarkProcessed`].
    pub fn into_mark(self, group: &str) -> Result<(), CommitRefused> {
        match self {
            Reply::Mark(r) => r,
            _ => Err(CommitRefused::Closed {
                group: group.to_string(),
            }),
        }
    }

    /// The result of a [`Command::FetchCommitted`].
    pub fn into_fetch(self, group: &str) -> Result<FetchId, FetchRefused> {
        match self {
            Reply::Fetch(r) => r,
            _ => Err(FetchRefused::Closed {
                group: group.to_string(),
            }),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Bootstrap,
    Coordinator,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LinkState {
    /// Reconnect backoff for this address runs until the instant.
    Waiting(Instant),
    /// Connect issued; give up at the instant.
    Connecting(Instant),
    Open,
}

#[derive(Debug)]
struct InFlight {
    id: RequestId,
    deadline: Instant,
}

#[derive(Debug)]
struct Link {
    kind: Kind,
    addr: BrokerAddr,
    state: LinkState,
    /// Frames written before the connection opened.
    queued: Vec<Bytes>,
    in_flight: VecDeque<InFlight>,
    decoder: FrameDecoder,
}

impl Link {
    fn deadline(&self) -> Option<Instant> {
        match self.state {
            LinkState::Waiting(at) | LinkState::Connecting(at) => Some(at),
            LinkState::Open => self.in_flight.front().map(|r| r.deadline),
        }
    }
}

#[derive(Debug)]
struct AddrBackoff {
    backoff: Backoff,
    not_before: Option<Instant>,
}

/// One group member plus the bookkeeping of its connections. See the module
/// documentation.
#[derive(Debug)]
pub struct Driver {
    group: Group,
    bootstrap: Vec<BrokerAddr>,
    next_bootstrap: usize,
    links: BTreeMap<ConnectionId, Link>,
    backoffs: BTreeMap<BrokerAddr, AddrBackoff>,
    rng: Rng,
    actions: VecDeque<IoAction>,
    connect_timeout: Duration,
    max_frame: usize,
}

impl Driver {
    /// Drive `group` through brokers reached first at `bootstrap`.
    pub fn new(group: Group, bootstrap: Vec<BrokerAddr>) -> Result<Self, DriverError> {
        if bootstrap.is_empty() {
            return Err(DriverError::NoBootstrap);
        }
        let config = group.config();
        let rng = Rng::new(config.seed() ^ SEED_SALT);
        // Java's `socket.connection.setup.timeout.ms` is 10 s; never more
        // than the request timeout.
        let connect_timeout = config.request_timeout().min(Duration::from_secs(10));
        Ok(Self {
            group,
            bootstrap,
            next_bootstrap: 0,
            links: BTreeMap::new(),
            backoffs: BTreeMap::new(),
            rng,
            actions: VecDeque::new(),
            connect_timeout,
            max_frame: DEFAULT_MAX_FRAME,
        })
    }

    /// Override the connect timeout (default: the request timeout, at most 10 s).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The engine, for queries.
    pub fn group(&self) -> &Group {
        &self.group
    }

    /// The engine, for commands (`subscribe`, `commit`, ...). Drain
    /// [`Driver::poll_action`] and [`Driver::poll_event`] afterwards.
    pub fn group_mut(&mut self) -> &mut Group {
        &mut self.group
    }

    /// Apply one [`Command`] and return its result.
    pub fn apply(&mut self, now: Instant, command: Command) -> Reply {
        let g = &mut self.group;
        match command {
            Command::Subscribe(topics) => g.subscribe(now, topics),
            Command::HoldRebalance => g.hold_rebalance(),
            Command::AllowRebalance => g.allow_rebalance(now),
            Command::AckRevoked => g.ack_revoked(now),
            Command::Close => g.close(now),
            Command::Leave(reason) => g.leave(now, &reason),
            Command::Commit(offsets) => return Reply::Commit(g.commit(now, offsets)),
            Command::MarkProcessed(tp, offset) => {
                return Reply::Mark(g.mark_processed(now, tp, offset));
            }
            Command::FetchCommitted(tps) => return Reply::Fetch(g.fetch_committed(now, tps)),
        }
        Reply::Done
    }

    /// Whether the member has left or failed: nothing more will happen.
    pub fn is_finished(&self) -> bool {
        matches!(
            self.group.state(),
            crate::GroupState::Left | crate::GroupState::Failed
        )
    }

    /// Connections with at least one request waiting for its response (an
    /// adapter that serves several sockets from one thread can block on the
    /// only one of them that may speak next).
    pub fn awaiting_response(&self) -> impl Iterator<Item = ConnectionId> + '_ {
        self.links
            .iter()
            .filter(|(_, l)| l.state == LinkState::Open && !l.in_flight.is_empty())
            .map(|(id, _)| *id)
    }

    /// Open connections, one per logical connection.
    pub fn connections(&self) -> impl Iterator<Item = ConnectionId> + '_ {
        self.links.keys().copied()
    }

    // ----- outputs ------------------------------------------------------------

    /// The next socket operation, if any. Call until `None` after every input.
    pub fn poll_action(&mut self, now: Instant) -> Option<IoAction> {
        if self.actions.is_empty() {
            while let Some(t) = self.group.poll_transmit(now) {
                self.route(now, t);
            }
        }
        self.actions.pop_front()
    }

    /// The next engine event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.group.poll_event()
    }

    /// The next instant at which [`Driver::handle_timeout`] must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let links = self.links.values().filter_map(Link::deadline).min();
        match (self.group.poll_timeout(), links) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ----- inputs -------------------------------------------------------------

    /// The connection `conn` is open: its queued frames go out.
    pub fn handle_connected(&mut self, now: Instant, conn: ConnectionId) {
        let _ = now;
        let Some(link) = self.links.get_mut(&conn) else {
            // Abandoned while connecting.
            self.actions.push_back(IoAction::Close { conn });
            return;
        };
        link.state = LinkState::Open;
        if let Some(b) = self.backoffs.get_mut(&link.addr) {
            b.backoff.reset();
            b.not_before = None;
        }
        for bytes in link.queued.drain(..) {
            self.actions.push_back(IoAction::Send { conn, bytes });
        }
    }

    /// Opening `conn` failed.
    pub fn handle_connect_failed(&mut self, now: Instant, conn: ConnectionId, reason: &str) {
        self.fail(
            now,
            conn,
            TransportError::ConnectFailed(reason.to_owned()),
            false,
        );
    }

    /// The peer closed `conn`, or reading or writing it failed.
    pub fn handle_closed(&mut self, now: Instant, conn: ConnectionId, reason: &str) {
        self.fail(
            now,
            conn,
            TransportError::Disconnected(reason.to_owned()),
            false,
        );
    }

    /// Bytes read from `conn`: complete response frames go to the engine.
    pub fn handle_data(&mut self, now: Instant, conn: ConnectionId, mut data: &[u8]) {
        while !data.is_empty() {
            let Some(link) = self.links.get_mut(&conn) else {
                return;
            };
            // Push no more than the decoder holds, then drain: a read may
            // carry the end of one frame and the start of the next.
            let room = (self.max_frame + 4).saturating_sub(link.decoder.buffered());
            let take = room.min(data.len()).max(1);
            let (chunk, rest) = data.split_at(take.min(data.len()));
            data = rest;
            if let Err(e) = link.decoder.push(chunk) {
                self.fail(now, conn, TransportError::Disconnected(e.to_string()), true);
                return;
            }
            if !self.drain_frames(now, conn) {
                return;
            }
        }
    }

    /// Call at [`Driver::poll_timeout`] (a little late is fine).
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<(ConnectionId, LinkState)> = self
            .links
            .iter()
            .filter(|(_, l)| l.deadline().is_some_and(|d| d <= now))
            .map(|(id, l)| (*id, l.state))
            .collect();
        for (conn, state) in due {
            match state {
                LinkState::Waiting(_) => self.start_connect(now, conn),
                LinkState::Connecting(_) => {
                    let why = format!("connect timed out after {:?}", self.connect_timeout);
                    self.fail(now, conn, TransportError::ConnectFailed(why), true);
                }
                LinkState::Open => {
                    let why = "no response within the request timeout".to_owned();
                    self.fail(now, conn, TransportError::Disconnected(why), true);
                }
            }
        }
        self.group.handle_timeout(now);
    }

    // ----- internals ----------------------------------------------------------

    /// Frames complete on `conn` go to the engine; false if the link failed.
    fn drain_frames(&mut self, now: Instant, conn: ConnectionId) -> bool {
        loop {
            let Some(link) = self.links.get_mut(&conn) else {
                return false;
            };
            let frame = match link.decoder.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => return true,
                Err(e) => {
                    self.fail(now, conn, TransportError::Disconnected(e.to_string()), true);
                    return false;
                }
            };
            let got = peek_correlation_id(&frame);
            match link.in_flight.front() {
                Some(head) if Some(head.id.0) == got => {
                    let id = head.id;
                    link.in_flight.pop_front();
                    self.group.handle_response(now, id, frame);
                }
                head => {
                    let got = got.map_or("(none: frame too short)".to_owned(), |c| c.to_string());
                    let why = match head {
                        Some(h) => format!(
                            "response with correlation id {got} while {} was expected (Kafka answers in order)",
                            h.id.0
                        ),
                        None => format!(
                            "response with correlation id {got} while no request was in flight"
                        ),
                    };
                    self.fail(now, conn, TransportError::Disconnected(why), true);
                    return false;
                }
            }
        }
    }

    /// A transmit from the engine: onto its connection, opening it if needed.
    fn route(&mut self, now: Instant, t: Transmit) {
        let conn = t.destination.connection;
        let deadline = now + self.response_timeout(t.api);
        if !self.links.contains_key(&conn) {
            let (kind, addr) = match &t.destination.broker {
                Broker::Any => {
                    let i = self.next_bootstrap % self.bootstrap.len().max(1);
                    let Some(addr) = self.bootstrap.get(i).cloned() else {
                        return;
                    };
                    (Kind::Bootstrap, addr)
                }
                Broker::Node(node) => match u16::try_from(node.port) {
                    Ok(port) if port != 0 => (
                        Kind::Coordinator,
                        BrokerAddr {
                            host: node.host.clone(),
                            port,
                        },
                    ),
                    _ => {
                        let why = format!("{node} has an invalid port");
                        self.group.handle_transport_error(
                            now,
                            t.id,
                            TransportError::ConnectFailed(why),
                        );
                        return;
                    }
                },
            };
            // A new connection of a role replaces the previous one (see
            // `ConnectionId`): close the abandoned one.
            let stale: Vec<ConnectionId> = self
                .links
                .iter()
                .filter(|(_, l)| l.kind == kind)
                .map(|(id, _)| *id)
                .collect();
            for old in stale {
                let reason = TransportError::Disconnected("connection replaced".to_owned());
                self.fail(now, old, reason, false);
                self.actions.push_back(IoAction::Close { conn: old });
            }
            let not_before = self
                .backoffs
                .get(&addr)
                .and_then(|b| b.not_before)
                .filter(|at| *at > now);
            let link = Link {
                kind,
                addr,
                state: LinkState::Waiting(not_before.unwrap_or(now)),
                queued: Vec::new(),
                in_flight: VecDeque::new(),
                decoder: match &t.destination.broker {
                    // Frame errors then name the broker that sent the bytes.
                    Broker::Node(node) => {
                        FrameDecoder::new(self.max_frame).with_broker(node.node_id)
                    }
                    Broker::Any => FrameDecoder::new(self.max_frame),
                },
            };
            self.links.insert(conn, link);
            if not_before.is_none() {
                self.start_connect(now, conn);
            }
        }
        let Some(link) = self.links.get_mut(&conn) else {
            return;
        };
        link.in_flight.push_back(InFlight { id: t.id, deadline });
        if link.state == LinkState::Open {
            self.actions.push_back(IoAction::Send {
                conn,
                bytes: t.bytes,
            });
        } else {
            link.queued.push(t.bytes);
        }
    }

    fn start_connect(&mut self, now: Instant, conn: ConnectionId) {
        let timeout = self.connect_timeout;
        let Some(link) = self.links.get_mut(&conn) else {
            return;
        };
        link.state = LinkState::Connecting(now + timeout);
        self.actions.push_back(IoAction::Connect {
            conn,
            addr: link.addr.clone(),
            timeout,
        });
    }

    /// How long a request may wait for its answer before the connection is
    /// given up.
    fn response_timeout(&self, api: ApiKey) -> Duration {
        let c = self.group.config();
        let base = c.request_timeout() + RESPONSE_GRACE;
        if api == ApiKey::JoinGroup {
            base + c.rebalance_timeout() + JOIN_EXTRA
        } else {
            base
        }
    }

    /// Drop `conn`: every request on it fails with `err`; the address backs
    /// off before the next connect. `close` asks the adapter to close it.
    fn fail(&mut self, now: Instant, conn: ConnectionId, err: TransportError, close: bool) {
        let Some(link) = self.links.remove(&conn) else {
            return;
        };
        if close {
            self.actions.push_back(IoAction::Close { conn });
        }
        let failed_early = !matches!(link.state, LinkState::Open);
        if failed_early || !link.in_flight.is_empty() {
            let entry = self
                .backoffs
                .entry(link.addr.clone())
                .or_insert_with(|| AddrBackoff {
                    backoff: {
                        let c = self.group.config();
                        Backoff::new(c.retry_backoff(), c.retry_backoff_max())
                    },
                    not_before: None,
                });
            let delay = entry.backoff.next_delay(&mut self.rng);
            entry.not_before = Some(now + delay);
        }
        if link.kind == Kind::Bootstrap && failed_early {
            // Try the next bootstrap address next time.
            self.next_bootstrap = self.next_bootstrap.wrapping_add(1);
        }
        for r in link.in_flight {
            self.group.handle_transport_error(now, r.id, err.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assignor;
    use crate::config::Config;

    use crate::test_origin as t0;

    #[test]
    fn a_reply_from_an_ended_member_is_closed_and_names_the_group() {
        let closed = CommitRefused::Closed {
            group: "orders".into(),
        };
        assert_eq!(Reply::Done.into_commit("orders"), Err(closed.clone()));
        assert_eq!(Reply::Done.into_mark("orders"), Err(closed));
        assert_eq!(
            Reply::Done.into_fetch("orders"),
            Err(FetchRefused::Closed {
                group: "orders".into()
            })
        );
        assert!(
            Reply::Done
                .into_commit("orders")
                .unwrap_err()
                .to_string()
                .contains("orders")
        );
        assert_eq!(Reply::Mark(Ok(())).into_mark("orders"), Ok(()));
        let id = CommitId(7);
        assert_eq!(Reply::Commit(Ok(id)).into_commit("orders"), Ok(id));
        // A reply of another kind is not taken for this command's result.
        assert!(Reply::Mark(Ok(())).into_commit("orders").is_err());
    }

    fn driver(now: Instant) -> Driver {
        let config = Config::builder("g")
            .assignors(vec![assignor::builtin("range").expect("range")])
            .session_timeout(Duration::from_secs(6))
            .heartbeat_interval(Duration::from_secs(1))
            .build()
            .expect("config");
        let group = Group::new(config, now);
        let addrs = BrokerAddr::parse_list("127.0.0.1:9001,127.0.0.1:9002").expect("addrs");
        Driver::new(group, addrs).expect("driver")
    }

    fn actions(d: &mut Driver, now: Instant) -> Vec<IoAction> {
        std::iter::from_fn(|| d.poll_action(now)).collect()
    }

    #[test]
    fn addresses_parse_and_refuse() {
        let a = BrokerAddr::parse("[::1]:9092").expect("v6");
        assert_eq!((&*a.host, a.port), ("::1", 9092));
        assert_eq!(a.to_string(), "[::1]:9092");
        assert!(BrokerAddr::parse("host").is_err());
        assert!(BrokerAddr::parse("host:0").is_err());
        assert!(BrokerAddr::parse(":9092").is_err());
        assert_eq!(BrokerAddr::parse_list(" , "), Err(DriverError::NoBootstrap));
    }

    #[test]
    fn first_request_connects_then_sends_queued_frames() {
        let now = t0();
        let mut d = driver(now);
        d.apply(now, Command::Subscribe(vec!["t".into()]));
        let a = actions(&mut d, now);
        let [IoAction::Connect { conn, addr, .. }] = a.as_slice() else {
            panic!("expected one connect, got {a:?}");
        };
        assert_eq!(addr.port, 9001);
        let conn = *conn;
        d.handle_connected(now, conn);
        let a = actions(&mut d, now);
        assert!(
            matches!(a.as_slice(), [IoAction::Send { conn: c, .. }] if *c == conn),
            "{a:?}"
        );
    }

    #[test]
    fn connect_failure_backs_off_and_moves_to_the_next_bootstrap() {
        let now = t0();
        let mut d = driver(now);
        d.apply(now, Command::Subscribe(vec!["t".into()]));
        let a = actions(&mut d, now);
        let Some(IoAction::Connect { conn, .. }) = a.first() else {
            panic!("{a:?}");
        };
        d.handle_connect_failed(now, *conn, "refused");
        while d.poll_event().is_some() {}
        // Let every deadline pass until the engine retries.
        let mut t = now;
        let mut next = None;
        for _ in 0..20 {
            let Some(at) = d.poll_timeout() else { break };
            t = at.max(t);
            d.handle_timeout(t);
            let a = actions(&mut d, t);
            if let Some(IoAction::Connect { addr, .. }) = a.first() {
                next = Some(addr.port);
                break;
            }
        }
        assert_eq!(next, Some(9002));
        assert!(t > now, "the retry waited for a backoff");
    }

    #[test]
    fn out_of_order_response_drops_the_connection() {
        let now = t0();
        let mut d = driver(now);
        d.apply(now, Command::Subscribe(vec!["t".into()]));
        let Some(IoAction::Connect { conn, .. }) = d.poll_action(now) else {
            panic!("no connect");
        };
        d.handle_connected(now, conn);
        let _ = actions(&mut d, now);
        // A frame whose correlation id is not the one in flight.
        let mut frame = vec![0, 0, 0, 4];
        frame.extend_from_slice(&12345i32.to_be_bytes());
        d.handle_data(now, conn, &frame);
        let a = actions(&mut d, now);
        assert!(a.contains(&IoAction::Close { conn }), "{a:?}");
        assert!(d.connections().all(|c| c != conn));
    }

    #[test]
    fn silent_peer_is_closed_at_the_backstop_deadline() {
        let now = t0();
        let mut d = driver(now);
        d.apply(now, Command::Subscribe(vec!["t".into()]));
        let Some(IoAction::Connect { conn, .. }) = d.poll_action(now) else {
            panic!("no connect");
        };
        d.handle_connected(now, conn);
        let _ = actions(&mut d, now);
        let later = now + Duration::from_secs(40);
        d.handle_timeout(later);
        assert!(d.connections().all(|c| c != conn));
    }
}
