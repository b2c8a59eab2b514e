//! Differential test: the same scripted scenarios run against the simulator
//! (`kgroup_sim::script`, virtual time) and against the test broker
//! (librdkafka's mock cluster over TCP, kgroup-blocking consumers, real
//! time), with the same engine and configuration on both sides. What members
//! see is compared where the two coordinators should agree:
//!
//! - generation steps between settle points (relative: the mock's first
//!   generation is 2, the simulator's 1);
//! - rebalances each member went through (`Assigned` events);
//! - the assignment: valid after every settle (every partition owned exactly
//!   once, every member in the same generation) and, the range assignor being
//!   deterministic, the same partition sets (member ids differ, so sets are
//!   compared without their owners);
//! - the errors members report, by class: rejoin and loss reasons, commit
//!   results, member id kept or replaced.
//!
//! Known differences are normalised here and listed in docs/simulation.md
//! ("Differential test and known differences"). Each scenario is driven by a
//! [`Backend`]; a failing comparison prints both sides' observations.
#![allow(clippy::disallowed_methods)] // harness code: real time bounds real waits

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use kgroup::event::RejoinReason;
use kgroup::kafka_protocol::messages::ApiKey;
use kgroup::offsets::{CommitError, CommittedOffset, OffsetEvent};
use kgroup::{Config, Event, Group, GroupState, TopicPartition};
use kgroup_blocking::Consumer;
use kgroup_sim::coordinator::CoordinatorConfig;
use kgroup_sim::script::{Script, ScriptConfig};
use kgroup_tests::{TestBroker, TestBrokerOptions, deadline_after, remaining};

const BROKER: &str = env!("CARGO_BIN_EXE_kgroup-testbroker");
const GROUP: &str = "differential";
const TOPIC: &str = "orders";
const PARTITIONS: i32 = 6;
/// Small, as the mock waits up to the session timeout minus one second for
/// members to rejoin (docs/testing.md); Kafka's minimum, so the simulated
/// coordinator accepts it too.
const SESSION: Duration = Duration::from_millis(6000);
/// The longest a settle may take, on either side.
const SETTLE: Duration = Duration::from_secs(25);

// Kafka error codes (Errors.java).
const NOT_COORDINATOR: i16 = 16;
const ILLEGAL_GENERATION: i16 = 22;
const REBALANCE_IN_PROGRESS: i16 = 27;

fn config(name: &str) -> Config {
    let range = kgroup::assignor::builtin("range").expect("built-in assignor");
    Config::builder(GROUP)
        .client_id(name)
        .assignors(vec![range])
        .session_timeout(SESSION)
        .heartbeat_interval(Duration::from_millis(500))
        .rebalance_timeout(Duration::from_secs(10))
        .request_timeout(Duration::from_secs(5))
        .build()
        .expect("valid config")
}

fn all_partitions() -> BTreeSet<TopicPartition> {
    (0..PARTITIONS)
        .map(|p| TopicPartition::new(TOPIC, p))
        .collect()
}

/// One member as a scenario sees it.
#[derive(Clone, Debug)]
struct View {
    member_id: String,
    generation: i32,
    state: GroupState,
    rebalancing: bool,
    owned: BTreeSet<TopicPartition>,
    closed: bool,
    /// Generation of the last `Assigned` event (the engine holds it until
    /// the committed offsets of its new partitions are read).
    assigned_generation: Option<i32>,
}

impl View {
    fn of<'a>(g: &Group, closed: bool, events: impl Iterator<Item = &'a Event>) -> Self {
        let assigned_generation = events
            .filter_map(|e| match e {
                Event::Assigned { generation, .. } => Some(*generation),
                _ => None,
            })
            .last();
        View {
            member_id: g.member_id().to_owned(),
            generation: g.generation(),
            state: g.state(),
            rebalancing: g.is_rebalancing(),
            owned: g.owned().clone(),
            closed,
            assigned_generation,
        }
    }
}

/// A group is settled when every open member is stable in one generation
/// and the open members own every partition exactly once.
fn settled(views: &[View]) -> bool {
    let open: Vec<&View> = views.iter().filter(|v| !v.closed).collect();
    let Some(first) = open.first() else {
        return false;
    };
    let mut seen = BTreeSet::new();
    let disjoint = open
        .iter()
        .all(|v| v.owned.iter().all(|tp| seen.insert(tp.clone())));
    open.iter().all(|v| {
        v.state == GroupState::Stable
            && !v.rebalancing
            && v.generation == first.generation
            && v.generation >= 0
            && v.assigned_generation == Some(v.generation)
    }) && disjoint
        && seen == all_partitions()
}

/// The two sides a scenario runs on.
trait Backend {
    fn name(&self) -> &'static str;
    fn add_member(&mut self, name: &str) -> usize;
    fn close(&mut self, i: usize);
    /// Member `i`'s process stops: no LeaveGroup, no heartbeats.
    fn freeze(&mut self, i: usize);
    /// The next request of `api` to the coordinator fails with `code`.
    fn push_error(&mut self, api: ApiKey, code: i16);
    /// Pushed errors not served yet.
    fn errors_left(&mut self, api: ApiKey) -> usize;
    fn coordinator_down(&mut self);
    fn coordinator_up(&mut self);
    /// Commit `offset` on every partition member `i` owns.
    fn commit(&mut self, i: usize, offset: i64);
    /// Drive until `done` holds or `limit` (of the backend's time) passed.
    fn run_until(&mut self, limit: Duration, done: &dyn Fn(&[View]) -> bool) -> bool;
    /// Let `d` of the backend's time pass.
    fn run_for(&mut self, d: Duration) {
        self.run_until(d, &|_| false);
    }
    fn views(&self) -> Vec<View>;
    /// Member `i`'s notable events (see [`notable`]) and `Assigned` count.
    fn summary(&self, i: usize) -> (Vec<String>, usize);
}

// ----- the simulator -----

struct Sim {
    script: Script,
    closed: Vec<bool>,
}

impl Sim {
    fn new() -> Self {
        let config = ScriptConfig {
            topics: vec![(TOPIC.to_owned(), PARTITIONS)],
            // The test broker sets group.initial.rebalance.delay.ms to 0.
            coordinator: CoordinatorConfig {
                initial_rebalance_delay: Duration::ZERO,
                ..CoordinatorConfig::default()
            },
            ..ScriptConfig::default()
        };
        Sim {
            script: Script::new(config, Instant::now()),
            closed: Vec::new(),
        }
    }

    fn coordinator(&self) -> i32 {
        self.script.coordinator_broker().unwrap_or(0)
    }
}

impl Backend for Sim {
    fn name(&self) -> &'static str {
        "sim"
    }
    fn add_member(&mut self, name: &str) -> usize {
        self.closed.push(false);
        self.script.add_member(config(name), &[TOPIC])
    }
    fn close(&mut self, i: usize) {
        self.script.close(i).expect("member exists");
        self.closed[i] = true;
    }
    fn freeze(&mut self, i: usize) {
        self.script.freeze(i).expect("member exists");
        self.closed[i] = true;
    }
    fn push_error(&mut self, api: ApiKey, code: i16) {
        self.script.push_errors(api, &[code]).expect("a group API");
    }
    fn errors_left(&mut self, api: ApiKey) -> usize {
        self.script.errors_left(api)
    }
    fn coordinator_down(&mut self) {
        let b = self.coordinator();
        self.script.broker_down(b);
    }
    fn coordinator_up(&mut self) {
        // The simulated cluster brings back every broker that is down.
        for b in 0..3 {
            self.script.broker_up(b);
        }
    }
    fn commit(&mut self, i: usize, offset: i64) {
        self.script
            .with_group(i, |g, now| {
                let offsets = g
                    .owned()
                    .iter()
                    .map(|tp| (tp.clone(), CommittedOffset::new(offset)))
                    .collect();
                g.commit(now, offsets)
            })
            .expect("member exists")
            .expect("commit accepted locally");
    }
    fn run_until(&mut self, limit: Duration, done: &dyn Fn(&[View]) -> bool) -> bool {
        let end = self.script.now() + limit;
        let closed = self.closed.clone();
        self.script.run_until(end, |s| done(&sim_views(s, &closed)))
    }
    fn views(&self) -> Vec<View> {
        sim_views(&self.script, &self.closed)
    }
    fn summary(&self, i: usize) -> (Vec<String>, usize) {
        let events: Vec<&Event> = self.script.events(i).iter().map(|(_, e)| e).collect();
        (notable(&events), assignments(&events))
    }
}

fn sim_views(s: &Script, closed: &[bool]) -> Vec<View> {
    (0..closed.len())
        .filter_map(|i| {
            let events = s.events(i).iter().map(|(_, e)| e);
            s.group(i).map(|g| View::of(g, closed[i], events))
        })
        .collect()
}

// ----- the test broker -----

struct Mock {
    broker: TestBroker,
    /// Consumer, its events, closed (or frozen), frozen.
    members: Vec<(Consumer, Vec<Event>, bool, bool)>,
}

/// The mock broker hosting the group's coordinator (ids start at 1).
const MOCK_COORDINATOR: i32 = 2;

impl Mock {
    fn new() -> Self {
        let mut broker = TestBroker::start(
            BROKER,
            &TestBrokerOptions::default().topic(TOPIC, PARTITIONS),
        )
        .expect("test broker starts");
        // The mock answers a follower's SyncGroup that arrives after the
        // leader's with INVALID_REQUEST (the group is already up), and the
        // engine rejoins: one extra generation per rebalance, which Kafka
        // never causes. As in tests/e2e_join.rs: members bootstrap on broker
        // 1, which answers 200 ms late, so the leader's Metadata (read before
        // assigning) is slow and followers sync first.
        broker
            .set_group_coordinator(GROUP, MOCK_COORDINATOR)
            .expect("coordinator placed");
        broker
            .set_rtt(1, Duration::from_millis(200))
            .expect("rtt on broker 1");
        Mock {
            broker,
            members: Vec::new(),
        }
    }

    fn poll_all(&mut self) {
        for (c, events, closed, frozen) in &mut self.members {
            if *frozen || (*closed && c.is_finished()) {
                continue;
            }
            while let Some(e) = c.poll(Duration::from_millis(2)) {
                events.push(e);
            }
        }
    }
}

impl Backend for Mock {
    fn name(&self) -> &'static str {
        "mock"
    }
    fn add_member(&mut self, name: &str) -> usize {
        let mut c = Consumer::new(config(name), self.broker.bootstrap()).expect("consumer");
        c.subscribe([TOPIC]);
        self.members.push((c, Vec::new(), false, false));
        self.members.len() - 1
    }
    fn close(&mut self, i: usize) {
        let (c, _, closed, _) = &mut self.members[i];
        c.close();
        *closed = true;
    }
    fn freeze(&mut self, i: usize) {
        // Not polled any more: its sockets stay open, nothing is sent.
        let (_, _, closed, frozen) = &mut self.members[i];
        *closed = true;
        *frozen = true;
    }
    fn push_error(&mut self, api: ApiKey, code: i16) {
        self.broker
            .push_broker_errors(MOCK_COORDINATOR, api as i16, &[(code, 0)])
            .expect("push-errors");
    }
    fn errors_left(&mut self, api: ApiKey) -> usize {
        self.broker
            .command(&format!("error-count {MOCK_COORDINATOR} {}", api as i16))
            .expect("error-count")
            .parse()
            .expect("a count")
    }
    fn coordinator_down(&mut self) {
        self.broker
            .broker_down(MOCK_COORDINATOR)
            .expect("broker down");
    }
    fn coordinator_up(&mut self) {
        self.broker.broker_up(MOCK_COORDINATOR).expect("broker up");
    }
    fn commit(&mut self, i: usize, offset: i64) {
        let (c, _, _, _) = &mut self.members[i];
        let offsets = c
            .group()
            .owned()
            .iter()
            .map(|tp| (tp.clone(), CommittedOffset::new(offset)))
            .collect();
        c.commit(offsets).expect("commit accepted locally");
    }
    fn run_until(&mut self, limit: Duration, done: &dyn Fn(&[View]) -> bool) -> bool {
        let deadline = deadline_after(limit);
        loop {
            self.poll_all();
            if done(&self.views()) {
                return true;
            }
            if remaining(deadline).is_zero() {
                return false;
            }
        }
    }
    fn views(&self) -> Vec<View> {
        self.members
            .iter()
            .map(|(c, events, closed, _)| View::of(c.group(), *closed, events.iter()))
            .collect()
    }
    fn summary(&self, i: usize) -> (Vec<String>, usize) {
        let events: Vec<&Event> = self.members[i].1.iter().collect();
        (notable(&events), assignments(&events))
    }
}

// ----- observations -----

/// What a scenario records at one settle point.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Settle {
    label: &'static str,
    /// Generation minus the generation of the first settle point.
    generation_step: i32,
    /// The partition sets of the open members, sorted (owners dropped).
    partition_sets: Vec<Vec<i32>>,
}

fn settle(b: &mut dyn Backend, label: &'static str, base: &mut Option<i32>) -> Settle {
    let ok = b.run_until(SETTLE, &settled);
    let views = b.views();
    assert!(
        ok,
        "{}: {label}: the group did not settle within {SETTLE:?}: {views:#?}",
        b.name()
    );
    let open: Vec<&View> = views.iter().filter(|v| !v.closed).collect();
    let generation = open.first().map_or(-1, |v| v.generation);
    let base = *base.get_or_insert(generation);
    let mut partition_sets: Vec<Vec<i32>> = open
        .iter()
        .map(|v| v.owned.iter().map(|tp| tp.partition).collect())
        .collect();
    partition_sets.sort();
    Settle {
        label,
        generation_step: generation - base,
        partition_sets,
    }
}

/// The events a scenario compares, by class: rejoin and loss reasons,
/// commit results, fatal errors, and how many assignments a member got.
fn notable(events: &[&Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match *e {
            Event::Rejoining {
                reason: RejoinReason::Initial,
            } => None,
            Event::Rejoining { reason } => Some(format!("rejoin: {reason}")),
            Event::Lost { reason, .. } => Some(format!("lost: {reason:?}")),
            Event::Offsets(OffsetEvent::CommitDone { result, .. }) => Some(match result {
                Ok(()) => "commit: ok".to_owned(),
                Err(CommitError::Stale { cause, .. }) => format!("commit: stale ({cause:?})"),
                Err(e) => format!("commit: {:?}", e.class()),
            }),
            Event::Fatal(e) => Some(format!("fatal: {:?}", e.class())),
            _ => None,
        })
        .collect()
}

fn assignments(events: &[&Event]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, Event::Assigned { .. }))
        .count()
}

/// Everything a scenario observed on one side.
#[derive(Debug, PartialEq, Eq)]
struct Observed {
    settles: Vec<Settle>,
    /// Per member: notable events, in order.
    notable: Vec<Vec<String>>,
    /// Per member: `Assigned` events seen.
    assignments: Vec<usize>,
    /// Per member: whether its member id at the end is the one it first got.
    kept_member_id: Vec<bool>,
}

fn observe(b: &dyn Backend, settles: Vec<Settle>, first_ids: &[String]) -> Observed {
    let views = b.views();
    let n = views.len();
    Observed {
        settles,
        notable: (0..n).map(|i| b.summary(i).0).collect(),
        assignments: (0..n).map(|i| b.summary(i).1).collect(),
        kept_member_id: views
            .iter()
            .zip(first_ids)
            .map(|(v, id)| v.closed || v.member_id == *id)
            .collect(),
    }
}

fn ids(b: &dyn Backend) -> Vec<String> {
    b.views().into_iter().map(|v| v.member_id).collect()
}

/// Runs `scenario` on both sides and compares.
fn differential(scenario: fn(&mut dyn Backend) -> Observed) -> (Observed, Observed) {
    let started = Instant::now();
    let sim = scenario(&mut Sim::new());
    let sim_wall = started.elapsed();
    let started = Instant::now();
    let mock = scenario(&mut Mock::new());
    println!(
        "sim {sim_wall:?} (wall), mock {:?}\nsim:  {sim:?}\nmock: {mock:?}",
        started.elapsed()
    );
    assert_eq!(sim, mock, "the simulator and the mock disagree");
    (sim, mock)
}

// ----- scenarios -----

/// Two members, started one after the other (started together, whether the
/// second JoinGroup makes the first generation or the next one is a race of
/// real time on the mock).
fn two_members(b: &mut dyn Backend, base: &mut Option<i32>) -> Vec<Settle> {
    b.add_member("m0");
    let one = settle(b, "one member", base);
    b.add_member("m1");
    vec![one, settle(b, "two members", base)]
}

fn assert_served(b: &mut dyn Backend, api: ApiKey, what: &str) {
    assert_eq!(b.errors_left(api), 0, "{}: {what} was served", b.name());
}

/// (1) Three members join one by one, (2) the last one leaves.
fn join_one_by_one_then_leave(b: &mut dyn Backend) -> Observed {
    let mut base = None;
    let mut settles = Vec::new();
    b.add_member("m0");
    settles.push(settle(b, "one member", &mut base));
    b.add_member("m1");
    settles.push(settle(b, "two members", &mut base));
    b.add_member("m2");
    settles.push(settle(b, "three members", &mut base));
    let first_ids = ids(b);
    b.close(2);
    settles.push(settle(b, "m2 left", &mut base));
    observe(b, settles, &first_ids)
}

/// (3) Injected errors: REBALANCE_IN_PROGRESS on a heartbeat, then
/// ILLEGAL_GENERATION on a commit, with two members; NOT_COORDINATOR on the
/// first JoinGroup of a third.
fn injected_errors(b: &mut dyn Backend) -> Observed {
    let mut base = None;
    let mut settles = two_members(b, &mut base);
    let first_ids = ids(b);

    b.push_error(ApiKey::Heartbeat, REBALANCE_IN_PROGRESS);
    // The group must leave Stable before it can settle again.
    assert!(
        b.run_until(SETTLE, &|v| !settled(v)),
        "{}: REBALANCE_IN_PROGRESS on a heartbeat starts a rebalance",
        b.name()
    );
    assert_served(b, ApiKey::Heartbeat, "REBALANCE_IN_PROGRESS");
    settles.push(settle(b, "after REBALANCE_IN_PROGRESS", &mut base));

    b.push_error(ApiKey::OffsetCommit, ILLEGAL_GENERATION);
    b.commit(0, 7);
    assert!(
        b.run_until(SETTLE, &|v| !settled(v)),
        "{}: ILLEGAL_GENERATION on a commit resets and rejoins",
        b.name()
    );
    assert_served(b, ApiKey::OffsetCommit, "ILLEGAL_GENERATION");
    settles.push(settle(b, "after ILLEGAL_GENERATION", &mut base));

    b.push_error(ApiKey::JoinGroup, NOT_COORDINATOR);
    b.add_member("m2");
    settles.push(settle(b, "m2 joined after NOT_COORDINATOR", &mut base));
    assert_served(b, ApiKey::JoinGroup, "NOT_COORDINATOR");
    let mut first = first_ids;
    first.push(ids(b).pop().unwrap_or_default());
    observe(b, settles, &first)
}

/// (4) The coordinator's broker goes down for two seconds (well inside the
/// session timeout) and comes back, with two stable members.
fn coordinator_down_and_up(b: &mut dyn Backend) -> Observed {
    let mut base = None;
    let mut settles = two_members(b, &mut base);
    let first_ids = ids(b);
    b.coordinator_down();
    b.run_for(Duration::from_secs(2));
    b.coordinator_up();
    // Long enough for every member to find the coordinator again and
    // heartbeat: a rebalance, if any, would have started by then.
    b.run_for(Duration::from_secs(4));
    settles.push(settle(b, "after the coordinator came back", &mut base));
    observe(b, settles, &first_ids)
}

/// (5) A member's process stops without leaving: the coordinator removes it
/// when its session expires and the others share its partitions.
fn member_stops_without_leaving(b: &mut dyn Backend) -> Observed {
    let mut base = None;
    let mut settles = two_members(b, &mut base);
    b.add_member("m2");
    settles.push(settle(b, "three members", &mut base));
    let first_ids = ids(b);
    b.freeze(2);
    // Nothing moves before the session timeout: the group stays as it is.
    assert!(
        !b.run_until(SESSION - Duration::from_secs(1), &|v| {
            v.iter().any(|m| !m.closed && m.rebalancing)
        }),
        "{}: a rebalance before m2's session could expire",
        b.name()
    );
    assert!(
        b.run_until(SETTLE, &|v| !settled(v)),
        "{}: m2's session expiry starts a rebalance",
        b.name()
    );
    settles.push(settle(b, "m2's session expired", &mut base));
    observe(b, settles, &first_ids)
}

// ----- tests -----

#[test]
fn three_members_join_one_by_one_and_one_leaves() {
    let (sim, _) = differential(join_one_by_one_then_leave);
    // What both sides agree on is also what the protocol says.
    let steps: Vec<i32> = sim.settles.iter().map(|s| s.generation_step).collect();
    assert_eq!(
        steps,
        vec![0, 1, 2, 3],
        "one generation per membership change"
    );
    assert_eq!(
        sim.settles[2].partition_sets,
        vec![vec![0, 1], vec![2, 3], vec![4, 5]],
        "range over three members"
    );
    assert_eq!(
        sim.settles[3].partition_sets,
        vec![vec![0, 1, 2], vec![3, 4, 5]],
        "range over two members"
    );
}

#[test]
fn injected_errors_are_seen_alike() {
    let (sim, _) = differential(injected_errors);
    assert!(
        sim.notable.iter().any(|n| n
            .iter()
            .any(|e| e.contains("rebalance in progress (Heartbeat)"))),
        "{sim:?}"
    );
    assert!(
        sim.notable[0]
            .iter()
            .any(|e| e == "commit: stale (IllegalGeneration)"),
        "{sim:?}"
    );
    assert!(
        sim.notable[0]
            .iter()
            .any(|e| e == "lost: IllegalGeneration"),
        "{sim:?}"
    );
    assert!(sim.kept_member_id.iter().all(|k| *k), "{sim:?}");
}

#[test]
fn coordinator_down_and_up_keeps_the_generation() {
    let (sim, _) = differential(coordinator_down_and_up);
    let steps: Vec<i32> = sim.settles.iter().map(|s| s.generation_step).collect();
    assert_eq!(
        steps,
        vec![0, 1, 1],
        "no rebalance for a short coordinator outage: {sim:?}"
    );
    assert!(
        sim.notable
            .iter()
            .all(|n| n.iter().all(|e| !e.starts_with("lost")))
    );
}

#[test]
fn a_member_that_stops_without_leaving_is_expired() {
    let (sim, _) = differential(member_stops_without_leaving);
    let steps: Vec<i32> = sim.settles.iter().map(|s| s.generation_step).collect();
    assert_eq!(steps, vec![0, 1, 2, 3], "{sim:?}");
    assert_eq!(
        sim.settles[3].partition_sets,
        vec![vec![0, 1, 2], vec![3, 4, 5]],
        "the survivors share m2's partitions"
    );
    assert!(
        sim.notable
            .iter()
            .all(|n| n.iter().all(|e| !e.starts_with("lost"))),
        "{sim:?}"
    );
}
