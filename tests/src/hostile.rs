//! A hostile broker: a man in the middle in front of the test broker that
//! answers honestly (it relays the real broker) except where a test told it
//! to misbehave, per API: random bytes, an impossible length prefix, a
//! correlation id never sent, silence, a trickle of single bytes, half a
//! frame and a close, the answer twice, or flipped bytes.
//!
//! The proxy listens once per broker of the cluster behind it and rewrites
//! the broker addresses in Metadata and FindCoordinator answers to its own,
//! so every connection a member opens goes through it. Being honest
//! otherwise is the point: after each fault the member must recover and use
//! the same API successfully again, against a broker no one here wrote.
//!
//! Harness code: threads, blocking sockets and the real clock, with every
//! wait bounded.
// A peer, not the engine: it sleeps to accept and to trickle bytes.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kgroup::kafka_protocol::messages::{
    ApiKey, FindCoordinatorResponse, MetadataResponse, ResponseHeader,
};
use kgroup::kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kgroup::wire::bounded::sample::SampleRng;

/// Largest frame the proxy relays (the member's own limit is larger; the
/// test broker's answers are far smaller).
const MAX_FRAME: usize = 16 * 1024 * 1024;

/// How the proxy misbehaves on one answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The right correlation id, then up to 64 random bytes.
    Garbage,
    /// This length prefix (huge or negative) instead of the real one, then
    /// the real body; the connection is closed after it.
    Length(i32),
    /// A correlation id the member never sent.
    WrongCorrelation,
    /// No answer at all; the connection stays open.
    Silence,
    /// The real answer, one byte at a time, this far apart.
    Trickle(Duration),
    /// The length prefix and half the body, then the connection closes.
    Truncate,
    /// The real answer twice.
    Duplicate,
    /// The real answer with a few bytes after the correlation id flipped.
    Corrupt,
}

#[derive(Debug)]
struct Rule {
    api: ApiKey,
    fault: Fault,
    left: u32,
}

/// What the proxy did, per API.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApiStats {
    /// Answers relayed unchanged (addresses rewritten aside).
    pub honest: u32,
    /// Faults applied.
    pub faults: u32,
    /// Honest answers relayed after the last fault on this API.
    pub honest_after_fault: u32,
}

#[derive(Debug, Default)]
struct Shared {
    rules: Mutex<Vec<Rule>>,
    stats: Mutex<BTreeMap<i16, ApiStats>>,
    /// Broker port behind → the proxy's address for it.
    addresses: Mutex<BTreeMap<u16, SocketAddr>>,
    connections: AtomicU32,
    seed: AtomicU32,
    stop: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The proxy. Stops its listeners when dropped.
#[derive(Debug)]
pub struct HostileProxy {
    shared: Arc<Shared>,
    listen: Vec<SocketAddr>,
    threads: Vec<JoinHandle<()>>,
}

impl HostileProxy {
    /// A proxy in front of `brokers` (every broker of the cluster, in order).
    pub fn start(brokers: &[SocketAddr]) -> io::Result<Self> {
        let shared = Arc::new(Shared::default());
        let mut listen = Vec::new();
        let mut threads = Vec::new();
        for upstream in brokers {
            let listener = TcpListener::bind("127.0.0.1:0")?;
            listener.set_nonblocking(true)?;
            let addr = listener.local_addr()?;
            lock(&shared.addresses).insert(upstream.port(), addr);
            listen.push(addr);
            let (shared, upstream) = (Arc::clone(&shared), *upstream);
            threads.push(thread::spawn(move || {
                accept_loop(listener, upstream, shared)
            }));
        }
        Ok(Self {
            shared,
            listen,
            threads,
        })
    }

    /// The bootstrap list of the proxy's listeners.
    pub fn bootstrap(&self) -> String {
        self.listen
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Misbehave `times` times on answers to `api`.
    pub fn inject(&self, api: ApiKey, fault: Fault, times: u32) {
        lock(&self.shared.rules).push(Rule {
            api,
            fault,
            left: times,
        });
    }

    /// What was done to answers of `api` so far.
    pub fn stats(&self, api: ApiKey) -> ApiStats {
        lock(&self.shared.stats)
            .get(&(api as i16))
            .cloned()
            .unwrap_or_default()
    }

    /// Connections accepted from members so far.
    pub fn connections(&self) -> u32 {
        self.shared.connections.load(Ordering::Relaxed)
    }
}

impl Drop for HostileProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    while !shared.stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((client, _)) => {
                shared.connections.fetch_add(1, Ordering::Relaxed);
                let shared = Arc::clone(&shared);
                thread::spawn(move || relay(client, upstream, shared));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(5));
            }
            Err(_) => return,
        }
    }
}

/// One member connection: requests go up unchanged; answers come down
/// through [`answer`].
fn relay(client: TcpStream, upstream: SocketAddr, shared: Arc<Shared>) {
    let Ok(server) = TcpStream::connect_timeout(&upstream, Duration::from_secs(5)) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let (Ok(mut client_r), Ok(mut server_w)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let (mut client_w, mut server_r) = (client, server);
    let _ = client_r.set_read_timeout(Some(Duration::from_millis(200)));
    let _ = server_r.set_read_timeout(Some(Duration::from_millis(200)));
    // Correlation id → (api key, version) of the requests in flight.
    let inflight: Arc<Mutex<BTreeMap<i32, (i16, i16)>>> = Arc::default();
    let up = {
        let (inflight, shared) = (Arc::clone(&inflight), Arc::clone(&shared));
        thread::spawn(move || {
            while let Some(frame) = read_frame(&mut client_r, &shared.stop) {
                if frame.len() >= 8 {
                    let mut b = &frame[..];
                    let (api, version, corr) = (b.get_i16(), b.get_i16(), b.get_i32());
                    lock(&inflight).insert(corr, (api, version));
                }
                if write_frame(&mut server_w, &frame).is_err() {
                    break;
                }
            }
            let _ = server_w.shutdown(Shutdown::Both);
        })
    };
    while let Some(frame) = read_frame(&mut server_r, &shared.stop) {
        if frame.len() < 4 {
            break;
        }
        let corr = (&frame[..4]).get_i32();
        let Some((api, version)) = lock(&inflight).remove(&corr) else {
            break;
        };
        if answer(&mut client_w, &shared, api, version, frame).is_err() {
            break;
        }
    }
    let _ = client_w.shutdown(Shutdown::Both);
    let _ = up.join();
}

/// Relay one answer, honestly or not. `Err` closes the connection.
fn answer(
    client: &mut TcpStream,
    shared: &Shared,
    api: i16,
    version: i16,
    frame: Bytes,
) -> io::Result<()> {
    let frame = rewrite_addresses(shared, api, version, frame);
    let fault = {
        let mut rules = lock(&shared.rules);
        let hit = rules.iter_mut().find(|r| r.api as i16 == api && r.left > 0);
        hit.map(|r| {
            r.left -= 1;
            r.fault.clone()
        })
    };
    {
        let mut stats = lock(&shared.stats);
        let s = stats.entry(api).or_default();
        if fault.is_some() {
            s.faults += 1;
            s.honest_after_fault = 0;
        } else {
            s.honest += 1;
            s.honest_after_fault += 1;
        }
    }
    let Some(fault) = fault else {
        return write_frame(client, &frame);
    };
    let seed = shared.seed.fetch_add(1, Ordering::Relaxed);
    let mut rng = SampleRng::new(u64::from(seed) ^ 0x0068_6f73_7469_6c65);
    match fault {
        Fault::Garbage => {
            let mut body = BytesMut::from(&frame[..4]);
            for _ in 0..rng.below(65) {
                body.put_u8(rng.next_u64() as u8);
            }
            write_frame(client, &body)
        }
        Fault::Length(len) => {
            let mut out = BytesMut::new();
            out.put_i32(len);
            out.extend_from_slice(&frame);
            client.write_all(&out)?;
            Err(io::Error::other("length fault: connection closed"))
        }
        Fault::WrongCorrelation => {
            let mut body = BytesMut::from(&frame[..]);
            let corr = (&frame[..4]).get_i32() ^ 0x4000_0000;
            body[..4].copy_from_slice(&corr.to_be_bytes());
            write_frame(client, &body)
        }
        Fault::Silence => Ok(()),
        Fault::Trickle(gap) => {
            let mut out = BytesMut::new();
            out.put_u32(frame.len() as u32);
            out.extend_from_slice(&frame);
            for b in out.iter() {
                client.write_all(&[*b])?;
                thread::sleep(gap);
            }
            Ok(())
        }
        Fault::Truncate => {
            let mut out = BytesMut::new();
            out.put_u32(frame.len() as u32);
            out.extend_from_slice(&frame[..frame.len() / 2]);
            client.write_all(&out)?;
            Err(io::Error::other("truncate fault: connection closed"))
        }
        Fault::Duplicate => {
            write_frame(client, &frame)?;
            write_frame(client, &frame)
        }
        Fault::Corrupt => {
            let mut body = BytesMut::from(&frame[..]);
            if body.len() > 4 {
                for _ in 0..1 + rng.below(4) {
                    let i = 4 + rng.below(body.len() as u64 - 4) as usize;
                    body[i] ^= 1 << rng.below(8);
                }
            }
            write_frame(client, &body)
        }
    }
}

/// Metadata and FindCoordinator answers name brokers: point them at the
/// proxy. An answer that does not decode is relayed as it is.
fn rewrite_addresses(shared: &Shared, api: i16, version: i16, frame: Bytes) -> Bytes {
    let Ok(key) = ApiKey::try_from(api) else {
        return frame;
    };
    if !matches!(key, ApiKey::Metadata | ApiKey::FindCoordinator) {
        return frame;
    }
    let header_version = key.response_header_version(version);
    let mut buf = frame.clone();
    let Ok(header) = ResponseHeader::decode(&mut buf, header_version) else {
        return frame;
    };
    let addresses = lock(&shared.addresses).clone();
    let moved = |port: i32| {
        u16::try_from(port)
            .ok()
            .and_then(|p| addresses.get(&p))
            .copied()
    };
    let mut out = BytesMut::new();
    if header.encode(&mut out, header_version).is_err() {
        return frame;
    }
    let encoded = match key {
        ApiKey::Metadata => {
            let Ok(mut body) = MetadataResponse::decode(&mut buf, version) else {
                return frame;
            };
            for b in &mut body.brokers {
                if let Some(a) = moved(b.port) {
                    b.host = StrBytes::from_string(a.ip().to_string());
                    b.port = i32::from(a.port());
                }
            }
            body.encode(&mut out, version)
        }
        _ => {
            let Ok(mut body) = FindCoordinatorResponse::decode(&mut buf, version) else {
                return frame;
            };
            if let Some(a) = moved(body.port) {
                body.host = StrBytes::from_string(a.ip().to_string());
                body.port = i32::from(a.port());
            }
            for c in &mut body.coordinators {
                if let Some(a) = moved(c.port) {
                    c.host = StrBytes::from_string(a.ip().to_string());
                    c.port = i32::from(a.port());
                }
            }
            body.encode(&mut out, version)
        }
    };
    if encoded.is_err() {
        return frame;
    }
    out.freeze()
}

/// One length-prefixed frame (without the prefix); `None` at end of
/// stream, on an error, on an oversized frame or once the proxy stops.
fn read_frame(r: &mut TcpStream, stop: &AtomicBool) -> Option<Bytes> {
    let mut len = [0u8; 4];
    read_exact(r, &mut len, stop)?;
    let len = usize::try_from(i32::from_be_bytes(len)).ok()?;
    if len > MAX_FRAME {
        return None;
    }
    let mut body = vec![0u8; len];
    read_exact(r, &mut body, stop)?;
    Some(Bytes::from(body))
}

fn read_exact(r: &mut TcpStream, buf: &mut [u8], stop: &AtomicBool) -> Option<()> {
    let mut at = 0;
    while at < buf.len() {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        match r.read(&mut buf[at..]) {
            Ok(0) => return None,
            Ok(n) => at += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    Some(())
}

fn write_frame(w: &mut TcpStream, body: &[u8]) -> io::Result<()> {
    let mut out = BytesMut::with_capacity(body.len() + 4);
    out.put_u32(body.len() as u32);
    out.extend_from_slice(body);
    w.write_all(&out)
}
