//! kgroup engines against tansu, the second real peer: what librdkafka's
//! mock never does.
//!
//! - KIP-394: a dynamic member's first JoinGroup (v4+) is answered
//!   MEMBER_ID_REQUIRED with a member id; the engine rejoins with that id
//!   and completes the join.
//! - KIP-345: a static member closed without LeaveGroup and restarted (a new
//!   engine with the same `group.instance.id`) within the session timeout
//!   gets its partitions back, and the other member keeps its own.
//! - Negotiation: the versions kgroup picks against tansu, and an engine that
//!   sends every API it uses at exactly those versions.
//!
//! Each member is a `kgroup_blocking::Consumer` whose connections go through
//! a recording connector: every frame written and read is kept, so the tests
//! assert on the requests the engine really sent and the answers it really
//! got, not only on its events.
//!
//! tansu is lenient (it never fences, never checks commit generations, fixes
//! the group protocol to the first joiner's first choice, and parks every
//! static member's JoinGroup and SyncGroup for 3 s), so only the happy paths
//! are tested here. The tests run when `KGROUP_TANSU` names the tansu binary
//! (`cargo install tansu@0.6.0 --locked --features dynostore`) and print
//! "skipped: KGROUP_TANSU not set" otherwise. See `docs/testing.md`.
#![allow(clippy::disallowed_methods)] // harness code: real time bounds real waits

use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kgroup::driver::BrokerAddr;
use kgroup::kafka_protocol::messages::{
    ApiKey, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    RequestHeader, SyncGroupRequest, SyncGroupResponse,
};
use kgroup::kafka_protocol::protocol::{Decodable, HeaderVersion};
use kgroup::offsets::{CommittedOffset, OffsetEvent};
use kgroup::wire::{FrameDecoder, IMPLEMENTED, decode_response, implemented, peek_correlation_id};
use kgroup::{Config, Event, GroupState, TopicPartition};
use kgroup_blocking::{Connector, Consumer, TcpConnector};
use kgroup_tests::tansu::{TANSU_ENV, Tansu};
use kgroup_tests::{deadline_after, remaining};

/// How long tansu may take to start listening.
const START: Duration = Duration::from_secs(30);
/// How long a group may take to settle. tansu parks each static member's
/// JoinGroup and SyncGroup 3 s and a dynamic follower's rejoin 3 s, so a
/// two-member static group takes about 10 s; the rest is for a busy machine.
const SETTLE: Duration = Duration::from_secs(60);
/// Kafka error codes (`Errors.java`).
const MEMBER_ID_REQUIRED: i16 = 79;

/// A tansu broker for `test`, or `None` (with the skip message) when
/// `KGROUP_TANSU` is not set.
fn tansu_or_skip(test: &str) -> Option<Tansu> {
    let Some(binary) = Tansu::binary_from_env() else {
        println!("{test}: skipped: {TANSU_ENV} not set (point it at a tansu 0.6.0 binary)");
        return None;
    };
    let tansu = Tansu::start(&binary, START)
        .unwrap_or_else(|e| panic!("{test}: tansu from {TANSU_ENV} does not start: {e}"));
    println!(
        "{test}: tansu {} at {} (log {})",
        binary.display(),
        tansu.bootstrap(),
        tansu.log_path().display()
    );
    Some(tansu)
}

// ----- recording transport -------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dir {
    /// Written by the engine (a request).
    Out,
    /// Read by the engine (a response).
    In,
}

/// One complete frame (without its size prefix) on one connection.
#[derive(Clone, Debug)]
struct Frame {
    conn: u32,
    dir: Dir,
    at: Instant,
    bytes: Bytes,
}

/// Every frame every connection of one member wrote and read, in order.
#[derive(Clone, Default)]
struct WireLog(Arc<Mutex<Vec<Frame>>>);

impl WireLog {
    fn lock(&self) -> MutexGuard<'_, Vec<Frame>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Requests paired with their responses, in the order sent.
    fn exchanges(&self) -> Vec<Exchange> {
        let mut out: Vec<Exchange> = Vec::new();
        for f in self.lock().iter() {
            match f.dir {
                Dir::Out => {
                    let head = |at: usize| {
                        f.bytes
                            .get(at..at + 2)
                            .map(|b| i16::from_be_bytes([b[0], b[1]]))
                    };
                    let (Some(api), Some(version), Some(correlation)) = (
                        head(0),
                        head(2),
                        f.bytes.get(4..).and_then(peek_correlation_id),
                    ) else {
                        panic!("conn {}: a request frame too short for its header", f.conn);
                    };
                    out.push(Exchange {
                        conn: f.conn,
                        api: ApiKey::try_from(api)
                            .unwrap_or_else(|()| panic!("request with unknown API key {api}")),
                        version,
                        correlation,
                        sent_at: f.at,
                        request: f.bytes.clone(),
                        response: None,
                    });
                }
                Dir::In => {
                    let correlation = peek_correlation_id(&f.bytes);
                    let slot = out.iter_mut().find(|x| {
                        x.conn == f.conn
                            && Some(x.correlation) == correlation
                            && x.response.is_none()
                    });
                    match slot {
                        Some(x) => x.response = Some((f.at, f.bytes.clone())),
                        None => panic!(
                            "conn {}: a response (correlation {correlation:?}) to no request",
                            f.conn
                        ),
                    }
                }
            }
        }
        out
    }
}

/// A request the engine sent and the response it read, if any.
#[derive(Clone, Debug)]
struct Exchange {
    conn: u32,
    api: ApiKey,
    version: i16,
    correlation: i32,
    sent_at: Instant,
    request: Bytes,
    response: Option<(Instant, Bytes)>,
}

impl Exchange {
    /// The request body, decoded at its version.
    fn request<R: Decodable + HeaderVersion>(&self) -> R {
        let mut b = self.request.clone();
        RequestHeader::decode(&mut b, R::header_version(self.version))
            .and_then(|_| R::decode(&mut b, self.version))
            .unwrap_or_else(|e| panic!("{:?} v{} request: {e}", self.api, self.version))
    }

    /// The response body, decoded at the request's version.
    fn response<R: Decodable + HeaderVersion>(&self) -> R {
        let (_, frame) = self
            .response
            .clone()
            .unwrap_or_else(|| panic!("{:?} v{}: no response", self.api, self.version));
        decode_response::<R>(self.api, self.version, frame)
            .unwrap_or_else(|e| panic!("{:?} v{} response: {e}", self.api, self.version))
            .1
    }

    fn answered_after(&self) -> Option<Duration> {
        self.response
            .as_ref()
            .map(|(at, _)| at.saturating_duration_since(self.sent_at))
    }
}

impl std::fmt::Display for Exchange {
    /// `JoinGroup v9 -> 0 (3004 ms)`: API, version, error code of the group
    /// APIs' answers, and the time to the answer.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} v{}", self.api, self.version)?;
        if self.response.is_some() {
            let code = match self.api {
                ApiKey::JoinGroup => Some(self.response::<JoinGroupResponse>().error_code),
                ApiKey::SyncGroup => Some(self.response::<SyncGroupResponse>().error_code),
                ApiKey::Heartbeat => Some(self.response::<HeartbeatResponse>().error_code),
                _ => None,
            };
            if let Some(code) = code {
                write!(f, " -> {code}")?;
            }
        }
        match self.answered_after() {
            Some(d) => write!(f, " ({} ms)", d.as_millis()),
            None => write!(f, " (no answer)"),
        }
    }
}

/// A `TcpConnector` whose streams copy every complete frame into a [`WireLog`].
struct Recording {
    log: WireLog,
    next_conn: u32,
}

struct RecordedStream {
    inner: TcpStream,
    conn: u32,
    log: WireLog,
    written: FrameDecoder,
    read: FrameDecoder,
}

impl RecordedStream {
    fn record(&mut self, dir: Dir, data: &[u8]) {
        let decoder = match dir {
            Dir::Out => &mut self.written,
            Dir::In => &mut self.read,
        };
        decoder
            .push(data)
            .unwrap_or_else(|e| panic!("conn {}: {dir:?} bytes do not frame: {e}", self.conn));
        while let Some(bytes) = decoder
            .next_frame()
            .unwrap_or_else(|e| panic!("conn {}: {dir:?} bytes do not frame: {e}", self.conn))
        {
            self.log.lock().push(Frame {
                conn: self.conn,
                dir,
                at: Instant::now(),
                bytes,
            });
        }
    }
}

impl Read for RecordedStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(data) = buf.get(..n) {
            self.record(Dir::In, data);
        }
        Ok(n)
    }
}

impl Write for RecordedStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(data) = buf.get(..n) {
            self.record(Dir::Out, data);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl Connector for Recording {
    type Stream = RecordedStream;

    fn connect(&mut self, addr: &BrokerAddr, timeout: Duration) -> io::Result<RecordedStream> {
        let inner = TcpConnector.connect(addr, timeout)?;
        self.next_conn += 1;
        Ok(RecordedStream {
            inner,
            conn: self.next_conn,
            log: self.log.clone(),
            written: FrameDecoder::default(),
            read: FrameDecoder::default(),
        })
    }

    fn wait_readable(&mut self, stream: &mut RecordedStream, timeout: Duration) -> io::Result<()> {
        TcpConnector.wait_readable(&mut stream.inner, timeout)
    }
}

// ----- members -------------------------------------------------------------

/// One kgroup member on tansu, with its wire log and what it has seen.
struct Member {
    name: &'static str,
    consumer: Consumer<Recording>,
    log: WireLog,
    events: Vec<Event>,
    started: Instant,
}

impl Member {
    fn start(name: &'static str, config: Config, tansu: &Tansu, topics: &[&str]) -> Member {
        let log = WireLog::default();
        let recording = Recording {
            log: log.clone(),
            next_conn: 0,
        };
        let mut consumer = Consumer::with_connector(config, &tansu.bootstrap(), recording)
            .unwrap_or_else(|e| panic!("{name}: consumer: {e}"));
        let started = Instant::now();
        consumer.subscribe(topics.iter().copied());
        Member {
            name,
            consumer,
            log,
            events: Vec::new(),
            started,
        }
    }

    /// Drives the member for about `slice`, keeping its events.
    fn pump(&mut self, slice: Duration) {
        let deadline = deadline_after(slice);
        while let Some(e) = self.consumer.poll(remaining(deadline)) {
            if let Event::Fatal(err) = &e {
                panic!("{}: fatal: {err}", self.name);
            }
            self.events.push(e);
        }
    }

    /// What the application was told it owns: the last `Assigned`, less
    /// what was revoked or lost since. (The engine's own view,
    /// `Group::owned`, changes at SyncGroup, before the committed offsets
    /// are fetched and `Assigned` is emitted.)
    fn owned(&self) -> BTreeSet<TopicPartition> {
        let mut owned = BTreeSet::new();
        for e in &self.events {
            match e {
                Event::Assigned { partitions, .. } => owned = partitions.iter().cloned().collect(),
                Event::Revoked { partitions } | Event::Lost { partitions, .. } => {
                    for p in partitions {
                        owned.remove(p);
                    }
                }
                Event::Left => owned.clear(),
                _ => {}
            }
        }
        owned
    }

    /// Stable, and the engine owns what the application was told.
    fn is_stable(&self) -> bool {
        self.consumer.group().state() == GroupState::Stable
            && *self.consumer.group().owned() == self.owned()
    }

    fn of_api(&self, api: ApiKey) -> Vec<Exchange> {
        self.log
            .exchanges()
            .into_iter()
            .filter(|x| x.api == api)
            .collect()
    }

    /// Events after the first `from`, as Debug lines (for messages).
    fn trace(&self, from: usize) -> Vec<String> {
        self.events
            .iter()
            .skip(from)
            .map(|e| format!("{e:?}"))
            .collect()
    }
}

/// Drives every member round robin until `done` holds; panics after `SETTLE`.
fn drive_until(members: &mut [&mut Member], what: &str, done: impl Fn(&[&mut Member]) -> bool) {
    let deadline = deadline_after(SETTLE);
    loop {
        for m in members.iter_mut() {
            m.pump(Duration::from_millis(5));
        }
        if done(members) {
            return;
        }
        if remaining(deadline).is_zero() {
            let states: Vec<String> = members
                .iter()
                .map(|m| {
                    let wire: Vec<String> = m
                        .log
                        .exchanges()
                        .iter()
                        .rev()
                        .take(16)
                        .rev()
                        .map(ToString::to_string)
                        .collect();
                    format!(
                        "{}: {:?} gen {} owns {:?}; events {:#?}; last requests {wire:#?}",
                        m.name,
                        m.consumer.group().state(),
                        m.consumer.group().generation(),
                        m.owned(),
                        m.trace(0)
                    )
                })
                .collect();
            panic!("{what}: not within {SETTLE:?}: {states:#?}");
        }
    }
}

/// Drives every member for `period` whatever happens.
fn drive_for(members: &mut [&mut Member], period: Duration) {
    let deadline = deadline_after(period);
    while !remaining(deadline).is_zero() {
        for m in members.iter_mut() {
            m.pump(Duration::from_millis(5));
        }
    }
}

fn config(group: &str, instance: Option<&str>, session: Duration) -> Config {
    config_in(group, instance, session, None)
}

fn config_in(group: &str, instance: Option<&str>, session: Duration, rack: Option<&str>) -> Config {
    let mut b = Config::builder(group)
        .client_id("kgroup-tansu")
        .assignors(vec![
            kgroup::assignor::builtin("range").expect("range is built in"),
        ])
        .session_timeout(session)
        .heartbeat_interval(Duration::from_millis(1000))
        .rebalance_timeout(Duration::from_secs(20))
        .request_timeout(Duration::from_secs(15));
    if let Some(id) = instance {
        b = b.instance_id(id);
    }
    if let Some(rack) = rack {
        b = b.rack(rack);
    }
    b.build().expect("valid config")
}

fn partitions(topic: &str, n: i32) -> BTreeSet<TopicPartition> {
    (0..n).map(|p| TopicPartition::new(topic, p)).collect()
}

fn joined(m: &Member) -> Vec<(String, i32, bool)> {
    m.events
        .iter()
        .filter_map(|e| match e {
            Event::Joined {
                member_id,
                generation,
                leader,
                ..
            } => Some((member_id.clone(), *generation, *leader)),
            _ => None,
        })
        .collect()
}

// ----- (a) KIP-394 ----------------------------------------------------------

#[test]
fn member_id_required_is_answered_by_a_rejoin_with_the_given_id() {
    let Some(tansu) = tansu_or_skip("member_id_required") else {
        return;
    };
    tansu.create_topic("kip394", 3).expect("topic created");
    let mut m = Member::start(
        "dynamic",
        config("kip394-group", None, Duration::from_secs(10)),
        &tansu,
        &["kip394"],
    );
    let all = partitions("kip394", 3);
    drive_until(&mut [&mut m], "the member owns every partition", |ms| {
        ms[0].is_stable() && ms[0].owned() == all
    });

    // On the wire: JoinGroup with no member id, MEMBER_ID_REQUIRED with an
    // id, then JoinGroup with that id, which succeeds.
    let joins = m.of_api(ApiKey::JoinGroup);
    assert_eq!(
        joins.len(),
        2,
        "a lone member joins twice (KIP-394), no more: {joins:#?}"
    );
    let (first, second) = (&joins[0], &joins[1]);
    assert!(
        first.version >= 4,
        "KIP-394 needs JoinGroup v4+; negotiated v{}",
        first.version
    );
    let req1: JoinGroupRequest = first.request();
    let resp1: JoinGroupResponse = first.response();
    let req2: JoinGroupRequest = second.request();
    let resp2: JoinGroupResponse = second.response();
    assert_eq!(
        req1.member_id.as_str(),
        "",
        "first JoinGroup has no member id"
    );
    assert_eq!(req1.group_instance_id, None, "a dynamic member");
    assert_eq!(
        resp1.error_code, MEMBER_ID_REQUIRED,
        "tansu asks for a member id first"
    );
    let given = resp1.member_id.as_str().to_owned();
    assert!(!given.is_empty(), "MEMBER_ID_REQUIRED carries the id");
    assert_eq!(
        req2.member_id.as_str(),
        given,
        "the rejoin carries the id the coordinator gave"
    );
    assert_eq!(
        second.conn, first.conn,
        "rejoined on the coordinator connection"
    );
    assert_eq!(
        second.correlation,
        first.correlation + 1,
        "the rejoin is the very next request (no backoff, no rediscovery)"
    );
    if second.version >= 8 {
        let reason = req2.reason.as_ref().map(|r| r.as_str()).unwrap_or_default();
        assert!(
            reason.contains("member id required"),
            "the rejoin says why (KIP-800): {reason:?}"
        );
    }
    assert_eq!(resp2.error_code, 0, "the rejoin is accepted");
    assert_eq!(resp2.member_id.as_str(), given, "under the given id");

    // SyncGroup for that member and generation; the events agree.
    let syncs = m.of_api(ApiKey::SyncGroup);
    let sync: SyncGroupRequest = syncs.first().expect("a SyncGroup").request();
    assert_eq!(sync.member_id.as_str(), given);
    assert_eq!(sync.generation_id, resp2.generation_id);
    let sync_resp: SyncGroupResponse = syncs[0].response();
    assert_eq!(sync_resp.error_code, 0);
    assert_eq!(
        joined(&m),
        vec![(given.clone(), resp2.generation_id, true)],
        "one Joined, under the given id, as the leader"
    );
    assert_eq!(m.consumer.group().member_id(), given);
    assert!(
        m.events
            .iter()
            .any(|e| matches!(e, Event::Assigned { partitions, .. }
            if partitions.iter().cloned().collect::<BTreeSet<_>>() == all)),
        "Assigned with every partition: {:#?}",
        m.trace(0)
    );
    let ms = |d: Option<Duration>| d.map_or(-1, |d| d.as_millis() as i64);
    println!(
        "member_id_required: JoinGroup v{} -> error {} member id {given:?} in {} ms; \
         JoinGroup v{} with it -> generation {} in {} ms; SyncGroup answered {} ms after subscribe",
        first.version,
        resp1.error_code,
        ms(first.answered_after()),
        second.version,
        resp2.generation_id,
        ms(second.answered_after()),
        ms(syncs[0]
            .response
            .as_ref()
            .map(|(at, _)| at.duration_since(m.started))),
    );
}

// ----- (b) KIP-345 ----------------------------------------------------------

#[test]
fn static_leader_restarted_within_the_session_gets_its_partitions_back() {
    static_restart("static_restart_leader", Restart::Leader);
}

/// The same with the follower restarted: tansu finds the follower's member
/// id by its instance id and, its subscription being byte-identical to the
/// one it stored, answers with the current generation and the assignment it
/// holds, without a rebalance.
#[test]
fn static_follower_restarted_within_the_session_gets_its_partitions_back() {
    static_restart("static_restart_follower", Restart::Follower);
}

/// The follower restarted with a new `client.rack`, so its subscription
/// (v3 carries the rack) differs from the one tansu stored. A broker that
/// follows Kafka rebalances at once (Kafka's `updateStaticMemberAndRebalance`).
/// tansu 0.6.0 stores the new subscription and puts the group back to
/// "forming" without a new generation, then answers every SyncGroup of the
/// follower REBALANCE_IN_PROGRESS while the leader, whose heartbeats still
/// succeed, does not rejoin; the loop ends only when the old member id
/// expires (JoinGroup and SyncGroup do not count as contact), a session
/// timeout (30 s) later: the follower gets a new member id and a new
/// generation. Ignored because it is slow and shows tansu, not kgroup; the
/// output lists the restarted member's requests and error codes. See
/// docs/testing.md, "Known limits of tansu 0.6.0".
#[test]
#[ignore = "slow: tansu 0.6.0 completes it only after a session timeout (docs/testing.md)"]
fn static_follower_restarted_with_a_changed_subscription_gets_its_partitions_back() {
    static_restart("static_restart_follower_new_rack", Restart::FollowerNewRack);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Restart {
    Leader,
    Follower,
    FollowerNewRack,
}

/// Two static members split a topic; the leader or the follower is closed
/// (no LeaveGroup) and a new engine with its instance id takes its place
/// within the session timeout: it gets the same partitions, and the other
/// member keeps its own and revokes nothing.
fn static_restart(test: &str, which: Restart) {
    let Some(tansu) = tansu_or_skip(test) else {
        return;
    };
    let topic = "kip345";
    tansu.create_topic(topic, 4).expect("topic created");
    let all = partitions(topic, 4);
    // Longer than a restart takes here: tansu drops a member whose last
    // heartbeat is older than this, and it does not count a JoinGroup or a
    // SyncGroup as contact; a restarted static member's first heartbeat
    // comes after its join and sync (3 s parked each).
    let session = Duration::from_secs(30);
    let group = "kip345-group";

    // The first member leads (tansu makes the first joiner leader); the
    // second joins once the first is stable, and the group settles with
    // the partitions split between them.
    let mut leader = Member::start(
        "leader",
        config(group, Some("instance-a"), session),
        &tansu,
        &[topic],
    );
    drive_until(
        &mut [&mut leader],
        "the first member owns every partition",
        |ms| ms[0].is_stable() && ms[0].owned() == all,
    );
    let mut follower = Member::start(
        "follower",
        config(group, Some("instance-b"), session),
        &tansu,
        &[topic],
    );
    drive_until(
        &mut [&mut leader, &mut follower],
        "the two members split the partitions",
        |ms| {
            let (oa, ob) = (ms[0].owned(), ms[1].owned());
            ms.iter().all(|m| m.is_stable())
                && !oa.is_empty()
                && !ob.is_empty()
                && oa.is_disjoint(&ob)
                && oa.union(&ob).cloned().collect::<BTreeSet<_>>() == all
        },
    );
    // A few heartbeats, so a rebalance still under way would show.
    drive_for(&mut [&mut leader, &mut follower], Duration::from_secs(3));
    assert!(leader.is_stable() && follower.is_stable(), "settled");
    let generation = leader.consumer.group().generation();
    assert_eq!(
        follower.consumer.group().generation(),
        generation,
        "one generation"
    );
    assert!(
        joined(&leader)
            .last()
            .is_some_and(|(_, _, is_leader)| *is_leader),
        "the first joiner leads: {:?}",
        joined(&leader)
    );
    let (gone, mut stays) = match which {
        Restart::Leader => (leader, follower),
        Restart::Follower | Restart::FollowerNewRack => (follower, leader),
    };
    let gone_owned = gone.owned();
    let stays_owned = stays.owned();
    let gone_member = gone.consumer.group().member_id().to_owned();
    let instance = gone
        .consumer
        .group()
        .config()
        .instance_id()
        .map(str::to_owned)
        .expect("a static member");

    // Close it: a static member stops without LeaveGroup (KIP-345).
    let mut gone = gone;
    let closing = gone.consumer.close_within(Duration::from_secs(10));
    assert!(
        closing.iter().any(|e| matches!(e, Event::Left)),
        "closed: {closing:?}"
    );
    let leaves = gone.of_api(ApiKey::LeaveGroup);
    assert!(
        leaves.is_empty(),
        "a static member sends no LeaveGroup on close: {:?}",
        leaves
            .iter()
            .map(|x| x.request::<LeaveGroupRequest>())
            .collect::<Vec<_>>()
    );
    let gone_requests: Vec<String> = gone
        .log
        .exchanges()
        .iter()
        .map(|x| format!("{:?}", x.api))
        .collect();
    drop(gone);

    // A new engine with the same instance id, within the session timeout.
    let seen = stays.events.len();
    let restarted_at = Instant::now();
    let rack = (which == Restart::FollowerNewRack).then_some("rack-2");
    let mut back = Member::start(
        "restarted",
        config_in(group, Some(&instance), session, rack),
        &tansu,
        &[topic],
    );
    drive_until(
        &mut [&mut back, &mut stays],
        "the restarted member owns its partitions again",
        |ms| ms[0].is_stable() && ms[0].owned() == gone_owned,
    );
    let back_after = restarted_at.elapsed();
    // And the group stays that way for a few heartbeats.
    drive_for(&mut [&mut back, &mut stays], Duration::from_secs(3));

    // On the wire: the restarted member joins with the instance id and no
    // member id (it has none), and is never asked for one.
    let joins = back.of_api(ApiKey::JoinGroup);
    let first: JoinGroupRequest = joins.first().expect("a JoinGroup").request();
    assert_eq!(
        first.group_instance_id.as_ref().map(|s| s.as_str()),
        Some(instance.as_str())
    );
    assert_eq!(first.member_id.as_str(), "");
    let answers: Vec<(i16, String, i32, String)> = joins
        .iter()
        .map(|x| {
            let r: JoinGroupResponse = x.response();
            (
                r.error_code,
                r.member_id.to_string(),
                r.generation_id,
                r.leader.to_string(),
            )
        })
        .collect();
    assert!(
        answers.iter().all(|(code, ..)| *code != MEMBER_ID_REQUIRED),
        "static members are not asked for a member id: {answers:?}"
    );

    assert_eq!(
        back.owned(),
        gone_owned,
        "the restarted member got its partitions back"
    );
    assert_eq!(
        stays.owned(),
        stays_owned,
        "the other member kept its partitions"
    );
    assert!(
        back.is_stable() && stays.is_stable(),
        "the group is stable again"
    );
    let stays_after = stays.trace(seen);
    // With a changed subscription a rebalance is allowed (eager: the other
    // member revokes and gets its partitions back).
    assert!(
        which == Restart::FollowerNewRack
            || !stays
                .events
                .iter()
                .skip(seen)
                .any(|e| matches!(e, Event::Revoked { .. } | Event::Lost { .. })),
        "the other member revoked nothing: {stays_after:#?}"
    );

    let stays_rejoins = stays
        .of_api(ApiKey::JoinGroup)
        .iter()
        .filter(|x| x.sent_at >= restarted_at)
        .count();
    let back_wire: Vec<String> = back
        .log
        .exchanges()
        .iter()
        .filter(|x| {
            matches!(
                x.api,
                ApiKey::JoinGroup | ApiKey::SyncGroup | ApiKey::Heartbeat
            )
        })
        .take(16)
        .map(ToString::to_string)
        .collect();
    let back_member = back.consumer.group().member_id().to_owned();
    let back_generation = back.consumer.group().generation();
    let stays_generation = stays.consumer.group().generation();
    println!(
        "{test}: before: generation {generation}; {which:?} {instance:?} = {gone_member:?} \
         owned {gone_owned:?}, the other owned {stays_owned:?}; it sent {gone_requests:?} \
         (no LeaveGroup)"
    );
    println!(
        "{test}: restarted: JoinGroup v{} answers (error, member id, generation, leader) \
         {answers:?}; member id {back_member:?} (same as before: {}); back in {} ms; \
         generations now restarted={back_generation} other={stays_generation} \
         (tansu started a new generation: {}); the other member sent {stays_rejoins} \
         JoinGroup(s) since and saw {stays_after:?}; the restarted member's group requests: \
         {back_wire:?}",
        joins[0].version,
        back_member == gone_member,
        back_after.as_millis(),
        back_generation != generation || stays_generation != generation,
    );
}

// ----- (c) negotiation ------------------------------------------------------

#[test]
fn negotiation_with_tansu_and_an_engine_that_keeps_to_it() {
    let Some(tansu) = tansu_or_skip("negotiation") else {
        return;
    };
    let (sent, versions) = tansu.negotiate().expect("kgroup negotiates with tansu");
    println!("negotiation: ApiVersions versions sent: {sent:?}");
    assert_eq!(
        versions.chosen().len(),
        IMPLEMENTED.len(),
        "a version for every API kgroup implements"
    );
    for &(api, v) in versions.chosen() {
        let ours = implemented(api).expect("chosen APIs are implemented ones");
        let theirs = versions.offered(api).expect("chosen APIs are offered");
        assert_eq!(
            v,
            ours.max.min(theirs.max),
            "{api:?}: the highest common version"
        );
        println!("negotiation: {api:?} v{v} (kgroup {ours}, tansu {theirs})");
    }
    if let Some(span) = versions.offered(ApiKey::ConsumerGroupHeartbeat) {
        println!("negotiation: tansu also offers ConsumerGroupHeartbeat {span} (unused)");
    }

    // An engine through a whole life: join, fetch committed offsets, commit,
    // leave. Every request it sends is at the version negotiated above.
    tansu.create_topic("versions", 2).expect("topic created");
    let mut m = Member::start(
        "dynamic",
        config("versions-group", None, Duration::from_secs(10)),
        &tansu,
        &["versions"],
    );
    let all = partitions("versions", 2);
    drive_until(&mut [&mut m], "the member owns every partition", |ms| {
        ms[0].is_stable() && ms[0].owned() == all
    });
    let offsets = all
        .iter()
        .map(|tp| (tp.clone(), CommittedOffset::new(7)))
        .collect();
    m.consumer.commit(offsets).expect("commit accepted");
    drive_until(&mut [&mut m], "the commit is done", |ms| {
        ms[0].events.iter().any(|e| {
            matches!(
                e,
                Event::Offsets(OffsetEvent::CommitDone { result: Ok(()), .. })
            )
        })
    });
    // A few heartbeats.
    drive_for(&mut [&mut m], Duration::from_millis(2500));
    let left = m.consumer.close_within(Duration::from_secs(10));
    assert!(
        left.iter().any(|e| matches!(e, Event::Left)),
        "left: {left:?}"
    );

    let exchanges = m.log.exchanges();
    let mut used: BTreeSet<(i16, i16)> = BTreeSet::new();
    let mut api_versions = Vec::new();
    for x in &exchanges {
        if x.api == ApiKey::ApiVersions {
            api_versions.push(x.version);
            continue;
        }
        let chosen = versions.version(x.api);
        assert_eq!(
            Some(x.version),
            chosen,
            "the engine sent {:?} at v{}, negotiated {chosen:?}",
            x.api,
            x.version
        );
        used.insert((x.api as i16, x.version));
    }
    assert!(
        api_versions.first() == sent.first(),
        "the engine starts ApiVersions where the negotiation did: {api_versions:?} vs {sent:?}"
    );
    for api in [
        ApiKey::Metadata,
        ApiKey::FindCoordinator,
        ApiKey::JoinGroup,
        ApiKey::SyncGroup,
        ApiKey::Heartbeat,
        ApiKey::OffsetFetch,
        ApiKey::OffsetCommit,
        ApiKey::LeaveGroup,
    ] {
        assert!(
            exchanges
                .iter()
                .any(|x| x.api == api && x.response.is_some()),
            "the engine used {api:?} and got an answer"
        );
    }
    let used: Vec<String> = used
        .iter()
        .map(|(k, v)| {
            let api = ApiKey::try_from(*k).map_or(format!("{k}"), |a| format!("{a:?}"));
            format!("{api} v{v}")
        })
        .collect();
    println!("negotiation: the engine sent ApiVersions {api_versions:?}, then {used:?}");
}
