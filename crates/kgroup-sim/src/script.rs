//! Scripted scenarios: a test drives a few real `kgroup::Group` engines
//! against the simulated [`Cluster`] step by step (add a member, close one,
//! push errors, take a broker down and up, run for a while) and reads what
//! each member saw, with virtual timestamps.
//!
//! This is the simulator side of the differential test
//! (`tests/tests/differential_sim_vs_broker.rs`), which runs the same script
//! against librdkafka's mock cluster and compares. Unlike [`crate::sim`]
//! there is no application, no checker and no random fault: the network is a
//! fixed latency, FIFO per connection, and the only faults are the ones the
//! script asks for. Error injection answers the next request(s) of an API
//! with an error code without the coordinator seeing them, as the mock's
//! `push-errors` does (`rd_kafka_mock_push_request_errors`).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::heartbeat_response::HeartbeatResponse;
use kafka_protocol::messages::join_group_response::JoinGroupResponse;
use kafka_protocol::messages::leave_group_response::LeaveGroupResponse;
use kafka_protocol::messages::offset_commit_request::OffsetCommitRequest;
use kafka_protocol::messages::sync_group_response::SyncGroupResponse;
use kafka_protocol::protocol::Decodable;
use kgroup::offsets::commit_response_for;
use kgroup::{Broker, Config, ConnectionId, Event, Group, RequestId, TransportError};

use crate::clock::{SimTime, VirtualClock};
use crate::cluster::{Cluster, ClusterConfig, ClusterOutput};
use crate::coordinator::CoordinatorConfig;
use crate::frames::{self, FrameError};
use crate::net::Links;

/// What a script can get wrong.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScriptError {
    /// Errors can be pushed only on group APIs answered with one code.
    #[error(
        "cannot inject errors into {0:?} (JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit only)"
    )]
    UnsupportedApi(ApiKey),
    /// No member with that index.
    #[error("no member {0}")]
    NoMember(usize),
}

/// The cluster a script runs against.
#[derive(Clone, Debug)]
pub struct ScriptConfig {
    /// Brokers (node ids `0..brokers`; the coordinator starts on 0).
    pub brokers: i32,
    /// Topics and partition counts.
    pub topics: Vec<(String, i32)>,
    /// One-way network latency of every message.
    pub latency: Duration,
    /// Seed for the coordinator's member ids.
    pub seed: u64,
    /// Coordinator rules (initial rebalance delay, session bounds).
    pub coordinator: CoordinatorConfig,
}

impl Default for ScriptConfig {
    fn default() -> Self {
        Self {
            brokers: 3,
            topics: Vec::new(),
            latency: Duration::from_millis(1),
            seed: 1,
            coordinator: CoordinatorConfig::default(),
        }
    }
}

/// One member's engine and what it reported.
#[derive(Debug)]
struct ScriptMember {
    engine: Group,
    /// Engine connection → script connection.
    links: BTreeMap<ConnectionId, u64>,
    events: Vec<(SimTime, Event)>,
    timer_at: Option<SimTime>,
    /// The process stopped: nothing is delivered to or driven from it.
    frozen: bool,
}

#[derive(Debug)]
enum Step {
    ToBroker {
        conn: u64,
        frame: Bytes,
    },
    ToMember {
        member: usize,
        id: RequestId,
        frame: Bytes,
    },
    Fail {
        member: usize,
        id: RequestId,
        err: TransportError,
    },
    MemberTimer {
        member: usize,
    },
    ClusterTimer,
}

/// A scripted run. See the module documentation.
#[derive(Debug)]
pub struct Script {
    clock: VirtualClock,
    now: SimTime,
    latency: Duration,
    cluster: Cluster,
    cluster_timer_at: Option<SimTime>,
    members: Vec<ScriptMember>,
    links: Links,
    queue: BTreeMap<(SimTime, u64), Step>,
    seq: u64,
    /// Error codes to answer the next requests of an API with.
    errors: BTreeMap<i16, VecDeque<i16>>,
}

impl Script {
    /// A cluster for `config`; virtual time zero maps to `anchor`.
    pub fn new(config: ScriptConfig, anchor: Instant) -> Self {
        let mut cluster_config = ClusterConfig {
            brokers: config.brokers.max(1),
            coordinator: config.coordinator.clone(),
            ..ClusterConfig::default()
        };
        for (t, p) in &config.topics {
            cluster_config.topics.insert(t.clone(), *p);
        }
        Self {
            clock: VirtualClock::new(anchor),
            now: SimTime::ZERO,
            latency: config.latency,
            cluster: Cluster::new(cluster_config, config.seed),
            cluster_timer_at: None,
            members: Vec::new(),
            links: Links::default(),
            queue: BTreeMap::new(),
            seq: 0,
            errors: BTreeMap::new(),
        }
    }

    /// Virtual time now.
    pub fn now(&self) -> SimTime {
        self.now
    }

    /// The `Instant` of virtual time now (what the engines are driven with).
    pub fn instant(&self) -> Instant {
        self.clock.instant(self.now)
    }

    /// Start a member with `config`, subscribed to `topics`. Returns its index.
    pub fn add_member(&mut self, config: Config, topics: &[&str]) -> usize {
        let now = self.instant();
        let mut engine = Group::new(config, now);
        engine.subscribe(now, topics.iter().map(|t| (*t).to_owned()));
        self.members.push(ScriptMember {
            engine,
            links: BTreeMap::new(),
            events: Vec::new(),
            timer_at: None,
            frozen: false,
        });
        let i = self.members.len() - 1;
        self.drive(i);
        i
    }

    /// Member `i`'s engine, to read its state.
    pub fn group(&self, i: usize) -> Option<&Group> {
        self.members.get(i).map(|m| &m.engine)
    }

    /// Run `f` on member `i`'s engine (a command), then drain its output.
    pub fn with_group<R>(
        &mut self,
        i: usize,
        f: impl FnOnce(&mut Group, Instant) -> R,
    ) -> Result<R, ScriptError> {
        let now = self.instant();
        let m = self.members.get_mut(i).ok_or(ScriptError::NoMember(i))?;
        let r = f(&mut m.engine, now);
        self.drive(i);
        Ok(r)
    }

    /// Close member `i` cleanly (final commit, LeaveGroup for a dynamic member).
    pub fn close(&mut self, i: usize) -> Result<(), ScriptError> {
        self.with_group(i, |g, now| g.close(now))
    }

    /// Member `i`'s process stops without a word: no LeaveGroup, no more
    /// heartbeats, its connections left open (a hung or paused process); the
    /// coordinator removes it when its session expires.
    pub fn freeze(&mut self, i: usize) -> Result<(), ScriptError> {
        let m = self.members.get_mut(i).ok_or(ScriptError::NoMember(i))?;
        m.frozen = true;
        m.timer_at = None;
        Ok(())
    }

    /// Every event member `i` reported so far, with its virtual time.
    pub fn events(&self, i: usize) -> &[(SimTime, Event)] {
        self.members.get(i).map_or(&[], |m| m.events.as_slice())
    }

    /// Answer the next requests of `api` (to any broker) with `codes`, in
    /// order, one request each, without the coordinator seeing them.
    pub fn push_errors(&mut self, api: ApiKey, codes: &[i16]) -> Result<(), ScriptError> {
        if !matches!(
            api,
            ApiKey::JoinGroup
                | ApiKey::SyncGroup
                | ApiKey::Heartbeat
                | ApiKey::LeaveGroup
                | ApiKey::OffsetCommit
        ) {
            return Err(ScriptError::UnsupportedApi(api));
        }
        self.errors
            .entry(api as i16)
            .or_default()
            .extend(codes.iter().copied());
        Ok(())
    }

    /// Error codes pushed for `api` and not served yet.
    pub fn errors_left(&self, api: ApiKey) -> usize {
        self.errors.get(&(api as i16)).map_or(0, VecDeque::len)
    }

    /// The broker leading the coordinator partition, if any.
    pub fn coordinator_broker(&self) -> Option<i32> {
        self.cluster.coordinator_broker()
    }

    /// The group's generation at the coordinator, if it is loaded.
    pub fn coordinator_generation(&self, group: &str) -> Option<i32> {
        self.cluster
            .coordinator()
            .and_then(|c| c.group(group))
            .map(|g| g.generation)
    }

    /// Broker `b` goes down: its connections die (the coordinator partition
    /// goes offline if it led it).
    pub fn broker_down(&mut self, b: i32) {
        let now = self.now;
        self.cluster.crash_broker(now, b);
        for c in self.links.to_broker(b) {
            self.fail_link(c, "broker down");
        }
        self.after_step();
    }

    /// Broker `b` comes back.
    pub fn broker_up(&mut self, b: i32) {
        let now = self.now;
        self.cluster.restart_broker(now, b);
        self.after_step();
    }

    /// Run every step due within `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        self.run_until(end, |_| false);
    }

    /// Run until `done` holds (checked after every step) or virtual time
    /// `limit`; whether `done` held.
    pub fn run_until(&mut self, limit: SimTime, mut done: impl FnMut(&Script) -> bool) -> bool {
        loop {
            if done(self) {
                return true;
            }
            let Some((&(at, seq), _)) = self.queue.first_key_value() else {
                self.now = self.now.max(limit);
                return done(self);
            };
            if at > limit {
                self.now = limit;
                return done(self);
            }
            let Some(step) = self.queue.remove(&(at, seq)) else {
                return done(self);
            };
            self.now = at;
            self.step(step);
            self.after_step();
        }
    }

    // ----- internals -----

    fn push(&mut self, at: SimTime, step: Step) {
        self.seq += 1;
        self.queue.insert((at.max(self.now), self.seq), step);
    }

    fn step(&mut self, step: Step) {
        let now = self.instant();
        match step {
            Step::ToBroker { conn, frame } => {
                if self.cluster.is_connected(conn) {
                    match self.injected(&frame) {
                        Some(Ok(resp)) => self.route_response(conn, resp),
                        Some(Err(_)) => self.fail_link(conn, "undecodable request"),
                        None => self.cluster.handle_request(self.now, conn, frame),
                    }
                }
            }
            Step::ToMember { member, id, frame } => {
                let body = frames::unframe(&frame).unwrap_or_default();
                if let Some(m) = self.members.get_mut(member).filter(|m| !m.frozen) {
                    m.engine.handle_response(now, id, body);
                }
                self.drive(member);
            }
            Step::Fail { member, id, err } => {
                if let Some(m) = self.members.get_mut(member).filter(|m| !m.frozen) {
                    m.engine.handle_transport_error(now, id, err);
                }
                self.drive(member);
            }
            Step::MemberTimer { member } => {
                let due = self
                    .members
                    .get(member)
                    .and_then(|m| m.timer_at)
                    .is_some_and(|t| t <= self.now);
                if due && let Some(m) = self.members.get_mut(member) {
                    m.timer_at = None;
                    m.engine.handle_timeout(now);
                    self.drive(member);
                }
            }
            Step::ClusterTimer => {
                if self.cluster_timer_at.is_some_and(|t| t <= self.now) {
                    self.cluster_timer_at = None;
                    self.cluster.handle_timeout(self.now);
                }
            }
        }
    }

    fn after_step(&mut self) {
        loop {
            let outputs = self.cluster.drain_outputs();
            let _ = self.cluster.drain_coord_events();
            let _ = self.cluster.drain_events();
            if outputs.is_empty() {
                break;
            }
            for out in outputs {
                match out {
                    ClusterOutput::Response { conn, frame } => self.route_response(conn, frame),
                    ClusterOutput::Close { conn } => self.fail_link(conn, "closed by the broker"),
                }
            }
        }
        if let Some(t) = self.cluster.poll_timeout()
            && self.cluster_timer_at != Some(t)
        {
            self.cluster_timer_at = Some(t);
            self.push(t, Step::ClusterTimer);
        }
    }

    /// An error answer for `frame` if one is pushed for its API.
    fn injected(&mut self, frame: &Bytes) -> Option<Result<Bytes, FrameError>> {
        let mut payload = frames::unframe(frame).ok()?;
        let (api, header) = frames::decode_request_header(&mut payload).ok()?;
        let code = self.errors.get_mut(&(api as i16))?.pop_front()?;
        let (v, corr) = (header.request_api_version, header.correlation_id);
        Some(match api {
            ApiKey::JoinGroup => {
                let r = JoinGroupResponse::default()
                    .with_error_code(code)
                    .with_generation_id(-1);
                frames::encode_response(api, v, corr, &r, "JoinGroup")
            }
            ApiKey::SyncGroup => {
                let r = SyncGroupResponse::default().with_error_code(code);
                frames::encode_response(api, v, corr, &r, "SyncGroup")
            }
            ApiKey::Heartbeat => {
                let r = HeartbeatResponse::default().with_error_code(code);
                frames::encode_response(api, v, corr, &r, "Heartbeat")
            }
            ApiKey::LeaveGroup => {
                let r = LeaveGroupResponse::default().with_error_code(code);
                frames::encode_response(api, v, corr, &r, "LeaveGroup")
            }
            _ => match OffsetCommitRequest::decode(&mut payload, v) {
                // Every partition of the request gets the code, as the mock does.
                Ok(req) => {
                    let r = commit_response_for(&req, |_, _| code);
                    frames::encode_response(api, v, corr, &r, "OffsetCommit")
                }
                Err(e) => Err(FrameError::Decode {
                    what: "OffsetCommit",
                    detail: e.to_string(),
                }),
            },
        })
    }

    fn route_response(&mut self, conn: u64, frame: Bytes) {
        let Some(corr) = frames::response_correlation_id(&frame) else {
            return;
        };
        let Some((member, _)) = self.links.answered(conn, corr) else {
            return;
        };
        let Some(at) = self.links.send_down(conn, self.now, self.latency) else {
            return;
        };
        self.push(
            at,
            Step::ToMember {
                member,
                id: RequestId(corr),
                frame,
            },
        );
    }

    fn fail_link(&mut self, conn: u64, why: &str) {
        self.cluster.disconnect(conn);
        let Some(link) = self.links.remove(conn) else {
            return;
        };
        let member = link.member;
        if let Some(m) = self.members.get_mut(member) {
            m.links.retain(|_, c| *c != conn);
        }
        // Every request in flight on it fails (the engine's connection layer).
        for corr in link.into_inflight() {
            let err = TransportError::Disconnected(why.to_owned());
            self.queue_fail(member, RequestId(corr), err);
        }
    }

    fn queue_fail(&mut self, member: usize, id: RequestId, err: TransportError) {
        let at = self.now + self.latency;
        self.push(at, Step::Fail { member, id, err });
    }

    fn drive(&mut self, i: usize) {
        for _ in 0..10_000 {
            let now = self.instant();
            let Some(m) = self.members.get_mut(i).filter(|m| !m.frozen) else {
                return;
            };
            if let Some(t) = m.engine.poll_transmit(now) {
                self.send(i, t);
                continue;
            }
            if let Some(ev) = m.engine.poll_event() {
                m.events.push((self.now, ev));
                continue;
            }
            break;
        }
        let Some(m) = self.members.get_mut(i).filter(|m| !m.frozen) else {
            return;
        };
        if let Some(deadline) = m.engine.poll_timeout() {
            let t = self.clock.since_start(deadline).max(self.now);
            if m.timer_at != Some(t) {
                m.timer_at = Some(t);
                self.push(t, Step::MemberTimer { member: i });
            }
        }
    }

    fn send(&mut self, i: usize, t: kgroup::Transmit) {
        let broker = match &t.destination.broker {
            Broker::Node(n) => n.node_id,
            // Bootstrap: the lowest live broker, as a client's first address.
            Broker::Any => (0..self.cluster.broker_count())
                .find(|b| self.cluster.is_alive(*b))
                .unwrap_or(0),
        };
        let now = self.now;
        let cluster = &mut self.cluster;
        let routed = self.links.route(
            &mut self.members[i].links,
            t.destination.connection,
            i,
            0,
            broker,
            now,
            |c| cluster.connect(c, broker),
        );
        let Some(conn) = routed else {
            let err =
                TransportError::ConnectFailed(format!("broker {broker} refused the connection"));
            self.queue_fail(i, t.id, err);
            return;
        };
        let Some(at) = self.links.send_up(conn, t.id.0, now, self.latency) else {
            return;
        };
        self.push(
            at,
            Step::ToBroker {
                conn,
                frame: t.bytes,
            },
        );
    }
}
