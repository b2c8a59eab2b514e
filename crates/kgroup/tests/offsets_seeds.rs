//! Seeds 003 and 004, in memory: several [`Offsets`] components, each driven
//! by a minimal stand-in for the group engine, against a model of the
//! classic coordinator's offset rules (`ClassicGroup.validateOffsetCommit`:
//! unknown member → `UNKNOWN_MEMBER_ID`, wrong generation →
//! `ILLEGAL_GENERATION`, CompletingRebalance → `REBALANCE_IN_PROGRESS`, the
//! current generation accepted during PreparingRebalance), over a virtual
//! network that keeps each member's requests in order.
//!
//! Seed 003: 72 partitions, members scaling 2 → 30 → 2, every member
//! committing every 100 ms of virtual time (half with explicit commits,
//! half with marks and auto-commit), eager and cooperative. Seed 004: the
//! coordinator's broker goes down and comes back while members commit.
//!
//! Checked: no commit is sent with a generation other than the member's
//! current one; the coordinator never answers `ILLEGAL_GENERATION` or
//! `UNKNOWN_MEMBER_ID` (the seed-003 storm cannot happen); every commit
//! result is classified; committed offsets never go backwards; a commit is
//! accepted only from the partition's owner (or while nobody else owns it);
//! simulated consumption never skips a record (a new owner starts at or
//! before the highest processed offset: at-least-once).
//!
//! The group engine's part is reduced to what offsets needs: rebalances are
//! one Join→Sync exchange, heartbeats are a per-member delay before a member
//! learns a rebalance started. The full engine runs these seeds in
//! `kgroup-sim` later.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kgroup::TopicPartition;
use kgroup::kafka_protocol::ResponseError as E;
use kgroup::kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartitions, OffsetFetchResponseTopics,
};
use kgroup::kafka_protocol::messages::{GroupId, OffsetCommitResponse, OffsetFetchResponse};
use kgroup::kafka_protocol::protocol::StrBytes;
use kgroup::offsets::{
    CommitError, CommittedOffset, FetchId, MembershipView, OffsetEvent, OffsetRequest,
    OffsetRequestBody, OffsetVersions, Offsets, OffsetsConfig, RebalancePhase, RequestFailure,
};

const TOPIC: &str = "events";
const PARTITIONS: i32 = 72;
const STEP: Duration = Duration::from_millis(10);

fn tp(p: i32) -> TopicPartition {
    TopicPartition::new(TOPIC, p)
}

#[allow(clippy::disallowed_methods)] // an arbitrary base for virtual time
fn t0() -> Instant {
    Instant::now()
}

/// Tiny deterministic generator for delays (SplitMix64).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn ms(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next() % (hi - lo + 1))
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Protocol {
    Eager,
    Cooperative,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum CoordState {
    Stable,
    Preparing,
    Completing,
}

/// Messages on the virtual network.
enum ToCoord {
    Offsets(OffsetRequest),
    Join { owned: BTreeSet<TopicPartition> },
}

enum ToMember {
    Response(Box<OffsetRequest>, Option<Reply>),
    RebalanceStarted,
    Assignment {
        generation: i32,
        partitions: BTreeSet<TopicPartition>,
    },
    CoordinatorBack,
}

enum Reply {
    Commit(OffsetCommitResponse),
    Fetch(OffsetFetchResponse),
}

#[derive(PartialEq, Eq, Debug)]
enum Stage {
    Stable,
    /// Revoked event out; waiting for commits (bounded) before the ack.
    Revoking {
        since: Instant,
        then_rejoin: bool,
    },
    Joining,
    Left,
}

struct Member {
    id: String,
    o: Offsets,
    manual: bool,
    generation: i32,
    owned: BTreeSet<TopicPartition>,
    revoking: BTreeSet<TopicPartition>,
    stage: Stage,
    /// Consumption position of partitions whose committed offset is known.
    position: BTreeMap<TopicPartition, i64>,
    fetching: Option<FetchId>,
    coordinator_known: bool,
    /// Per-connection order: nothing is delivered before this instant.
    last_send: Instant,
    last_recv: Instant,
    leaving: bool,
}

struct Sim {
    rng: Rng,
    now: Instant,
    protocol: Protocol,
    members: BTreeMap<String, Member>,
    next_member: u32,
    // coordinator
    up: bool,
    generation: i32,
    state: CoordState,
    roster: BTreeSet<String>,
    joined: BTreeMap<String, BTreeSet<TopicPartition>>,
    /// JoinGroups that arrived while CompletingRebalance: the next round's.
    early_joins: BTreeMap<String, BTreeSet<TopicPartition>>,
    assignment: BTreeMap<String, BTreeSet<TopicPartition>>,
    committed: BTreeMap<TopicPartition, i64>,
    rejoin_pending: bool,
    // network
    to_coord: Vec<(Instant, String, ToCoord)>,
    to_member: Vec<(Instant, String, ToMember)>,
    // truth
    processed_hi: BTreeMap<TopicPartition, i64>,
    commits_sent: u64,
    commits_accepted: u64,
    results: BTreeMap<&'static str, u64>,
}

impl Sim {
    fn new(seed: u64, protocol: Protocol) -> Self {
        Self {
            rng: Rng(seed),
            now: t0(),
            protocol,
            members: BTreeMap::new(),
            next_member: 0,
            up: true,
            generation: 0,
            state: CoordState::Stable,
            roster: BTreeSet::new(),
            joined: BTreeMap::new(),
            early_joins: BTreeMap::new(),
            assignment: BTreeMap::new(),
            committed: BTreeMap::new(),
            rejoin_pending: false,
            to_coord: Vec::new(),
            to_member: Vec::new(),
            processed_hi: BTreeMap::new(),
            commits_sent: 0,
            commits_accepted: 0,
            results: BTreeMap::new(),
        }
    }

    // ----- members -----

    fn add_member(&mut self) {
        self.next_member += 1;
        let id = format!("m{:02}", self.next_member);
        let manual = self.next_member.is_multiple_of(2);
        let config = OffsetsConfig::new("seed")
            .with_auto_commit((!manual).then_some(Duration::from_millis(100)))
            .with_commit_timeout(Duration::from_secs(10))
            .with_seed(u64::from(self.next_member));
        let mut o = Offsets::new(config, self.now).unwrap();
        o.handle_coordinator_ready(self.now, OffsetVersions::MAX)
            .unwrap();
        let m = Member {
            id: id.clone(),
            o,
            manual,
            generation: -1,
            owned: BTreeSet::new(),
            revoking: BTreeSet::new(),
            stage: Stage::Joining,
            position: BTreeMap::new(),
            fetching: None,
            coordinator_known: true,
            last_send: self.now,
            last_recv: self.now,
            leaving: false,
        };
        self.members.insert(id.clone(), m);
        self.roster.insert(id.clone());
        self.send_join(&id);
        self.start_rebalance();
    }

    fn remove_member(&mut self) {
        // The newest member not in a rebalance leaves cleanly: revoke,
        // commit, then LeaveGroup. (Closing mid-rebalance loses the
        // partitions instead, as Java's `onLeavePrepare`: no commit.)
        let Some(id) = self
            .members
            .iter()
            .rev()
            .find(|(_, m)| !m.leaving && m.stage == Stage::Stable)
            .map(|(id, _)| id.clone())
        else {
            return;
        };
        if let Some(m) = self.members.get_mut(&id) {
            m.leaving = true;
        }
        self.begin_revoke(&id, true);
    }

    fn view(m: &Member, phase: RebalancePhase) -> MembershipView {
        MembershipView::member(m.generation, m.id.clone(), m.owned.iter().cloned(), phase)
    }

    fn set_phase(&mut self, id: &str, phase: RebalancePhase) {
        let now = self.now;
        if let Some(m) = self.members.get_mut(id) {
            let v = Self::view(m, phase);
            m.o.handle_membership(now, v);
        }
    }

    /// The application's revoke handler: commit what was consumed of the
    /// partitions given up (explicit committers), then wait for the commits.
    fn begin_revoke(&mut self, id: &str, all: bool) {
        let now = self.now;
        let Some(m) = self.members.get_mut(id) else {
            return;
        };
        if all {
            m.revoking = m.owned.clone();
        }
        m.stage = Stage::Revoking {
            since: now,
            then_rejoin: true,
        };
        let v = Self::view(m, RebalancePhase::Revoking);
        m.o.handle_membership(now, v);
        if m.manual {
            let offsets: Vec<(TopicPartition, CommittedOffset)> = m
                .revoking
                .iter()
                .filter_map(|p| {
                    m.position
                        .get(p)
                        .map(|o| (p.clone(), CommittedOffset::new(*o)))
                })
                .collect();
            if !offsets.is_empty() {
                m.o.commit(now, offsets)
                    .expect("commit on revoke is accepted");
            }
        }
    }

    /// Revoke done (commits finished or 3 s passed): give the partitions up.
    fn finish_revoke(&mut self, id: &str) {
        let now = self.now;
        let protocol = self.protocol;
        let Some(m) = self.members.get_mut(id) else {
            return;
        };
        m.o.flush_marks(now);
        if m.o.blocking_rebalance()
            && let Stage::Revoking { since, .. } = m.stage
            && now < since + Duration::from_secs(3)
        {
            return;
        }
        for p in &m.revoking {
            m.position.remove(p);
        }
        m.owned = m.owned.difference(&m.revoking).cloned().collect();
        m.revoking.clear();
        if m.leaving {
            m.stage = Stage::Left;
            m.o.close(now);
            m.o.abandon(now);
            let id = id.to_owned();
            self.drain_member(&id);
            self.members.remove(&id);
            self.roster.remove(&id);
            self.joined.remove(&id);
            self.assignment.remove(&id);
            self.start_rebalance();
            self.maybe_complete_join();
            return;
        }
        let phase = if protocol == Protocol::Eager || m.leaving {
            m.owned.clear();
            m.position.clear();
            RebalancePhase::EagerJoining
        } else {
            RebalancePhase::CooperativeJoining
        };
        m.stage = Stage::Joining;
        let v = Self::view(m, phase);
        m.o.handle_membership(now, v);
        let id = id.to_owned();
        self.send_join(&id);
    }

    fn send_join(&mut self, id: &str) {
        let d = self.rng.ms(5, 40);
        let Some(m) = self.members.get_mut(id) else {
            return;
        };
        let at = (self.now + d).max(m.last_send);
        m.last_send = at;
        let owned = m.owned.clone();
        self.to_coord
            .push((at, id.to_owned(), ToCoord::Join { owned }));
    }

    fn on_rebalance_started(&mut self, id: &str) {
        let protocol = self.protocol;
        let Some(m) = self.members.get_mut(id) else {
            return;
        };
        if m.leaving {
            return;
        }
        if m.stage != Stage::Stable {
            // Busy (joining or revoking): the next heartbeat tells it again
            // if the rebalance still waits for it.
            if self.state == CoordState::Preparing && !self.joined.contains_key(id) {
                let at = self.now + Duration::from_millis(100);
                self.to_member
                    .push((at, id.to_owned(), ToMember::RebalanceStarted));
            }
            return;
        }
        match protocol {
            Protocol::Eager => self.begin_revoke(id, true),
            Protocol::Cooperative => {
                m.stage = Stage::Joining;
                self.set_phase(id, RebalancePhase::CooperativeJoining);
                self.send_join(id);
            }
        }
    }

    fn on_assignment(&mut self, id: &str, generation: i32, partitions: BTreeSet<TopicPartition>) {
        let now = self.now;
        let Some(m) = self.members.get_mut(id) else {
            return;
        };
        if m.leaving {
            return;
        }
        m.generation = generation;
        let added: Vec<TopicPartition> = partitions.difference(&m.owned).cloned().collect();
        // (Added partitions get a position once their committed offset is read.)
        let revoked: BTreeSet<TopicPartition> = m.owned.difference(&partitions).cloned().collect();
        m.owned.extend(added.iter().cloned());
        m.revoking = revoked;
        if m.revoking.is_empty() {
            m.stage = Stage::Stable;
            let v = Self::view(m, RebalancePhase::Stable);
            m.o.handle_membership(now, v);
        } else {
            let id = id.to_owned();
            self.begin_revoke(&id, false);
        }
        let Some(m) = self.members.get_mut(id) else {
            return;
        };
        // Fetch what is owned without a known position: the added partitions,
        // and any whose fetch the new generation superseded.
        let need: Vec<TopicPartition> = m
            .owned
            .iter()
            .filter(|p| !m.position.contains_key(*p) && !m.revoking.contains(*p))
            .cloned()
            .collect();
        if !need.is_empty() {
            m.fetching = Some(m.o.fetch(now, need).expect("fetch of assigned partitions"));
        }
    }

    /// Every 100 ms: consume a few records per usable partition, then
    /// commit (explicit committers) or mark (auto-committers).
    fn consume(&mut self, id: &str) {
        let now = self.now;
        let k = 1 + (self.rng.next() % 5) as i64;
        let Some(m) = self.members.get_mut(id) else {
            return;
        };
        if m.leaving || matches!(m.stage, Stage::Joining | Stage::Left) {
            return;
        }
        let mut offsets = Vec::new();
        for (p, pos) in m.position.iter_mut() {
            if m.revoking.contains(p) {
                continue; // stopped: being given up
            }
            let hi = self.processed_hi.entry(p.clone()).or_insert(0);
            assert!(
                *pos <= *hi,
                "{p}: {} starts at {pos}, beyond processed {hi}: a gap",
                m.id
            );
            *pos += k;
            *hi = (*hi).max(*pos);
            offsets.push((p.clone(), CommittedOffset::new(*pos)));
        }
        if offsets.is_empty() {
            return;
        }
        if m.manual {
            if let Err(e) = m.o.commit(now, offsets) {
                panic!("{}: commit refused in stage {:?}: {e}", m.id, m.stage);
            }
        } else {
            for (p, o) in offsets {
                m.o.mark_processed(p, o)
                    .expect("mark of an owned partition");
            }
        }
    }

    /// Drain one member's requests and events (the engine loop).
    fn drain_member(&mut self, id: &str) {
        let now = self.now;
        let Some(m) = self.members.get_mut(id) else {
            return;
        };
        m.o.handle_timeout(now);
        while let Some(req) = m.o.poll_request(now) {
            if let OffsetRequestBody::Commit(body) = &req.body {
                assert_eq!(
                    body.generation_id_or_member_epoch, m.generation,
                    "{} sent a commit with a generation that is not its current one",
                    m.id
                );
                assert!(
                    !matches!(m.stage, Stage::Joining),
                    "{}: commit overlapping Join→Sync",
                    m.id
                );
                self.commits_sent += 1;
            }
            let at = (now + self.rng.ms(1, 30)).max(m.last_send);
            m.last_send = at;
            self.to_coord
                .push((at, id.to_owned(), ToCoord::Offsets(req)));
        }
        let mut fetched = Vec::new();
        while let Some(ev) = m.o.poll_event() {
            match ev {
                OffsetEvent::CommitDone { result, .. } => {
                    let class = match &result {
                        Ok(()) => "ok",
                        Err(CommitError::Retriable { .. }) => "retriable",
                        Err(CommitError::RebalanceInProgress { .. }) => "rebalance-in-progress",
                        Err(CommitError::Stale { .. }) => "stale",
                        Err(CommitError::Partitions { .. }) => "partitions",
                        Err(CommitError::Closed { .. }) => "closed",
                        Err(e) => panic!("{}: unexpected commit result {e}", m.id),
                    };
                    *self.results.entry(class).or_default() += 1;
                }
                OffsetEvent::FetchDone {
                    id: fid, result, ..
                } => {
                    if m.fetching == Some(fid) {
                        m.fetching = None;
                        fetched.push(result.expect("fetch succeeds"));
                    }
                }
                OffsetEvent::Membership { action, error, .. } => {
                    panic!(
                        "{}: membership action {action:?} for {error}: the seed-003 storm",
                        m.id
                    )
                }
            }
        }
        for results in fetched {
            for (p, r) in results {
                let start = r.expect("per-partition fetch ok").map_or(0, |o| o.offset);
                if m.owned.contains(&p) {
                    m.position.insert(p, start);
                }
            }
        }
        if let Stage::Revoking { .. } = m.stage {
            let id = id.to_owned();
            self.finish_revoke(&id);
        }
    }

    // ----- coordinator -----

    fn start_rebalance(&mut self) {
        match self.state {
            CoordState::Stable => {
                self.state = CoordState::Preparing;
                self.joined = std::mem::take(&mut self.early_joins);
                let ids: Vec<String> = self.members.keys().cloned().collect();
                for id in ids {
                    // Learned through the next heartbeat: 0..300 ms later.
                    let d = self.rng.ms(0, 300);
                    self.to_member
                        .push((self.now + d, id, ToMember::RebalanceStarted));
                }
            }
            CoordState::Preparing => {}
            CoordState::Completing => self.rejoin_pending = true,
        }
    }

    fn maybe_complete_join(&mut self) {
        if self.state != CoordState::Preparing
            || self.roster.iter().any(|id| !self.joined.contains_key(id))
        {
            return;
        }
        self.generation += 1;
        self.state = CoordState::Completing;
        let members: Vec<String> = self.roster.iter().cloned().collect();
        let n = members.len() as i32;
        let mut assignment: BTreeMap<String, BTreeSet<TopicPartition>> = BTreeMap::new();
        // Range assignment, then (cooperative) withhold what another member still owns.
        for (i, id) in members.iter().enumerate() {
            let i = i as i32;
            let (per, extra) = (PARTITIONS / n, PARTITIONS % n);
            let start = i * per + i.min(extra);
            let len = per + i32::from(i < extra);
            let mut set: BTreeSet<TopicPartition> = (start..start + len).map(tp).collect();
            if self.protocol == Protocol::Cooperative {
                set.retain(|p| {
                    !self
                        .joined
                        .iter()
                        .any(|(other, owned)| other != id && owned.contains(p))
                });
            }
            assignment.insert(id.clone(), set);
        }
        self.assignment = assignment.clone();
        let leader_sync = self.rng.ms(5, 30);
        // The leader's SyncGroup makes the group Stable; each member gets
        // its SyncGroup response afterwards.
        self.to_member.push((
            self.now + leader_sync,
            String::new(),
            ToMember::CoordinatorBack,
        ));
        for (id, partitions) in assignment {
            let d = leader_sync + self.rng.ms(0, 150);
            self.to_member.push((
                self.now + d,
                id,
                ToMember::Assignment {
                    generation: self.generation,
                    partitions,
                },
            ));
        }
    }

    fn coordinator_handle(&mut self, from: &str, msg: ToCoord) {
        match msg {
            ToCoord::Join { owned } => {
                if !self.up {
                    return; // a real engine retries the JoinGroup; the seeds never crash mid-join
                }
                match self.state {
                    CoordState::Completing => {
                        self.early_joins.insert(from.to_owned(), owned);
                        self.rejoin_pending = true;
                    }
                    CoordState::Stable | CoordState::Preparing => {
                        self.start_rebalance();
                        self.joined.insert(from.to_owned(), owned);
                        self.maybe_complete_join();
                    }
                }
            }
            ToCoord::Offsets(req) => {
                let reply = if self.up {
                    Some(match &req.body {
                        OffsetRequestBody::Commit(body) => {
                            Reply::Commit(self.validate_commit(from, body))
                        }
                        OffsetRequestBody::Fetch(body) => Reply::Fetch(self.answer_fetch(body)),
                    })
                } else {
                    None
                };
                let d = self.rng.ms(1, 30);
                if let Some(m) = self.members.get_mut(from) {
                    let at = (self.now + d).max(m.last_recv);
                    m.last_recv = at;
                    self.to_member.push((
                        at,
                        from.to_owned(),
                        ToMember::Response(Box::new(req), reply),
                    ));
                }
            }
        }
    }

    fn validate_commit(
        &mut self,
        from: &str,
        body: &kgroup::kafka_protocol::messages::OffsetCommitRequest,
    ) -> OffsetCommitResponse {
        let code = if !self.roster.contains(body.member_id.as_str()) {
            E::UnknownMemberId.code()
        } else if body.generation_id_or_member_epoch != self.generation {
            E::IllegalGeneration.code()
        } else if self.state == CoordState::Completing {
            E::RebalanceInProgress.code()
        } else {
            0
        };
        kgroup::offsets::commit_response_for(body, |topic, p| {
            if code == 0 {
                let key = TopicPartition::new(topic, p.partition_index);
                let owner_ok = self.assignment.get(from).is_some_and(|a| a.contains(&key))
                    || !self.assignment.values().any(|a| a.contains(&key));
                assert!(owner_ok, "{from} committed {key}, owned by another member");
                let prev = self.committed.insert(key.clone(), p.committed_offset);
                assert!(
                    prev.is_none_or(|prev| prev <= p.committed_offset),
                    "{key}: committed offset went back from {prev:?} to {}",
                    p.committed_offset
                );
                let hi = self.processed_hi.get(&key).copied().unwrap_or(0);
                assert!(
                    p.committed_offset <= hi,
                    "{key}: committed beyond processed"
                );
                self.commits_accepted += 1;
            }
            code
        })
    }

    fn answer_fetch(
        &self,
        body: &kgroup::kafka_protocol::messages::OffsetFetchRequest,
    ) -> OffsetFetchResponse {
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
                                        let key = TopicPartition::new(t.name.0.as_str(), *p);
                                        OffsetFetchResponsePartitions::default()
                                            .with_partition_index(*p)
                                            .with_committed_offset(
                                                self.committed.get(&key).copied().unwrap_or(-1),
                                            )
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
                OffsetFetchResponseGroup::default()
                    .with_group_id(GroupId(StrBytes::from_static_str("seed")))
                    .with_topics(topics)
            })
            .collect();
        OffsetFetchResponse::default().with_groups(groups)
    }

    // ----- the loop -----

    fn deliver(&mut self) {
        let now = self.now;
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.to_coord)
            .into_iter()
            .partition(|(at, _, _)| *at <= now);
        self.to_coord = later;
        for (_, from, msg) in due {
            self.coordinator_handle(&from, msg);
        }
        let mut due: Vec<_>;
        (due, self.to_member) = std::mem::take(&mut self.to_member)
            .into_iter()
            .partition(|(at, _, _)| *at <= now);
        due.sort_by_key(|(at, _, _)| *at);
        for (_, to, msg) in due {
            match msg {
                ToMember::CoordinatorBack if to.is_empty() => {
                    // The leader synced: the group is Stable.
                    if self.state == CoordState::Completing {
                        self.state = CoordState::Stable;
                        if std::mem::take(&mut self.rejoin_pending) {
                            self.start_rebalance();
                        }
                    }
                }
                ToMember::CoordinatorBack => {
                    if let Some(m) = self.members.get_mut(&to) {
                        m.coordinator_known = true;
                        m.o.handle_coordinator_ready(now, OffsetVersions::MAX)
                            .unwrap();
                    }
                }
                ToMember::RebalanceStarted => self.on_rebalance_started(&to),
                ToMember::Assignment {
                    generation,
                    partitions,
                } => {
                    self.on_assignment(&to, generation, partitions);
                }
                ToMember::Response(req, reply) => {
                    let Some(m) = self.members.get_mut(&to) else {
                        continue;
                    };
                    match reply {
                        Some(Reply::Commit(r)) => m.o.handle_commit_response(now, req.tag, &r),
                        Some(Reply::Fetch(r)) => m.o.handle_fetch_response(now, req.tag, &r),
                        None => {
                            m.o.handle_request_failure(now, req.tag, RequestFailure::Disconnected);
                            if m.coordinator_known {
                                m.coordinator_known = false;
                                m.o.handle_coordinator_lost(now);
                            }
                        }
                    }
                }
            }
        }
    }

    fn step(&mut self, tick: u64) {
        self.now += STEP;
        self.deliver();
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in &ids {
            // Members spread their 100 ms batches over the interval.
            let phase = id.bytes().fold(0u64, |a, b| a + u64::from(b)) % 10;
            if tick % 10 == phase {
                self.consume(id);
            }
            self.drain_member(id);
        }
    }

    fn crash_coordinator(&mut self) {
        self.up = false;
    }

    fn restart_coordinator(&mut self) {
        // Group metadata and committed offsets are reloaded from the log:
        // generation, members and offsets survive the restart.
        self.up = true;
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let d = self.rng.ms(50, 500); // FindCoordinator with backoff
            self.to_member
                .push((self.now + d, id, ToMember::CoordinatorBack));
        }
    }

    fn run_for(&mut self, d: Duration, tick: &mut u64) {
        let steps = d.as_millis() / STEP.as_millis();
        for _ in 0..steps {
            *tick += 1;
            self.step(*tick);
        }
    }

    fn assert_settled(&self) {
        assert_eq!(self.state, CoordState::Stable, "group settled");
        let mut owners: BTreeMap<TopicPartition, usize> = BTreeMap::new();
        for m in self.members.values() {
            assert_eq!(m.stage, Stage::Stable, "{} settled", m.id);
            for p in &m.owned {
                *owners.entry(p.clone()).or_default() += 1;
            }
        }
        assert_eq!(owners.len(), PARTITIONS as usize, "every partition owned");
        assert!(owners.values().all(|n| *n == 1), "no partition owned twice");
    }
}

fn seed_003(protocol: Protocol, seed: u64) -> Sim {
    let mut sim = Sim::new(seed, protocol);
    let mut tick = 0;
    sim.add_member();
    sim.add_member();
    sim.run_for(Duration::from_secs(3), &mut tick);
    sim.assert_settled();
    // Scale 2 → 30, a few members at a time, then back to 2.
    while sim.members.len() < 30 {
        for _ in 0..4 {
            if sim.members.len() < 30 {
                sim.add_member();
            }
        }
        sim.run_for(Duration::from_millis(700), &mut tick);
    }
    sim.run_for(Duration::from_secs(3), &mut tick);
    sim.assert_settled();
    while sim.members.len() > 2 {
        for _ in 0..3 {
            if sim.members.values().filter(|m| !m.leaving).count() > 2 {
                sim.remove_member();
            }
        }
        sim.run_for(Duration::from_millis(900), &mut tick);
    }
    sim.run_for(Duration::from_secs(4), &mut tick);
    sim.assert_settled();
    sim
}

#[test]
fn seed_003_eager_scaling_2_to_30_and_back_without_illegal_generation() {
    let sim = seed_003(Protocol::Eager, 3);
    eprintln!(
        "generations {}, commit requests {}, partition commits accepted {}, results {:?}",
        sim.generation, sim.commits_sent, sim.commits_accepted, sim.results
    );
    assert!(
        sim.commits_accepted > 1000,
        "commits accepted: {}",
        sim.commits_accepted
    );
    assert!(
        sim.results.get("ok").copied().unwrap_or(0) > 100,
        "{:?}",
        sim.results
    );
}

#[test]
fn seed_003_cooperative_scaling_2_to_30_and_back_without_illegal_generation() {
    let sim = seed_003(Protocol::Cooperative, 4);
    eprintln!(
        "generations {}, commit requests {}, partition commits accepted {}, results {:?}",
        sim.generation, sim.commits_sent, sim.commits_accepted, sim.results
    );
    assert!(
        sim.commits_accepted > 1000,
        "commits accepted: {}",
        sim.commits_accepted
    );
    assert!(
        sim.results.get("ok").copied().unwrap_or(0) > 100,
        "{:?}",
        sim.results
    );
}

#[test]
fn seed_004_coordinator_restart_loses_and_regresses_nothing() {
    for protocol in [Protocol::Eager, Protocol::Cooperative] {
        let mut sim = Sim::new(40, protocol);
        let mut tick = 0;
        for _ in 0..5 {
            sim.add_member();
        }
        sim.run_for(Duration::from_secs(4), &mut tick);
        sim.assert_settled();
        for _ in 0..3 {
            let before = sim.committed.clone();
            sim.crash_coordinator();
            sim.run_for(Duration::from_secs(2), &mut tick);
            sim.restart_coordinator();
            sim.run_for(Duration::from_secs(3), &mut tick);
            for (p, o) in &before {
                let after = sim.committed.get(p).copied();
                assert!(
                    after.is_some_and(|a| a >= *o),
                    "{p}: {o} before the restart, {after:?} after"
                );
            }
        }
        // The group recovered by itself: everything consumed is committed
        // again (auto-committers' marks were kept through the outage).
        let accepted = sim.commits_accepted;
        sim.run_for(Duration::from_secs(2), &mut tick);
        assert!(
            sim.commits_accepted > accepted,
            "commits flow again after the restart"
        );
        for m in sim.members.values() {
            if !m.manual {
                for (p, pos) in &m.position {
                    let committed = sim.committed.get(p).copied().unwrap_or(0);
                    assert!(
                        committed + 5 * 2 >= *pos,
                        "{}: {p} marked {pos}, committed {committed}",
                        m.id
                    );
                }
            }
        }
        sim.assert_settled();
    }
}
