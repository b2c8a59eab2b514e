//! The engine fuzz harness: one [`Group`] driven by an arbitrary sequence of
//! [`Op`]s, with a small fake broker that answers the requests the engine
//! sends.
//!
//! Answers are mostly *plausible*: built with `kafka-protocol`'s encoders
//! from the request the engine actually sent (its member id, its protocols
//! and their subscriptions, the leader's assignments), with fuzzer-chosen
//! error codes, generations, leaders, protocol choices, partition counts and
//! assignments; then sometimes mutated byte by byte (flips, truncation,
//! insertion, overwritten counts), sometimes replaced by schema-valid random
//! bodies or raw bytes. An all-zero input is the happy path (every knob at 0
//! means "no error, this member leads, first protocol"), so the fuzzer
//! starts from a stable member and mutates its way into the corners.
//!
//! The application side drives the offsets path (docs/offsets.md): commits
//! of partitions picked among those owned or among all (owned or not), with
//! forward-only positions (a real consumer's), marks, `fetch_committed`,
//! auto-commit ticks as time passes, `fetch_committed_on_assign` on by
//! default. The fake broker stores the offsets it accepts and answers
//! OffsetFetch with them; detailed OffsetCommit/OffsetFetch answers
//! ([`OffsetAnswer`]) carry per-partition and group errors, chosen offsets,
//! metadata, leader epochs and odd shapes (a partition missing, repeated or
//! never asked for). After the last operation the harness closes the member,
//! answers what is in flight and runs the deadlines until it has left.
//!
//! Properties checked after every step (panics otherwise):
//! - no panic, and bounded output: a step yields at most [`MAX_TRANSMITS`]
//!   requests and [`MAX_EVENTS`] events;
//! - every request is a well-formed frame (size prefix, API key and
//!   correlation id matching the [`Transmit`]);
//! - no hang: after `handle_timeout(now)`, the next deadline is later than
//!   `now` within a few calls (a driver can always sleep);
//! - owned partitions are reported consistently: replaying the `Assigned`,
//!   `Revoked` and `Lost` events gives exactly `Group::owned()`; `added` is
//!   what was not owned before; only owned partitions are revoked or lost;
//!   lists are sorted; at most one `Fatal`, and a failed member owns
//!   nothing;
//! - determinism: the same input run twice gives the same transcript
//!   (frames, events, deadlines);
//! - offsets: every OffsetCommit sent carries the engine's generation,
//!   member id and (v7+) instance id at send time, names only partitions
//!   owned at send time, with offsets between 0 and the application's
//!   position; a commit/mark/fetch of a partition not owned, or a negative
//!   offset, is refused; every `CommitId` gets exactly one `CommitDone` and
//!   every `FetchId` of `fetch_committed` exactly one `FetchDone` (checked
//!   once the final close completes; the engine's own fetch for an
//!   `Assigned` never surfaces); the offsets a `CommitDone` reports as
//!   committed never go back per partition; `Assigned.committed` has
//!   exactly the keys of `added` (all `NotFetched` when the fetch is off),
//!   and an `Assigned` held for its fetch accounts for the difference
//!   between the events and `Group::owned()`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, FindCoordinatorResponse, HeartbeatResponse,
    JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, MetadataRequest,
    MetadataResponse, OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest,
    OffsetFetchResponse, RequestHeader, SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::assignor;
use crate::event::{Committed, Event};
use crate::offsets::{CommitId, CommitKind, CommittedOffset, FetchId, OffsetEvent, OffsetsConfig};
use crate::wire::bounded::sample::{SampleRng, sample_frame};
use crate::wire::{self, Assignment, Subscription};
use crate::{Config, Group, GroupState, RequestId, RevokeMode, TopicPartition, TransportError};

/// Most operations one input runs.
pub const MAX_OPS: usize = 192;
/// Most requests one step may yield before the harness calls it unbounded.
pub const MAX_TRANSMITS: usize = 32;
/// Most events one step may yield before the harness calls it unbounded.
pub const MAX_EVENTS: usize = 256;
/// Most deadlines fired after the final `close` before the harness calls
/// the close stuck.
const FINISH_STEPS: usize = 256;
/// Topics of the fake cluster.
const TOPICS: [&str; 4] = ["t0", "t1", "t2", "t3"];

/// The group's configuration, chosen by the input (0 = defaults).
#[derive(Debug, Arbitrary)]
pub struct Setup {
    /// Assignor list (index into a table of valid lists).
    pub assignors: u8,
    /// Static member (KIP-345) when set.
    pub static_member: bool,
    /// Gated revocation when set.
    pub gated: bool,
    /// Timeouts profile.
    pub timing: u8,
    /// Jitter seed.
    pub seed: u64,
    /// Initial subscription (bit mask over the topics; 0 means `t0`).
    pub topics: u8,
    /// Partition count of each topic in the cluster.
    pub partitions: [u8; 4],
    /// Offsets knobs (0 = the engine's defaults): bit 0 turns
    /// `fetch_committed_on_assign` off; bits 1-2 pick the auto-commit
    /// interval (none, 1 s, 5 s, 100 ms); bit 3 shortens the commit and
    /// fetch deadlines to 5 s; bit 4 caps fetched metadata at 8 bytes.
    pub offsets: u8,
}

/// One step of the scenario.
#[derive(Debug, Arbitrary)]
pub enum Op {
    /// Answer a request in flight with a plausible response.
    Respond(Answer),
    /// Answer with a plausible response, then mutate its bytes.
    Mutated(Answer, Vec<Mutation>),
    /// Answer with a schema-valid random body of the right API and version.
    Sampled {
        /// Which request in flight.
        pick: u8,
        /// Generator seed.
        seed: u64,
    },
    /// Answer with raw bytes (after a correct correlation id, or not).
    Raw {
        /// Which request in flight.
        pick: u8,
        /// Keep the right correlation id in front.
        keep_id: bool,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// A request fails in transport.
    Transport {
        /// Which request in flight.
        pick: u8,
        /// Connect failure rather than disconnect.
        connect: bool,
    },
    /// Time passes (milliseconds, x16 when `long`), firing timers on the way.
    Advance {
        /// Milliseconds.
        ms: u16,
        /// Multiply by 16.
        long: bool,
    },
    /// Jump to the next deadline and fire it.
    Fire,
    /// `subscribe` (bit mask over the topics).
    Subscribe(u8),
    /// `hold_rebalance`.
    Hold,
    /// `allow_rebalance`.
    Allow,
    /// `ack_revoked`.
    AckRevoked,
    /// `close`.
    Close,
    /// `leave`.
    Leave,
    /// `commit` of the partitions picked by the mask bits, among those owned
    /// (bit i: the i-th owned partition) or among all sixteen (bit `4t + p`:
    /// topic t, partition p), owned or not. Offsets are the application's
    /// position plus `step` (positions only move forward), or negative when
    /// `step` is 255; `meta` bytes of metadata.
    Commit {
        /// Pick among the owned partitions.
        owned: bool,
        /// Partition mask.
        mask: u16,
        /// Position advance (255: a negative offset).
        step: u8,
        /// Metadata length.
        meta: u8,
    },
    /// `mark_processed` of one partition (owned index or `4t + p`).
    Mark {
        /// Pick among the owned partitions.
        owned: bool,
        /// Partition index.
        pick: u8,
        /// Position advance (255: a negative offset).
        step: u8,
    },
    /// `fetch_committed` of the partitions picked by the mask bits.
    FetchCommitted {
        /// Pick among the owned partitions.
        owned: bool,
        /// Partition mask.
        mask: u16,
    },
    /// Answer an OffsetCommit or OffsetFetch in flight with detailed knobs.
    RespondOffsets(OffsetAnswer),
    /// The same, then mutate its bytes.
    MutatedOffsets(OffsetAnswer, Vec<Mutation>),
    /// The cluster changes a topic's partition count (seen in later Metadata).
    Repartition {
        /// Topic index.
        topic: u8,
        /// New count.
        partitions: u8,
    },
}

/// The knobs of a plausible response (all 0: success, this member leads,
/// first protocol, everything assigned).
#[derive(Debug, Arbitrary)]
pub struct Answer {
    /// Which request in flight (index, modulo their number).
    pub pick: u8,
    /// Error: below 128 none, else an error relevant to group APIs.
    pub error: u8,
    /// Leader choice / broker choice / API-table cap, per API.
    pub who: u8,
    /// Protocol choice / generation step / version choice, per API.
    pub which: u8,
    /// Assignment mask / other members / partitions, per API.
    pub mask: u16,
}

/// The knobs of a plausible OffsetCommit / OffsetFetch answer, built from
/// the request actually sent (all 0: every partition answered, no error,
/// the offsets the fake broker stored).
#[derive(Debug, Arbitrary)]
pub struct OffsetAnswer {
    /// Which OffsetCommit/OffsetFetch in flight (modulo their number).
    pub pick: u8,
    /// Group-level error: OffsetFetch's top-level (v2-7) or group (v8+)
    /// code; for OffsetCommit, which has none, the same code on every
    /// partition (as a broker answers a group error).
    pub top: u8,
    /// Per-partition error knobs, cycled over the partitions.
    pub codes: Vec<u8>,
    /// OffsetFetch: committed offsets, cycled (-1: none; below -1: invalid);
    /// empty means what the fake broker stored.
    pub offsets: Vec<i16>,
    /// OffsetFetch: metadata length (cycled with the offsets), leader epoch.
    pub meta: u8,
    /// Shape: bit 0 drops the last partition, bit 1 repeats the first, bit 2
    /// adds a partition never asked for, bit 3 sets a leader epoch.
    pub shape: u8,
}

/// The all-zero answer: no error, this member leads, first protocol.
const HAPPY: Answer = Answer {
    pick: 0,
    error: 0,
    who: 0,
    which: 0,
    mask: 0,
};

/// A byte-level change to a response frame.
#[derive(Debug, Arbitrary)]
pub enum Mutation {
    /// Flip one bit.
    Flip {
        /// Position (modulo the length).
        at: u16,
        /// Bit.
        bit: u8,
    },
    /// Cut the frame.
    Truncate {
        /// New length (modulo the length).
        at: u16,
    },
    /// Insert bytes.
    Insert {
        /// Position.
        at: u16,
        /// What.
        bytes: Vec<u8>,
    },
    /// Overwrite four bytes with a big-endian value (a count or a length).
    Overwrite {
        /// Position.
        at: u16,
        /// Value.
        value: i32,
    },
}

/// Error codes the fake broker answers with: those the group APIs define
/// (PROTOCOL.md error matrix), plus an unknown code.
const ERRORS: [i16; 20] = [
    15, 16, 14, 27, 25, 22, 79, 82, 23, 26, 24, 30, 35, 81, 3, 5, -1, 7, 58, 9999,
];

/// Error codes an OffsetCommit / OffsetFetch answer carries (PROTOCOL.md
/// §2.7, §2.8; Kafka's `Errors`): coordinator moved/unavailable/loading (16,
/// 15, 14), request timed out (7), rebalance (27), illegal generation (22),
/// unknown member (25), fenced instance (82), group/topic authorization (30,
/// 29), invalid group id (24), unsupported version (35), group id not found
/// (69), metadata too large (12), invalid commit offset size (28), unknown
/// topic or partition (3), unstable offset commit (88), unknown server
/// error (-1), and a code Kafka does not define.
const OFFSET_ERRORS: [i16; 19] = [
    16, 15, 14, 7, 27, 22, 25, 82, 30, 29, 24, 35, 69, 12, 28, 3, 88, -1, 9999,
];

/// Below 96: no error; else an offsets error.
fn offset_error(knob: u8) -> i16 {
    if knob < 96 {
        0
    } else {
        OFFSET_ERRORS[usize::from(knob - 96) % OFFSET_ERRORS.len()]
    }
}

fn error_code(knob: u8) -> i16 {
    if knob < 128 {
        0
    } else {
        ERRORS[usize::from(knob - 128) % ERRORS.len()]
    }
}

/// One line of the transcript compared between the two runs.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    Transmit(i32, u32, Bytes),
    Event(String),
    Deadline(Option<Duration>),
}

/// A request the engine sent that has not been answered or failed yet.
#[derive(Debug, Clone)]
struct Sent {
    id: RequestId,
    api: ApiKey,
    version: i16,
    frame: Bytes,
}

struct Harness {
    group: Group,
    base: Instant,
    now: Instant,
    in_flight: Vec<Sent>,
    owned: BTreeSet<TopicPartition>,
    /// Revoked but still owned until the revocation completes (the
    /// commit-on-revoke goes out under the generation that owns them).
    revoking: BTreeSet<TopicPartition>,
    fatal: usize,
    partitions: [i32; 4],
    generation: i32,
    next_member: u32,
    transcript: Vec<Line>,
    /// The configured static instance id.
    instance_id: Option<String>,
    /// The application's position per partition: the highest offset it
    /// gave to `commit` or `mark_processed` (never moves back).
    positions: BTreeMap<TopicPartition, i64>,
    /// Manual commits accepted and not finished yet.
    commits: BTreeSet<CommitId>,
    /// Every commit finished (manual or of the marks).
    commits_done: BTreeSet<CommitId>,
    /// `fetch_committed` calls accepted and not finished yet.
    fetches: BTreeSet<FetchId>,
    /// The highest offset reported committed per partition.
    committed: BTreeMap<TopicPartition, i64>,
    /// What the fake broker stored per partition (offset, metadata).
    stored: BTreeMap<TopicPartition, (i64, Option<String>)>,
    /// Print every operation and transcript line (`engine_trace`).
    echo: bool,
}

/// Runs `data` as an engine scenario twice and requires the same transcript.
/// `base` is the instant the scenario starts at (any instant: the engine
/// never reads the clock).
pub fn engine(data: &[u8], base: Instant) {
    let first = run(data, base);
    let second = run(data, base);
    if first != second {
        let at = first
            .iter()
            .zip(&second)
            .position(|(a, b)| a != b)
            .unwrap_or(first.len().min(second.len()));
        panic!(
            "not deterministic: transcripts differ at line {at}: {:?} vs {:?}",
            first.get(at),
            second.get(at)
        );
    }
}

/// Runs `data` once, printing to stderr what it does as it goes (setup,
/// operations, requests, events, deadlines), so that the line before a
/// property's panic shows the step that broke it.
pub fn engine_trace(data: &[u8], base: Instant) {
    run_with(data, base, true);
}

/// The events of one run of `data` (their `Debug` form), in order: to
/// check what the harness reaches (tests/fuzz_replay.rs).
pub fn engine_events(data: &[u8], base: Instant) -> Vec<String> {
    run(data, base)
        .into_iter()
        .filter_map(|line| match line {
            Line::Event(e) => Some(e),
            _ => None,
        })
        .collect()
}

fn describe(line: &Line) -> String {
    match line {
        Line::Transmit(id, conn, frame) => {
            let api = frame.get(4..6).map(|b| i16::from_be_bytes([b[0], b[1]]));
            let api = api.and_then(|k| ApiKey::try_from(k).ok());
            format!(
                "send req#{id} on conn#{conn}: {api:?} ({} bytes)",
                frame.len()
            )
        }
        Line::Event(e) => format!("event {e}"),
        Line::Deadline(d) => format!("deadline {d:?}"),
    }
}

fn config(setup: &Setup) -> Option<Config> {
    let lists: [&[&str]; 6] = [
        &["range"],
        &["cooperative-sticky"],
        &["range", "roundrobin"],
        &["sticky"],
        &["cooperative-sticky", "range"],
        &["roundrobin", "sticky", "cooperative-sticky"],
    ];
    let names = lists[usize::from(setup.assignors) % lists.len()];
    let assignors = names.iter().filter_map(|n| assignor::builtin(n)).collect();
    let (session, heartbeat, rebalance, request) = match setup.timing % 3 {
        0 => (10_000, 3_000, 30_000, 30_000),
        1 => (6_000, 1_000, 10_000, 5_000),
        _ => (45_000, 3_000, 300_000, 30_000),
    };
    let mut builder = Config::builder("g")
        .assignors(assignors)
        .session_timeout(Duration::from_millis(session))
        .heartbeat_interval(Duration::from_millis(heartbeat))
        .rebalance_timeout(Duration::from_millis(rebalance))
        .request_timeout(Duration::from_millis(request))
        .retry_backoff(Duration::from_millis(100), Duration::from_millis(1_000))
        .seed(setup.seed)
        .offsets(offsets_config(setup.offsets, setup.seed))
        // On by default (bit 0 clear): `Assigned` waits for its OffsetFetch.
        .fetch_committed_on_assign(setup.offsets & 1 == 0)
        .revoke_mode(if setup.gated {
            RevokeMode::Gated
        } else {
            RevokeMode::Immediate
        });
    if setup.static_member {
        builder = builder.instance_id("i-1");
    }
    builder.build().ok()
}

/// The offsets settings picked by the `offsets` knob of [`Setup`].
fn offsets_config(knob: u8, seed: u64) -> OffsetsConfig {
    let auto = match (knob >> 1) & 3 {
        0 => None,
        1 => Some(Duration::from_secs(1)),
        2 => Some(Duration::from_secs(5)),
        _ => Some(Duration::from_millis(100)),
    };
    let mut c = OffsetsConfig::new("g")
        .with_auto_commit(auto)
        .with_seed(seed);
    if knob & 8 != 0 {
        c = c
            .with_commit_timeout(Duration::from_secs(5))
            .with_fetch_timeout(Duration::from_secs(5));
    }
    if knob & 16 != 0 {
        c = c.with_max_metadata_bytes(8);
    }
    c
}

fn topics_of(mask: u8) -> Vec<String> {
    TOPICS
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, t)| (*t).to_owned())
        .collect()
}

fn run(data: &[u8], base: Instant) -> Vec<Line> {
    run_with(data, base, false)
}

fn run_with(data: &[u8], base: Instant, echo: bool) -> Vec<Line> {
    let mut u = Unstructured::new(data);
    let Ok(setup) = Setup::arbitrary(&mut u) else {
        return Vec::new();
    };
    let mut ops = Vec::new();
    while ops.len() < MAX_OPS && !u.is_empty() {
        match Op::arbitrary(&mut u) {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
    run_ops(&setup, &ops, base, echo)
}

/// Runs a scenario given as values (the generated replays build them
/// directly) twice, requires the same transcript, and returns its events
/// (`Debug` form). Panics when a property breaks, as [`engine`] does.
pub fn engine_scenario(setup: &Setup, ops: &[Op], base: Instant) -> Vec<String> {
    let first = run_ops(setup, ops, base, false);
    let second = run_ops(setup, ops, base, false);
    assert!(first == second, "not deterministic");
    first
        .into_iter()
        .filter_map(|line| match line {
            Line::Event(e) => Some(e),
            _ => None,
        })
        .collect()
}

fn run_ops(setup: &Setup, ops: &[Op], base: Instant, echo: bool) -> Vec<Line> {
    if echo {
        eprintln!("setup {setup:?}");
    }
    let Some(config) = config(setup) else {
        return Vec::new();
    };
    let mut h = Harness {
        group: Group::new(config, base),
        base,
        now: base,
        in_flight: Vec::new(),
        owned: BTreeSet::new(),
        revoking: BTreeSet::new(),
        fatal: 0,
        // 0 means 3 partitions, so the all-zero input assigns something.
        partitions: setup.partitions.map(|p| i32::from(p.wrapping_add(3) % 9)),
        generation: 0,
        next_member: 0,
        transcript: Vec::new(),
        instance_id: setup.static_member.then(|| "i-1".to_owned()),
        positions: BTreeMap::new(),
        commits: BTreeSet::new(),
        commits_done: BTreeSet::new(),
        fetches: BTreeSet::new(),
        committed: BTreeMap::new(),
        stored: BTreeMap::new(),
        echo,
    };
    let mask = if setup.topics & 0x0f == 0 {
        1
    } else {
        setup.topics
    };
    h.group.subscribe(h.now, topics_of(mask));
    h.drain();
    for op in ops.iter().take(MAX_OPS) {
        if h.echo {
            eprintln!("op {op:?} at {:?}", h.now.saturating_duration_since(h.base));
        }
        h.step(op);
        h.drain();
    }
    if h.echo {
        eprintln!("finish: close, answer what is in flight, run the deadlines");
    }
    h.finish();
    h.transcript
}

impl Harness {
    fn pick(&self, pick: u8) -> Option<usize> {
        if self.in_flight.is_empty() {
            None
        } else {
            Some(usize::from(pick) % self.in_flight.len())
        }
    }

    fn step(&mut self, op: &Op) {
        match op {
            Op::Respond(a) => {
                if let Some(i) = self.pick(a.pick) {
                    let sent = self.in_flight.remove(i);
                    let frame = self.answer(&sent, a);
                    self.group.handle_response(self.now, sent.id, frame);
                }
            }
            Op::Mutated(a, mutations) => {
                if let Some(i) = self.pick(a.pick) {
                    let sent = self.in_flight.remove(i);
                    let frame = mutate(self.answer(&sent, a), mutations);
                    self.group.handle_response(self.now, sent.id, frame);
                }
            }
            Op::Sampled { pick, seed } => {
                if let Some(i) = self.pick(*pick) {
                    let sent = self.in_flight.remove(i);
                    let mut rng = SampleRng::new(*seed);
                    let frame = sample_frame(sent.api, sent.version, sent.id.0, &mut rng)
                        .map(Bytes::from)
                        .unwrap_or_default();
                    self.group.handle_response(self.now, sent.id, frame);
                }
            }
            Op::Raw {
                pick,
                keep_id,
                bytes,
            } => {
                if let Some(i) = self.pick(*pick) {
                    let sent = self.in_flight.remove(i);
                    let mut frame = Vec::with_capacity(bytes.len() + 4);
                    if *keep_id {
                        frame.extend_from_slice(&sent.id.0.to_be_bytes());
                    }
                    frame.extend_from_slice(bytes);
                    self.group
                        .handle_response(self.now, sent.id, Bytes::from(frame));
                }
            }
            Op::Transport { pick, connect } => {
                if let Some(i) = self.pick(*pick) {
                    let sent = self.in_flight.remove(i);
                    let err = if *connect {
                        TransportError::ConnectFailed("refused".into())
                    } else {
                        TransportError::Disconnected("reset".into())
                    };
                    self.group.handle_transport_error(self.now, sent.id, err);
                }
            }
            Op::Advance { ms, long } => {
                let ms = u64::from(*ms) * if *long { 16 } else { 1 };
                let target = self.now + Duration::from_millis(ms);
                // As a driver does: wake at each deadline on the way.
                for _ in 0..256 {
                    match self.group.poll_timeout() {
                        Some(at) if at <= target => {
                            self.now = self.now.max(at);
                            self.fire();
                            self.drain();
                        }
                        _ => break,
                    }
                }
                self.now = self.now.max(target);
            }
            Op::Fire => {
                if let Some(at) = self.group.poll_timeout() {
                    self.now = self.now.max(at);
                    self.fire();
                }
            }
            Op::Subscribe(mask) => self.group.subscribe(self.now, topics_of(*mask)),
            Op::Hold => self.group.hold_rebalance(),
            Op::Allow => self.group.allow_rebalance(self.now),
            Op::AckRevoked => self.group.ack_revoked(self.now),
            Op::Close => self.group.close(self.now),
            Op::Leave => self.group.leave(self.now, "fuzz"),
            Op::Commit {
                owned,
                mask,
                step,
                meta,
            } => self.commit(*owned, *mask, *step, *meta),
            Op::Mark { owned, pick, step } => {
                let Some(tp) = self.choose(*owned, 1 << (pick % 16)).into_iter().next() else {
                    return;
                };
                let is_owned = self.group.owned().contains(&tp);
                let offset = self.advance(&tp, *step);
                if self
                    .group
                    .mark_processed(self.now, tp.clone(), offset)
                    .is_ok()
                {
                    assert!(is_owned, "a mark of {tp}, not owned, was accepted");
                    assert!(offset >= 0, "a negative mark was accepted");
                }
            }
            Op::FetchCommitted { owned, mask } => {
                let partitions = self.choose(*owned, *mask);
                let all_owned = partitions.iter().all(|tp| self.group.owned().contains(tp));
                if let Ok(id) = self.group.fetch_committed(self.now, partitions) {
                    assert!(all_owned, "a fetch of a partition not owned was accepted");
                    assert!(self.fetches.insert(id), "{id} returned twice");
                }
            }
            Op::RespondOffsets(a) => {
                if let Some(i) = self.pick_offsets(a.pick) {
                    let sent = self.in_flight.remove(i);
                    let frame = self.answer_offsets(&sent, a);
                    self.group.handle_response(self.now, sent.id, frame);
                }
            }
            Op::MutatedOffsets(a, mutations) => {
                if let Some(i) = self.pick_offsets(a.pick) {
                    let sent = self.in_flight.remove(i);
                    let frame = mutate(self.answer_offsets(&sent, a), mutations);
                    self.group.handle_response(self.now, sent.id, frame);
                }
            }
            Op::Repartition { topic, partitions } => {
                if let Some(p) = self.partitions.get_mut(usize::from(*topic) % TOPICS.len()) {
                    *p = i32::from(partitions % 9);
                }
            }
        }
    }

    fn record(&mut self, line: Line) {
        if self.echo {
            eprintln!("  {}", describe(&line));
        }
        self.transcript.push(line);
    }

    /// The index of the `pick`-th OffsetCommit/OffsetFetch in flight.
    fn pick_offsets(&self, pick: u8) -> Option<usize> {
        let offsets: Vec<usize> = (0..self.in_flight.len())
            .filter(|&i| {
                self.in_flight
                    .get(i)
                    .is_some_and(|s| matches!(s.api, ApiKey::OffsetCommit | ApiKey::OffsetFetch))
            })
            .collect();
        let n = offsets.len();
        (n > 0).then(|| offsets.get(usize::from(pick) % n).copied())?
    }

    /// Partitions picked by `mask`: among those owned now (bit i: the i-th,
    /// the first when no bit matches) or among all sixteen.
    fn choose(&self, owned: bool, mask: u16) -> Vec<TopicPartition> {
        if !owned {
            return mask_partitions(mask);
        }
        let all: Vec<&TopicPartition> = self.group.owned().iter().collect();
        let mut picked: Vec<TopicPartition> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << (i % 16)) != 0)
            .map(|(_, tp)| (*tp).clone())
            .collect();
        if picked.is_empty()
            && let Some(tp) = all.first()
        {
            picked.push((*tp).clone());
        }
        picked
    }

    /// The application's next position on `tp`: `step` past the last one
    /// (positions only move forward), or a negative offset for step 255.
    fn advance(&mut self, tp: &TopicPartition, step: u8) -> i64 {
        if step == 255 {
            return -2;
        }
        let p = self.positions.entry(tp.clone()).or_insert(0);
        *p += i64::from(step);
        *p
    }

    fn commit(&mut self, owned: bool, mask: u16, step: u8, meta: u8) {
        let partitions = self.choose(owned, mask);
        let all_owned = partitions.iter().all(|tp| self.group.owned().contains(tp));
        let mut negative = false;
        let offsets: Vec<(TopicPartition, CommittedOffset)> = partitions
            .into_iter()
            .map(|tp| {
                let offset = self.advance(&tp, step);
                negative |= offset < 0;
                let mut o = CommittedOffset::new(offset);
                if meta > 0 {
                    o = o.with_metadata("m".repeat(usize::from(meta % 32)));
                }
                (tp, o)
            })
            .collect();
        if let Ok(id) = self.group.commit(self.now, offsets) {
            // Rule 1 of the offsets contract (docs/offsets.md): only owned
            // partitions, only valid offsets.
            assert!(all_owned, "a commit of a partition not owned was accepted");
            assert!(!negative, "a commit of a negative offset was accepted");
            assert!(self.commits.insert(id), "{id} returned twice");
        }
    }

    /// After the last operation: close, then answer what is in flight with
    /// the happy answer (oldest first) and fire the deadlines until the
    /// member has left. Every commit and fetch the application made must
    /// have finished by then (docs/offsets.md: exactly one `CommitDone` per
    /// `CommitId`, one `FetchDone` per `FetchId`).
    fn finish(&mut self) {
        self.group.close(self.now);
        self.drain();
        // Requests the engine gave up on (timed out, connection replaced)
        // stay in `in_flight` until answered, and each answer takes a step:
        // a long run can leave hundreds (fuzz crash 464de6f9: 278 timed-out
        // bootstrap ApiVersions ahead of the LeaveGroup), so the budget
        // counts them on top of what closing itself takes.
        for _ in 0..FINISH_STEPS + self.in_flight.len() {
            if matches!(self.group.state(), GroupState::Left | GroupState::Failed)
                && self.commits.is_empty()
                && self.fetches.is_empty()
            {
                break;
            }
            if !self.in_flight.is_empty() {
                self.step(&Op::Respond(HAPPY));
                self.drain();
                continue;
            }
            let Some(at) = self.group.poll_timeout() else {
                break;
            };
            self.now = self.now.max(at);
            self.fire();
        }
        assert!(
            matches!(self.group.state(), GroupState::Left | GroupState::Failed),
            "close did not complete: {} (next deadline {:?}, in flight {:?})",
            self.group.state(),
            self.group.poll_timeout_reason().map(|(_, t)| t),
            self.in_flight
                .iter()
                .map(|s| (s.id.0, s.api))
                .collect::<Vec<_>>()
        );
        assert!(
            self.commits.is_empty(),
            "commits without CommitDone after close: {:?}",
            self.commits
        );
        assert!(
            self.fetches.is_empty(),
            "fetches without FetchDone after close: {:?}",
            self.fetches
        );
    }

    /// `handle_timeout(now)` until the next deadline is in the future: a
    /// deadline that stays at or before `now` would spin a driver forever.
    fn fire(&mut self) {
        for _ in 0..16 {
            self.group.handle_timeout(self.now);
            self.drain();
            match self.group.poll_timeout() {
                Some(at) if at <= self.now => continue,
                _ => return,
            }
        }
        panic!(
            "hang: deadline {:?} still at or before now after 16 handle_timeout calls ({:?})",
            self.group.poll_timeout_reason(),
            self.group.state()
        );
    }

    /// Drains every output and checks the invariants.
    fn drain(&mut self) {
        let mut transmits = 0;
        while let Some(t) = self.group.poll_transmit(self.now) {
            transmits += 1;
            assert!(
                transmits <= MAX_TRANSMITS,
                "unbounded transmits in one step"
            );
            let frame = t.bytes.clone();
            assert!(frame.len() >= 12, "request frame shorter than its header");
            let size = wire::peek_correlation_id(&frame);
            assert_eq!(size, i32::try_from(frame.len() - 4).ok(), "bad size prefix");
            let mut header = frame.slice(4..);
            let api = header.get_i16();
            let version = header.get_i16();
            let correlation = header.get_i32();
            assert_eq!(api, t.api as i16, "frame API differs from the Transmit");
            assert_eq!(correlation, t.id.0, "frame correlation id differs");
            assert!(
                wire::implemented(t.api).is_some_and(|s| s.contains(version)),
                "{:?} v{version} sent, outside what kgroup implements",
                t.api
            );
            assert!(
                self.in_flight.iter().all(|s| s.id != t.id),
                "request id {} reused while in flight",
                t.id
            );
            self.record(Line::Transmit(
                t.id.0,
                t.destination.connection.0,
                frame.clone(),
            ));
            let sent = Sent {
                id: t.id,
                api: t.api,
                version,
                frame: frame.slice(4..),
            };
            if t.api == ApiKey::OffsetCommit {
                self.check_commit_request(&sent);
            }
            self.in_flight.push(sent);
        }
        let mut events = 0;
        while let Some(e) = self.group.poll_event() {
            events += 1;
            assert!(events <= MAX_EVENTS, "unbounded events in one step");
            self.record(Line::Event(format!("{e:?}")));
            self.check_event(&e);
        }
        // Revoked partitions stay owned until the revocation completes, and
        // on close until the final commit is answered (docs/offsets.md rule
        // 5), which `Leaving` outlasts (LeaveGroup follows).
        match self.group.state() {
            GroupState::Revoking => {}
            GroupState::Leaving => {
                let released: Vec<TopicPartition> = self
                    .revoking
                    .iter()
                    .filter(|tp| !self.group.owned().contains(*tp))
                    .cloned()
                    .collect();
                for tp in released {
                    self.revoking.remove(&tp);
                    self.owned.remove(&tp);
                }
            }
            _ => self.release_revoked(),
        }
        // An `Assigned` held for its OffsetFetch (fetch_committed_on_assign)
        // already counts in `owned()`: its `added` partitions are the
        // difference, and it is emitted before any of them leaves.
        let mut expected = self.owned.clone();
        if let Some(held) = &self.group.held_assigned {
            for tp in &held.added {
                assert!(
                    expected.insert(tp.clone()),
                    "held Assigned adds {tp}, which the application already owns"
                );
            }
        }
        assert_eq!(
            &expected,
            self.group.owned(),
            "events and owned() disagree (state {})",
            self.group.state()
        );
        if self.group.state() == GroupState::Failed {
            assert!(
                self.group.owned().is_empty(),
                "a failed member owns partitions"
            );
            assert!(self.group.fatal_error().is_some());
        }
        let deadline = self
            .group
            .poll_timeout()
            .map(|at| at.saturating_duration_since(self.base));
        self.record(Line::Deadline(deadline));
    }

    /// Properties of an OffsetCommit as sent (docs/offsets.md rules 1 and
    /// 4): the engine's generation, member id and instance id at send time,
    /// only partitions owned now, offsets the application gave.
    fn check_commit_request(&self, sent: &Sent) {
        let req = match decode_request::<OffsetCommitRequest>(sent) {
            Ok(req) => req,
            Err(_) => panic!("OffsetCommit v{} sent that does not decode", sent.version),
        };
        assert_eq!(
            req.generation_id_or_member_epoch,
            self.group.generation(),
            "OffsetCommit sent with a generation that is not the current one"
        );
        assert_eq!(
            req.member_id.as_str(),
            self.group.member_id(),
            "OffsetCommit sent with a member id that is not the current one"
        );
        if sent.version >= 7 {
            assert_eq!(
                req.group_instance_id.as_ref().map(|i| i.as_str()),
                self.instance_id.as_deref(),
                "OffsetCommit sent with another instance id"
            );
        }
        assert!(self.group.generation() >= 0, "OffsetCommit sent unjoined");
        assert!(!req.topics.is_empty(), "empty OffsetCommit sent");
        for t in &req.topics {
            for p in &t.partitions {
                let tp = TopicPartition::new(t.name.0.as_str(), p.partition_index);
                assert!(
                    self.group.owned().contains(&tp),
                    "OffsetCommit sent for {tp}, not owned (state {})",
                    self.group.state()
                );
                let position = self.positions.get(&tp).copied().unwrap_or(0);
                assert!(
                    (0..=position).contains(&p.committed_offset),
                    "OffsetCommit sent offset {} for {tp}, beyond the application's {position}",
                    p.committed_offset
                );
            }
        }
    }

    fn check_offsets_event(&mut self, e: &OffsetEvent) {
        match e {
            OffsetEvent::CommitDone {
                id,
                kind,
                committed,
                result,
            } => {
                assert!(self.commits_done.insert(*id), "second CommitDone for {id}");
                if *kind == CommitKind::Manual {
                    assert!(self.commits.remove(id), "CommitDone for {id}, never made");
                }
                if result.is_ok() && *kind == CommitKind::Manual {
                    // Ok: every partition of the commit was written (a
                    // commit of the marks may find nothing left to send).
                    assert!(
                        !committed.is_empty(),
                        "manual {id} Ok with nothing committed"
                    );
                }
                for (tp, offset) in committed {
                    let last = self.committed.entry(tp.clone()).or_insert(*offset);
                    assert!(
                        *offset >= *last,
                        "committed offset of {tp} went back from {last} to {offset} ({id})"
                    );
                    *last = *offset;
                }
            }
            OffsetEvent::FetchDone { id, .. } => {
                assert!(
                    self.fetches.remove(id),
                    "FetchDone for {id}, not a fetch_committed of the application (or a second one)"
                );
            }
            OffsetEvent::Membership { .. } => {
                panic!("a membership action escaped the engine: {e:?}")
            }
        }
    }

    fn release_revoked(&mut self) {
        for tp in std::mem::take(&mut self.revoking) {
            self.owned.remove(&tp);
        }
    }

    fn check_event(&mut self, e: &Event) {
        match e {
            Event::Assigned {
                partitions,
                added,
                committed,
                ..
            } => {
                assert!(
                    committed.keys().eq(added.iter()),
                    "Assigned.committed keys are not `added`"
                );
                if self.group.config().fetch_on_assign {
                    // Fetched; NotFetched only when flushed before a
                    // revocation, a loss or a leave.
                } else {
                    assert!(
                        committed.values().all(|c| *c == Committed::NotFetched),
                        "offsets in Assigned with fetch_committed_on_assign off"
                    );
                }
                // A revocation completes before the next assignment.
                self.release_revoked();
                assert!(sorted_unique(partitions), "Assigned partitions not sorted");
                assert!(sorted_unique(added), "Assigned added not sorted");
                let new: BTreeSet<TopicPartition> = partitions.iter().cloned().collect();
                let expected: Vec<&TopicPartition> = new.difference(&self.owned).collect();
                let added_refs: Vec<&TopicPartition> = added.iter().collect();
                assert_eq!(added_refs, expected, "Assigned.added is not what is new");
                self.owned = new;
            }
            Event::Revoked { partitions } => {
                assert!(sorted_unique(partitions), "Revoked not sorted");
                for tp in partitions {
                    assert!(self.owned.contains(tp), "{tp} revoked but not owned");
                    self.revoking.insert(tp.clone());
                }
            }
            Event::Lost { partitions, .. } => {
                assert!(sorted_unique(partitions), "Lost not sorted");
                for tp in partitions {
                    assert!(self.owned.remove(tp), "{tp} lost but not owned");
                    self.revoking.remove(tp);
                }
            }
            Event::Fatal(_) => {
                self.fatal += 1;
                assert_eq!(self.fatal, 1, "more than one Fatal");
            }
            Event::Offsets(o) => self.check_offsets_event(o),
            _ => {}
        }
    }

    // ----- the fake broker --------------------------------------------------------

    fn answer(&mut self, sent: &Sent, a: &Answer) -> Bytes {
        let id = sent.id.0;
        let v = sent.version;
        let code = error_code(a.error);
        match sent.api {
            ApiKey::ApiVersions => self.api_versions(id, v, a, code),
            ApiKey::FindCoordinator => {
                let mut r = FindCoordinatorResponse::default();
                r.error_code = code;
                let node = i32::from(a.who % 3) + 1;
                r.node_id = BrokerId(node);
                r.host = StrBytes::from_static_str("127.0.0.1");
                r.port = 9091 + node;
                if v >= 1 && code != 0 {
                    r.error_message = Some(StrBytes::from_static_str("fuzz"));
                }
                respond(sent.api, v, id, &r)
            }
            ApiKey::Metadata => self.metadata(sent, a, code),
            ApiKey::JoinGroup => self.join(sent, a, code),
            ApiKey::SyncGroup => self.sync(sent, a, code),
            ApiKey::Heartbeat => {
                let mut r = HeartbeatResponse::default();
                r.error_code = code;
                respond(sent.api, v, id, &r)
            }
            ApiKey::LeaveGroup => {
                let mut r = LeaveGroupResponse::default();
                r.error_code = code;
                if v >= 3
                    && let Ok(req) = decode_request::<LeaveGroupRequest>(sent)
                {
                    r.members = req
                        .members
                        .iter()
                        .map(|m| {
                            let mut out = MemberResponse::default();
                            out.member_id = m.member_id.clone();
                            out.group_instance_id = m.group_instance_id.clone();
                            out.error_code = error_code(a.which);
                            out
                        })
                        .collect();
                }
                respond(sent.api, v, id, &r)
            }
            ApiKey::OffsetCommit => self.offset_commit(sent, a),
            ApiKey::OffsetFetch => self.offset_fetch(sent, a, code),
            _ => {
                let mut rng = SampleRng::new(u64::from(a.mask));
                sample_frame(sent.api, v, id, &mut rng)
                    .map(Bytes::from)
                    .unwrap_or_default()
            }
        }
    }

    fn api_versions(&self, id: i32, v: i16, a: &Answer, code: i16) -> Bytes {
        let mut r = ApiVersionsResponse::default();
        if code == 35 || (a.error >= 128 && a.which & 1 == 1) {
            // KIP-511 refusal: v0 layout, our ApiVersions range only.
            r.error_code = 35;
            let mut av = ApiVersion::default();
            av.api_key = ApiKey::ApiVersions as i16;
            av.min_version = 0;
            av.max_version = 2;
            r.api_keys = vec![av];
            return respond(ApiKey::ApiVersions, 0, id, &r);
        }
        r.error_code = code;
        r.api_keys = wire::IMPLEMENTED
            .iter()
            .enumerate()
            // `who` bit i drops API i (a broker without it): fatal.
            .filter(|(i, _)| a.who & 0x80 == 0 || a.who & (1 << (i % 7)) == 0)
            .map(|(i, (api, span))| {
                let mut av = ApiVersion::default();
                av.api_key = *api as i16;
                av.min_version = span.min;
                // `mask` caps versions: the broker is older than kgroup.
                let cap = ((a.mask >> (2 * (i % 8))) & 3) as i16;
                av.max_version = (span.max - cap).max(span.min);
                av
            })
            .collect();
        respond(ApiKey::ApiVersions, v, id, &r)
    }

    fn metadata(&self, sent: &Sent, a: &Answer, code: i16) -> Bytes {
        let requested: Vec<String> = match decode_request::<MetadataRequest>(sent) {
            Ok(req) => match req.topics {
                Some(ts) => ts
                    .iter()
                    .filter_map(|t| t.name.as_ref().map(|n| n.0.as_str().to_owned()))
                    .collect(),
                None => TOPICS.iter().map(|t| (*t).to_owned()).collect(),
            },
            Err(_) => Vec::new(),
        };
        let mut r = MetadataResponse::default();
        r.brokers = (1..=3)
            .map(|n| {
                let mut b = MetadataResponseBroker::default();
                b.node_id = BrokerId(n);
                b.host = StrBytes::from_static_str("127.0.0.1");
                b.port = 9091 + n;
                b
            })
            .collect();
        r.controller_id = BrokerId(1);
        r.topics = requested
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let mut t = MetadataResponseTopic::default();
                t.name = Some(TopicName(StrBytes::from_string(name.clone())));
                let known = TOPICS.iter().position(|k| k == name);
                // `mask` bit i: this topic answers with the chosen error.
                let err = if a.mask & (1 << (i % 16)) != 0 {
                    code
                } else {
                    0
                };
                t.error_code = if known.is_none() { 3 } else { err };
                let count = known
                    .and_then(|k| self.partitions.get(k).copied())
                    .unwrap_or(0);
                if t.error_code == 0 {
                    t.partitions = (0..count)
                        .map(|p| {
                            let mut mp = MetadataResponsePartition::default();
                            mp.partition_index = p;
                            mp.leader_id = BrokerId(p % 3 + 1);
                            mp.replica_nodes = vec![BrokerId(p % 3 + 1)];
                            mp.isr_nodes = vec![BrokerId(p % 3 + 1)];
                            mp
                        })
                        .collect();
                }
                t
            })
            .collect();
        respond(sent.api, sent.version, sent.id.0, &r)
    }

    fn join(&mut self, sent: &Sent, a: &Answer, code: i16) -> Bytes {
        let v = sent.version;
        let req = decode_request::<JoinGroupRequest>(sent).unwrap_or_default();
        let mut r = JoinGroupResponse::default();
        r.error_code = code;
        r.generation_id = -1;
        let member_id = if req.member_id.is_empty() {
            self.next_member += 1;
            StrBytes::from_string(format!("m-{}", self.next_member))
        } else {
            req.member_id.clone()
        };
        if code == 79 {
            // MEMBER_ID_REQUIRED (KIP-394) carries the id to use.
            r.member_id = member_id;
            return respond(sent.api, v, sent.id.0, &r);
        }
        if code != 0 {
            return respond(sent.api, v, sent.id.0, &r);
        }
        // `which`: generation step (low bits) and protocol choice (high bits).
        self.generation = self
            .generation
            .saturating_add(i32::from(a.which & 3))
            .max(1);
        r.generation_id = self.generation;
        let choice = usize::from(a.which >> 2);
        let protocol = match req.protocols.get(choice % req.protocols.len().max(1)) {
            Some(p) if choice < 60 => p.name.clone(),
            _ => StrBytes::from_static_str("bogus"),
        };
        if v >= 7 {
            r.protocol_type = Some(StrBytes::from_static_str(if a.which == 255 {
                "connect"
            } else {
                "consumer"
            }));
        }
        r.protocol_name = Some(protocol.clone());
        r.member_id = member_id.clone();
        // `who` 0..=191: this member leads; above: another member does.
        let leads = a.who < 192;
        r.leader = if leads {
            member_id.clone()
        } else {
            StrBytes::from_static_str("m-leader")
        };
        if leads {
            let own_metadata = req
                .protocols
                .iter()
                .find(|p| p.name == protocol)
                .map(|p| p.metadata.clone())
                .unwrap_or_default();
            let mut me = JoinGroupResponseMember::default();
            me.member_id = member_id;
            if v >= 5 {
                me.group_instance_id = req.group_instance_id.clone();
            }
            me.metadata = own_metadata;
            r.members.push(me);
            // `mask` low bits: other members, each with a subscription.
            for k in 0..(a.mask & 3) {
                let mut m = JoinGroupResponseMember::default();
                m.member_id = StrBytes::from_string(format!("m-other-{k}"));
                let bits = (a.mask >> (2 + 4 * k)) as u8;
                m.metadata = if bits & 0x0f == 0x0f {
                    Bytes::from_static(b"\x00\x07garbage")
                } else {
                    let mut sub = Subscription::new(topics_of(bits & 0x0f));
                    sub.generation_id = self.generation - 1;
                    sub.owned_partitions = vec![TopicPartition::new("t0", i32::from(k))];
                    sub.encode(i16::from(bits >> 4) % 4).unwrap_or_default()
                };
                r.members.push(m);
            }
        }
        respond(sent.api, v, sent.id.0, &r)
    }

    /// Every partition of the request answered, with the chosen error on
    /// the partitions picked by `mask`.
    fn offset_commit(&mut self, sent: &Sent, a: &Answer) -> Bytes {
        let mut bit = 0u32;
        let codes = |_: &TopicPartition| {
            let code = if a.mask & (1 << (bit % 16)) != 0 {
                error_code(a.error)
            } else {
                0
            };
            bit += 1;
            code
        };
        self.commit_answer(sent, codes, 0)
    }

    /// An OffsetCommit answer naming every partition of the request with
    /// `code(partition)`; `shape` as in [`OffsetAnswer`]. The fake broker
    /// stores what it accepts.
    fn commit_answer(
        &mut self,
        sent: &Sent,
        mut code: impl FnMut(&TopicPartition) -> i16,
        shape: u8,
    ) -> Bytes {
        let req = decode_request::<OffsetCommitRequest>(sent).unwrap_or_default();
        let mut r = OffsetCommitResponse::default();
        for t in &req.topics {
            let mut rt = OffsetCommitResponseTopic::default();
            rt.name = t.name.clone();
            rt.topic_id = t.topic_id;
            for p in &t.partitions {
                let tp = TopicPartition::new(t.name.0.as_str(), p.partition_index);
                let mut rp = OffsetCommitResponsePartition::default();
                rp.partition_index = p.partition_index;
                rp.error_code = code(&tp);
                if rp.error_code == 0 {
                    let meta = p.committed_metadata.as_ref().map(|m| m.as_str().to_owned());
                    self.stored.insert(tp, (p.committed_offset, meta));
                }
                rt.partitions.push(rp);
            }
            r.topics.push(rt);
        }
        reshape_commit(&mut r, shape);
        respond(sent.api, sent.version, sent.id.0, &r)
    }

    /// A detailed answer to an OffsetCommit or OffsetFetch in flight.
    fn answer_offsets(&mut self, sent: &Sent, a: &OffsetAnswer) -> Bytes {
        let mut k = 0usize;
        let mut per_partition = || {
            let knob = if a.codes.is_empty() {
                0
            } else {
                a.codes.get(k % a.codes.len()).copied().unwrap_or(0)
            };
            k += 1;
            offset_error(knob)
        };
        let top = offset_error(a.top);
        match sent.api {
            ApiKey::OffsetCommit => self.commit_answer(
                sent,
                |_| {
                    let code = per_partition();
                    if top != 0 { top } else { code }
                },
                a.shape,
            ),
            _ => {
                let mut n = 0usize;
                let stored = &self.stored;
                let mut partition = |tp: &TopicPartition| {
                    let (offset, meta) = match a.offsets.get(n % a.offsets.len().max(1)) {
                        Some(&o) => (i64::from(o), None),
                        None => stored.get(tp).cloned().unwrap_or((-1, None)),
                    };
                    n += 1;
                    let meta = if a.meta > 0 && n % 2 == 1 {
                        Some("x".repeat(usize::from(a.meta % 24)))
                    } else {
                        meta
                    };
                    FetchedPartition {
                        offset,
                        metadata: meta,
                        leader_epoch: if a.shape & 8 != 0 {
                            i32::from(a.meta)
                        } else {
                            -1
                        },
                        error: per_partition(),
                    }
                };
                fetch_answer(sent, top, &mut partition, a.shape)
            }
        }
    }

    /// The requested partitions with what the fake broker stored (none when
    /// `who` is odd; offset `which * 10` when `which` is not 0), the chosen
    /// error at the top level.
    fn offset_fetch(&self, sent: &Sent, a: &Answer, code: i16) -> Bytes {
        let stored = &self.stored;
        let mut partition = |tp: &TopicPartition| {
            let (offset, metadata) = if a.who & 1 == 1 {
                (-1, None)
            } else if a.which != 0 {
                (i64::from(a.which) * 10, None)
            } else {
                stored.get(tp).cloned().unwrap_or((-1, None))
            };
            FetchedPartition {
                offset,
                metadata,
                leader_epoch: -1,
                error: 0,
            }
        };
        fetch_answer(sent, code, &mut partition, 0)
    }

    fn sync(&self, sent: &Sent, a: &Answer, code: i16) -> Bytes {
        let v = sent.version;
        let req = decode_request::<SyncGroupRequest>(sent).unwrap_or_default();
        let mut r = SyncGroupResponse::default();
        r.error_code = code;
        if v >= 5 {
            r.protocol_type = Some(StrBytes::from_static_str("consumer"));
            r.protocol_name = req.protocol_name.clone();
        }
        if code == 0 {
            // The leader's own assignment when it sent one and `mask` is 0;
            // otherwise partitions picked by `mask` bits, possibly of topics
            // this member does not subscribe to or that do not exist.
            let own = req
                .assignments
                .iter()
                .find(|x| x.member_id == req.member_id)
                .map(|x| x.assignment.clone());
            r.assignment = match own {
                Some(bytes) if a.mask == 0 => bytes,
                _ if a.who == 255 => Bytes::from_static(b"\x00\x00\xff\xff\xff\x7f"),
                _ => {
                    let partitions = (0..16u16)
                        .filter(|b| a.mask & (1 << b) != 0)
                        .map(|b| {
                            let t = TOPICS[usize::from(b / 4)];
                            TopicPartition::new(t, i32::from(b % 4))
                        })
                        .collect();
                    Assignment::new(partitions)
                        .encode(i16::from(a.who % 4))
                        .unwrap_or_default()
                }
            };
        }
        respond(sent.api, v, sent.id.0, &r)
    }
}

/// One partition of a fake OffsetFetch answer.
struct FetchedPartition {
    offset: i64,
    metadata: Option<String>,
    leader_epoch: i32,
    error: i16,
}

/// An OffsetFetch answer naming every partition of the request (v1-7:
/// topics; v8+: groups), `top` as the top-level (v2-7) or group (v8+)
/// error; `shape` as in [`OffsetAnswer`].
fn fetch_answer(
    sent: &Sent,
    top: i16,
    partition: &mut dyn FnMut(&TopicPartition) -> FetchedPartition,
    shape: u8,
) -> Bytes {
    let v = sent.version;
    let req = decode_request::<OffsetFetchRequest>(sent).unwrap_or_default();
    let mut r = OffsetFetchResponse::default();
    let meta = |m: Option<String>| m.map(StrBytes::from_string);
    if v >= 8 {
        for g in &req.groups {
            let mut rg = OffsetFetchResponseGroup::default();
            rg.group_id = g.group_id.clone();
            rg.error_code = top;
            for t in g.topics.iter().flatten() {
                let mut rt = OffsetFetchResponseTopics::default();
                rt.name = t.name.clone();
                for &p in &t.partition_indexes {
                    let f = partition(&TopicPartition::new(t.name.0.as_str(), p));
                    let mut rp = OffsetFetchResponsePartitions::default();
                    rp.partition_index = p;
                    rp.committed_offset = f.offset;
                    rp.committed_leader_epoch = f.leader_epoch;
                    rp.metadata = meta(f.metadata);
                    rp.error_code = f.error;
                    rt.partitions.push(rp);
                }
                rg.topics.push(rt);
            }
            reshape(
                &mut rg.topics,
                shape,
                |t| &mut t.partitions,
                |p| p.partition_index = p.partition_index.wrapping_add(4),
            );
            r.groups.push(rg);
        }
    } else {
        if v >= 2 {
            r.error_code = top;
        }
        for t in req.topics.iter().flatten() {
            let mut rt = OffsetFetchResponseTopic::default();
            rt.name = t.name.clone();
            for &p in &t.partition_indexes {
                let f = partition(&TopicPartition::new(t.name.0.as_str(), p));
                let mut rp = OffsetFetchResponsePartition::default();
                rp.partition_index = p;
                rp.committed_offset = f.offset;
                if v >= 5 {
                    rp.committed_leader_epoch = f.leader_epoch;
                }
                rp.metadata = meta(f.metadata);
                rp.error_code = f.error;
                rt.partitions.push(rp);
            }
            r.topics.push(rt);
        }
        reshape(
            &mut r.topics,
            shape,
            |t| &mut t.partitions,
            |p| p.partition_index = p.partition_index.wrapping_add(4),
        );
    }
    respond(sent.api, v, sent.id.0, &r)
}

fn reshape_commit(r: &mut OffsetCommitResponse, shape: u8) {
    reshape(
        &mut r.topics,
        shape,
        |t| &mut t.partitions,
        |p| p.partition_index = p.partition_index.wrapping_add(4),
    );
}

/// Implausible shapes of a per-topic, per-partition answer: bit 0 drops the
/// last partition, bit 1 repeats the first, bit 2 adds one never asked for.
fn reshape<T, P: Clone>(
    topics: &mut [T],
    shape: u8,
    partitions: impl Fn(&mut T) -> &mut Vec<P>,
    other: impl Fn(&mut P),
) {
    if shape & 7 == 0 {
        return;
    }
    let Some(first) = topics.first_mut() else {
        return;
    };
    let ps = partitions(first);
    if shape & 2 != 0
        && let Some(p) = ps.first().cloned()
    {
        ps.push(p);
    }
    if shape & 4 != 0
        && let Some(mut p) = ps.first().cloned()
    {
        other(&mut p);
        ps.push(p);
    }
    if shape & 1 != 0
        && let Some(last) = topics.last_mut()
    {
        partitions(last).pop();
    }
}

/// The partitions picked by mask bits (bit `4t + p`: topic t, partition p).
fn mask_partitions(mask: u16) -> Vec<TopicPartition> {
    (0..16u16)
        .filter(|b| mask & (1 << b) != 0)
        .map(|b| TopicPartition::new(TOPICS[usize::from(b / 4)], i32::from(b % 4)))
        .collect()
}

fn sorted_unique(v: &[TopicPartition]) -> bool {
    v.windows(2).all(|w| matches!(w, [a, b] if a < b))
}

/// Decodes the body of a request frame the engine sent (without its size
/// prefix), after its request header.
fn decode_request<R: Decodable>(sent: &Sent) -> anyhow_free::Result<R> {
    let mut buf = sent.frame.clone();
    let header_version = sent.api.request_header_version(sent.version);
    RequestHeader::decode(&mut buf, header_version).map_err(|_| anyhow_free::Error)?;
    R::decode(&mut buf, sent.version).map_err(|_| anyhow_free::Error)
}

/// A tiny error type, so the harness needs no `anyhow` dependency.
mod anyhow_free {
    /// Decoding a request failed.
    #[derive(Debug)]
    pub struct Error;
    /// Result with [`Error`].
    pub type Result<T> = std::result::Result<T, Error>;
}

/// A response frame (without size prefix): correlation id, response header
/// tags when flexible, body. A body the encoder refuses becomes an empty
/// body (itself hostile input for the engine).
fn respond<R: Encodable>(api: ApiKey, version: i16, id: i32, body: &R) -> Bytes {
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i32(id);
    if wire::response_header_version(api, version) >= 1 {
        buf.put_u8(0);
    }
    if body.encode(&mut buf, version).is_err() {
        buf.truncate(if wire::response_header_version(api, version) >= 1 {
            5
        } else {
            4
        });
    }
    buf.freeze()
}

fn mutate(frame: Bytes, mutations: &[Mutation]) -> Bytes {
    let mut f = frame.to_vec();
    for m in mutations.iter().take(4) {
        let len = f.len().max(1);
        match m {
            Mutation::Flip { at, bit } => {
                if let Some(b) = f.get_mut(usize::from(*at) % len) {
                    *b ^= 1 << (bit % 8);
                }
            }
            Mutation::Truncate { at } => f.truncate(usize::from(*at) % len),
            Mutation::Insert { at, bytes } => {
                let at = (usize::from(*at) % len).min(f.len());
                let bytes = bytes.get(..64).unwrap_or(bytes);
                f.splice(at..at, bytes.iter().copied());
            }
            Mutation::Overwrite { at, value } => {
                let at = usize::from(*at) % len;
                for (k, b) in value.to_be_bytes().iter().enumerate() {
                    if let Some(slot) = f.get_mut(at + k) {
                        *slot = *b;
                    }
                }
            }
        }
    }
    Bytes::from(f)
}
