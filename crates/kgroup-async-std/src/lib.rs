//! kgroup on `futures-io` and `async-io`: runs under async-std and under
//! smol (async-std is discontinued upstream in favour of smol; both drive
//! async-io's reactor, so one adapter serves both).
//!
//! No executor is chosen here: [`Consumer::new`] returns the handle and a
//! [`Driving`] future that performs all I/O; spawn it on your executor
//! (`async_std::task::spawn(driving)` or `smol::spawn(driving).detach()`).
//! Commands go to it over a channel and get their result back; events come
//! out as a [`futures_core::Stream`] (or [`Consumer::next_event`]). All
//! connection bookkeeping lives in the engine crate's
//! [`kgroup::driver::Driver`]; this crate only moves bytes and sleeps.
//!
//! Any `futures_io::AsyncRead + AsyncWrite` stream can carry the protocol:
//! implement [`Connector`] (a TLS stream, for example; TLS and SASL are not
//! part of kgroup yet).
//!
//! ```no_run
//! # fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use kgroup::{Config, Event};
//! use kgroup_async_std::Consumer;
//!
//! let config = Config::builder("my-group")
//!     .assignors(vec![kgroup::assignor::builtin("cooperative-sticky").unwrap()])
//!     .build()?;
//! let (mut consumer, driving) = Consumer::new(config, "127.0.0.1:9092")?;
//! async_io::block_on(async {
//!     let _task = std::thread::spawn(move || async_io::block_on(driving));
//!     consumer.subscribe(["orders"]).await;
//!     while let Some(event) = consumer.next_event().await {
//!         println!("{event:?}");
//!     }
//! });
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]
// An adapter owns the clock.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use async_io::{Async, Timer};
use futures_channel::{mpsc, oneshot};
use futures_core::Stream;
use futures_io::{AsyncRead, AsyncWrite};
use kgroup::driver::{BrokerAddr, Command, Driver, DriverError, IoAction, Reply};
use kgroup::{Config, ConnectionId, Event, Group};

pub use kgroup;

/// Bytes read from a socket at a time.
const READ_CHUNK: usize = 64 * 1024;

/// A boxed connect future.
pub type ConnectFuture<S> = Pin<Box<dyn Future<Output = io::Result<S>> + Send>>;

/// Opens byte streams to brokers.
pub trait Connector: Send + 'static {
    /// The stream type.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// Open a stream to `addr` (the caller applies the timeout).
    fn connect(&self, addr: BrokerAddr) -> ConnectFuture<Self::Stream>;
}

/// Plain TCP on async-io's reactor, with `TCP_NODELAY`. Host names are
/// resolved with the system resolver before connecting.
#[derive(Clone, Copy, Debug, Default)]
pub struct TcpConnector;

impl Connector for TcpConnector {
    type Stream = Async<TcpStream>;

    fn connect(&self, addr: BrokerAddr) -> ConnectFuture<Self::Stream> {
        Box::pin(async move {
            let mut last = io::Error::new(
                io::ErrorKind::NotFound,
                format!("{addr} resolves to nothing"),
            );
            for sa in (&*addr.host, addr.port).to_socket_addrs()? {
                match Async::<TcpStream>::connect(sa).await {
                    Ok(s) => {
                        s.get_ref().set_nodelay(true)?;
                        return Ok(s);
                    }
                    Err(e) => last = e,
                }
            }
            Err(last)
        })
    }
}

type Request = (Command, oneshot::Sender<Reply>);

/// Handle on a consumer-group member driven by a [`Driving`] future.
/// Dropping it closes the member (leaving if dynamic) in the background.
#[derive(Debug)]
pub struct Consumer {
    commands: mpsc::UnboundedSender<Request>,
    events: mpsc::UnboundedReceiver<Event>,
    /// The group id, for the errors of a member that has ended.
    group: String,
}

impl Consumer {
    /// A member for `config` reaching the cluster through `bootstrap`
    /// (`host:port[,...]`), and the future that drives it.
    pub fn new(config: Config, bootstrap: &str) -> Result<(Self, Driving), DriverError> {
        Self::with_connector(config, bootstrap, TcpConnector)
    }

    /// A member whose connections `connector` opens.
    pub fn with_connector<C: Connector>(
        config: Config,
        bootstrap: &str,
        connector: C,
    ) -> Result<(Self, Driving), DriverError> {
        let addrs = BrokerAddr::parse_list(bootstrap)?;
        let group = config.group_id().to_string();
        let driver = Driver::new(Group::new(config, Instant::now()), addrs)?;
        let (commands, cmd_rx) = mpsc::unbounded();
        let (ev_tx, events) = mpsc::unbounded();
        let driving = Driving {
            inner: Box::pin(run(driver, connector, cmd_rx, ev_tx)),
        };
        Ok((
            Self {
                commands,
                events,
                group,
            },
            driving,
        ))
    }

    /// Apply a [`Command`]; [`Reply::Done`] if the member has ended.
    pub async fn apply(&self, command: Command) -> Reply {
        let (tx, rx) = oneshot::channel();
        if self.commands.unbounded_send((command, tx)).is_err() {
            return Reply::Done;
        }
        rx.await.unwrap_or(Reply::Done)
    }

    /// The next event; `None` once the member has left or failed and every
    /// event was delivered.
    pub async fn next_event(&mut self) -> Option<Event> {
        std::future::poll_fn(|cx| Pin::new(&mut self.events).poll_next(cx)).await
    }

    // subscribe, hold_rebalance, allow_rebalance, ack_revoked, commit,
    // mark_processed, fetch_committed, close, leave: one definition for
    // every async adapter.
    kgroup::async_command_methods!();
}

impl Stream for Consumer {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        Pin::new(&mut self.events).poll_next(cx)
    }
}

/// The future that performs a member's I/O; it completes once the member
/// has left or failed. Spawn it on any executor that runs async-io
/// (async-std, smol, or `async_io::block_on` on a thread).
pub struct Driving {
    inner: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl std::fmt::Debug for Driving {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Driving")
    }
}

impl Future for Driving {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.inner.as_mut().poll(cx)
    }
}

struct Link<S> {
    stream: S,
    out: Vec<u8>,
}

struct Pending<S> {
    conn: ConnectionId,
    addr: BrokerAddr,
    fut: ConnectFuture<S>,
    timer: Timer,
}

/// What woke the loop.
enum Wake<S> {
    Command(Option<Request>),
    Connected(ConnectionId, S),
    ConnectFailed(ConnectionId, String),
    Data(ConnectionId, Vec<u8>),
    Closed(ConnectionId, String),
    Timer,
}

/// The member's loop: the engine's (see `kgroup::group`), with one hand
/// written poll over the command channel, pending connects, every socket
/// and the timer, so no task needs spawning.
async fn run<C: Connector>(
    mut driver: Driver,
    connector: C,
    mut cmd_rx: mpsc::UnboundedReceiver<Request>,
    ev_tx: mpsc::UnboundedSender<Event>,
) {
    let mut links: BTreeMap<ConnectionId, Link<C::Stream>> = BTreeMap::new();
    let mut pending: Vec<Pending<C::Stream>> = Vec::new();
    let mut handle_gone = false;
    let mut timer = Timer::never();
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        while let Some(action) = driver.poll_action(Instant::now()) {
            match action {
                IoAction::Connect {
                    conn,
                    addr,
                    timeout,
                } => pending.push(Pending {
                    conn,
                    fut: connector.connect(addr.clone()),
                    addr,
                    timer: Timer::after(timeout),
                }),
                IoAction::Send { conn, bytes } => {
                    if let Some(l) = links.get_mut(&conn) {
                        l.out.extend_from_slice(&bytes);
                    }
                }
                IoAction::Close { conn } => {
                    links.remove(&conn);
                    pending.retain(|p| p.conn != conn);
                }
            }
        }
        while let Some(e) = driver.poll_event() {
            let _ = ev_tx.unbounded_send(e);
        }
        if driver.is_finished() {
            break;
        }
        match driver.poll_timeout() {
            Some(at) => timer.set_at(at),
            None => timer = Timer::never(),
        }
        let wake = std::future::poll_fn(|cx| {
            poll_wake(
                cx,
                &mut cmd_rx,
                handle_gone,
                &mut pending,
                &mut links,
                &mut timer,
                &mut buf,
            )
        })
        .await;
        let now = Instant::now();
        match wake {
            Wake::Command(Some((command, reply))) => {
                let r = driver.apply(now, command);
                let _ = reply.send(r);
            }
            Wake::Command(None) => {
                handle_gone = true;
                driver.apply(now, Command::Close);
            }
            Wake::Connected(conn, stream) => {
                links.insert(
                    conn,
                    Link {
                        stream,
                        out: Vec::new(),
                    },
                );
                driver.handle_connected(now, conn);
            }
            Wake::ConnectFailed(conn, why) => driver.handle_connect_failed(now, conn, &why),
            Wake::Data(conn, data) => driver.handle_data(now, conn, &data),
            Wake::Closed(conn, why) => {
                links.remove(&conn);
                driver.handle_closed(now, conn, &why);
            }
            Wake::Timer => driver.handle_timeout(now),
        }
    }
}

fn poll_wake<S: AsyncRead + AsyncWrite + Unpin>(
    cx: &mut Context<'_>,
    cmd_rx: &mut mpsc::UnboundedReceiver<Request>,
    handle_gone: bool,
    pending: &mut Vec<Pending<S>>,
    links: &mut BTreeMap<ConnectionId, Link<S>>,
    timer: &mut Timer,
    buf: &mut [u8],
) -> Poll<Wake<S>> {
    if !handle_gone && let Poll::Ready(cmd) = Pin::new(&mut *cmd_rx).poll_next(cx) {
        return Poll::Ready(Wake::Command(cmd));
    }
    for i in 0..pending.len() {
        let Some(p) = pending.get_mut(i) else { break };
        let result = match p.fut.as_mut().poll(cx) {
            Poll::Ready(Ok(s)) => Some(Ok(s)),
            Poll::Ready(Err(e)) => Some(Err(format!("{}: {e}", p.addr))),
            Poll::Pending => match Pin::new(&mut p.timer).poll(cx) {
                Poll::Ready(_) => Some(Err(format!("{}: connect timed out", p.addr))),
                Poll::Pending => None,
            },
        };
        if let Some(r) = result {
            let p = pending.swap_remove(i);
            return Poll::Ready(match r {
                Ok(s) => Wake::Connected(p.conn, s),
                Err(why) => Wake::ConnectFailed(p.conn, why),
            });
        }
    }
    for (&conn, link) in links.iter_mut() {
        // Write what is queued.
        while !link.out.is_empty() {
            match Pin::new(&mut link.stream).poll_write(cx, &link.out) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Wake::Closed(
                        conn,
                        "connection closed while writing".into(),
                    ));
                }
                Poll::Ready(Ok(n)) => {
                    link.out.drain(..n.min(link.out.len()));
                }
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Poll::Ready(Err(e)) => {
                    return Poll::Ready(Wake::Closed(conn, format!("write failed: {e}")));
                }
                Poll::Pending => break,
            }
        }
        if link.out.is_empty() {
            let _ = Pin::new(&mut link.stream).poll_flush(cx);
        }
        match Pin::new(&mut link.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(0)) => {
                return Poll::Ready(Wake::Closed(conn, "connection closed by the broker".into()));
            }
            Poll::Ready(Ok(n)) => {
                let data = buf.get(..n).unwrap_or_default().to_vec();
                return Poll::Ready(Wake::Data(conn, data));
            }
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {
                cx.waker().wake_by_ref();
            }
            Poll::Ready(Err(e)) => {
                return Poll::Ready(Wake::Closed(conn, format!("read failed: {e}")));
            }
            Poll::Pending => {}
        }
    }
    if Pin::new(timer).poll(cx).is_ready() {
        return Poll::Ready(Wake::Timer);
    }
    Poll::Pending
}
