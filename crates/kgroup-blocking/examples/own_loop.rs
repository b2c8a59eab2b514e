//! Driving the Sans-IO engine from your own loop, with nothing but std::net
//! (the example of docs/embedding.md). Run against a broker:
//! `cargo run -p kgroup-blocking --example own_loop -- 127.0.0.1:9092`
#![allow(clippy::disallowed_methods)] // an application owns its clock
#![allow(clippy::map_entry)] // the connect may fail: insert only on success
use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use kgroup::wire::{FrameDecoder, peek_correlation_id};
use kgroup::{Broker, Config, ConnectionId, Event, Group, RequestId, TransportError};

struct Conn {
    stream: TcpStream,
    decoder: FrameDecoder,
    waiting: Vec<RequestId>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bootstrap = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9092".into());
    let range = kgroup::assignor::builtin("range").ok_or("no range assignor")?;
    let config = Config::builder("embedded").assignors(vec![range]).build()?;
    let mut group = Group::new(config, Instant::now());
    group.subscribe(Instant::now(), ["orders"]); // 1. an input (a command)
    let mut conns: BTreeMap<ConnectionId, Conn> = BTreeMap::new();
    let stop_at = Instant::now() + Duration::from_secs(30);
    let mut closing = false;
    loop {
        // 2. Drain every output: requests to send, then events.
        let now = Instant::now();
        while let Some(t) = group.poll_transmit(now) {
            let addr = match &t.destination.broker {
                Broker::Any => bootstrap.clone(),
                Broker::Node(node) => format!("{}:{}", node.host, node.port),
            };
            if !conns.contains_key(&t.destination.connection) {
                match TcpStream::connect(&addr) {
                    Ok(stream) => {
                        stream.set_read_timeout(Some(Duration::from_millis(5)))?;
                        let (decoder, waiting) = (FrameDecoder::default(), Vec::new());
                        conns.insert(
                            t.destination.connection,
                            Conn {
                                stream,
                                decoder,
                                waiting,
                            },
                        );
                    }
                    Err(e) => {
                        let err = TransportError::ConnectFailed(e.to_string());
                        group.handle_transport_error(now, t.id, err);
                        continue;
                    }
                }
            }
            let Some(conn) = conns.get_mut(&t.destination.connection) else {
                continue;
            };
            conn.waiting.push(t.id);
            if let Err(e) = conn.stream.write_all(&t.bytes) {
                let conn = conns.remove(&t.destination.connection);
                for id in conn.map(|c| c.waiting).unwrap_or_default() {
                    group.handle_transport_error(
                        now,
                        id,
                        TransportError::Disconnected(e.to_string()),
                    );
                }
            }
        }
        while let Some(event) = group.poll_event() {
            println!("{event:?}");
            if matches!(event, Event::Left | Event::Fatal(_)) {
                return Ok(());
            }
        }
        if !closing && now >= stop_at {
            closing = true;
            group.close(now); // a command is an input too: back to step 2
            continue;
        }
        // 3. Wait for a response or the next deadline, feed it, go to 2.
        if conns.is_empty() {
            std::thread::sleep(Duration::from_millis(5)); // e.g. a backoff is running
        }
        let mut buf = [0u8; 65536];
        let ids: Vec<ConnectionId> = conns.keys().copied().collect();
        for cid in ids {
            let Some(conn) = conns.get_mut(&cid) else {
                continue;
            };
            match conn.stream.read(&mut buf) {
                Ok(n) if n > 0 => {
                    let _ = conn.decoder.push(buf.get(..n).unwrap_or_default());
                    while let Ok(Some(frame)) = conn.decoder.next_frame() {
                        let id = RequestId(peek_correlation_id(&frame).unwrap_or(-1));
                        conn.waiting.retain(|w| *w != id);
                        group.handle_response(Instant::now(), id, frame);
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                _ => {
                    let err = TransportError::Disconnected("closed".into());
                    for id in conns.remove(&cid).map(|c| c.waiting).unwrap_or_default() {
                        group.handle_transport_error(Instant::now(), id, err.clone());
                    }
                }
            }
        }
        if group.poll_timeout().is_some_and(|at| at <= Instant::now()) {
            group.handle_timeout(Instant::now());
        }
    }
}
