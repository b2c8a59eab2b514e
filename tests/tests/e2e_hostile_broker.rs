//! A hostile broker never crashes, hangs or wedges a kgroup member: for each
//! fault the proxy in front of the test broker can play (random bytes, an
//! impossible length prefix, a correlation id never sent, silence, a
//! trickle, half a frame, a duplicate, flipped bytes), on the API where it
//! hurts most, a member driven by kgroup-blocking (and, for the faults that
//! reach the sockets, by kgroup-tokio and kgroup-async-std under async-std
//! and smol) must
//!
//! - never report a fatal error (these are transport faults, not fencing);
//! - get through every injected fault (the proxy counts them);
//! - use the same API successfully afterwards (an honest answer of that API
//!   relayed after the last fault: it retried, reconnected or re-sent);
//! - own every partition and commit successfully after the last fault;
//! - close cleanly (`Left`) when asked.
//!
//! The member's request timeout is 3 s, so silence costs seconds, not the
//! default 30.
#![allow(clippy::disallowed_methods)] // harness code: real time bounds real waits

mod adapters;

use std::collections::BTreeSet;
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use adapters::Adapter;
use kgroup::driver::Command;
use kgroup::kafka_protocol::messages::ApiKey;
use kgroup::offsets::{CommittedOffset, OffsetEvent};
use kgroup::{Config, Event, TopicPartition};
use kgroup_tests::hostile::{Fault, HostileProxy};
use kgroup_tests::{TestBroker, TestBrokerOptions, deadline_after, remaining};

const BROKER: &str = env!("CARGO_BIN_EXE_kgroup-testbroker");
const TOPIC: &str = "hostile";
const PARTITIONS: i32 = 4;
const WAIT: Duration = Duration::from_secs(60);

/// What the member reported.
#[derive(Debug, Default)]
struct Seen {
    owned: BTreeSet<TopicPartition>,
    fatal: Vec<String>,
    warnings: Vec<String>,
    commits_ok: u32,
    left: bool,
}

impl Seen {
    fn absorb(&mut self, rx: &Receiver<Event>) {
        while let Ok(e) = rx.try_recv() {
            track(&mut self.owned, &e);
            match e {
                Event::Fatal(e) => self.fatal.push(e.to_string()),
                Event::Warning(e) => self.warnings.push(e.to_string()),
                Event::Offsets(OffsetEvent::CommitDone { result: Ok(()), .. }) => {
                    self.commits_ok += 1
                }
                Event::Left => self.left = true,
                _ => {}
            }
        }
    }
}

/// A member on `adapter` in a thread that commits what it owns every
/// 200 ms; it closes when the returned sender is dropped or sends.
fn member(adapter: Adapter, bootstrap: String, group: &str) -> (mpsc::Sender<()>, Receiver<Event>) {
    let config = Config::builder(group)
        .assignors(vec![
            kgroup::assignor::builtin("cooperative-sticky").expect("assignor"),
        ])
        .session_timeout(Duration::from_secs(6))
        .heartbeat_interval(Duration::from_millis(300))
        .rebalance_timeout(Duration::from_secs(10))
        .request_timeout(Duration::from_secs(3))
        .build()
        .expect("config");
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut m = adapters::member(adapter, config, &bootstrap);
        m.apply(Command::Subscribe(vec![TOPIC.to_owned()]));
        let mut owned = BTreeSet::new();
        let mut offset = 0;
        let mut next_commit = deadline_after(Duration::from_millis(200));
        while matches!(stop_rx.try_recv(), Err(mpsc::TryRecvError::Empty)) {
            if let Some(e) = m.next_event(Duration::from_millis(20)) {
                track(&mut owned, &e);
                let fatal = matches!(e, Event::Fatal(_));
                if tx.send(e).is_err() || fatal {
                    return;
                }
            }
            if remaining(next_commit).is_zero() {
                next_commit = deadline_after(Duration::from_millis(200));
                if !owned.is_empty() {
                    offset += 1;
                    let offsets = owned
                        .iter()
                        .map(|tp: &TopicPartition| (tp.clone(), CommittedOffset::new(offset)))
                        .collect();
                    let _ = m.apply(Command::Commit(offsets));
                }
            }
        }
        m.apply(Command::Close);
        let deadline = deadline_after(Duration::from_secs(15));
        while !remaining(deadline).is_zero() {
            if let Some(e) = m.next_event(Duration::from_millis(20)) {
                let left = matches!(e, Event::Left);
                if tx.send(e).is_err() || left {
                    return;
                }
            }
        }
    });
    (stop_tx, rx)
}

/// Keep `owned` up to date with `e`.
fn track(owned: &mut BTreeSet<TopicPartition>, e: &Event) {
    match e {
        Event::Assigned { partitions, .. } => owned.extend(partitions.iter().cloned()),
        Event::Revoked { partitions } | Event::Lost { partitions, .. } => {
            for p in partitions {
                owned.remove(p);
            }
        }
        _ => {}
    }
}

/// Inject `times` × `fault` on answers to `api` and check the member rides
/// it out (module documentation).
fn survives(adapter: Adapter, api: ApiKey, fault: Fault, times: u32) {
    let opts = TestBrokerOptions::default()
        .brokers(3)
        .topic(TOPIC, PARTITIONS);
    let broker = TestBroker::start(BROKER, &opts).expect("test broker");
    let proxy = HostileProxy::start(broker.addrs()).expect("proxy");
    proxy.inject(api, fault.clone(), times);
    let what = format!("{adapter:?}: {api:?} × {times} {fault:?}");
    let (stop, rx) = member(adapter, proxy.bootstrap(), &format!("hostile-{api:?}"));
    let all: BTreeSet<TopicPartition> = (0..PARTITIONS)
        .map(|p| TopicPartition::new(TOPIC, p))
        .collect();
    let mut seen = Seen::default();
    let mut commits_at_last_fault: Option<u32> = None;
    let deadline = deadline_after(WAIT);
    loop {
        seen.absorb(&rx);
        assert!(seen.fatal.is_empty(), "{what}: fatal: {:?}", seen.fatal);
        let stats = proxy.stats(api);
        if stats.faults == times && commits_at_last_fault.is_none() {
            commits_at_last_fault = Some(seen.commits_ok);
        }
        let recovered = stats.faults == times
            && stats.honest_after_fault >= 1
            && seen.owned == all
            && commits_at_last_fault.is_some_and(|c| seen.commits_ok > c);
        if recovered {
            break;
        }
        assert!(
            !remaining(deadline).is_zero(),
            "{what}: no recovery within {WAIT:?}: proxy {stats:?}, {} connections; member {seen:?}",
            proxy.connections()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // A fault never becomes a reconnect storm: a handful of connections per
    // fault (a member opens one per broker it talks to, plus one per reset).
    assert!(
        proxy.connections() <= 4 + 3 * times,
        "{what}: {} connections",
        proxy.connections()
    );
    eprintln!(
        "{what}: recovered; {} connections, {} warnings, first: {:?}",
        proxy.connections(),
        seen.warnings.len(),
        seen.warnings.first()
    );
    drop(stop);
    let deadline = deadline_after(Duration::from_secs(20));
    while !seen.left {
        seen.absorb(&rx);
        assert!(seen.fatal.is_empty(), "{what}: fatal: {:?}", seen.fatal);
        assert!(
            !remaining(deadline).is_zero(),
            "{what}: never left: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn garbage_api_versions() {
    survives(Adapter::Blocking, ApiKey::ApiVersions, Fault::Garbage, 2);
}

#[test]
fn metadata_with_a_correlation_id_never_sent() {
    survives(
        Adapter::Blocking,
        ApiKey::Metadata,
        Fault::WrongCorrelation,
        1,
    );
}

#[test]
fn silent_find_coordinator() {
    survives(
        Adapter::Blocking,
        ApiKey::FindCoordinator,
        Fault::Silence,
        1,
    );
}

#[test]
fn join_group_answer_claiming_two_gigabytes() {
    survives(
        Adapter::Blocking,
        ApiKey::JoinGroup,
        Fault::Length(i32::MAX),
        1,
    );
}

#[test]
fn join_group_answered_twice() {
    survives(Adapter::Blocking, ApiKey::JoinGroup, Fault::Duplicate, 1);
}

#[test]
fn sync_group_cut_in_half() {
    survives(Adapter::Blocking, ApiKey::SyncGroup, Fault::Truncate, 1);
}

#[test]
fn sync_group_with_flipped_bytes() {
    survives(Adapter::Blocking, ApiKey::SyncGroup, Fault::Corrupt, 2);
}

#[test]
fn heartbeats_with_a_negative_length() {
    survives(Adapter::Blocking, ApiKey::Heartbeat, Fault::Length(-7), 2);
}

#[test]
fn heartbeats_trickled_byte_by_byte() {
    survives(
        Adapter::Blocking,
        ApiKey::Heartbeat,
        Fault::Trickle(Duration::from_millis(30)),
        3,
    );
}

#[test]
fn offset_commits_with_flipped_bytes() {
    survives(Adapter::Blocking, ApiKey::OffsetCommit, Fault::Corrupt, 3);
}

#[test]
fn offset_fetch_garbage() {
    survives(Adapter::Blocking, ApiKey::OffsetFetch, Fault::Garbage, 1);
}

// The adapters own the sockets: the faults that reach their read loops
// (impossible lengths, half frames, trickles, silence, stray correlation
// ids) on each async adapter too.
fn socket_faults(adapter: Adapter) {
    survives(adapter, ApiKey::JoinGroup, Fault::Length(i32::MAX), 1);
    survives(adapter, ApiKey::SyncGroup, Fault::Truncate, 1);
    survives(
        adapter,
        ApiKey::Heartbeat,
        Fault::Trickle(Duration::from_millis(30)),
        2,
    );
    survives(adapter, ApiKey::FindCoordinator, Fault::Silence, 1);
    survives(adapter, ApiKey::Metadata, Fault::WrongCorrelation, 1);
}

#[test]
fn tokio_rides_out_socket_faults() {
    socket_faults(Adapter::Tokio);
}

#[test]
fn async_std_rides_out_socket_faults() {
    socket_faults(Adapter::AsyncStd);
}

#[test]
fn smol_rides_out_socket_faults() {
    socket_faults(Adapter::Smol);
}
