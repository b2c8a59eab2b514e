//! End to end, against the test broker (librdkafka's mock cluster), with
//! every adapter: kgroup-blocking, kgroup-tokio, kgroup-async-std under
//! async-std and under smol; and mixed groups with real librdkafka consumers.
//!
//! Each member runs in a thread of its own and reports its events; the test
//! keeps every member's owned set and checks, after each step, that every
//! partition is owned exactly once. Waits are bounded polls, never sleeps.
//! Session timeouts are 6 s: the mock waits about that long for members to
//! rejoin on every rebalance after the first.
#![allow(clippy::disallowed_methods)] // harness code: real time bounds real waits

mod adapters;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use adapters::{Adapter, Member};
use kgroup::driver::{Command, Reply};
use kgroup::offsets::{CommittedOffset, OffsetEvent};
use kgroup::{Config, Event, TopicPartition};
use kgroup_tests::{TestBroker, TestBrokerOptions, deadline_after, remaining};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

const BROKER: &str = env!("CARGO_BIN_EXE_kgroup-testbroker");
const SESSION_MS: u64 = 6000;
const SETTLE: Duration = Duration::from_secs(40);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Blocking,
    Tokio,
    AsyncStd,
    Smol,
    Rdkafka,
}

/// What a member thread reports.
#[derive(Debug)]
enum Report {
    /// A kgroup event.
    Event(Event),
    /// A librdkafka member's current assignment (sent when it changes).
    Assignment(BTreeSet<TopicPartition>),
    /// The member thread ended.
    Ended,
}

fn config(group: &str, assignor: &str) -> Config {
    let a = kgroup::assignor::builtin(assignor).expect("built-in assignor");
    Config::builder(group)
        .assignors(vec![a])
        .session_timeout(Duration::from_millis(SESSION_MS))
        .heartbeat_interval(Duration::from_millis(500))
        .rebalance_timeout(Duration::from_secs(20))
        .request_timeout(Duration::from_secs(10))
        .build()
        .expect("valid config")
}

fn make_member(kind: Kind, config: Config, bootstrap: &str) -> Box<dyn Member> {
    let adapter = match kind {
        Kind::Blocking => Adapter::Blocking,
        Kind::Tokio => Adapter::Tokio,
        Kind::AsyncStd => Adapter::AsyncStd,
        Kind::Smol => Adapter::Smol,
        Kind::Rdkafka => unreachable!("librdkafka members are not kgroup members"),
    };
    adapters::member(adapter, config, bootstrap)
}

/// A member running in its own thread.
struct Handle {
    name: String,
    kind: Kind,
    cmds: Sender<Command>,
    replies: Receiver<Reply>,
    thread: Option<JoinHandle<()>>,
}

impl Handle {
    fn apply(&self, command: Command) -> Reply {
        self.cmds.send(command).expect("member thread alive");
        self.replies
            .recv_timeout(Duration::from_secs(10))
            .expect("member answers a command")
    }
}

fn spawn_kgroup(
    name: &str,
    kind: Kind,
    config: Config,
    bootstrap: &str,
    topics: &[&str],
    reports: Sender<(String, Report)>,
) -> Handle {
    let (cmds, cmd_rx) = mpsc::channel::<Command>();
    let (reply_tx, replies) = mpsc::channel();
    let bootstrap = bootstrap.to_owned();
    let topics: Vec<String> = topics.iter().map(|t| (*t).to_owned()).collect();
    let who = name.to_owned();
    let thread = std::thread::spawn(move || {
        let mut m = make_member(kind, config, &bootstrap);
        m.apply(Command::Subscribe(topics));
        loop {
            match cmd_rx.try_recv() {
                Ok(c) => {
                    let r = m.apply(c);
                    let _ = reply_tx.send(r);
                }
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {}
            }
            if let Some(e) = m.next_event(Duration::from_millis(20)) {
                let done = matches!(e, Event::Left | Event::Fatal(_));
                let _ = reports.send((who.clone(), Report::Event(e)));
                if done {
                    break;
                }
            }
        }
        let _ = reports.send((who, Report::Ended));
    });
    Handle {
        name: name.to_owned(),
        kind,
        cmds,
        replies,
        thread: Some(thread),
    }
}

/// A librdkafka consumer in a thread; any command closes it.
fn spawn_rdkafka(
    name: &str,
    bootstrap: &str,
    group: &str,
    strategy: &str,
    topic: &str,
    reports: Sender<(String, Report)>,
) -> Handle {
    let (cmds, cmd_rx) = mpsc::channel::<Command>();
    let (reply_tx, replies) = mpsc::channel();
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("session.timeout.ms", SESSION_MS.to_string())
        .set("heartbeat.interval.ms", "500")
        .set("enable.auto.commit", "false")
        .set("partition.assignment.strategy", strategy)
        .create()
        .expect("librdkafka accepts the config");
    c.subscribe(&[topic]).expect("subscribe");
    let who = name.to_owned();
    let thread = std::thread::spawn(move || {
        let mut last = BTreeSet::new();
        loop {
            let _ = c.poll(Duration::from_millis(20));
            let now: BTreeSet<TopicPartition> = c
                .assignment()
                .map(|l| {
                    l.elements()
                        .iter()
                        .map(|e| TopicPartition::new(e.topic(), e.partition()))
                        .collect()
                })
                .unwrap_or_default();
            if now != last {
                last = now.clone();
                let _ = reports.send((who.clone(), Report::Assignment(now)));
            }
            match cmd_rx.try_recv() {
                Ok(_) | Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {}
            }
        }
        c.unsubscribe();
        // Let librdkafka send its LeaveGroup before the handle drops.
        let end = deadline_after(Duration::from_secs(2));
        while !remaining(end).is_zero() {
            let _ = c.poll(Duration::from_millis(50));
            if c.assignment().map(|l| l.count()).unwrap_or(0) == 0 {
                break;
            }
        }
        drop(c);
        let _ = reply_tx.send(Reply::Done);
        let _ = reports.send((who, Report::Ended));
    });
    Handle {
        name: name.to_owned(),
        kind: Kind::Rdkafka,
        cmds,
        replies,
        thread: Some(thread),
    }
}

/// What the test knows of every member.
#[derive(Debug, Default)]
struct View {
    owned: BTreeMap<String, BTreeSet<TopicPartition>>,
    generation: BTreeMap<String, i32>,
    left: BTreeSet<String>,
    ended: BTreeSet<String>,
    fatal: Vec<String>,
    commits_ok: BTreeMap<String, usize>,
    commit_errors: Vec<String>,
    /// Last time any ownership changed.
    changed: Option<Instant>,
}

impl View {
    fn absorb(&mut self, rx: &Receiver<(String, Report)>) {
        while let Ok((who, r)) = rx.try_recv() {
            match r {
                Report::Event(Event::Assigned {
                    generation,
                    partitions,
                    ..
                }) => {
                    self.owned
                        .insert(who.clone(), partitions.into_iter().collect());
                    self.generation.insert(who, generation);
                    self.changed = Some(Instant::now());
                }
                Report::Event(Event::Revoked { partitions } | Event::Lost { partitions, .. }) => {
                    if let Some(o) = self.owned.get_mut(&who) {
                        for tp in &partitions {
                            o.remove(tp);
                        }
                    }
                    self.changed = Some(Instant::now());
                }
                Report::Event(Event::Left) => {
                    self.owned.remove(&who);
                    self.left.insert(who);
                    self.changed = Some(Instant::now());
                }
                Report::Event(Event::Fatal(e)) => self.fatal.push(format!("{who}: {e}")),
                Report::Event(Event::Offsets(OffsetEvent::CommitDone { result, .. })) => {
                    match result {
                        Ok(()) => *self.commits_ok.entry(who).or_default() += 1,
                        Err(e) => self.commit_errors.push(format!("{who}: {e}")),
                    }
                }
                Report::Event(_) => {}
                Report::Assignment(set) => {
                    self.owned.insert(who, set);
                    self.changed = Some(Instant::now());
                }
                Report::Ended => {
                    self.owned.remove(&who);
                    self.ended.insert(who);
                }
            }
        }
    }

    /// Every partition owned exactly once by `members`, the kgroup ones in
    /// one generation, and nothing changed for `quiet`.
    fn settled(
        &self,
        members: &[&Handle],
        all: &BTreeSet<TopicPartition>,
        quiet: Duration,
    ) -> bool {
        let mut seen = BTreeSet::new();
        let mut count = 0;
        for m in members {
            let Some(o) = self.owned.get(&m.name) else {
                return false;
            };
            count += o.len();
            seen.extend(o.iter().cloned());
        }
        let gens: BTreeSet<i32> = members
            .iter()
            .filter(|m| m.kind != Kind::Rdkafka)
            .filter_map(|m| self.generation.get(&m.name).copied())
            .collect();
        let others_own_nothing = self
            .owned
            .iter()
            .filter(|(n, _)| !members.iter().any(|m| &m.name == *n))
            .all(|(_, o)| o.is_empty());
        count == all.len()
            && &seen == all
            && gens.len() <= 1
            && others_own_nothing
            && self.changed.is_some_and(|t| t.elapsed() >= quiet)
    }
}

fn wait_settled(
    view: &mut View,
    rx: &Receiver<(String, Report)>,
    members: &[&Handle],
    all: &BTreeSet<TopicPartition>,
    what: &str,
) {
    let deadline = deadline_after(SETTLE);
    loop {
        view.absorb(rx);
        assert!(
            view.fatal.is_empty(),
            "{what}: fatal errors {:?}",
            view.fatal
        );
        if view.settled(members, all, Duration::from_millis(1500)) {
            return;
        }
        assert!(
            !remaining(deadline).is_zero(),
            "{what}: every partition not owned exactly once within {SETTLE:?}: {:?} generations {:?}",
            view.owned,
            view.generation
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_for(
    view: &mut View,
    rx: &Receiver<(String, Report)>,
    what: &str,
    cond: impl Fn(&View) -> bool,
) {
    let deadline = deadline_after(SETTLE);
    loop {
        view.absorb(rx);
        if cond(view) {
            return;
        }
        assert!(
            !remaining(deadline).is_zero(),
            "{what}: not within {SETTLE:?}: {view:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Keeps the mock's late-SyncGroup race rare (see
/// `e2e_join::leader_syncs_last`): the mock answers a follower's SyncGroup
/// that arrives after the leader's with INVALID_REQUEST (group already UP);
/// kgroup rejoins, as librdkafka does, but the rebalance that starts can
/// meet the race again, and four kgroup members once failed to settle
/// within 40 s on a loaded 2-core machine. The coordinator goes on broker
/// 2, and broker 1, where members bootstrap and a kgroup leader reads topic
/// metadata before it assigns, answers 200 ms late: followers come first.
/// A librdkafka leader still often syncs first
/// (`mixed_group_range_librdkafka_leads`), and kgroup's followers rejoin.
fn leader_syncs_last(broker: &mut TestBroker, group: &str) {
    broker
        .set_group_coordinator(group, 2)
        .expect("coordinator on broker 2");
    broker
        .set_rtt(1, Duration::from_millis(200))
        .expect("rtt on broker 1");
}

fn partitions(topic: &str, n: i32) -> BTreeSet<TopicPartition> {
    (0..n).map(|p| TopicPartition::new(topic, p)).collect()
}

fn close(view: &mut View, rx: &Receiver<(String, Report)>, h: &mut Handle) {
    if h.kind == Kind::Rdkafka {
        let _ = h.cmds.send(Command::Close);
    } else {
        let _ = h.apply(Command::Close);
        let name = h.name.clone();
        wait_for(view, rx, &format!("{name} leaves"), |v| {
            v.left.contains(&name)
        });
    }
    if let Some(t) = h.thread.take() {
        let _ = t.join();
    }
}

/// Three (here four: async-std and smol both) kgroup members, one per
/// adapter, join one after the other; the group rebalances on each join and
/// on a leave, every partition owned exactly once after each step; each
/// member commits what it owns; all leave cleanly.
#[test]
fn every_adapter_joins_rebalances_commits_and_leaves() {
    let topic = "orders";
    let mut broker = TestBroker::start(BROKER, &TestBrokerOptions::default().topic(topic, 8))
        .expect("test broker starts");
    let all = partitions(topic, 8);
    let (tx, rx) = mpsc::channel();
    let mut view = View::default();
    let group = "e2e-adapters";
    leader_syncs_last(&mut broker, group);
    let kinds = [
        ("blocking", Kind::Blocking),
        ("tokio", Kind::Tokio),
        ("async-std", Kind::AsyncStd),
        ("smol", Kind::Smol),
    ];
    let mut members: Vec<Handle> = Vec::new();
    for (name, kind) in kinds {
        let h = spawn_kgroup(
            name,
            kind,
            config(group, "cooperative-sticky"),
            broker.bootstrap(),
            &[topic],
            tx.clone(),
        );
        members.push(h);
        let refs: Vec<&Handle> = members.iter().collect();
        wait_settled(&mut view, &rx, &refs, &all, &format!("after {name} joined"));
    }
    // Each member commits offset 10 on what it owns.
    for m in &members {
        let owned: Vec<_> = view
            .owned
            .get(&m.name)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let offsets = owned
            .into_iter()
            .map(|tp| (tp, CommittedOffset::new(10)))
            .collect();
        let r = m.apply(Command::Commit(offsets));
        assert!(
            matches!(r, Reply::Commit(Ok(_))),
            "{}: commit accepted: {r:?}",
            m.name
        );
    }
    wait_for(&mut view, &rx, "every commit succeeds", |v| {
        v.commits_ok.len() == 4 || !v.commit_errors.is_empty()
    });
    assert!(view.commit_errors.is_empty(), "{:?}", view.commit_errors);

    // The tokio member leaves: the others take its partitions.
    let mut leaving = members.remove(1);
    close(&mut view, &rx, &mut leaving);
    let refs: Vec<&Handle> = members.iter().collect();
    wait_settled(&mut view, &rx, &refs, &all, "after tokio left");

    for mut m in members {
        close(&mut view, &rx, &mut m);
    }
    assert!(view.fatal.is_empty(), "{:?}", view.fatal);
    assert_eq!(view.left.len(), 4, "every member left cleanly: {view:?}");
}

/// kgroup and librdkafka members in one group, with the leader on either
/// side and with both protocols; after each join and a leave every
/// partition is owned exactly once.
fn mixed_group(strategy: &str, kgroup_leads: bool) {
    let topic = "mixed";
    let mut broker = TestBroker::start(BROKER, &TestBrokerOptions::default().topic(topic, 6))
        .expect("test broker starts");
    let all = partitions(topic, 6);
    let (tx, rx) = mpsc::channel();
    let mut view = View::default();
    let group = format!("e2e-mixed-{strategy}-{kgroup_leads}");
    leader_syncs_last(&mut broker, &group);
    let mut members: Vec<Handle> = Vec::new();
    let order: [(&str, Kind); 4] = if kgroup_leads {
        [
            ("kgroup-1", Kind::Blocking),
            ("rdkafka-1", Kind::Rdkafka),
            ("kgroup-2", Kind::Tokio),
            ("rdkafka-2", Kind::Rdkafka),
        ]
    } else {
        [
            ("rdkafka-1", Kind::Rdkafka),
            ("kgroup-1", Kind::Blocking),
            ("rdkafka-2", Kind::Rdkafka),
            ("kgroup-2", Kind::Tokio),
        ]
    };
    for (name, kind) in order {
        let h = if kind == Kind::Rdkafka {
            spawn_rdkafka(
                name,
                broker.bootstrap(),
                &group,
                strategy,
                topic,
                tx.clone(),
            )
        } else {
            spawn_kgroup(
                name,
                kind,
                config(&group, strategy),
                broker.bootstrap(),
                &[topic],
                tx.clone(),
            )
        };
        members.push(h);
        let refs: Vec<&Handle> = members.iter().collect();
        wait_settled(
            &mut view,
            &rx,
            &refs,
            &all,
            &format!("{strategy}: after {name} joined"),
        );
    }
    // The first librdkafka member leaves.
    let i = members
        .iter()
        .position(|m| m.name == "rdkafka-1")
        .expect("member");
    let mut leaving = members.remove(i);
    close(&mut view, &rx, &mut leaving);
    let refs: Vec<&Handle> = members.iter().collect();
    wait_settled(
        &mut view,
        &rx,
        &refs,
        &all,
        &format!("{strategy}: after rdkafka-1 left"),
    );
    for mut m in members {
        close(&mut view, &rx, &mut m);
    }
    assert!(view.fatal.is_empty(), "{:?}", view.fatal);
}

#[test]
fn mixed_group_cooperative_sticky_kgroup_leads() {
    mixed_group("cooperative-sticky", true);
}

/// A librdkafka leader usually syncs first, so the mock answers kgroup's
/// later SyncGroup with `INVALID_REQUEST` (`rd_kafka_mock_cgrp_classic_check_state`,
/// group already UP); kgroup rejoins on it, as librdkafka's own followers do
/// (`rd_kafka_cgrp_handle_SyncGroup_memberstate`), and the group settles.
#[test]
fn mixed_group_range_librdkafka_leads() {
    mixed_group("range", false);
}
