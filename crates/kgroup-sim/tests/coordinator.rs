//! The simulated coordinator, driven with scripted request frames over the
//! real wire codec: each test is one rule of Kafka's classic group
//! coordinator.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::heartbeat_request::HeartbeatRequest;
use kafka_protocol::messages::join_group_request::{JoinGroupRequest, JoinGroupRequestProtocol};
use kafka_protocol::messages::leave_group_request::{LeaveGroupRequest, MemberIdentity};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequest, OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{OffsetFetchRequest, OffsetFetchRequestTopic};
use kafka_protocol::messages::sync_group_request::{SyncGroupRequest, SyncGroupRequestAssignment};
use kafka_protocol::messages::{
    ApiKey, FindCoordinatorRequest, FindCoordinatorResponse, GroupId, HeartbeatResponse,
    JoinGroupResponse, LeaveGroupResponse, OffsetCommitResponse, OffsetFetchResponse,
    SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use kgroup_sim::clock::SimTime;
use kgroup_sim::cluster::{Cluster, ClusterConfig, ClusterOutput};
use kgroup_sim::coordinator::*;
use kgroup_sim::frames;

const GROUP: &str = "g";

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// A scripted cluster with numbered client connections.
struct Script {
    cluster: Cluster,
    now: SimTime,
    corr: i32,
    /// Responses received, by connection, not yet read.
    inbox: BTreeMap<u64, Vec<Bytes>>,
}

impl Script {
    fn new() -> Self {
        let mut config = ClusterConfig::default();
        config.topics.insert("t".into(), 4);
        Self::with_config(config)
    }

    fn with_config(config: ClusterConfig) -> Self {
        let mut cluster = Cluster::new(config, 42);
        for conn in 1..=8 {
            assert!(cluster.connect(conn, 0));
        }
        Self {
            cluster,
            now: SimTime::ZERO,
            corr: 0,
            inbox: BTreeMap::new(),
        }
    }

    fn pump(&mut self) {
        for out in self.cluster.drain_outputs() {
            match out {
                ClusterOutput::Response { conn, frame } => {
                    self.inbox.entry(conn).or_default().push(frame)
                }
                ClusterOutput::Close { conn } => panic!("connection {conn} closed by the broker"),
            }
        }
    }

    fn send<T: Encodable + HeaderVersion>(
        &mut self,
        conn: u64,
        api: ApiKey,
        version: i16,
        body: &T,
    ) {
        self.corr += 1;
        let frame =
            frames::encode_request(api, version, self.corr, &format!("client-{conn}"), body)
                .expect("encode request");
        self.cluster.handle_request(self.now, conn, frame);
        self.pump();
    }

    /// Take the next response on `conn`, if any.
    fn recv<T: Decodable>(&mut self, conn: u64, api: ApiKey, version: i16) -> Option<T> {
        let q = self.inbox.get_mut(&conn)?;
        if q.is_empty() {
            return None;
        }
        let frame = q.remove(0);
        Some(
            frames::decode_response::<T>(api, version, &frame)
                .expect("decode")
                .1,
        )
    }

    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(t) = self.cluster.poll_timeout() {
            if t > end {
                break;
            }
            self.now = self.now.max(t);
            self.cluster.handle_timeout(self.now);
            self.pump();
        }
        self.now = end;
        self.cluster.handle_timeout(self.now);
        self.pump();
    }

    fn join(
        &mut self,
        conn: u64,
        version: i16,
        member_id: &str,
        instance: Option<&str>,
        protocols: &[(&str, &[u8])],
    ) {
        let req = JoinGroupRequest::default()
            .with_group_id(GroupId(sb(GROUP)))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(20_000)
            .with_member_id(sb(member_id))
            .with_group_instance_id(instance.map(sb))
            .with_protocol_type(sb("consumer"))
            .with_protocols(
                protocols
                    .iter()
                    .map(|(n, m)| {
                        JoinGroupRequestProtocol::default()
                            .with_name(sb(n))
                            .with_metadata(Bytes::copy_from_slice(m))
                    })
                    .collect(),
            );
        self.send(conn, ApiKey::JoinGroup, version, &req);
    }

    fn join_resp(&mut self, conn: u64, version: i16) -> Option<JoinGroupResponse> {
        self.recv(conn, ApiKey::JoinGroup, version)
    }

    /// Two-step dynamic join at v9: returns the member id.
    fn join_dynamic(&mut self, conn: u64, protocols: &[(&str, &[u8])]) -> String {
        self.join(conn, 9, "", None, protocols);
        let r = self.join_resp(conn, 9).expect("MEMBER_ID_REQUIRED answer");
        assert_eq!(r.error_code, MEMBER_ID_REQUIRED);
        let id = r.member_id.as_str().to_string();
        assert!(!id.is_empty());
        self.join(conn, 9, &id, None, protocols);
        id
    }

    fn sync(
        &mut self,
        conn: u64,
        member: &str,
        instance: Option<&str>,
        generation: i32,
        assignments: &[(&str, &[u8])],
    ) {
        let req = SyncGroupRequest::default()
            .with_group_id(GroupId(sb(GROUP)))
            .with_generation_id(generation)
            .with_member_id(sb(member))
            .with_group_instance_id(instance.map(sb))
            .with_protocol_type(Some(sb("consumer")))
            .with_assignments(
                assignments
                    .iter()
                    .map(|(m, a)| {
                        SyncGroupRequestAssignment::default()
                            .with_member_id(sb(m))
                            .with_assignment(Bytes::copy_from_slice(a))
                    })
                    .collect(),
            );
        self.send(conn, ApiKey::SyncGroup, 5, &req);
    }

    fn sync_resp(&mut self, conn: u64) -> Option<SyncGroupResponse> {
        self.recv(conn, ApiKey::SyncGroup, 5)
    }

    fn heartbeat(
        &mut self,
        conn: u64,
        member: &str,
        instance: Option<&str>,
        generation: i32,
    ) -> i16 {
        let req = HeartbeatRequest::default()
            .with_group_id(GroupId(sb(GROUP)))
            .with_generation_id(generation)
            .with_member_id(sb(member))
            .with_group_instance_id(instance.map(sb));
        self.send(conn, ApiKey::Heartbeat, 4, &req);
        self.recv::<HeartbeatResponse>(conn, ApiKey::Heartbeat, 4)
            .expect("heartbeat answered at once")
            .error_code
    }

    fn commit(&mut self, conn: u64, member: &str, generation: i32, offset: i64) -> i16 {
        let req = OffsetCommitRequest::default()
            .with_group_id(GroupId(sb(GROUP)))
            .with_generation_id_or_member_epoch(generation)
            .with_member_id(sb(member))
            .with_topics(vec![
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName(sb("t")))
                    .with_partitions(vec![
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(offset),
                    ]),
            ]);
        self.send(conn, ApiKey::OffsetCommit, 8, &req);
        let r: OffsetCommitResponse = self
            .recv(conn, ApiKey::OffsetCommit, 8)
            .expect("commit answered");
        r.topics[0].partitions[0].error_code
    }

    fn fetch_committed(&mut self, conn: u64) -> i64 {
        let req = OffsetFetchRequest::default()
            .with_group_id(GroupId(sb(GROUP)))
            .with_topics(Some(vec![
                OffsetFetchRequestTopic::default()
                    .with_name(TopicName(sb("t")))
                    .with_partition_indexes(vec![0]),
            ]));
        self.send(conn, ApiKey::OffsetFetch, 7, &req);
        let r: OffsetFetchResponse = self
            .recv(conn, ApiKey::OffsetFetch, 7)
            .expect("fetch answered");
        r.topics[0].partitions[0].committed_offset
    }

    fn group_state(&self) -> &'static str {
        self.cluster
            .coordinator()
            .and_then(|c| c.group(GROUP))
            .map_or("none", |g| g.state.name())
    }

    fn generation(&self) -> i32 {
        self.cluster
            .coordinator()
            .and_then(|c| c.group(GROUP))
            .map_or(-2, |g| g.generation)
    }
}

const RANGE: &[(&str, &[u8])] = &[("range", b"sub-a")];

/// Form a two-member group: returns (leader conn, leader id, follower conn, follower id, generation).
fn two_member_group(s: &mut Script) -> (String, String, i32) {
    let a = s.join_dynamic(1, RANGE);
    let b = s.join_dynamic(2, &[("range", b"sub-b")]);
    // Initial rebalance delay: nothing answered yet.
    assert!(s.join_resp(1, 9).is_none());
    s.advance(Duration::from_secs(1));
    let ra = s.join_resp(1, 9).expect("leader join response");
    let rb = s.join_resp(2, 9).expect("follower join response");
    assert_eq!(ra.error_code, NONE);
    let generation = ra.generation_id;
    s.sync(1, &a, None, generation, &[(&a, b"asg-a"), (&b, b"asg-b")]);
    s.sync(2, &b, None, generation, &[]);
    assert_eq!(s.sync_resp(1).unwrap().assignment.as_ref(), b"asg-a");
    assert_eq!(s.sync_resp(2).unwrap().assignment.as_ref(), b"asg-b");
    assert_eq!(rb.generation_id, generation);
    (a, b, generation)
}

#[test]
fn dynamic_members_need_a_member_id_first_at_v4_and_later() {
    let mut s = Script::new();
    s.join(1, 4, "", None, RANGE);
    let r = s.join_resp(1, 4).unwrap();
    assert_eq!(r.error_code, MEMBER_ID_REQUIRED);
    assert!(r.member_id.as_str().starts_with("client-1-"));
    // v3 has no two-step join: the member is added at once.
    s.join(2, 3, "", None, RANGE);
    assert!(
        s.join_resp(2, 3).is_none(),
        "parked until the join phase ends"
    );
    assert_eq!(s.group_state(), "PreparingRebalance");
}

#[test]
fn two_dynamic_members_join_leader_gets_metadata_followers_get_assignments() {
    let mut s = Script::new();
    let a = s.join_dynamic(1, RANGE);
    let b = s.join_dynamic(2, &[("range", b"sub-b")]);
    s.advance(Duration::from_secs(1));
    let ra = s.join_resp(1, 9).unwrap();
    let rb = s.join_resp(2, 9).unwrap();
    assert_eq!(ra.generation_id, 1);
    assert_eq!(rb.generation_id, 1);
    assert_eq!(ra.leader.as_str(), a, "first member to join leads");
    assert_eq!(rb.leader.as_str(), a);
    assert_eq!(ra.protocol_name.as_deref(), Some("range"));
    let metas: Vec<(&str, &[u8])> = ra
        .members
        .iter()
        .map(|m| (m.member_id.as_str(), m.metadata.as_ref()))
        .collect();
    assert_eq!(metas.len(), 2);
    assert!(metas.contains(&(a.as_str(), b"sub-a".as_slice())));
    assert!(metas.contains(&(b.as_str(), b"sub-b".as_slice())));
    assert!(rb.members.is_empty(), "followers get no member list");
    assert_eq!(s.group_state(), "CompletingRebalance");
    // The follower's SyncGroup waits for the leader's.
    s.sync(2, &b, None, 1, &[]);
    assert!(s.sync_resp(2).is_none());
    s.sync(1, &a, None, 1, &[(&a, b"asg-a"), (&b, b"asg-b")]);
    assert_eq!(s.sync_resp(1).unwrap().assignment.as_ref(), b"asg-a");
    assert_eq!(s.sync_resp(2).unwrap().assignment.as_ref(), b"asg-b");
    assert_eq!(s.group_state(), "Stable");
}

#[test]
fn a_new_member_bumps_the_generation_and_others_see_rebalance_in_progress() {
    let mut s = Script::new();
    let (a, b, generation) = two_member_group(&mut s);
    let _c = s.join_dynamic(3, RANGE);
    assert_eq!(s.group_state(), "PreparingRebalance");
    assert_eq!(s.heartbeat(1, &a, None, generation), REBALANCE_IN_PROGRESS);
    // The current generation may still commit while preparing (eager revoke).
    assert_eq!(s.commit(2, &b, generation, 10), NONE);
    s.join(1, 9, &a, None, RANGE);
    s.join(2, 9, &b, None, &[("range", b"sub-b")]);
    let ra = s
        .join_resp(1, 9)
        .expect("all rejoined: join phase ends early");
    assert_eq!(ra.generation_id, generation + 1);
    assert_eq!(ra.members.len(), 3);
}

#[test]
fn members_that_do_not_rejoin_within_the_rebalance_timeout_are_removed() {
    let mut s = Script::new();
    let (a, b, generation) = two_member_group(&mut s);
    s.join(1, 9, &a, None, &[("range", b"changed")]);
    assert_eq!(s.group_state(), "PreparingRebalance");
    // b keeps heartbeating but never rejoins.
    for _ in 0..8 {
        s.advance(Duration::from_secs(3));
        let _ = s.heartbeat(2, &b, None, generation);
    }
    let ra = s
        .join_resp(1, 9)
        .expect("join phase ended at the rebalance timeout");
    assert_eq!(ra.generation_id, generation + 1);
    assert_eq!(ra.members.len(), 1);
    assert_eq!(s.heartbeat(2, &b, None, generation), UNKNOWN_MEMBER_ID);
}

#[test]
fn a_silent_member_is_removed_after_its_session_timeout() {
    let mut s = Script::new();
    let (a, b, generation) = two_member_group(&mut s);
    for _ in 0..3 {
        s.advance(Duration::from_secs(3));
        assert_eq!(s.heartbeat(1, &a, None, generation), NONE);
    }
    assert_eq!(s.group_state(), "Stable");
    s.advance(Duration::from_secs(3));
    // b has been silent for 12 s > 10 s session timeout.
    assert_eq!(s.group_state(), "PreparingRebalance");
    assert_eq!(s.heartbeat(2, &b, None, generation), UNKNOWN_MEMBER_ID);
    assert_eq!(s.heartbeat(1, &a, None, generation), REBALANCE_IN_PROGRESS);
}

#[test]
fn heartbeat_and_sync_with_a_stale_generation_get_illegal_generation() {
    let mut s = Script::new();
    let (a, _b, generation) = two_member_group(&mut s);
    assert_eq!(s.heartbeat(1, &a, None, generation - 1), ILLEGAL_GENERATION);
    s.sync(1, &a, None, generation + 5, &[]);
    assert_eq!(s.sync_resp(1).unwrap().error_code, ILLEGAL_GENERATION);
    assert_eq!(
        s.heartbeat(1, "nobody", None, generation),
        UNKNOWN_MEMBER_ID
    );
}

#[test]
fn commit_with_a_stale_generation_is_rejected_with_illegal_generation() {
    let mut s = Script::new();
    let (a, b, generation) = two_member_group(&mut s);
    assert_eq!(s.commit(1, &a, generation, 5), NONE);
    assert_eq!(s.commit(2, &b, generation - 1, 7), ILLEGAL_GENERATION);
    assert_eq!(s.fetch_committed(3), 5, "the stale commit was not stored");
    assert_eq!(s.commit(3, "stranger", generation, 9), UNKNOWN_MEMBER_ID);
    // A manual commit (generation -1, no member) is refused by a live group...
    assert_eq!(s.commit(3, "", -1, 9), UNKNOWN_MEMBER_ID);
}

#[test]
fn manual_commits_are_accepted_only_by_an_empty_group() {
    let mut s = Script::new();
    assert_eq!(
        s.commit(1, "", -1, 3),
        NONE,
        "no group yet: simple commit accepted"
    );
    assert_eq!(s.fetch_committed(1), 3);
}

#[test]
fn commit_during_completing_rebalance_gets_rebalance_in_progress() {
    let mut s = Script::new();
    let (a, b, generation) = two_member_group(&mut s);
    s.join(1, 9, &a, None, RANGE);
    s.join(2, 9, &b, None, &[("range", b"sub-b")]);
    let ra = s.join_resp(1, 9).unwrap();
    assert_eq!(s.group_state(), "CompletingRebalance");
    assert_eq!(s.commit(3, &b, ra.generation_id, 1), REBALANCE_IN_PROGRESS);
    assert_eq!(s.commit(3, &b, generation, 1), ILLEGAL_GENERATION);
}

#[test]
fn a_static_restart_in_a_stable_group_gets_its_assignment_back_without_a_rebalance() {
    let mut s = Script::new();
    s.join(1, 9, "", Some("inst-a"), RANGE);
    s.join(2, 9, "", Some("inst-b"), RANGE);
    s.advance(Duration::from_secs(1));
    let ra = s.join_resp(1, 9).unwrap();
    let rb = s.join_resp(2, 9).unwrap();
    let (a, b) = (
        ra.member_id.as_str().to_string(),
        rb.member_id.as_str().to_string(),
    );
    let generation = ra.generation_id;
    s.sync(
        1,
        &a,
        Some("inst-a"),
        generation,
        &[(&a, b"asg-a"), (&b, b"asg-b")],
    );
    s.sync(2, &b, Some("inst-b"), generation, &[]);
    let _ = (s.sync_resp(1), s.sync_resp(2));
    // inst-b restarts: empty member id, same instance id.
    s.join(3, 9, "", Some("inst-b"), RANGE);
    let r = s.join_resp(3, 9).expect("answered at once");
    assert_eq!(r.error_code, NONE);
    assert_eq!(r.generation_id, generation, "no rebalance");
    let b2 = r.member_id.as_str().to_string();
    assert_ne!(b2, b);
    assert_eq!(s.group_state(), "Stable");
    s.sync(3, &b2, Some("inst-b"), generation, &[]);
    assert_eq!(s.sync_resp(3).unwrap().assignment.as_ref(), b"asg-b");
    // The old member id is fenced.
    assert_eq!(
        s.heartbeat(2, &b, Some("inst-b"), generation),
        FENCED_INSTANCE_ID
    );
    assert_eq!(s.heartbeat(3, &b2, Some("inst-b"), generation), NONE);
}

#[test]
fn a_restarted_static_leader_gets_skip_assignment_at_v9_and_the_old_leader_id_below() {
    for (version, expect_skip) in [(9, true), (8, false)] {
        let mut s = Script::new();
        s.join(1, 9, "", Some("inst-a"), RANGE);
        s.advance(Duration::from_secs(1));
        let ra = s.join_resp(1, 9).unwrap();
        let a = ra.member_id.as_str().to_string();
        s.sync(1, &a, Some("inst-a"), ra.generation_id, &[(&a, b"asg-a")]);
        let _ = s.sync_resp(1);
        s.join(2, version, "", Some("inst-a"), RANGE);
        let r = s.join_resp(2, version).unwrap();
        assert_eq!(r.error_code, NONE);
        assert_eq!(r.skip_assignment, expect_skip, "v{version}");
        if expect_skip {
            assert_eq!(r.leader.as_str(), r.member_id.as_str());
            assert_eq!(r.members.len(), 1);
        } else {
            assert_eq!(r.leader.as_str(), a, "KAFKA-13435: names the old leader id");
            assert!(r.members.is_empty());
        }
    }
}

#[test]
fn a_static_member_rejoining_during_completing_rebalance_triggers_a_rebalance() {
    let mut s = Script::new();
    s.join(1, 9, "", Some("inst-a"), RANGE);
    s.join(2, 9, "", Some("inst-b"), RANGE);
    s.advance(Duration::from_secs(1));
    let _ = (s.join_resp(1, 9), s.join_resp(2, 9));
    assert_eq!(s.group_state(), "CompletingRebalance");
    s.join(3, 9, "", Some("inst-b"), RANGE);
    assert_eq!(s.group_state(), "PreparingRebalance", "KAFKA-9801");
}

#[test]
fn protocol_selection_takes_the_most_voted_protocol_all_members_support() {
    let mut s = Script::new();
    // Rolling upgrade step: one member still on [range], one on [cooperative-sticky, range].
    s.join_dynamic(1, &[("range", b"x")]);
    s.join_dynamic(2, &[("cooperative-sticky", b"y"), ("range", b"y")]);
    s.advance(Duration::from_secs(1));
    let r = s.join_resp(1, 9).unwrap();
    assert_eq!(
        r.protocol_name.as_deref(),
        Some("range"),
        "only common protocol"
    );
    // A member with no protocol in common is refused.
    s.join(3, 9, "", None, &[("roundrobin", b"z")]);
    assert_eq!(
        s.join_resp(3, 9).unwrap().error_code,
        INCONSISTENT_GROUP_PROTOCOL
    );
}

#[test]
fn protocol_votes_favour_cooperative_once_every_member_supports_it() {
    let mut s = Script::new();
    s.join_dynamic(1, &[("cooperative-sticky", b"x"), ("range", b"x")]);
    s.join_dynamic(2, &[("cooperative-sticky", b"y"), ("range", b"y")]);
    s.join_dynamic(3, &[("range", b"z"), ("cooperative-sticky", b"z")]);
    s.advance(Duration::from_secs(1));
    let r = s.join_resp(1, 9).unwrap();
    assert_eq!(r.protocol_name.as_deref(), Some("cooperative-sticky"));
}

#[test]
fn leave_group_v3_removes_members_by_batch_with_per_member_errors() {
    let mut s = Script::new();
    let (a, b, _generation) = two_member_group(&mut s);
    let req = LeaveGroupRequest::default()
        .with_group_id(GroupId(sb(GROUP)))
        .with_members(vec![
            MemberIdentity::default().with_member_id(sb(&a)),
            MemberIdentity::default().with_member_id(sb("ghost")),
        ]);
    s.send(1, ApiKey::LeaveGroup, 5, &req);
    let r: LeaveGroupResponse = s.recv(1, ApiKey::LeaveGroup, 5).unwrap();
    assert_eq!(r.error_code, NONE);
    assert_eq!(r.members[0].error_code, NONE);
    assert_eq!(r.members[1].error_code, UNKNOWN_MEMBER_ID);
    assert_eq!(s.group_state(), "PreparingRebalance");
    // v0: one member, top-level error.
    let req = LeaveGroupRequest::default()
        .with_group_id(GroupId(sb(GROUP)))
        .with_member_id(sb(&b));
    s.send(2, ApiKey::LeaveGroup, 0, &req);
    let r: LeaveGroupResponse = s.recv(2, ApiKey::LeaveGroup, 0).unwrap();
    assert_eq!(r.error_code, NONE);
    s.advance(Duration::from_secs(1));
    assert_eq!(s.group_state(), "Empty");
}

#[test]
fn a_static_leave_with_a_stale_member_id_is_fenced() {
    let mut s = Script::new();
    s.join(1, 9, "", Some("inst-a"), RANGE);
    s.advance(Duration::from_secs(1));
    let a = s.join_resp(1, 9).unwrap().member_id.as_str().to_string();
    let req = LeaveGroupRequest::default()
        .with_group_id(GroupId(sb(GROUP)))
        .with_members(vec![
            MemberIdentity::default()
                .with_member_id(sb("old-id"))
                .with_group_instance_id(Some(sb("inst-a"))),
        ]);
    s.send(2, ApiKey::LeaveGroup, 5, &req);
    let r: LeaveGroupResponse = s.recv(2, ApiKey::LeaveGroup, 5).unwrap();
    assert_eq!(r.members[0].error_code, FENCED_INSTANCE_ID);
    assert!(
        s.cluster
            .coordinator()
            .unwrap()
            .group(GROUP)
            .unwrap()
            .members
            .contains_key(&a)
    );
}

#[test]
fn a_connection_serves_one_request_at_a_time_so_a_parked_join_holds_back_heartbeats() {
    let mut s = Script::new();
    let (a, _b, generation) = two_member_group(&mut s);
    s.join(1, 9, &a, None, &[("range", b"new")]);
    let hb = HeartbeatRequest::default()
        .with_group_id(GroupId(sb(GROUP)))
        .with_generation_id(generation)
        .with_member_id(sb(&a));
    s.send(1, ApiKey::Heartbeat, 4, &hb);
    assert!(
        s.inbox.get(&1).is_none_or(Vec::is_empty),
        "heartbeat queued behind the join"
    );
    s.advance(Duration::from_secs(25));
    // Join answered first, then the heartbeat (now of a stale generation).
    let j = s.join_resp(1, 9).expect("join answered");
    assert_eq!(j.error_code, NONE);
    let h: HeartbeatResponse = s.recv(1, ApiKey::Heartbeat, 4).expect("then the heartbeat");
    assert_eq!(h.error_code, ILLEGAL_GENERATION);
}

#[test]
fn a_coordinator_crash_keeps_members_and_generation_and_loses_parked_requests() {
    let mut s = Script::new();
    let (a, b, generation) = two_member_group(&mut s);
    assert_eq!(s.commit(1, &a, generation, 42), NONE);
    s.cluster.crash_broker(s.now, 0);
    assert_eq!(s.cluster.coordinator_broker(), None);
    // Election after 1 s, then 0.5 s of loading on broker 1.
    s.advance(Duration::from_millis(1100));
    assert_eq!(s.cluster.coordinator_broker(), Some(1));
    assert!(s.cluster.connect(11, 1));
    assert!(!s.cluster.connect(12, 0), "broker 0 is down");
    // Kafka answers heartbeats blindly while loading.
    assert_eq!(s.heartbeat(11, &a, None, generation), NONE);
    assert_eq!(
        s.commit(11, &a, generation, 43),
        COORDINATOR_LOAD_IN_PROGRESS
    );
    s.advance(Duration::from_millis(500));
    assert_eq!(
        s.heartbeat(11, &a, None, generation),
        NONE,
        "member survived the move"
    );
    assert_eq!(s.group_state(), "Stable");
    assert_eq!(s.generation(), generation);
    assert_eq!(s.fetch_committed(11), 42, "committed offsets survive");
    // b never heard of the move; its session restarted at load time and expires.
    s.advance(Duration::from_secs(4));
    assert_eq!(s.heartbeat(11, &a, None, generation), NONE);
    s.advance(Duration::from_secs(7));
    assert_eq!(s.heartbeat(11, &a, None, generation), REBALANCE_IN_PROGRESS);
    let _ = b;
}

#[test]
fn other_brokers_answer_not_coordinator_and_find_coordinator_points_to_the_leader() {
    let mut s = Script::new();
    let (a, _b, generation) = two_member_group(&mut s);
    assert!(s.cluster.connect(21, 2));
    assert_eq!(s.heartbeat(21, &a, None, generation), NOT_COORDINATOR);
    let req = FindCoordinatorRequest::default().with_key(sb(GROUP));
    s.send(21, ApiKey::FindCoordinator, 3, &req);
    let r: FindCoordinatorResponse = s.recv(21, ApiKey::FindCoordinator, 3).unwrap();
    assert_eq!(r.error_code, NONE);
    assert_eq!(r.node_id.0, 0);
    let req = FindCoordinatorRequest::default().with_coordinator_keys(vec![sb(GROUP)]);
    s.send(21, ApiKey::FindCoordinator, 4, &req);
    let r: FindCoordinatorResponse = s.recv(21, ApiKey::FindCoordinator, 4).unwrap();
    assert_eq!(r.coordinators[0].node_id.0, 0);
}

#[test]
fn a_coordinator_move_answers_parked_joins_with_not_coordinator() {
    let mut s = Script::new();
    let (a, _b, _generation) = two_member_group(&mut s);
    s.join(1, 9, &a, None, &[("range", b"again")]);
    assert!(s.join_resp(1, 9).is_none());
    s.cluster.move_coordinator(s.now, 2);
    s.pump();
    assert_eq!(s.join_resp(1, 9).unwrap().error_code, NOT_COORDINATOR);
}

#[test]
fn the_initial_rebalance_delay_extends_while_members_keep_arriving() {
    let mut s = Script::new();
    s.join_dynamic(1, RANGE);
    s.advance(Duration::from_millis(250));
    s.join_dynamic(2, RANGE);
    s.advance(Duration::from_millis(100));
    assert!(
        s.join_resp(1, 9).is_none(),
        "delay extended by the second arrival"
    );
    s.advance(Duration::from_millis(400));
    let r = s.join_resp(1, 9).unwrap();
    assert_eq!(r.members.len(), 2);
}

#[test]
fn malformed_frames_close_the_connection_without_panicking() {
    let mut s = Script::new();
    for junk in [
        &b""[..],
        b"\x00\x00\x00\x02\x00",
        b"\x00\x00\x00\x08\x00\x0b\x00\x09\xff\xff\xff\xff",
        b"\x00\x00\x00\x04\x7f\x7f\x00\x00",
    ] {
        assert!(s.cluster.connect(30, 0));
        s.cluster
            .handle_request(s.now, 30, Bytes::copy_from_slice(junk));
        let outs = s.cluster.drain_outputs();
        assert_eq!(outs, vec![ClusterOutput::Close { conn: 30 }], "{junk:?}");
    }
}

#[test]
fn a_static_member_that_does_not_rejoin_stays_with_its_last_subscription() {
    // Kafka's onCompleteJoin removes only notYetRejoinedDynamicMembers: a
    // static member keeps its place (and old subscription) until its
    // session times out.
    let mut s = Script::new();
    s.join(1, 9, "", Some("inst-a"), &[("range", b"sub-a")]);
    let b = s.join_dynamic(2, &[("range", b"sub-b")]);
    s.advance(Duration::from_secs(1));
    let ra = s.join_resp(1, 9).expect("static join answered");
    let _ = s.join_resp(2, 9).expect("dynamic join answered");
    let a = ra.member_id.as_str().to_string();
    let generation = ra.generation_id;
    assert_eq!(ra.leader.as_str(), a, "the first to join leads");
    s.sync(
        1,
        &a,
        Some("inst-a"),
        generation,
        &[(&a, b"asg-a"), (&b, b"asg-b")],
    );
    s.sync(2, &b, None, generation, &[]);
    let _ = (s.sync_resp(1), s.sync_resp(2));
    // b changes its subscription; a keeps heartbeating but never rejoins.
    s.join(2, 9, &b, None, &[("range", b"sub-b2")]);
    for _ in 0..8 {
        s.advance(Duration::from_secs(3));
        let _ = s.heartbeat(1, &a, Some("inst-a"), generation);
    }
    let rb = s
        .join_resp(2, 9)
        .expect("join phase ended at the rebalance timeout");
    assert_eq!(rb.generation_id, generation + 1);
    assert_eq!(rb.leader.as_str(), b, "a member that rejoined leads");
    let mut members: Vec<(String, Option<String>, Vec<u8>)> = rb
        .members
        .iter()
        .map(|m| {
            (
                m.member_id.as_str().to_string(),
                m.group_instance_id.as_ref().map(|i| i.as_str().to_string()),
                m.metadata.to_vec(),
            )
        })
        .collect();
    members.sort();
    let mut want = vec![
        (a.clone(), Some("inst-a".to_string()), b"sub-a".to_vec()),
        (b.clone(), None, b"sub-b2".to_vec()),
    ];
    want.sort();
    assert_eq!(members, want);
    assert_eq!(
        s.heartbeat(1, &a, Some("inst-a"), generation),
        ILLEGAL_GENERATION,
        "still a member, one generation behind"
    );
}
