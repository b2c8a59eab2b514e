//! The deterministic simulation: N `kgroup` engines, their applications, a
//! virtual network and the simulated [`Cluster`], driven by one event queue
//! keyed by virtual time, with the invariant checker run after every step.
//!
//! Each engine is driven exactly as `kgroup::Group`'s documentation says:
//! feed one input, drain every transmit and event, read the next deadline.
//! Frames cross the virtual network with seeded latency, in order per
//! connection (TCP does not reorder within a connection); faults are what the
//! connection layer sees: resets that fail in-flight requests, refused
//! connects to a dead broker, black-holed links while a member is cut off,
//! latency spikes, broker crashes and coordinator moves. Nothing reads a real
//! clock: the seed names the whole run.

pub mod app;
pub mod checker;
pub mod scenario;
pub mod trace;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::offset_commit_request::OffsetCommitRequest;
use kafka_protocol::protocol::Decodable;
use kgroup::{
    Broker, Config, ConnectionId, Event, Group, RequestId, RevokeMode, TopicPartition,
    TransportError,
};

use crate::clock::{SimTime, VirtualClock};
use crate::cluster::{Cluster, ClusterConfig, ClusterEvent, ClusterOutput};
use crate::coordinator::CoordEvent;
use crate::frames;
use crate::net::Links;
use crate::rng::SimRng;
use app::{App, AppProfile, PartitionWork};
use checker::{Checker, Invariant, Owner, Settlement, Violation, decode_assignment};
use scenario::{Action, FaultLevel, Scenario, Schedule};
use trace::Trace;

/// The group every simulated member joins.
pub const GROUP_ID: &str = "sim-group";

/// A deliberately reintroduced engine bug, to prove the checker catches it.
/// The bugs live in the engine itself (`kgroup::mutation`, behind kgroup's
/// test-only `mutations` feature, which this crate's `mutations` feature
/// forwards); every member's engine is switched at start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutation {
    /// No bug.
    None,
    /// (a) The double-bounce bug of seed 000: after an eager revoke the
    /// engine keeps the revoked partitions as owned
    /// (`kgroup::mutation::Mutation::StaleLastAssigned`), so partitions handed
    /// back later are missing from `Assigned.added`.
    #[cfg(feature = "mutations")]
    StaleLastAssigned,
    /// (b) The engine's OffsetCommit carries the generation the commit was
    /// made in instead of the current one
    /// (`kgroup::mutation::Mutation::StaleCommitGeneration`).
    #[cfg(feature = "mutations")]
    StaleCommitGeneration,
}

#[cfg(feature = "mutations")]
impl Mutation {
    /// The engine switch this stands for.
    pub fn engine(self) -> Option<kgroup::mutation::Mutation> {
        match self {
            Mutation::None => None,
            Mutation::StaleLastAssigned => Some(kgroup::mutation::Mutation::StaleLastAssigned),
            Mutation::StaleCommitGeneration => {
                Some(kgroup::mutation::Mutation::StaleCommitGeneration)
            }
        }
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The seed: names the whole schedule.
    pub seed: u64,
    /// Number of members.
    pub members: usize,
    /// Number of topics (`t0`, `t1`, ...).
    pub topics: usize,
    /// Partitions per topic.
    pub partitions: i32,
    /// Random faults on top of the scenario.
    pub faults: FaultLevel,
    /// Scenario.
    pub scenario: Scenario,
    /// Test-only bug switch.
    pub mutation: Mutation,
    /// Keep the trace's lines (demo, debugging).
    pub keep_trace: bool,
    /// Number of brokers.
    pub brokers: i32,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            members: 5,
            topics: 2,
            partitions: 6,
            faults: FaultLevel::Light,
            scenario: Scenario::Random,
            mutation: Mutation::None,
            keep_trace: false,
            brokers: 3,
        }
    }
}

impl SimConfig {
    /// The one-line command that reruns exactly this schedule.
    pub fn repro_command(&self) -> String {
        let mutation = match self.mutation {
            Mutation::None => "",
            #[cfg(feature = "mutations")]
            Mutation::StaleLastAssigned => " --mutation stale-last-assigned",
            #[cfg(feature = "mutations")]
            Mutation::StaleCommitGeneration => " --mutation stale-commit-generation",
        };
        format!(
            "kgroup sim --seed {} --members {} --topics {} --partitions {} --faults {} --scenario {}{mutation}",
            self.seed, self.members, self.topics, self.partitions, self.faults, self.scenario
        )
    }
}

/// One rebalance as the demo timeline shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimelineEntry {
    /// When.
    pub at: SimTime,
    /// What.
    pub kind: TimelineKind,
}

/// Timeline entry kinds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TimelineKind {
    /// A scheduled action (start, close, crash...).
    Action(String),
    /// A cluster change.
    Cluster(String),
    /// A generation completed its assignment: protocol, leader and each
    /// member's partitions.
    Assignment {
        /// Generation.
        generation: i32,
        /// Protocol.
        protocol: String,
        /// Leader's member name.
        leader: String,
        /// Member name to partitions.
        members: BTreeMap<String, Vec<TopicPartition>>,
    },
}

/// The outcome of one run.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// The configuration run.
    pub config: SimConfig,
    /// Violations kept (the first few).
    pub violations: Vec<Violation>,
    /// All violations found.
    pub violation_count: u64,
    /// Invariant evaluations.
    pub checks: u64,
    /// FNV-1a hash of the trace.
    pub trace_hash: u64,
    /// Trace lines (when kept).
    pub trace: Vec<String>,
    /// Generations started.
    pub generations: u32,
    /// Generations started after the fault window.
    pub rebalances_after_faults: u32,
    /// Simulation events processed.
    pub steps: u64,
    /// Virtual time simulated.
    pub virtual_time: SimTime,
    /// Rebalance timeline.
    pub timeline: Vec<TimelineEntry>,
    /// Final ownership: member name to partitions.
    pub final_owners: BTreeMap<String, Vec<TopicPartition>>,
    /// Commits accepted by the coordinator.
    pub commits_accepted: u64,
    /// Commits refused by the coordinator.
    pub commits_rejected: u64,
}

/// Timings every member uses (seconds-scale, within Kafka's broker bounds).
const SESSION_TIMEOUT: Duration = Duration::from_secs(10);
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(3);
const REBALANCE_TIMEOUT: Duration = Duration::from_secs(20);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Upper bound on simulation steps, against an engine that never settles.
const STEP_BUDGET: u64 = 20_000_000;

#[derive(Debug)]
enum Ev {
    ToBroker {
        conn: u64,
        frame: Bytes,
    },
    ToMember {
        member: usize,
        incarnation: u32,
        id: RequestId,
        frame: Bytes,
    },
    Fail {
        member: usize,
        incarnation: u32,
        id: RequestId,
        err: TransportError,
    },
    MemberTimer {
        member: usize,
        incarnation: u32,
    },
    ClusterTimer,
    Tick {
        member: usize,
        incarnation: u32,
    },
    Ack {
        member: usize,
        incarnation: u32,
        seq: u64,
    },
    Act(Action),
    Heal {
        member: usize,
        incarnation: u32,
    },
}

#[derive(Debug)]
struct Member {
    name: String,
    instance_id: Option<String>,
    assignors: Vec<&'static str>,
    engine: Option<Group>,
    incarnation: u32,
    app: App,
    profile: AppProfile,
    rng: SimRng,
    links: BTreeMap<ConnectionId, u64>,
    /// The engine's connections that died with nothing in flight (reset,
    /// broker crash): its next request on one fails, as a write on a closed
    /// socket does, instead of silently reaching a new connection.
    dead_links: BTreeSet<ConnectionId>,
    timer_at: Option<SimTime>,
    partitioned_until: Option<SimTime>,
    base_latency_us: u64,
    closing: bool,
    fatal: Option<String>,
    /// The group runs the cooperative protocol (from the last `Joined`).
    cooperative: bool,
}

/// Protocol, leader name and member subscriptions of a generation.
type GenerationInfo = (String, String, Vec<(String, Bytes)>);

/// The simulation of one seed.
#[derive(Debug)]
pub struct Simulation {
    config: SimConfig,
    clock: VirtualClock,
    now: SimTime,
    queue: BTreeMap<(SimTime, u64), Ev>,
    seq: u64,
    cluster: Cluster,
    cluster_timer_at: Option<SimTime>,
    members: Vec<Member>,
    links: Links,
    checker: Checker,
    trace: Trace,
    schedule: Schedule,
    slow_until: SimTime,
    names: BTreeMap<String, usize>,
    topics: Vec<(String, i32)>,
    faults_over: bool,
    generations: u32,
    rebalances_after_faults: u32,
    last_generation_at: Option<SimTime>,
    last_generation: BTreeMap<i32, GenerationInfo>,
    timeline: Vec<TimelineEntry>,
    steps: u64,
    crashed: BTreeSet<i32>,
    commits_accepted: u64,
    commits_rejected: u64,
    /// Ownership or membership may have changed since the last single-owner
    /// check (a step that changes neither cannot change its verdict).
    owners_dirty: bool,
}

impl Simulation {
    /// Set up the run named by `config`. `anchor` is the `Instant` virtual
    /// time zero maps to; nothing depends on its value.
    pub fn new(config: SimConfig, anchor: Instant) -> Self {
        let mut rng = SimRng::new(config.seed);
        let mut cluster_config = ClusterConfig {
            brokers: config.brokers.max(1),
            ..ClusterConfig::default()
        };
        let topics: Vec<(String, i32)> = (0..config.topics.max(1))
            .map(|t| (format!("t{t}"), config.partitions.max(1)))
            .collect();
        for (t, p) in &topics {
            cluster_config.topics.insert(t.clone(), *p);
        }
        let cluster = Cluster::new(cluster_config, rng.next_u64());
        let schedule = scenario::build(
            config.scenario,
            config.faults,
            config.members,
            config.brokers.max(1),
            &mut rng.fork(1),
        );
        let members = (0..config.members.max(1))
            .map(|i| {
                let mut mrng = rng.fork(100 + i as u64);
                let profile = AppProfile {
                    tick_ms: (100, 500),
                    records_per_tick: (1, 50),
                    hold_chance: schedule.hold_chance,
                    batch_ms: (
                        200,
                        if schedule.hold_chance > 0.3 {
                            15_000
                        } else {
                            3000
                        },
                    ),
                    commit_every_ms: schedule.commit_every.as_millis() as u64,
                    ack_ms: (0, 300),
                    late_ack_chance: schedule.late_ack_chance,
                };
                Member {
                    name: format!("m{i}"),
                    instance_id: schedule
                        .static_members
                        .contains(&i)
                        .then(|| format!("inst-{i}")),
                    assignors: vec!["range"],
                    engine: None,
                    incarnation: 0,
                    app: App::default(),
                    profile,
                    base_latency_us: mrng.range(100, 2000),
                    rng: mrng,
                    links: BTreeMap::new(),
                    dead_links: BTreeSet::new(),
                    timer_at: None,
                    partitioned_until: None,
                    closing: false,
                    fatal: None,
                    cooperative: false,
                }
            })
            .collect();
        let mut sim = Self {
            trace: Trace::new(config.keep_trace),
            config,
            clock: VirtualClock::new(anchor),
            now: SimTime::ZERO,
            queue: BTreeMap::new(),
            seq: 0,
            cluster,
            cluster_timer_at: None,
            members,
            links: Links::default(),
            checker: Checker::new(),
            schedule,
            slow_until: SimTime::ZERO,
            names: BTreeMap::new(),
            topics,
            faults_over: false,
            generations: 0,
            rebalances_after_faults: 0,
            last_generation_at: None,
            last_generation: BTreeMap::new(),
            timeline: Vec::new(),
            steps: 0,
            crashed: BTreeSet::new(),
            commits_accepted: 0,
            commits_rejected: 0,
            owners_dirty: true,
        };
        for (t, a) in sim.schedule.actions.clone() {
            sim.push(t, Ev::Act(a));
        }
        sim
    }

    fn push(&mut self, at: SimTime, ev: Ev) {
        self.seq += 1;
        self.queue.insert((at.max(self.now), self.seq), ev);
    }

    fn instant(&self) -> Instant {
        self.clock.instant(self.now)
    }

    /// Run to the end of the schedule and check the end-of-run invariants.
    pub fn run(mut self) -> RunReport {
        let end = self.schedule.end;
        while let Some((&(at, seq), _)) = self.queue.first_key_value() {
            if at > end {
                break;
            }
            let Some(ev) = self.queue.remove(&(at, seq)) else {
                break;
            };
            self.now = at;
            self.steps += 1;
            if self.steps > STEP_BUDGET {
                self.checker.violate(
                    Invariant::Convergence,
                    self.now,
                    format!("step budget of {STEP_BUDGET} exhausted: something spins"),
                );
                break;
            }
            self.step(ev);
            self.after_step();
        }
        self.now = end;
        self.final_checks();
        self.report()
    }

    fn step(&mut self, ev: Ev) {
        match ev {
            Ev::ToBroker { conn, frame } => {
                if self.cluster.is_connected(conn) {
                    self.cluster.handle_request(self.now, conn, frame);
                }
            }
            Ev::ToMember {
                member,
                incarnation,
                id,
                frame,
            } => {
                if self.is_current(member, incarnation) {
                    let now = self.instant();
                    let body = frames::unframe(&frame).unwrap_or_default();
                    if let Some(g) = self.members[member].engine.as_mut() {
                        g.handle_response(now, id, body);
                    }
                    self.drive(member);
                }
            }
            Ev::Fail {
                member,
                incarnation,
                id,
                err,
            } => {
                if self.is_current(member, incarnation) {
                    let now = self.instant();
                    if let Some(g) = self.members[member].engine.as_mut() {
                        g.handle_transport_error(now, id, err);
                    }
                    self.drive(member);
                }
            }
            Ev::MemberTimer {
                member,
                incarnation,
            } => {
                if self.is_current(member, incarnation)
                    && self.members[member].timer_at.is_some_and(|t| t <= self.now)
                {
                    self.members[member].timer_at = None;
                    let now = self.instant();
                    if let Some(g) = self.members[member].engine.as_mut() {
                        g.handle_timeout(now);
                    }
                    self.drive(member);
                }
            }
            Ev::ClusterTimer => {
                if self.cluster_timer_at.is_some_and(|t| t <= self.now) {
                    self.cluster_timer_at = None;
                    self.cluster.handle_timeout(self.now);
                }
            }
            Ev::Tick {
                member,
                incarnation,
            } => {
                if self.is_current(member, incarnation) {
                    self.app_tick(member);
                }
            }
            Ev::Ack {
                member,
                incarnation,
                seq,
            } => {
                if self.is_current(member, incarnation) {
                    self.app_ack(member, seq);
                }
            }
            Ev::Act(action) => self.act(action),
            Ev::Heal {
                member,
                incarnation,
            } => {
                if self.is_current(member, incarnation) {
                    self.members[member].partitioned_until = None;
                    self.reset_member_links(member, "partition healed");
                }
            }
        }
    }

    fn is_current(&self, member: usize, incarnation: u32) -> bool {
        self.members
            .get(member)
            .is_some_and(|m| m.incarnation == incarnation && m.engine.is_some())
    }

    /// After every step: move cluster output onto the network, absorb
    /// coordinator events, re-arm timers, check invariant 1.
    fn after_step(&mut self) {
        self.pump_cluster();
        if let Some(t) = self.cluster.poll_timeout()
            && self.cluster_timer_at != Some(t)
        {
            self.cluster_timer_at = Some(t);
            self.push(t, Ev::ClusterTimer);
        }
        if std::mem::take(&mut self.owners_dirty) {
            self.check_single_owner();
        }
    }

    fn pump_cluster(&mut self) {
        loop {
            let outputs = self.cluster.drain_outputs();
            let events = self.cluster.drain_coord_events();
            let cluster_events = self.cluster.drain_events();
            if outputs.is_empty() && events.is_empty() && cluster_events.is_empty() {
                return;
            }
            for ev in cluster_events {
                self.on_cluster_event(ev);
            }
            for out in outputs {
                match out {
                    ClusterOutput::Response { conn, frame } => self.route_response(conn, frame),
                    ClusterOutput::Close { conn } => self.fail_link(conn, "closed by the broker"),
                }
            }
            for (_, ev) in events {
                self.on_coord_event(ev);
            }
        }
    }

    fn latency(&mut self, member: usize) -> Duration {
        let slow = self.now < self.slow_until;
        let m = &mut self.members[member];
        let mut us = m.base_latency_us + m.rng.range(0, m.base_latency_us);
        if slow {
            us += m.rng.range(50_000, 800_000);
        }
        Duration::from_micros(us)
    }

    fn route_response(&mut self, conn: u64, frame: Bytes) {
        let Some(corr) = frames::response_correlation_id(&frame) else {
            return;
        };
        let Some((member, incarnation)) = self.links.answered(conn, corr) else {
            return;
        };
        if self.members[member].partitioned_until.is_some() {
            return; // black-holed
        }
        let lat = self.latency(member);
        let Some(at) = self.links.send_down(conn, self.now, lat) else {
            return;
        };
        self.push(
            at,
            Ev::ToMember {
                member,
                incarnation,
                id: RequestId(corr),
                frame,
            },
        );
    }

    /// A connection died: every request in flight on it fails.
    fn fail_link(&mut self, conn: u64, why: &str) {
        self.cluster.disconnect(conn);
        let Some(link) = self.links.remove(conn) else {
            return;
        };
        let (member, incarnation) = (link.member, link.incarnation);
        if let Some(m) = self.members.get_mut(member)
            && m.incarnation == incarnation
        {
            let dead: Vec<ConnectionId> = m
                .links
                .iter()
                .filter(|(_, c)| **c == conn)
                .map(|(id, _)| *id)
                .collect();
            m.links.retain(|_, c| *c != conn);
            m.dead_links.extend(dead);
        }
        let lat = self.latency(member);
        for corr in link.into_inflight() {
            let err = TransportError::Disconnected(why.to_string());
            self.fail_request(member, incarnation, RequestId(corr), err, lat);
        }
    }

    /// Request `id` of `member` fails in transport, `lat` from now.
    fn fail_request(
        &mut self,
        member: usize,
        incarnation: u32,
        id: RequestId,
        err: TransportError,
        lat: Duration,
    ) {
        let ev = Ev::Fail {
            member,
            incarnation,
            id,
            err,
        };
        self.push(self.now + lat, ev);
    }

    fn reset_member_links(&mut self, member: usize, why: &str) {
        for c in self.links.of_member(member) {
            self.fail_link(c, why);
        }
    }

    // ------------------------------------------------------------------
    // Driving one engine
    // ------------------------------------------------------------------

    /// Drain every output of member `i`'s engine, feeding events to its
    /// application (which may issue commands), then re-arm its timer.
    fn drive(&mut self, i: usize) {
        for _ in 0..10_000 {
            let now = self.instant();
            let Some(engine) = self.members[i].engine.as_mut() else {
                return;
            };
            if let Some(t) = engine.poll_transmit(now) {
                self.send(i, t);
                continue;
            }
            let Some(engine) = self.members[i].engine.as_mut() else {
                return;
            };
            if let Some(ev) = engine.poll_event() {
                self.on_engine_event(i, ev);
                continue;
            }
            break;
        }
        let Some(engine) = self.members[i].engine.as_ref() else {
            return;
        };
        if let Some(deadline) = engine.poll_timeout() {
            let t = self.clock.since_start(deadline).max(self.now);
            if self.members[i].timer_at != Some(t) {
                self.members[i].timer_at = Some(t);
                let incarnation = self.members[i].incarnation;
                self.push(
                    t,
                    Ev::MemberTimer {
                        member: i,
                        incarnation,
                    },
                );
            }
        }
        if let Some(id) = self.members[i]
            .engine
            .as_ref()
            .map(|g| g.member_id().to_string())
            && !id.is_empty()
        {
            self.names.insert(id, i);
        }
    }

    fn send(&mut self, i: usize, t: kgroup::Transmit) {
        if t.api == ApiKey::OffsetCommit {
            self.check_commit_frame(i, &t.bytes);
        }
        let broker = match &t.destination.broker {
            Broker::Node(n) => n.node_id,
            Broker::Any => {
                let n = self.cluster.broker_count();
                i32::try_from(
                    self.members[i]
                        .rng
                        .range(0, u64::try_from(n.max(1) - 1).unwrap_or(0)),
                )
                .unwrap_or(0)
            }
        };
        let incarnation = self.members[i].incarnation;
        let lat = self.latency(i);
        if self.members[i].partitioned_until.is_some() {
            return; // black-holed: the engine's request timeout decides
        }
        if self.members[i].dead_links.remove(&t.destination.connection) {
            // The connection died while idle: the engine learns it now, from
            // this request (as a client's next write on a closed socket, or
            // Java's `NetworkClient` seeing the disconnect, would).
            let err = TransportError::Disconnected("connection reset by peer".to_string());
            self.fail_request(i, incarnation, t.id, err, lat);
            return;
        }
        let now = self.now;
        let cluster = &mut self.cluster;
        let routed = self.links.route(
            &mut self.members[i].links,
            t.destination.connection,
            i,
            incarnation,
            broker,
            now,
            |c| cluster.connect(c, broker),
        );
        let Some(conn) = routed else {
            let err =
                TransportError::ConnectFailed(format!("broker {broker} refused the connection"));
            self.fail_request(i, incarnation, t.id, err, lat);
            return;
        };
        let Some(at) = self.links.send_up(conn, t.id.0, now, lat) else {
            return;
        };
        self.push(
            at,
            Ev::ToBroker {
                conn,
                frame: t.bytes,
            },
        );
    }

    fn on_engine_event(&mut self, i: usize, ev: Event) {
        if matches!(
            ev,
            Event::Assigned { .. } | Event::Lost { .. } | Event::Left | Event::Fatal(_)
        ) {
            self.owners_dirty = true;
        }
        let name = self.members[i].name.clone();
        match ev {
            Event::Joined {
                member_id,
                generation,
                leader,
                protocol,
            } => {
                self.members[i].cooperative = protocol == "cooperative-sticky";
                self.names.insert(member_id.clone(), i);
                self.trace.line(self.now, format!("{name} joined generation {generation} as {member_id} leader={leader} protocol={protocol}"));
            }
            Event::Assigned {
                generation,
                member_id,
                partitions,
                added,
                ..
            } => {
                self.trace.line(
                    self.now,
                    format!(
                        "{name} assigned gen {generation} {} (+{})",
                        fmt_tps(&partitions),
                        fmt_tps(&added)
                    ),
                );
                self.app_assigned(i, generation, &member_id, &partitions, &added);
            }
            Event::Revoked { partitions } => {
                self.trace
                    .line(self.now, format!("{name} revoked {}", fmt_tps(&partitions)));
                self.app_revoked(i, &partitions);
            }
            Event::Lost { partitions, reason } => {
                self.trace.line(
                    self.now,
                    format!("{name} lost {} ({reason})", fmt_tps(&partitions)),
                );
                let app = &mut self.members[i].app;
                for p in &partitions {
                    app.owned.remove(p);
                }
                // A loss supersedes a revocation still waiting for its ack.
                app.forget_revoking(&partitions);
            }
            Event::Rejoining { reason } => {
                self.trace
                    .line(self.now, format!("{name} rejoining: {reason}"));
            }
            Event::HoldExpired { reason } => {
                self.trace
                    .line(self.now, format!("{name} hold expired: {reason}"));
            }
            Event::Warning(e) => self.trace.line(self.now, format!("{name} warning: {e}")),
            Event::Fatal(e) => {
                self.trace.line(self.now, format!("{name} FATAL: {e}"));
                self.members[i].fatal = Some(e.to_string());
                self.members[i].app.owned.clear();
                // No schedule gives two processes one instance id or a bad
                // configuration, so a fatal error is always a finding.
                self.checker.violate(
                    Invariant::Convergence,
                    self.now,
                    format!("{name} stopped with a fatal error: {e}"),
                );
            }
            Event::Left => {
                self.trace.line(self.now, format!("{name} left"));
                self.members[i].app.owned.clear();
                if self.members[i].closing {
                    self.stop_member(i);
                }
            }
            other => self.trace.line(self.now, format!("{name} {other:?}")),
        }
    }

    // ------------------------------------------------------------------
    // The application
    // ------------------------------------------------------------------

    fn app_assigned(
        &mut self,
        i: usize,
        generation: i32,
        member_id: &str,
        partitions: &[TopicPartition],
        added: &[TopicPartition],
    ) {
        let store = self.cluster.store().clone();
        let m = &mut self.members[i];
        // Partitions handed back anew are no longer being revoked.
        m.app.forget_revoking(added);
        for p in added {
            let start = store
                .committed(GROUP_ID, &p.topic, p.partition)
                .map_or(0, |c| c.offset.max(0));
            m.app
                .owned
                .insert(p.clone(), PartitionWork { position: start });
        }
        let cooperative = m.cooperative;
        let app_set = m.app.owned_set();
        let engine_set: BTreeSet<TopicPartition> = partitions.iter().cloned().collect();
        let name = m.name.clone();
        self.checker
            .views_agree(self.now, &name, &engine_set, &app_set);
        if cooperative {
            let live = self.live_members();
            let mut conflicts = Vec::new();
            for p in added {
                for (j, other) in self.members.iter().enumerate() {
                    if j == i || !other.app.owned.contains_key(p) {
                        continue;
                    }
                    let other_id = other
                        .engine
                        .as_ref()
                        .map(|g| g.member_id().to_string())
                        .unwrap_or_default();
                    if live.contains(&other_id) {
                        conflicts.push((p.clone(), other.name.clone()));
                    }
                }
            }
            self.checker.assigned_while_held(
                self.now,
                &format!("{name} ({member_id})"),
                generation,
                &conflicts,
            );
        }
        self.ensure_ticking(i);
    }

    fn app_revoked(&mut self, i: usize, partitions: &[TopicPartition]) {
        // Commit what was processed, then acknowledge (sometimes late).
        self.app_commit(i, Some(partitions));
        let m = &mut self.members[i];
        if m.app.batch_until.take().is_some()
            && let Some(g) = m.engine.as_mut()
        {
            g.allow_rebalance(self.clock.instant(self.now));
        }
        m.app.ack_seq += 1;
        let seq = m.app.ack_seq;
        m.app.revoking = Some((partitions.to_vec(), seq));
        let late = m.rng.chance(m.profile.late_ack_chance);
        let delay = if late {
            REBALANCE_TIMEOUT + Duration::from_millis(m.rng.range(0, 5000))
        } else {
            Duration::from_millis(m.rng.range(m.profile.ack_ms.0, m.profile.ack_ms.1))
        };
        let incarnation = m.incarnation;
        self.push(
            self.now + delay,
            Ev::Ack {
                member: i,
                incarnation,
                seq,
            },
        );
    }

    fn app_ack(&mut self, i: usize, seq: u64) {
        self.owners_dirty = true;
        let now = self.instant();
        let m = &mut self.members[i];
        let Some((parts, s)) = m.app.revoking.take() else {
            return;
        };
        if s != seq {
            m.app.revoking = Some((parts, s));
            return;
        }
        let generation = m.engine.as_ref().map_or(-1, Group::generation);
        if m.app.released.1 != generation {
            m.app.released = (BTreeSet::new(), generation);
        }
        for p in &parts {
            if m.app.owned.remove(p).is_some() {
                m.app.released.0.insert(p.clone());
            }
        }
        let name = m.name.clone();
        if let Some(g) = m.engine.as_mut() {
            g.ack_revoked(now);
        }
        self.trace.line(
            self.now,
            format!("{name} acked revocation of {}", fmt_tps(&parts)),
        );
        self.drive(i);
    }

    fn ensure_ticking(&mut self, i: usize) {
        let m = &mut self.members[i];
        if m.app.last_commit == SimTime::ZERO {
            m.app.last_commit = self.now.max(Duration::from_nanos(1));
            let d = Duration::from_millis(m.rng.range(m.profile.tick_ms.0, m.profile.tick_ms.1));
            let incarnation = m.incarnation;
            self.push(
                self.now + d,
                Ev::Tick {
                    member: i,
                    incarnation,
                },
            );
        }
    }

    fn app_tick(&mut self, i: usize) {
        let now = self.instant();
        let m = &mut self.members[i];
        // Process a slice of every owned partition (not those being revoked: the
        // application stopped them when it got `Revoked`).
        let revoking: BTreeSet<TopicPartition> = m
            .app
            .revoking
            .iter()
            .flat_map(|(p, _)| p.iter().cloned())
            .collect();
        let mut processed = Vec::new();
        for (tp, work) in m.app.owned.iter_mut() {
            if revoking.contains(tp) {
                continue;
            }
            work.position += i64::try_from(
                m.rng
                    .range(m.profile.records_per_tick.0, m.profile.records_per_tick.1),
            )
            .unwrap_or(1);
            processed.push((tp.clone(), work.position));
        }
        // Batches that hold rebalances (seed 001).
        match m.app.batch_until {
            Some(until) if until <= self.now => {
                m.app.batch_until = None;
                if let Some(g) = m.engine.as_mut() {
                    g.allow_rebalance(now);
                }
            }
            None if m.rng.chance(m.profile.hold_chance) => {
                let d =
                    Duration::from_millis(m.rng.range(m.profile.batch_ms.0, m.profile.batch_ms.1));
                m.app.batch_until = Some(self.now + d);
                if let Some(g) = m.engine.as_mut() {
                    g.hold_rebalance();
                }
            }
            _ => {}
        }
        let commit_due =
            self.now >= m.app.last_commit + Duration::from_millis(m.profile.commit_every_ms);
        let d = Duration::from_millis(m.rng.range(m.profile.tick_ms.0, m.profile.tick_ms.1));
        let incarnation = m.incarnation;
        for (tp, pos) in processed {
            self.checker.processed(&tp, pos);
            // The engine's offset store (librdkafka's `offsets_store`): what it
            // commits on revoke and on close.
            if let Some(g) = self.members[i].engine.as_mut() {
                let _ = g.mark_processed(now, tp, pos);
            }
        }
        if commit_due {
            self.app_commit(i, None);
        }
        self.push(
            self.now + d,
            Ev::Tick {
                member: i,
                incarnation,
            },
        );
        self.drive(i);
    }

    /// The application commits the positions of `only` (or of everything it
    /// owns) through the engine (`Group::commit`), which refuses locally what
    /// it must not send (partitions not owned, eager rebalance in progress).
    fn app_commit(&mut self, i: usize, only: Option<&[TopicPartition]>) {
        let now = self.instant();
        let m = &mut self.members[i];
        m.app.last_commit = self.now.max(Duration::from_nanos(1));
        let offsets: Vec<(TopicPartition, kgroup::offsets::CommittedOffset)> = m
            .app
            .owned
            .iter()
            .filter(|(tp, _)| only.is_none_or(|o| o.contains(*tp)))
            .map(|(tp, w)| (tp.clone(), w.position.into()))
            .collect();
        if offsets.is_empty() {
            return;
        }
        if let Some(g) = m.engine.as_mut() {
            let _ = g.commit(now, offsets);
        }
    }

    /// Invariant 3, send side, for any OffsetCommit leaving member `i`.
    fn check_commit_frame(&mut self, i: usize, frame: &[u8]) {
        let Ok(mut payload) = frames::unframe(frame) else {
            return;
        };
        let Ok((_, header)) = frames::decode_request_header(&mut payload) else {
            return;
        };
        let Ok(req) = OffsetCommitRequest::decode(&mut payload, header.request_api_version) else {
            return;
        };
        let m = &self.members[i];
        let current = m.engine.as_ref().map_or(-1, Group::generation);
        // Owned now, or revoked cleanly in the generation the commit carries
        // (the engine's commit-on-revoke may leave after the ack, queued
        // behind another request on the coordinator connection).
        let (released, released_gen) = &m.app.released;
        let sent_gen = req.generation_id_or_member_epoch;
        let mut not_owned = Vec::new();
        for t in &req.topics {
            for p in &t.partitions {
                let tp = TopicPartition::new(t.name.0.as_str(), p.partition_index);
                let revoked_here = *released_gen == sent_gen && released.contains(&tp);
                if !m.app.owned.contains_key(&tp) && !revoked_here {
                    not_owned.push(tp);
                }
            }
        }
        let name = m.name.clone();
        self.checker.commit_sent(
            self.now,
            &name,
            req.generation_id_or_member_epoch,
            current,
            &not_owned,
        );
    }

    // ------------------------------------------------------------------
    // Coordinator and cluster events
    // ------------------------------------------------------------------

    fn live_members(&self) -> BTreeSet<String> {
        match self.cluster.coordinator().and_then(|c| c.group(GROUP_ID)) {
            Some(g) => g.members.keys().cloned().collect(),
            None => self
                .cluster
                .store()
                .groups
                .get(GROUP_ID)
                .map(|r| r.members.iter().map(|m| m.member_id.clone()).collect())
                .unwrap_or_default(),
        }
    }

    fn name_of(&self, member_id: &str) -> String {
        self.names
            .get(member_id)
            .and_then(|i| self.members.get(*i))
            .map_or_else(|| member_id.to_string(), |m| m.name.clone())
    }

    fn on_coord_event(&mut self, ev: CoordEvent) {
        if matches!(
            ev,
            CoordEvent::MemberAdded { .. } | CoordEvent::MemberRemoved { .. }
        ) {
            self.owners_dirty = true;
        }
        match ev {
            CoordEvent::GenerationStarted {
                generation,
                protocol,
                leader,
                members,
            } => {
                self.generations += 1;
                self.last_generation_at = Some(self.now);
                if self.faults_over {
                    self.rebalances_after_faults += 1;
                }
                let leader_name = leader
                    .as_deref()
                    .map(|l| self.name_of(l))
                    .unwrap_or_default();
                self.trace.line(self.now, format!("coordinator: generation {generation} protocol={} leader={leader_name} members={}", protocol.clone().unwrap_or_default(), members.len()));
                self.last_generation.insert(
                    generation,
                    (protocol.unwrap_or_default(), leader_name, members),
                );
            }
            CoordEvent::AssignmentStored {
                generation,
                assignments,
            } => {
                let Some((protocol, leader, subs)) = self.last_generation.get(&generation).cloned()
                else {
                    return;
                };
                if protocol == "cooperative-sticky" {
                    self.checker
                        .cooperative_plan(self.now, generation, &subs, &assignments);
                }
                let mut table = BTreeMap::new();
                for (member_id, bytes) in &assignments {
                    let parts: Vec<TopicPartition> = decode_assignment(bytes)
                        .map(|a| {
                            a.assigned_partitions
                                .iter()
                                .flat_map(|t| {
                                    t.partitions
                                        .iter()
                                        .map(|p| TopicPartition::new(t.topic.0.as_str(), *p))
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    table.insert(self.name_of(member_id), parts);
                }
                self.timeline.push(TimelineEntry {
                    at: self.now,
                    kind: TimelineKind::Assignment {
                        generation,
                        protocol,
                        leader,
                        members: table,
                    },
                });
            }
            CoordEvent::CommitAccepted {
                member_id,
                generation,
                group_generation,
                offsets,
            } => {
                self.commits_accepted += 1;
                let live = member_id.is_empty() || self.live_members().contains(&member_id);
                self.checker.commit_accepted(
                    self.now,
                    &member_id,
                    generation,
                    group_generation,
                    live,
                    &offsets,
                );
            }
            CoordEvent::CommitRejected {
                member_id,
                generation,
                error,
            } => {
                self.commits_rejected += 1;
                let name = self.name_of(&member_id);
                self.trace.line(self.now, format!("coordinator: commit from {name} at generation {generation} refused with error {error}"));
            }
            CoordEvent::MemberRemoved { member_id, reason } => {
                let name = self.name_of(&member_id);
                self.trace.line(
                    self.now,
                    format!("coordinator: removed {name} ({member_id}): {reason:?}"),
                );
            }
            CoordEvent::MemberAdded { member_id, .. } => {
                let name = self.name_of(&member_id);
                self.trace
                    .line(self.now, format!("coordinator: added {name} ({member_id})"));
            }
            CoordEvent::RebalanceStarted { generation } => {
                self.trace.line(
                    self.now,
                    format!("coordinator: rebalance from generation {generation}"),
                );
            }
        }
    }

    fn on_cluster_event(&mut self, ev: ClusterEvent) {
        self.owners_dirty = true;
        let text = match &ev {
            ClusterEvent::BrokerCrashed(b) => format!("broker {b} crashed"),
            ClusterEvent::BrokerRestarted(b) => format!("broker {b} restarted"),
            ClusterEvent::CoordinatorOffline => "coordinator offline".to_string(),
            ClusterEvent::CoordinatorLoading(b) => format!("coordinator loading on broker {b}"),
            ClusterEvent::CoordinatorReady(b) => format!("coordinator ready on broker {b}"),
        };
        self.trace.line(self.now, format!("cluster: {text}"));
        self.timeline.push(TimelineEntry {
            at: self.now,
            kind: TimelineKind::Cluster(text),
        });
    }

    // ------------------------------------------------------------------
    // Scheduled actions
    // ------------------------------------------------------------------

    fn act(&mut self, action: Action) {
        self.trace.line(self.now, format!("action: {action}"));
        let skip_timeline = matches!(
            action,
            Action::SlowNetwork { .. } | Action::ResetConnections { .. }
        );
        if !skip_timeline {
            self.timeline.push(TimelineEntry {
                at: self.now,
                kind: TimelineKind::Action(action.to_string()),
            });
        }
        match action {
            Action::Start { member, assignors } => self.start_member(member, assignors),
            Action::Close { member } => {
                let now = self.instant();
                if let Some(m) = self.members.get_mut(member)
                    && let Some(g) = m.engine.as_mut()
                {
                    m.closing = true;
                    g.close(now);
                    self.drive(member);
                }
            }
            Action::Kill { member } => self.stop_member(member),
            Action::ResetConnections { member } => {
                self.reset_member_links(member, "connection reset")
            }
            Action::Partition { member, duration } => {
                if let Some(m) = self.members.get_mut(member)
                    && m.engine.is_some()
                {
                    m.partitioned_until = Some(self.now + duration);
                    let incarnation = m.incarnation;
                    self.push(
                        self.now + duration,
                        Ev::Heal {
                            member,
                            incarnation,
                        },
                    );
                }
            }
            Action::SlowNetwork { duration } => self.slow_until = self.now + duration,
            Action::CrashBroker(b) => self.crash_broker(b),
            Action::CrashCoordinator => {
                if let Some(b) = self.cluster.coordinator_broker() {
                    self.crash_broker(b);
                }
            }
            Action::RestartBroker(b) => {
                let list: Vec<i32> = if b < 0 {
                    self.crashed.iter().copied().collect()
                } else {
                    vec![b]
                };
                for b in list {
                    if self.crashed.remove(&b) {
                        self.cluster.restart_broker(self.now, b);
                    }
                }
            }
            Action::MoveCoordinator(b) => self.cluster.move_coordinator(self.now, b),
            Action::FaultsEnd => {
                self.faults_over = true;
                self.slow_until = self.now;
                for b in std::mem::take(&mut self.crashed) {
                    self.cluster.restart_broker(self.now, b);
                }
                for i in 0..self.members.len() {
                    if self.members[i].partitioned_until.is_some() {
                        self.members[i].partitioned_until = None;
                        self.reset_member_links(i, "partition healed");
                    }
                    let stopped = self.members[i].engine.is_none()
                        || self.members[i].closing
                        || self.members[i].fatal.is_some();
                    if stopped {
                        self.stop_member(i);
                        self.start_member(i, Vec::new());
                    }
                }
            }
        }
    }

    fn crash_broker(&mut self, b: i32) {
        if !self.cluster.is_alive(b) {
            return;
        }
        self.crashed.insert(b);
        let conns = self.links.to_broker(b);
        self.cluster.crash_broker(self.now, b);
        for c in conns {
            self.fail_link(c, "broker crashed");
        }
    }

    fn start_member(&mut self, i: usize, assignors: Vec<&'static str>) {
        self.owners_dirty = true;
        if i >= self.members.len() {
            return;
        }
        // A restart "with the same assignors" of a member that never ran is
        // not a restart: the scenario has not started it yet.
        if assignors.is_empty() && self.members[i].incarnation == 0 {
            return;
        }
        if self.members[i].engine.is_some() {
            // A scheduled start with other assignors replaces the running
            // process (a rolling upgrade wins over a random bounce).
            let upgrade = !assignors.is_empty() && assignors != self.members[i].assignors;
            if self.members[i].closing || upgrade {
                self.stop_member(i);
            } else {
                return;
            }
        }
        if !assignors.is_empty() {
            self.members[i].assignors = assignors;
        }
        let m = &mut self.members[i];
        let mut builder = Config::builder(GROUP_ID)
            .client_id(m.name.clone())
            .session_timeout(SESSION_TIMEOUT)
            .heartbeat_interval(HEARTBEAT_INTERVAL)
            .rebalance_timeout(REBALANCE_TIMEOUT)
            .request_timeout(REQUEST_TIMEOUT)
            .retry_backoff(Duration::from_millis(100), Duration::from_millis(1000))
            .revoke_mode(RevokeMode::Gated)
            .seed(m.rng.next_u64());
        let assignors: Vec<Arc<dyn kgroup::assignor::Assignor>> = m
            .assignors
            .iter()
            .filter_map(|n| kgroup::assignor::builtin(n))
            .collect();
        builder = builder.assignors(assignors);
        if let Some(inst) = &m.instance_id {
            builder = builder.instance_id(inst.clone());
        }
        let config = match builder.build() {
            Ok(c) => c,
            Err(e) => {
                let name = m.name.clone();
                self.checker.violate(
                    Invariant::Convergence,
                    self.now,
                    format!("{name}: invalid engine configuration: {e}"),
                );
                return;
            }
        };
        m.incarnation += 1;
        m.app = App::default();
        m.closing = false;
        m.fatal = None;
        m.timer_at = None;
        m.links.clear();
        m.dead_links.clear();
        m.partitioned_until = None;
        let now = self.clock.instant(self.now);
        let mut g = Group::new(config, now);
        #[cfg(feature = "mutations")]
        g.set_mutation(self.config.mutation.engine());
        let topics: Vec<String> = self.topics.iter().map(|(t, _)| t.clone()).collect();
        g.subscribe(now, topics);
        m.engine = Some(g);
        let name = m.name.clone();
        let list = m.assignors.join(",");
        self.trace.line(
            self.now,
            format!(
                "{name} started (incarnation {}) assignors=[{list}]",
                m.incarnation
            ),
        );
        self.drive(i);
    }

    /// The member's process is gone: engine, application and connections.
    fn stop_member(&mut self, i: usize) {
        self.owners_dirty = true;
        let Some(m) = self.members.get_mut(i) else {
            return;
        };
        if m.engine.take().is_none() {
            return;
        }
        m.app.owned.clear();
        m.closing = false;
        m.timer_at = None;
        for c in self.links.of_member(i) {
            self.cluster.disconnect(c);
            self.links.remove(c);
        }
        let m = &mut self.members[i];
        m.links.clear();
        m.dead_links.clear();
        m.partitioned_until = None;
    }

    // ------------------------------------------------------------------
    // Invariants
    // ------------------------------------------------------------------

    fn owners(&self) -> BTreeMap<&TopicPartition, Vec<Owner<'_>>> {
        let mut owners: BTreeMap<&TopicPartition, Vec<Owner<'_>>> = BTreeMap::new();
        for m in &self.members {
            let Some(g) = m.engine.as_ref() else { continue };
            for tp in m.app.owned.keys() {
                owners.entry(tp).or_default().push(Owner {
                    name: &m.name,
                    member_id: g.member_id(),
                });
            }
        }
        owners
    }

    fn check_single_owner(&mut self) {
        let owners = self.owners();
        let mut tmp = Checker::new();
        match self.cluster.coordinator().and_then(|c| c.group(GROUP_ID)) {
            Some(g) => tmp.single_owner(self.now, &owners, &|id| g.members.contains_key(id)),
            None => {
                let live = self.live_members();
                tmp.single_owner(self.now, &owners, &|id| live.contains(id));
            }
        }
        drop(owners);
        self.checker.absorb(tmp);
    }

    fn final_checks(&mut self) {
        let expected: BTreeSet<TopicPartition> = self
            .topics
            .iter()
            .flat_map(|(t, n)| (0..*n).map(move |p| TopicPartition::new(t.as_str(), p)))
            .collect();
        let max_rebalances = 2 * u32::try_from(self.members.len()).unwrap_or(u32::MAX) + 6;
        let settle = self.schedule.end.saturating_sub(Duration::from_secs(30));
        let owners = self.owners();
        let mut tmp = Checker::new();
        let settlement = Settlement {
            rebalances_after_faults: self.rebalances_after_faults,
            max_rebalances,
            last_rebalance: self.last_generation_at,
            stable_from: settle,
        };
        tmp.converged(self.now, &expected, &owners, &settlement);
        drop(owners);
        self.checker.absorb(tmp);
    }

    fn report(self) -> RunReport {
        let mut final_owners: BTreeMap<String, Vec<TopicPartition>> = BTreeMap::new();
        for m in &self.members {
            if m.engine.is_some() {
                final_owners.insert(m.name.clone(), m.app.owned.keys().cloned().collect());
            }
        }
        RunReport {
            violations: self.checker.violations().to_vec(),
            violation_count: self.checker.violation_count(),
            checks: self.checker.checks(),
            trace_hash: self.trace.hash(),
            trace: self.trace.lines().to_vec(),
            generations: self.generations,
            rebalances_after_faults: self.rebalances_after_faults,
            steps: self.steps,
            virtual_time: self.now,
            timeline: self.timeline,
            final_owners,
            commits_accepted: self.commits_accepted,
            commits_rejected: self.commits_rejected,
            config: self.config,
        }
    }
}

fn fmt_tps(tps: &[TopicPartition]) -> String {
    let mut s = String::from("[");
    for (i, tp) in tps.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        let _ = write!(s, "{tp}");
    }
    s.push(']');
    s
}

/// Run one seed.
pub fn run(config: SimConfig, anchor: Instant) -> RunReport {
    Simulation::new(config, anchor).run()
}
