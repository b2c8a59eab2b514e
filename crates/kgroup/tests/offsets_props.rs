//! Property test of the offsets component: random sequences of commits,
//! marks, fetches, rebalance phase changes, coordinator moves, responses
//! (success, every OffsetCommit error of PROTOCOL.md §2.7, transport
//! failures) and time.
//!
//! Invariants checked on every request the component emits:
//! - an OffsetCommit carries the generation and member id of the membership
//!   current at that moment, and only goes out in `Stable` or `Revoking`;
//! - every offset in it is for a partition owned now, and was committed or
//!   marked during the *current* continuous ownership of that partition
//!   (never carried over a revoke, a loss or a reset);
//! - per partition, offsets acknowledged by the coordinator never go
//!   backwards (the application's positions only grow);
//!
//! and at the end, after the membership settles and the coordinator answers
//! everything: every mark made during the current ownership of an owned
//! partition has been committed (nothing marked is lost), and every commit
//! and fetch id got exactly one completion event.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kgroup::TopicPartition;
use kgroup::kafka_protocol::ResponseError as E;
use kgroup::kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartitions, OffsetFetchResponseTopics,
};
use kgroup::kafka_protocol::messages::{GroupId, OffsetFetchResponse};
use kgroup::kafka_protocol::protocol::StrBytes;
use kgroup::offsets::{
    CommitId, CommittedOffset, FetchId, MembershipView, OffsetEvent, OffsetRequest,
    OffsetRequestBody, OffsetVersions, Offsets, OffsetsConfig, RebalancePhase, RequestFailure,
    commit_response_for,
};
use proptest::prelude::*;

mod prop_config;

const PARTITIONS: i32 = 4;

fn tp(p: i32) -> TopicPartition {
    TopicPartition::new("t", p)
}

#[allow(clippy::disallowed_methods)] // an arbitrary base for virtual time
fn t0() -> Instant {
    Instant::now()
}

#[derive(Clone, Debug)]
enum Op {
    Commit(u8),
    Mark(u8),
    Flush,
    Fetch(u8),
    Advance(u16),
    /// The coordinator is lost; bit `i` says whether the outstanding
    /// request at index `i` reached the broker and was applied.
    CoordinatorLost(u8),
    CoordinatorReady,
    /// Answer the outstanding request at this index with this response kind.
    Respond(u8, u8),
    CoopJoin,
    CoopComplete(u8),
    EagerRevoke,
    AckRevoke,
    EagerComplete(u8),
    Reset,
    Join(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<u8>().prop_map(Op::Commit),
        4 => any::<u8>().prop_map(Op::Mark),
        1 => Just(Op::Flush),
        1 => any::<u8>().prop_map(Op::Fetch),
        3 => (0u16..3000).prop_map(Op::Advance),
        1 => any::<u8>().prop_map(Op::CoordinatorLost),
        2 => Just(Op::CoordinatorReady),
        8 => (any::<u8>(), any::<u8>()).prop_map(|(i, k)| Op::Respond(i, k)),
        1 => Just(Op::CoopJoin),
        1 => any::<u8>().prop_map(Op::CoopComplete),
        1 => Just(Op::EagerRevoke),
        2 => Just(Op::AckRevoke),
        1 => any::<u8>().prop_map(Op::EagerComplete),
        1 => Just(Op::Reset),
        1 => any::<u8>().prop_map(Op::Join),
    ]
}

/// Response kinds for an OffsetCommit: success and every §2.7 row.
const COMMIT_CODES: [i16; 12] = [
    0,
    0,
    0,
    E::NotCoordinator.code(),
    E::CoordinatorNotAvailable.code(),
    E::RequestTimedOut.code(),
    E::CoordinatorLoadInProgress.code(),
    E::RebalanceInProgress.code(),
    E::IllegalGeneration.code(),
    E::UnknownMemberId.code(),
    E::UnknownTopicOrPartition.code(),
    E::OffsetMetadataTooLarge.code(),
];

fn mask(m: u8) -> BTreeSet<TopicPartition> {
    (0..PARTITIONS)
        .filter(|p| m & (1 << p) != 0)
        .map(tp)
        .collect()
}

/// The group engine's part, reduced to what the offsets component sees,
/// plus the bookkeeping the invariants need.
struct Model {
    o: Offsets,
    now: Instant,
    generation: i32,
    member: u32,
    phase: RebalancePhase,
    owned: BTreeSet<TopicPartition>,
    /// Cooperative: partitions revoked but still owned until the ack.
    revoking: BTreeSet<TopicPartition>,
    eager_revoke: bool,
    /// Ownership epoch per partition: bumped whenever it leaves this member.
    epoch: BTreeMap<TopicPartition, u32>,
    /// The application's position per partition (only grows).
    position: BTreeMap<TopicPartition, i64>,
    /// (partition, offset) → ownership epoch it was committed/marked in.
    origin: BTreeMap<(TopicPartition, i64), u32>,
    /// Latest mark per partition with its epoch.
    marks: BTreeMap<TopicPartition, (i64, u32)>,
    /// Highest offset acknowledged by the "broker" per partition.
    acked: BTreeMap<TopicPartition, i64>,
    /// Requests sent and not answered yet, each with whether its outcome at
    /// the broker is already decided (it was abandoned: applied or not).
    outstanding: Vec<(OffsetRequest, bool)>,
    commit_ids: Vec<CommitId>,
    fetch_ids: Vec<FetchId>,
    done_commits: Vec<CommitId>,
    done_fetches: Vec<FetchId>,
}

impl Model {
    fn new(seed: u64) -> Self {
        let now = t0();
        let config = OffsetsConfig::new("g")
            .with_auto_commit(Some(Duration::from_millis(500)))
            .with_commit_timeout(Duration::from_secs(5))
            .with_seed(seed);
        let mut m = Self {
            o: Offsets::new(config, now).unwrap(),
            now,
            generation: 0,
            member: 1,
            phase: RebalancePhase::Unjoined,
            owned: BTreeSet::new(),
            revoking: BTreeSet::new(),
            eager_revoke: false,
            epoch: BTreeMap::new(),
            position: BTreeMap::new(),
            origin: BTreeMap::new(),
            marks: BTreeMap::new(),
            acked: BTreeMap::new(),
            outstanding: Vec::new(),
            commit_ids: Vec::new(),
            fetch_ids: Vec::new(),
            done_commits: Vec::new(),
            done_fetches: Vec::new(),
        };
        m.o.handle_coordinator_ready(now, OffsetVersions::MAX)
            .unwrap();
        m
    }

    fn member_id(&self) -> String {
        format!("m-{}", self.member)
    }

    fn set_view(&mut self, phase: RebalancePhase, owned: BTreeSet<TopicPartition>) {
        let left: Vec<TopicPartition> = self.owned.difference(&owned).cloned().collect();
        for p in left {
            *self.epoch.entry(p.clone()).or_default() += 1;
            self.marks.remove(&p);
        }
        self.phase = phase;
        self.owned = owned;
        let view = if phase == RebalancePhase::Unjoined {
            MembershipView::unjoined()
        } else {
            MembershipView::member(
                self.generation,
                self.member_id(),
                self.owned.iter().cloned(),
                phase,
            )
        };
        self.o.handle_membership(self.now, view);
    }

    fn next_position(&mut self, p: &TopicPartition) -> i64 {
        let pos = self.position.entry(p.clone()).or_insert(0);
        *pos += 1 + (*pos % 3);
        let v = *pos;
        let e = self.epoch.get(p).copied().unwrap_or(0);
        self.origin.insert((p.clone(), v), e);
        v
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Commit(m) => {
                let parts: Vec<TopicPartition> =
                    mask(m).intersection(&self.owned).cloned().collect();
                if parts.is_empty() {
                    return;
                }
                let offsets: Vec<(TopicPartition, CommittedOffset)> = parts
                    .iter()
                    .map(|p| (p.clone(), CommittedOffset::new(self.next_position(p))))
                    .collect();
                match self.o.commit(self.now, offsets) {
                    Ok(id) => self.commit_ids.push(id),
                    Err(e) => assert!(
                        !matches!(
                            self.phase,
                            RebalancePhase::Stable | RebalancePhase::Revoking
                        ),
                        "refused while it should be accepted: {e}"
                    ),
                }
            }
            Op::Mark(p) => {
                let p = tp(i32::from(p) % PARTITIONS);
                if !self.owned.contains(&p) {
                    assert!(self.o.mark_processed(p, 1).is_err());
                    return;
                }
                let v = self.next_position(&p);
                if self.o.mark_processed(p.clone(), v).is_ok() {
                    let e = self.epoch.get(&p).copied().unwrap_or(0);
                    self.marks.insert(p, (v, e));
                }
            }
            Op::Flush => {
                if let Some(id) = self.o.flush_marks(self.now) {
                    self.commit_ids.push(id);
                }
            }
            Op::Fetch(m) => {
                let parts: Vec<TopicPartition> =
                    mask(m).intersection(&self.owned).cloned().collect();
                if let Ok(id) = self.o.fetch(self.now, parts) {
                    self.fetch_ids.push(id);
                }
            }
            Op::Advance(ms) => {
                self.now += Duration::from_millis(u64::from(ms));
                self.o.handle_timeout(self.now);
            }
            Op::CoordinatorLost(landed) => {
                // What the member abandons was applied by the broker before
                // anything it sends later, or never: a broker takes requests
                // from one queue in arrival order, and a coordinator that
                // moved can no longer append to the group's offsets
                // partition. The late answers still come, to be ignored.
                for i in 0..self.outstanding.len() {
                    if !self.outstanding[i].1 {
                        self.outstanding[i].1 = true;
                        if landed & (1 << (i % 8)) != 0 {
                            let req = self.outstanding[i].0.clone();
                            self.apply_at_broker(&req);
                        }
                    }
                }
                self.o.handle_coordinator_lost(self.now);
            }
            Op::CoordinatorReady => self
                .o
                .handle_coordinator_ready(self.now, OffsetVersions::MAX)
                .unwrap(),
            Op::Respond(i, k) => {
                if self.outstanding.is_empty() {
                    return;
                }
                let (req, decided) = self
                    .outstanding
                    .remove(usize::from(i) % self.outstanding.len());
                self.respond(&req, decided, k);
            }
            Op::CoopJoin => {
                if self.phase == RebalancePhase::Stable {
                    self.set_view(RebalancePhase::CooperativeJoining, self.owned.clone());
                }
            }
            Op::CoopComplete(m) => {
                if self.phase == RebalancePhase::CooperativeJoining {
                    self.generation += 1;
                    let assigned = mask(m);
                    self.revoking = self.owned.difference(&assigned).cloned().collect();
                    let owned: BTreeSet<_> = self.owned.union(&assigned).cloned().collect();
                    self.eager_revoke = false;
                    let phase = if self.revoking.is_empty() {
                        RebalancePhase::Stable
                    } else {
                        RebalancePhase::Revoking
                    };
                    self.set_view(phase, owned);
                }
            }
            Op::EagerRevoke => {
                if self.phase == RebalancePhase::Stable {
                    self.revoking = self.owned.clone();
                    self.eager_revoke = true;
                    self.set_view(RebalancePhase::Revoking, self.owned.clone());
                }
            }
            Op::AckRevoke => {
                if self.phase == RebalancePhase::Revoking {
                    if self.eager_revoke {
                        self.set_view(RebalancePhase::EagerJoining, BTreeSet::new());
                    } else {
                        let owned = self.owned.difference(&self.revoking).cloned().collect();
                        self.set_view(RebalancePhase::Stable, owned);
                    }
                    self.revoking.clear();
                }
            }
            Op::EagerComplete(m) => {
                if self.phase == RebalancePhase::EagerJoining {
                    self.generation += 1;
                    self.set_view(RebalancePhase::Stable, mask(m));
                }
            }
            Op::Reset => {
                if self.phase != RebalancePhase::Unjoined {
                    self.set_view(RebalancePhase::Unjoined, BTreeSet::new());
                }
            }
            Op::Join(m) => {
                if self.phase == RebalancePhase::Unjoined {
                    self.generation += 1;
                    self.member += 1;
                    self.set_view(RebalancePhase::Stable, mask(m));
                }
            }
        }
    }

    /// The broker applies an OffsetCommit: acknowledged offsets must not
    /// regress.
    fn apply_at_broker(&mut self, req: &OffsetRequest) {
        if let OffsetRequestBody::Commit(body) = &req.body {
            for t in &body.topics {
                for p in &t.partitions {
                    let key = TopicPartition::new(t.name.0.as_str(), p.partition_index);
                    let prev = self.acked.insert(key.clone(), p.committed_offset);
                    assert!(
                        prev.is_none_or(|prev| prev <= p.committed_offset),
                        "{key}: committed offset went back from {prev:?} to {}",
                        p.committed_offset
                    );
                }
            }
        }
    }

    /// Answer `req`. `decided`: its outcome at the broker was settled when
    /// it was abandoned, so this answer changes nothing there.
    fn respond(&mut self, req: &OffsetRequest, decided: bool, kind: u8) {
        if kind % 13 == 12 {
            // The member never learns the outcome; the broker may have
            // applied it (before anything the member sends later).
            if !decided && (kind / 13) % 2 == 1 {
                self.apply_at_broker(req);
            }
            self.o
                .handle_request_failure(self.now, req.tag, RequestFailure::TimedOut);
            return;
        }
        match &req.body {
            OffsetRequestBody::Commit(body) => {
                let code = COMMIT_CODES[usize::from(kind) % COMMIT_CODES.len()];
                if code == 0 && !decided {
                    self.apply_at_broker(req);
                }
                let resp = commit_response_for(body, |_, _| code);
                self.o.handle_commit_response(self.now, req.tag, &resp);
            }
            OffsetRequestBody::Fetch(body) => {
                let code = [
                    0,
                    0,
                    E::UnstableOffsetCommit.code(),
                    E::NotCoordinator.code(),
                ][usize::from(kind) % 4];
                let groups = body
                    .groups
                    .iter()
                    .map(|g| {
                        let topics = g
                            .topics
                            .iter()
                            .flatten()
                            .map(|t| {
                                OffsetFetchResponseTopics::default()
                                    .with_name(t.name.clone())
                                    .with_partitions(
                                        t.partition_indexes
                                            .iter()
                                            .map(|p| {
                                                OffsetFetchResponsePartitions::default()
                                                    .with_partition_index(*p)
                                                    .with_committed_offset(-1)
                                                    .with_error_code(code)
                                            })
                                            .collect(),
                                    )
                            })
                            .collect();
                        OffsetFetchResponseGroup::default()
                            .with_group_id(GroupId(StrBytes::from_static_str("g")))
                            .with_topics(topics)
                    })
                    .collect();
                let resp = OffsetFetchResponse::default().with_groups(groups);
                self.o.handle_fetch_response(self.now, req.tag, &resp);
            }
        }
    }

    /// Drain requests and events, checking the send-time invariants.
    fn drain(&mut self) {
        while let Some(req) = self.o.poll_request(self.now) {
            if let OffsetRequestBody::Commit(body) = &req.body {
                assert!(
                    matches!(
                        self.phase,
                        RebalancePhase::Stable | RebalancePhase::Revoking
                    ),
                    "commit sent in {:?}",
                    self.phase
                );
                assert_eq!(
                    body.generation_id_or_member_epoch, self.generation,
                    "stale generation sent"
                );
                assert_eq!(req.tag.generation, self.generation);
                assert_eq!(body.member_id.as_str(), self.member_id());
                for t in &body.topics {
                    for p in &t.partitions {
                        let key = TopicPartition::new(t.name.0.as_str(), p.partition_index);
                        assert!(self.owned.contains(&key), "{key} sent but not owned");
                        let made_in = self.origin.get(&(key.clone(), p.committed_offset));
                        let now_epoch = self.epoch.get(&key).copied().unwrap_or(0);
                        assert_eq!(
                            made_in,
                            Some(&now_epoch),
                            "{key}@{} was made in another ownership",
                            p.committed_offset
                        );
                    }
                }
            }
            self.outstanding.push((req, false));
        }
        while let Some(ev) = self.o.poll_event() {
            match ev {
                OffsetEvent::CommitDone { id, .. } => {
                    assert!(!self.done_commits.contains(&id), "{id} completed twice");
                    self.done_commits.push(id);
                }
                OffsetEvent::FetchDone { id, .. } => {
                    assert!(!self.done_fetches.contains(&id), "{id} completed twice");
                    self.done_fetches.push(id);
                }
                OffsetEvent::Membership { .. } => {}
            }
        }
    }

    /// Faults stop: the membership settles on a new generation keeping what
    /// is owned (cooperative), the coordinator answers everything.
    fn settle(&mut self) {
        match self.phase {
            RebalancePhase::Revoking => self.apply(Op::AckRevoke),
            RebalancePhase::CooperativeJoining => {}
            _ => {}
        }
        self.drain();
        if matches!(
            self.phase,
            RebalancePhase::CooperativeJoining | RebalancePhase::Stable
        ) {
            self.generation += 1;
            self.set_view(RebalancePhase::Stable, self.owned.clone());
        }
        self.o
            .handle_coordinator_ready(self.now, OffsetVersions::MAX)
            .unwrap();
        for _ in 0..200 {
            self.drain();
            if self.outstanding.is_empty()
                && self.o.flush_marks(self.now).is_none()
                && !self.o.blocking_rebalance()
            {
                break;
            }
            for (req, decided) in std::mem::take(&mut self.outstanding) {
                self.respond(&req, decided, 0);
            }
            self.now += Duration::from_secs(2);
            self.o.handle_timeout(self.now);
        }
        self.drain();
    }
}

fn run(seed: u64, ops: Vec<Op>) {
    let mut m = Model::new(seed);
    m.apply(Op::Join(0b1111));
    m.drain();
    for op in ops {
        m.apply(op);
        m.drain();
    }
    m.settle();
    // Nothing marked during the current ownership is lost.
    if m.phase == RebalancePhase::Stable {
        for (p, (offset, epoch)) in &m.marks {
            if m.owned.contains(p) && m.epoch.get(p).copied().unwrap_or(0) == *epoch {
                let acked = m.acked.get(p).copied();
                assert!(
                    acked.is_some_and(|a| a >= *offset),
                    "{p}: mark {offset} never committed (acked {acked:?})"
                );
            }
        }
    }
    // Every id completes exactly once (after giving up on what is left).
    m.o.abandon(m.now);
    m.drain();
    let want: BTreeSet<_> = m.commit_ids.iter().copied().collect();
    let got: BTreeSet<_> = m.done_commits.iter().copied().collect();
    assert!(
        want.is_subset(&got),
        "commits without a CommitDone: {:?}",
        want.difference(&got)
    );
    let want: BTreeSet<_> = m.fetch_ids.iter().copied().collect();
    let got: BTreeSet<_> = m.done_fetches.iter().copied().collect();
    assert_eq!(want, got, "fetches without exactly one FetchDone");
}

proptest! {
    // A fixed seed in CI; `KGROUP_PROPTEST_SEED=random` searches further
    // (prop_config). A random seed found the two regressions below.
    #![proptest_config(prop_config::config(384))]

    #[test]
    fn never_a_stale_generation_never_a_lost_or_regressed_mark(
        seed in any::<u64>(),
        ops in proptest::collection::vec(op(), 0..80),
    ) {
        run(seed, ops);
    }
}

#[test]
fn a_long_fixed_schedule_holds_the_invariants() {
    // A deterministic long run mixing everything, as a regression anchor.
    let mut ops = Vec::new();
    for i in 0u16..600 {
        let k = (i.wrapping_mul(7919) % 97) as u8;
        ops.push(match i % 11 {
            0 => Op::Commit(k),
            1 => Op::Mark(k),
            2 => Op::Respond(k, k / 3),
            3 => Op::Advance(u16::from(k) * 20),
            4 => Op::Respond(k, 0),
            5 => [
                Op::CoopJoin,
                Op::CoopComplete(k),
                Op::AckRevoke,
                Op::EagerRevoke,
            ][usize::from(k) % 4]
                .clone(),
            6 => Op::Mark(k / 2),
            7 => [
                Op::EagerComplete(k),
                Op::Reset,
                Op::Join(k),
                Op::CoordinatorLost(k),
            ][usize::from(k) % 4]
                .clone(),
            8 => Op::CoordinatorReady,
            9 => Op::Flush,
            _ => Op::Fetch(k),
        });
    }
    run(42, ops);
}

/// Found by a random proptest seed in CI (2026-12-01): a manual commit of
/// t-0@4 was abandoned when the coordinator was lost, but the broker had
/// applied it; its retry then expired, and the older mark t-0@3 went out
/// and moved the committed offset back. A commit of the marks now never
/// sends less than an offset whose outcome is unknown.
#[test]
fn a_mark_never_goes_out_below_a_commit_that_may_have_landed() {
    use Op::*;
    run(
        0,
        vec![
            Commit(1),
            Respond(0, 3),
            Mark(0),
            CoordinatorReady,
            CoordinatorReady,
            Commit(43),
            Commit(0),
            Advance(2078),
            Respond(0, 23),
            Flush,
            Advance(2618),
            Flush,
            CoordinatorLost(0xff),
            Advance(304),
            Commit(92),
        ],
    );
}

/// The same after a transport failure: the request timed out but the
/// broker had applied it (kind 25), and the retry expired while no
/// coordinator was known.
#[test]
fn a_mark_never_goes_out_below_a_commit_that_timed_out_after_landing() {
    use Op::*;
    run(
        0,
        vec![
            Mark(0),
            Commit(1),
            Respond(0, 25),
            CoordinatorLost(0),
            Advance(2999),
            Advance(2999),
            CoordinatorReady,
            Flush,
        ],
    );
}
