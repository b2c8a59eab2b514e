//! kgroup on tokio: sockets are `tokio::net::TcpStream`s, timers
//! `tokio::time`, and the member runs in a task of its own so heartbeats go
//! on while the application works.
//!
//! [`Consumer`] is a handle: commands go to the task over a channel and get
//! their result back; events come out as a [`futures_core::Stream`] (or
//! [`Consumer::next_event`]). All connection bookkeeping lives in the engine
//! crate's [`kgroup::driver::Driver`]; the task only moves bytes and sleeps.
//!
//! Any `AsyncRead + AsyncWrite` stream can carry the protocol: implement
//! [`Connector`] to open one (a TLS stream, for example; TLS and SASL are not
//! part of kgroup yet).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use kgroup::{Config, Event};
//! use kgroup_tokio::Consumer;
//!
//! let config = Config::builder("my-group")
//!     .assignors(vec![kgroup::assignor::builtin("cooperative-sticky").unwrap()])
//!     .build()?;
//! let mut consumer = Consumer::new(config, "127.0.0.1:9092")?;
//! consumer.subscribe(["orders"]).await;
//! while let Some(event) = consumer.next_event().await {
//!     if let Event::Assigned { partitions, .. } = event {
//!         println!("owning {partitions:?}");
//!     }
//! }
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]
// An adapter owns the clock.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_core::Stream;
use kgroup::driver::{BrokerAddr, Command, Driver, DriverError, IoAction, Reply};
use kgroup::{Config, ConnectionId, Event, Group};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

pub use kgroup;

/// Bytes read from a socket at a time.
const READ_CHUNK: usize = 64 * 1024;

/// A boxed connect future.
pub type ConnectFuture<S> = Pin<Box<dyn Future<Output = io::Result<S>> + Send>>;

/// Opens byte streams to brokers.
pub trait Connector: Send + 'static {
    /// The stream type.
    type Stream: AsyncRead + AsyncWrite + Send + 'static;
    /// Open a stream to `addr` (the caller applies the timeout).
    fn connect(&self, addr: BrokerAddr) -> ConnectFuture<Self::Stream>;
}

/// Plain TCP with `TCP_NODELAY`.
#[derive(Clone, Copy, Debug, Default)]
pub struct TcpConnector;

impl Connector for TcpConnector {
    type Stream = tokio::net::TcpStream;

    fn connect(&self, addr: BrokerAddr) -> ConnectFuture<Self::Stream> {
        Box::pin(async move {
            let s = tokio::net::TcpStream::connect((&*addr.host, addr.port)).await?;
            s.set_nodelay(true)?;
            Ok(s)
        })
    }
}

type Request = (Command, oneshot::Sender<Reply>);

/// A consumer-group member driven by a tokio task. Dropping the handle
/// closes the member (it leaves the group if dynamic) in the background.
#[derive(Debug)]
pub struct Consumer {
    commands: mpsc::UnboundedSender<Request>,
    events: mpsc::UnboundedReceiver<Event>,
    /// The group id, for the errors of a member that has ended.
    group: String,
    task: JoinHandle<()>,
}

impl Consumer {
    /// A member for `config` reaching the cluster through `bootstrap`
    /// (`host:port[,...]`). Spawns its task: call inside a tokio runtime.
    pub fn new(config: Config, bootstrap: &str) -> Result<Self, DriverError> {
        Self::with_connector(config, bootstrap, TcpConnector)
    }

    /// A member whose connections `connector` opens.
    pub fn with_connector<C: Connector>(
        config: Config,
        bootstrap: &str,
        connector: C,
    ) -> Result<Self, DriverError> {
        let addrs = BrokerAddr::parse_list(bootstrap)?;
        let group = config.group_id().to_string();
        let driver = Driver::new(Group::new(config, Instant::now()), addrs)?;
        let (commands, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, events) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(driver, connector, cmd_rx, ev_tx));
        Ok(Self {
            commands,
            events,
            group,
            task,
        })
    }

    /// Apply a [`Command`]; [`Reply::Done`] if the member task has ended.
    pub async fn apply(&self, command: Command) -> Reply {
        let (tx, rx) = oneshot::channel();
        if self.commands.send((command, tx)).is_err() {
            return Reply::Done;
        }
        rx.await.unwrap_or(Reply::Done)
    }

    /// The next event; `None` once the member has left or failed and every
    /// event was delivered.
    pub async fn next_event(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    // subscribe, hold_rebalance, allow_rebalance, ack_revoked, commit,
    // mark_processed, fetch_committed, close, leave: one definition for
    // every async adapter.
    kgroup::async_command_methods!();

    /// Whether the member task has ended (left or failed).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl Stream for Consumer {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.events.poll_recv(cx)
    }
}

/// What the socket tasks report to the member task.
enum IoEvent<S> {
    Connected(ConnectionId, S),
    ConnectFailed(ConnectionId, String),
    Data(ConnectionId, Vec<u8>),
    Closed(ConnectionId, String),
}

struct Link<S> {
    writer: WriteHalf<S>,
    reader: JoinHandle<()>,
}

/// The member task: the engine's loop (see `kgroup::group`), with tokio I/O.
async fn run<C: Connector>(
    mut driver: Driver,
    connector: C,
    mut cmd_rx: mpsc::UnboundedReceiver<Request>,
    ev_tx: mpsc::UnboundedSender<Event>,
) {
    let (io_tx, mut io_rx) = mpsc::unbounded_channel::<IoEvent<C::Stream>>();
    let mut links: BTreeMap<ConnectionId, Link<C::Stream>> = BTreeMap::new();
    let mut handle_gone = false;
    let write_timeout = driver.group().config().request_timeout();
    loop {
        // Drain every output.
        while let Some(action) = driver.poll_action(Instant::now()) {
            match action {
                IoAction::Connect {
                    conn,
                    addr,
                    timeout,
                } => {
                    let fut = connector.connect(addr.clone());
                    let tx = io_tx.clone();
                    tokio::spawn(async move {
                        let ev = match tokio::time::timeout(timeout, fut).await {
                            Ok(Ok(s)) => IoEvent::Connected(conn, s),
                            Ok(Err(e)) => IoEvent::ConnectFailed(conn, format!("{addr}: {e}")),
                            Err(_) => IoEvent::ConnectFailed(conn, format!("{addr}: timed out")),
                        };
                        let _ = tx.send(ev);
                    });
                }
                IoAction::Send { conn, bytes } => {
                    let Some(link) = links.get_mut(&conn) else {
                        continue;
                    };
                    let write = tokio::time::timeout(write_timeout, link.writer.write_all(&bytes));
                    let failed = match write.await {
                        Ok(Ok(())) => None,
                        Ok(Err(e)) => Some(format!("write failed: {e}")),
                        Err(_) => Some("write timed out".to_owned()),
                    };
                    if let Some(why) = failed {
                        if let Some(l) = links.remove(&conn) {
                            l.reader.abort();
                        }
                        driver.handle_closed(Instant::now(), conn, &why);
                    }
                }
                IoAction::Close { conn } => {
                    if let Some(l) = links.remove(&conn) {
                        l.reader.abort();
                    }
                }
            }
        }
        while let Some(e) = driver.poll_event() {
            let _ = ev_tx.send(e);
        }
        if driver.is_finished() {
            break;
        }
        let deadline = driver.poll_timeout();
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            cmd = cmd_rx.recv(), if !handle_gone => match cmd {
                Some((command, reply)) => {
                    let r = driver.apply(Instant::now(), command);
                    let _ = reply.send(r);
                }
                None => {
                    // The handle was dropped: close the member cleanly.
                    handle_gone = true;
                    driver.apply(Instant::now(), Command::Close);
                }
            },
            Some(io) = io_rx.recv() => {
                let now = Instant::now();
                match io {
                    IoEvent::Connected(conn, stream) => {
                        let (reader, writer) = tokio::io::split(stream);
                        let reader = tokio::spawn(read_loop(conn, reader, io_tx.clone()));
                        if let Some(old) = links.insert(conn, Link { writer, reader }) {
                            old.reader.abort();
                        }
                        driver.handle_connected(now, conn);
                    }
                    IoEvent::ConnectFailed(conn, why) => driver.handle_connect_failed(now, conn, &why),
                    IoEvent::Data(conn, data) => driver.handle_data(now, conn, &data),
                    IoEvent::Closed(conn, why) => {
                        if links.remove(&conn).is_some() {
                            driver.handle_closed(now, conn, &why);
                        }
                    }
                }
            }
            () = sleep => driver.handle_timeout(Instant::now()),
        }
    }
    for (_, l) in links {
        l.reader.abort();
    }
}

async fn read_loop<S: AsyncRead>(
    conn: ConnectionId,
    mut reader: ReadHalf<S>,
    tx: mpsc::UnboundedSender<IoEvent<S>>,
) {
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) => {
                let _ = tx.send(IoEvent::Closed(
                    conn,
                    "connection closed by the broker".into(),
                ));
                return;
            }
            Ok(n) => {
                let data = buf.get(..n).unwrap_or_default().to_vec();
                if tx.send(IoEvent::Data(conn, data)).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                let _ = tx.send(IoEvent::Closed(conn, format!("read failed: {e}")));
                return;
            }
        }
    }
}
