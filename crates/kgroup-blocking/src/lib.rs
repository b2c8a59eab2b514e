//! kgroup on plain `std::net`: one thread, no async runtime.
//!
//! [`Consumer`] gives the Sans-IO engine ([`kgroup::Group`]) sockets and a
//! clock. All connection bookkeeping (which broker a request goes to, the
//! per-connection FIFO that matches responses to requests, connect and
//! response deadlines, reconnect backoff) lives in the engine crate's
//! [`kgroup::driver::Driver`]; this crate only moves bytes and sleeps.
//!
//! # How it waits
//!
//! One thread serves every connection, so sockets are non-blocking and the
//! loop polls them: after a step that moved anything it goes round again at
//! once. When idle and exactly one connection has requests awaiting their
//! responses (the usual case: a parked JoinGroup, a heartbeat), it blocks on
//! that socket ([`Connector::wait_readable`], at most 50 ms and never past
//! the engine's next deadline), so a response is read the moment it
//! arrives; otherwise it sleeps a short, growing tick (1 ms up to
//! [`MAX_IDLE_TICK`]). Connects are blocking with the driver's connect
//! timeout.
//!
//! # Byte streams other than TCP
//!
//! The connection layer is generic over any `Read + Write` stream that a
//! [`Connector`] opens, in non-blocking mode (a read with nothing to return
//! gives `WouldBlock` or `TimedOut`). A TLS stream over a non-blocking
//! `TcpStream` (for example rustls' `StreamOwned`) plugs in the same way;
//! TLS and SASL are not part of kgroup yet.
//!
//! ```no_run
//! use std::time::Duration;
//! use kgroup::{Config, Event};
//! use kgroup_blocking::Consumer;
//!
//! let config = Config::builder("my-group")
//!     .assignors(vec![kgroup::assignor::builtin("cooperative-sticky").unwrap()])
//!     .build()?;
//! let mut consumer = Consumer::new(config, "127.0.0.1:9092")?;
//! consumer.subscribe(["orders"]);
//! while let Some(event) = consumer.poll(Duration::from_millis(100)) {
//!     if let Event::Assigned { partitions, .. } = event {
//!         println!("owning {partitions:?}");
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]
// An adapter owns the clock and the sleeping the engine never does.
#![allow(clippy::disallowed_methods)]

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use kgroup::driver::{BrokerAddr, Command, Driver, DriverError, IoAction, Reply};
use kgroup::offsets::{CommitId, CommitRefused, CommittedOffset, FetchId, FetchRefused};
use kgroup::{Config, ConnectionId, Event, Group, GroupState, TopicPartition};

pub use kgroup;

/// Longest idle sleep between two polls of the sockets.
pub const MAX_IDLE_TICK: Duration = Duration::from_millis(8);
/// Bytes read from a socket at a time.
const READ_CHUNK: usize = 64 * 1024;

/// Opens byte streams to brokers.
pub trait Connector {
    /// The stream type: non-blocking, so a read with no data returns
    /// `WouldBlock` (or `TimedOut`).
    type Stream: Read + Write;

    /// Open a stream to `addr` within `timeout`.
    fn connect(&mut self, addr: &BrokerAddr, timeout: Duration) -> io::Result<Self::Stream>;

    /// Block until `stream` has bytes to read (or end of stream), at most
    /// `timeout`. Used when only this connection can answer next, so a
    /// response is read the moment it arrives. The default sleeps
    /// `timeout`; [`TcpConnector`] waits on the socket.
    fn wait_readable(&mut self, stream: &mut Self::Stream, timeout: Duration) -> io::Result<()> {
        let _ = stream;
        std::thread::sleep(timeout);
        Ok(())
    }
}

/// Plain TCP: `TcpStream::connect_timeout` to each resolved address in turn,
/// then `TCP_NODELAY` and non-blocking mode.
#[derive(Clone, Copy, Debug, Default)]
pub struct TcpConnector;

impl Connector for TcpConnector {
    type Stream = TcpStream;

    fn connect(&mut self, addr: &BrokerAddr, timeout: Duration) -> io::Result<TcpStream> {
        let mut last = io::Error::new(ErrorKind::NotFound, format!("{addr} resolves to nothing"));
        for sa in (&*addr.host, addr.port).to_socket_addrs()? {
            match TcpStream::connect_timeout(&sa, timeout) {
                Ok(s) => {
                    s.set_nodelay(true)?;
                    s.set_nonblocking(true)?;
                    return Ok(s);
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn wait_readable(&mut self, stream: &mut TcpStream, timeout: Duration) -> io::Result<()> {
        if timeout.is_zero() {
            return Ok(());
        }
        // A blocking peek with a read timeout returns as soon as a byte (or
        // the end of the stream) is there, without consuming anything.
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(timeout))?;
        let r = stream.peek(&mut [0u8; 1]);
        stream.set_nonblocking(true)?;
        match r {
            Ok(_) => Ok(()),
            Err(e) if is_would_block(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Longest single blocking wait on one socket: commands from the
/// application are looked at least this often.
const MAX_BLOCKING_WAIT: Duration = Duration::from_millis(50);

#[derive(Debug)]
struct Conn<S> {
    stream: S,
    /// Bytes accepted for sending and not yet written.
    out: VecDeque<u8>,
}

/// A consumer-group member on blocking sockets. See the crate documentation.
pub struct Consumer<C: Connector = TcpConnector> {
    driver: Driver,
    connector: C,
    conns: BTreeMap<ConnectionId, Conn<C::Stream>>,
    events: VecDeque<Event>,
    buf: Vec<u8>,
    idle_tick: Duration,
}

impl Consumer<TcpConnector> {
    /// A member for `config`, reaching the cluster through `bootstrap`
    /// (`host:port[,host:port...]`). Nothing is sent until [`Consumer::subscribe`].
    pub fn new(config: Config, bootstrap: &str) -> Result<Self, DriverError> {
        Self::with_connector(config, bootstrap, TcpConnector)
    }
}

impl<C: Connector> std::fmt::Debug for Consumer<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("driver", &self.driver)
            .field("connections", &self.conns.len())
            .field("queued_events", &self.events.len())
            .finish_non_exhaustive()
    }
}

impl<C: Connector> Consumer<C> {
    /// A member whose connections are opened by `connector` (e.g. TLS).
    pub fn with_connector(
        config: Config,
        bootstrap: &str,
        connector: C,
    ) -> Result<Self, DriverError> {
        let addrs = BrokerAddr::parse_list(bootstrap)?;
        let driver = Driver::new(Group::new(config, Instant::now()), addrs)?;
        Ok(Self {
            driver,
            connector,
            conns: BTreeMap::new(),
            events: VecDeque::new(),
            buf: vec![0; READ_CHUNK],
            idle_tick: Duration::from_millis(1),
        })
    }

    /// The engine, for queries (state, generation, owned partitions, ...).
    pub fn group(&self) -> &Group {
        self.driver.group()
    }

    /// Subscribe to `topics` (replacing the previous subscription).
    pub fn subscribe<I, S>(&mut self, topics: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let topics: Vec<String> = topics.into_iter().map(Into::into).collect();
        self.driver.group_mut().subscribe(Instant::now(), topics);
        self.flush();
    }

    /// Keep a rebalance from starting; heartbeats go on while you poll.
    pub fn hold_rebalance(&mut self) {
        self.driver.group_mut().hold_rebalance();
    }

    /// Let a held rebalance go on.
    pub fn allow_rebalance(&mut self) {
        self.driver.group_mut().allow_rebalance(Instant::now());
        self.flush();
    }

    /// Acknowledge the last `Revoked` (gated revoke mode).
    pub fn ack_revoked(&mut self) {
        self.driver.group_mut().ack_revoked(Instant::now());
        self.flush();
    }

    /// Commit `offsets`; the result comes as an `Event::Offsets(CommitDone)`.
    pub fn commit(
        &mut self,
        offsets: Vec<(TopicPartition, CommittedOffset)>,
    ) -> Result<CommitId, CommitRefused> {
        let r = self.driver.group_mut().commit(Instant::now(), offsets);
        self.flush();
        r
    }

    /// Record `offset` (next to consume) as processed on `tp`, for auto-commit.
    pub fn mark_processed(&mut self, tp: TopicPartition, offset: i64) -> Result<(), CommitRefused> {
        let r = self
            .driver
            .group_mut()
            .mark_processed(Instant::now(), tp, offset);
        self.flush();
        r
    }

    /// Read the committed offsets of owned `partitions`; the result comes as
    /// an `Event::Offsets(FetchDone)`.
    pub fn fetch_committed(
        &mut self,
        partitions: Vec<TopicPartition>,
    ) -> Result<FetchId, FetchRefused> {
        let r = self
            .driver
            .group_mut()
            .fetch_committed(Instant::now(), partitions);
        self.flush();
        r
    }

    /// Apply a [`Command`] (every other method is a shorthand for one).
    pub fn apply(&mut self, command: Command) -> Reply {
        let r = self.driver.apply(Instant::now(), command);
        self.flush();
        r
    }

    /// Start closing: commit the marks, then leave (dynamic members) or just
    /// stop (static members). Keep polling until `Event::Left`, or use
    /// [`Consumer::close_within`].
    pub fn close(&mut self) {
        self.driver.group_mut().close(Instant::now());
        self.flush();
    }

    /// Leave the group now, static member or not.
    pub fn leave(&mut self, reason: &str) {
        self.driver.group_mut().leave(Instant::now(), reason);
        self.flush();
    }

    /// [`Consumer::close`], then drive until the member has left or failed,
    /// or `timeout` passed. Returns the events seen meanwhile.
    pub fn close_within(&mut self, timeout: Duration) -> Vec<Event> {
        self.close();
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            if let Some(e) = self.poll(deadline - now) {
                seen.push(e);
            }
            if self.is_finished() && self.events.is_empty() {
                break;
            }
        }
        seen
    }

    /// True once the member has left or failed.
    pub fn is_finished(&self) -> bool {
        matches!(self.group().state(), GroupState::Left | GroupState::Failed)
    }

    /// Drive the connections until an event is ready or `timeout` passed.
    pub fn poll(&mut self, timeout: Duration) -> Option<Event> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.events.pop_front() {
                return Some(e);
            }
            let now = Instant::now();
            if self.is_finished() {
                // Nothing more will happen: release the sockets.
                self.conns.clear();
                return None;
            }
            if now >= deadline {
                return None;
            }
            self.step(deadline);
        }
    }

    /// A blocking iterator of events; it ends once the member has left or
    /// failed and every event was handed out.
    pub fn events(&mut self) -> Events<'_, C> {
        Events { consumer: self }
    }

    /// One round: perform socket actions, read what arrived, fire timers,
    /// and sleep a tick if nothing moved.
    fn step(&mut self, deadline: Instant) {
        self.flush();
        let moved = self.pump_sockets();
        let now = Instant::now();
        if self.driver.poll_timeout().is_some_and(|at| at <= now) {
            self.driver.handle_timeout(now);
            self.flush();
            return;
        }
        if moved || !self.events.is_empty() {
            self.idle_tick = Duration::from_millis(1);
            return;
        }
        let wake = self
            .driver
            .poll_timeout()
            .map_or(deadline, |at| at.min(deadline));
        let until_wake = wake.saturating_duration_since(now);
        // Only one connection can speak next and nothing waits to be
        // written: block on it, so its response is read at once.
        let awaiting: Vec<ConnectionId> = self.driver.awaiting_response().collect();
        let writes_pending = self.conns.values().any(|c| !c.out.is_empty());
        if let ([only], false) = (awaiting.as_slice(), writes_pending)
            && let Some(c) = self.conns.get_mut(only)
        {
            let wait = until_wake.min(MAX_BLOCKING_WAIT);
            if self.connector.wait_readable(&mut c.stream, wait).is_ok() {
                return;
            }
        }
        let nap = until_wake.min(self.idle_tick);
        if !nap.is_zero() {
            std::thread::sleep(nap);
        }
        self.idle_tick = (self.idle_tick * 2).min(MAX_IDLE_TICK);
    }

    /// Drain the driver's actions and events.
    fn flush(&mut self) {
        loop {
            let now = Instant::now();
            let mut did = false;
            while let Some(action) = self.driver.poll_action(now) {
                did = true;
                self.perform(action);
            }
            while let Some(e) = self.driver.poll_event() {
                self.events.push_back(e);
            }
            if !did {
                break;
            }
        }
    }

    fn perform(&mut self, action: IoAction) {
        match action {
            IoAction::Connect {
                conn,
                addr,
                timeout,
            } => match self.connector.connect(&addr, timeout) {
                Ok(stream) => {
                    self.conns.insert(
                        conn,
                        Conn {
                            stream,
                            out: VecDeque::new(),
                        },
                    );
                    self.driver.handle_connected(Instant::now(), conn);
                }
                Err(e) => {
                    let why = format!("{addr}: {e}");
                    self.driver
                        .handle_connect_failed(Instant::now(), conn, &why);
                }
            },
            IoAction::Send { conn, bytes } => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.out.extend(bytes.iter());
                }
            }
            IoAction::Close { conn } => {
                self.conns.remove(&conn);
            }
        }
    }

    /// Write what is queued and read what arrived, on every connection.
    /// Returns whether any byte moved.
    fn pump_sockets(&mut self) -> bool {
        let mut moved = false;
        let ids: Vec<ConnectionId> = self.conns.keys().copied().collect();
        for id in ids {
            match self.pump_one(id) {
                Ok(m) => moved |= m,
                Err(why) => {
                    self.conns.remove(&id);
                    self.driver.handle_closed(Instant::now(), id, &why);
                    moved = true;
                }
            }
            self.flush();
        }
        moved
    }

    fn pump_one(&mut self, id: ConnectionId) -> Result<bool, String> {
        let mut moved = false;
        // Write.
        while let Some(c) = self.conns.get_mut(&id) {
            if c.out.is_empty() {
                break;
            }
            let (front, _) = c.out.as_slices();
            match c.stream.write(front) {
                Ok(0) => return Err("connection closed while writing".to_owned()),
                Ok(n) => {
                    c.out.drain(..n);
                    moved = true;
                }
                Err(e) if is_would_block(&e) => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("write failed: {e}")),
            }
        }
        if let Some(c) = self.conns.get_mut(&id) {
            match c.stream.flush() {
                Err(e) if !is_would_block(&e) => return Err(format!("flush failed: {e}")),
                _ => {}
            }
        }
        // Read.
        loop {
            let Some(c) = self.conns.get_mut(&id) else {
                return Ok(moved);
            };
            match c.stream.read(&mut self.buf) {
                Ok(0) => return Err("connection closed by the broker".to_owned()),
                Ok(n) => {
                    moved = true;
                    let data = self.buf.get(..n).unwrap_or_default();
                    self.driver.handle_data(Instant::now(), id, data);
                }
                Err(e) if is_would_block(&e) => return Ok(moved),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read failed: {e}")),
            }
        }
    }
}

fn is_would_block(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// Blocking iterator returned by [`Consumer::events`].
pub struct Events<'a, C: Connector> {
    consumer: &'a mut Consumer<C>,
}

impl<C: Connector> std::fmt::Debug for Events<'_, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.consumer.fmt(f)
    }
}

impl<C: Connector> Iterator for Events<'_, C> {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.consumer.poll(Duration::from_secs(1)) {
                return Some(e);
            }
            if self.consumer.is_finished() && self.consumer.events.is_empty() {
                return None;
            }
        }
    }
}
