//! A scripted broker for membership tests: it decodes every request the
//! engine sends (kafka-protocol's broker-side decoders) and lets the test
//! answer it with a response encoded by kafka-protocol's broker-side
//! encoders. Time is virtual: `advance` moves it and fires due timers.
//!
//! A test reads as a scripted exchange: `expect(ApiKey::JoinGroup)`, then
//! `respond(&req, JoinGroupResponse ...)`, then assertions on the next
//! request and on the events.
#![allow(dead_code)]
#![allow(clippy::disallowed_methods)] // a test's arbitrary origin; time then advances virtually

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kgroup::assignor::{
    AssignError, Assignor, ClusterMetadata, GroupAssignment, MemberAssignment, MemberSubscription,
    RebalanceProtocol,
};
use kgroup::kafka_protocol::messages::api_versions_response::ApiVersion;
use kgroup::kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kgroup::kafka_protocol::messages::metadata_response::{
    MetadataResponsePartition, MetadataResponseTopic,
};
use kgroup::kafka_protocol::messages::*;
use kgroup::kafka_protocol::protocol::{
    Decodable, Encodable, HeaderVersion, StrBytes, decode_request_header_from_buffer,
};
use kgroup::wire::{Assignment, Subscription};
use kgroup::{Broker, Config, Event, Group, RequestId, TopicPartition, Transmit, TransportError};

/// A decoded request.
#[derive(Debug, Clone)]
pub enum Body {
    ApiVersions(ApiVersionsRequest),
    FindCoordinator(FindCoordinatorRequest),
    Metadata(MetadataRequest),
    JoinGroup(JoinGroupRequest),
    SyncGroup(SyncGroupRequest),
    Heartbeat(HeartbeatRequest),
    LeaveGroup(LeaveGroupRequest),
    OffsetCommit(OffsetCommitRequest),
    OffsetFetch(OffsetFetchRequest),
    Other,
}

/// One request the engine sent.
#[derive(Debug, Clone)]
pub struct Sent {
    pub id: RequestId,
    pub broker: Broker,
    pub connection: u32,
    pub api: ApiKey,
    pub version: i16,
    pub body: Body,
}

impl Sent {
    pub fn join(&self) -> &JoinGroupRequest {
        match &self.body {
            Body::JoinGroup(r) => r,
            other => panic!("expected JoinGroup, got {other:?}"),
        }
    }
    pub fn sync(&self) -> &SyncGroupRequest {
        match &self.body {
            Body::SyncGroup(r) => r,
            other => panic!("expected SyncGroup, got {other:?}"),
        }
    }
    pub fn heartbeat(&self) -> &HeartbeatRequest {
        match &self.body {
            Body::Heartbeat(r) => r,
            other => panic!("expected Heartbeat, got {other:?}"),
        }
    }
    pub fn leave(&self) -> &LeaveGroupRequest {
        match &self.body {
            Body::LeaveGroup(r) => r,
            other => panic!("expected LeaveGroup, got {other:?}"),
        }
    }
    pub fn commit(&self) -> &OffsetCommitRequest {
        match &self.body {
            Body::OffsetCommit(r) => r,
            other => panic!("expected OffsetCommit, got {other:?}"),
        }
    }
    pub fn fetch(&self) -> &OffsetFetchRequest {
        match &self.body {
            Body::OffsetFetch(r) => r,
            other => panic!("expected OffsetFetch, got {other:?}"),
        }
    }
    pub fn metadata(&self) -> &MetadataRequest {
        match &self.body {
            Body::Metadata(r) => r,
            other => panic!("expected Metadata, got {other:?}"),
        }
    }
    /// The subscription in the first protocol of a JoinGroup.
    pub fn subscription(&self) -> Subscription {
        let j = self.join();
        Subscription::decode(&j.protocols[0].metadata)
            .expect("subscription decodes")
            .1
    }
}

fn decode(t: &Transmit) -> Sent {
    let mut buf = t.bytes.clone();
    let size = buf.get_i32();
    assert_eq!(size as usize, buf.len(), "size prefix matches");
    let header = decode_request_header_from_buffer(&mut buf).expect("request header");
    let api = ApiKey::try_from(header.request_api_key).expect("api key");
    let version = header.request_api_version;
    assert_eq!(
        header.correlation_id, t.id.0,
        "request id is the correlation id"
    );
    assert_eq!(api, t.api);
    let body = match api {
        ApiKey::ApiVersions => {
            Body::ApiVersions(ApiVersionsRequest::decode(&mut buf, version).unwrap())
        }
        ApiKey::FindCoordinator => {
            Body::FindCoordinator(FindCoordinatorRequest::decode(&mut buf, version).unwrap())
        }
        ApiKey::Metadata => Body::Metadata(MetadataRequest::decode(&mut buf, version).unwrap()),
        ApiKey::JoinGroup => Body::JoinGroup(JoinGroupRequest::decode(&mut buf, version).unwrap()),
        ApiKey::SyncGroup => Body::SyncGroup(SyncGroupRequest::decode(&mut buf, version).unwrap()),
        ApiKey::Heartbeat => Body::Heartbeat(HeartbeatRequest::decode(&mut buf, version).unwrap()),
        ApiKey::LeaveGroup => {
            Body::LeaveGroup(LeaveGroupRequest::decode(&mut buf, version).unwrap())
        }
        ApiKey::OffsetCommit => {
            Body::OffsetCommit(OffsetCommitRequest::decode(&mut buf, version).unwrap())
        }
        ApiKey::OffsetFetch => {
            Body::OffsetFetch(OffsetFetchRequest::decode(&mut buf, version).unwrap())
        }
        _ => Body::Other,
    };
    if !matches!(body, Body::Other) {
        assert!(
            !buf.has_remaining(),
            "{api:?} v{version}: trailing request bytes"
        );
    }
    let connection = t.destination.connection.0;
    Sent {
        id: t.id,
        broker: t.destination.broker.clone(),
        connection,
        api,
        version,
        body,
    }
}

/// Encode a response frame (no size prefix) for `sent`.
pub fn frame<R: Encodable + HeaderVersion>(sent: &Sent, body: &R) -> Bytes {
    let mut out = BytesMut::new();
    out.put_i32(sent.id.0);
    if R::header_version(sent.version) >= 1 {
        out.put_u8(0); // no tagged fields
    }
    body.encode(&mut out, sent.version)
        .expect("response encodes");
    out.freeze()
}

/// Broker version ranges the scripted broker offers.
pub fn api_versions(max: &BTreeMap<i16, i16>) -> ApiVersionsResponse {
    let mut keys = vec![];
    for (api, min, top) in [
        (ApiKey::ApiVersions, 0, 3),
        (ApiKey::Metadata, 0, 12),
        (ApiKey::FindCoordinator, 0, 4),
        (ApiKey::JoinGroup, 0, 9),
        (ApiKey::SyncGroup, 0, 5),
        (ApiKey::Heartbeat, 0, 4),
        (ApiKey::LeaveGroup, 0, 5),
        (ApiKey::OffsetCommit, 2, 9),
        (ApiKey::OffsetFetch, 1, 9),
    ] {
        let top = max.get(&(api as i16)).copied().unwrap_or(top);
        keys.push(
            ApiVersion::default()
                .with_api_key(api as i16)
                .with_min_version(min)
                .with_max_version(top),
        );
    }
    ApiVersionsResponse::default().with_api_keys(keys)
}

/// The test driver: one engine, a virtual clock, the events seen.
pub struct Harness {
    pub group: Group,
    pub now: Instant,
    pub events: Vec<Event>,
    pub max_versions: BTreeMap<i16, i16>,
    queued: Vec<Sent>,
}

pub const COORD: i32 = 1;
pub const GROUP: &str = "g";

impl Harness {
    pub fn new(config: Config) -> Self {
        let now = Instant::now();
        Self {
            group: Group::new(config, now),
            now,
            events: vec![],
            max_versions: BTreeMap::new(),
            queued: vec![],
        }
    }

    /// Default config builder: group "g", the given assignors, 10 s session,
    /// 1 s heartbeat, 60 s rebalance timeout, and no OffsetFetch before
    /// `Assigned` (the membership scripts do not answer one; the tests of
    /// that fetch turn it back on).
    pub fn config(assignors: &[Arc<dyn Assignor>]) -> kgroup::ConfigBuilder {
        Config::builder(GROUP)
            .fetch_committed_on_assign(false)
            .assignors(assignors.to_vec())
            .session_timeout(Duration::from_secs(10))
            .heartbeat_interval(Duration::from_secs(1))
            .rebalance_timeout(Duration::from_secs(60))
            .seed(7)
    }

    /// Make the scripted broker offer at most `version` of `api`.
    pub fn cap_version(&mut self, api: ApiKey, version: i16) {
        self.max_versions.insert(api as i16, version);
    }

    /// Collect events into `self.events`.
    fn drain_events(&mut self) {
        while let Some(e) = self.group.poll_event() {
            self.events.push(e);
        }
    }

    /// Take the events seen so far.
    pub fn take_events(&mut self) -> Vec<Event> {
        self.drain_events();
        std::mem::take(&mut self.events)
    }

    /// Every request the engine wants to send now.
    pub fn poll_all(&mut self) -> Vec<Sent> {
        let mut out = std::mem::take(&mut self.queued);
        while let Some(t) = self.group.poll_transmit(self.now) {
            out.push(decode(&t));
        }
        self.drain_events();
        out
    }

    /// The next request, if any.
    pub fn next(&mut self) -> Option<Sent> {
        let mut all = self.poll_all();
        if all.is_empty() {
            return None;
        }
        let first = all.remove(0);
        self.queued = all;
        Some(first)
    }

    /// The next request, which must be `api`.
    #[track_caller]
    pub fn expect(&mut self, api: ApiKey) -> Sent {
        match self.next() {
            Some(s) if s.api == api => s,
            Some(s) => panic!("expected {api:?}, engine sent {:?}: {:?}", s.api, s.body),
            None => panic!(
                "expected {api:?}, engine sent nothing (state {}, timeout {:?})",
                self.group.state(),
                self.group.poll_timeout_reason().map(|(_, t)| t)
            ),
        }
    }

    /// No request now.
    #[track_caller]
    pub fn expect_nothing(&mut self) {
        if let Some(s) = self.next() {
            panic!("expected no request, engine sent {:?}: {:?}", s.api, s.body);
        }
    }

    pub fn respond<R: Encodable + HeaderVersion>(&mut self, sent: &Sent, body: R) {
        let f = frame(sent, &body);
        self.group.handle_response(self.now, sent.id, f);
        self.drain_events();
    }

    pub fn respond_raw(&mut self, sent: &Sent, bytes: Bytes) {
        self.group.handle_response(self.now, sent.id, bytes);
        self.drain_events();
    }

    pub fn fail(&mut self, sent: &Sent) {
        self.group.handle_transport_error(
            self.now,
            sent.id,
            TransportError::Disconnected("reset by peer".into()),
        );
        self.drain_events();
    }

    /// Move the clock by `d`, firing every timer due on the way.
    pub fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        while let Some(at) = self.group.poll_timeout() {
            if at > target {
                break;
            }
            self.now = self.now.max(at);
            self.group.handle_timeout(self.now);
            self.drain_events();
        }
        self.now = target;
    }

    /// Advance to the next deadline and fire it.
    pub fn fire_next_timer(&mut self) -> kgroup::Timer {
        let (at, timer) = self.group.poll_timeout_reason().expect("a timer is armed");
        self.now = self.now.max(at);
        self.group.handle_timeout(self.now);
        self.drain_events();
        timer
    }

    pub fn subscribe(&mut self, topics: &[&str]) {
        self.group
            .subscribe(self.now, topics.iter().map(|t| t.to_string()));
        self.drain_events();
    }

    /// Answer ApiVersions on whatever connection asks.
    pub fn answer_api_versions(&mut self) -> Sent {
        let s = self.expect(ApiKey::ApiVersions);
        let r = api_versions(&self.max_versions);
        self.respond(&s, r);
        s
    }

    /// ApiVersions + FindCoordinator on the bootstrap connection, then
    /// ApiVersions on the coordinator connection.
    pub fn find_coordinator(&mut self) {
        let s = self.answer_api_versions();
        assert_eq!(s.broker, Broker::Any);
        let fc = self.expect(ApiKey::FindCoordinator);
        assert_eq!(fc.broker, Broker::Any);
        self.respond(&fc, coordinator_found(COORD));
        let s = self.answer_api_versions();
        assert!(matches!(s.broker, Broker::Node(ref n) if n.node_id == COORD));
    }

    /// JoinGroup answered as a follower of generation `generation`.
    pub fn join_as_follower(&mut self, member: &str, generation: i32) -> Sent {
        let j = self.expect(ApiKey::JoinGroup);
        let protocol = j.join().protocols[0].name.to_string();
        self.respond(&j, join_response(generation, &protocol, "leader-0", member));
        j
    }

    /// SyncGroup answered with `partitions`.
    pub fn sync_with(&mut self, partitions: &[(&str, i32)]) -> Sent {
        let s = self.expect(ApiKey::SyncGroup);
        let a = Assignment::new(tps(partitions)).encode(3).unwrap();
        self.respond(&s, SyncGroupResponse::default().with_assignment(a));
        s
    }

    /// From nothing to Stable as a follower owning `partitions`.
    pub fn join_stable(
        &mut self,
        topics: &[&str],
        member: &str,
        generation: i32,
        partitions: &[(&str, i32)],
    ) {
        self.subscribe(topics);
        self.find_coordinator();
        self.join_as_follower(member, generation);
        self.sync_with(partitions);
        assert_eq!(self.group.state(), kgroup::GroupState::Stable);
    }

    /// Fire timers, answering every heartbeat with `code`, until a
    /// JoinGroup goes out; return it.
    pub fn heartbeat_until_join(&mut self, code: i16) -> Sent {
        loop {
            self.fire_next_timer();
            let all = self.poll_all();
            if let Some(j) = all.iter().find(|s| s.api == ApiKey::JoinGroup) {
                return j.clone();
            }
            for s in all {
                assert_eq!(s.api, ApiKey::Heartbeat, "unexpected {:?}", s.body);
                self.respond(&s, heartbeat_error(code));
            }
        }
    }

    /// Advance to the next heartbeat and return it.
    pub fn next_heartbeat(&mut self) -> Sent {
        loop {
            if let Some(s) = self.next() {
                assert_eq!(s.api, ApiKey::Heartbeat, "unexpected {:?}", s.body);
                return s;
            }
            let t = self.fire_next_timer();
            assert!(
                t != kgroup::Timer::Session,
                "session expired while waiting for a heartbeat"
            );
        }
    }
}

pub fn tps(p: &[(&str, i32)]) -> Vec<TopicPartition> {
    let mut v: Vec<TopicPartition> = p.iter().map(|(t, n)| TopicPartition::new(*t, *n)).collect();
    v.sort();
    v
}

pub fn coordinator_found(node: i32) -> FindCoordinatorResponse {
    FindCoordinatorResponse::default()
        .with_node_id(BrokerId(node))
        .with_host(StrBytes::from_static_str("broker1.test"))
        .with_port(9092)
}

pub fn error_response<R: Default>(f: impl FnOnce(R) -> R) -> R {
    f(R::default())
}

/// An OffsetCommit response answering every partition of `req` with `code`.
pub fn commit_response(req: &OffsetCommitRequest, code: i16) -> OffsetCommitResponse {
    kgroup::offsets::commit_response_for(req, |_, _| code)
}

/// A successful JoinGroup answer of `generation` for the consumer protocol
/// type, choosing assignor `protocol`, with `leader` and `member` ids (add
/// `.with_members(..)` for a leader's answer).
pub fn join_response(
    generation: i32,
    protocol: &str,
    leader: &str,
    member: &str,
) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_generation_id(generation)
        .with_protocol_type(Some(StrBytes::from_static_str("consumer")))
        .with_protocol_name(Some(StrBytes::from_string(protocol.into())))
        .with_leader(StrBytes::from_string(leader.into()))
        .with_member_id(StrBytes::from_string(member.into()))
}

pub fn heartbeat_error(code: i16) -> HeartbeatResponse {
    HeartbeatResponse::default().with_error_code(code)
}

pub fn metadata(topics: &[(&str, i32)]) -> MetadataResponse {
    MetadataResponse::default().with_topics(
        topics
            .iter()
            .map(|(t, n)| {
                MetadataResponseTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_string((*t).into()))))
                    .with_partitions(
                        (0..*n)
                            .map(|i| MetadataResponsePartition::default().with_partition_index(i))
                            .collect(),
                    )
            })
            .collect(),
    )
}

pub fn member(id: &str, sub: &Subscription) -> JoinGroupResponseMember {
    JoinGroupResponseMember::default()
        .with_member_id(StrBytes::from_string(id.into()))
        .with_metadata(sub.encode(3).unwrap())
}

/// Events of one kind, for assertions.
pub fn assigned(events: &[Event]) -> Vec<(i32, Vec<TopicPartition>, Vec<TopicPartition>)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Assigned {
                generation,
                partitions,
                added,
                ..
            } => Some((*generation, partitions.clone(), added.clone())),
            _ => None,
        })
        .collect()
}

pub fn revoked(events: &[Event]) -> Vec<Vec<TopicPartition>> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Revoked { partitions } => Some(partitions.clone()),
            _ => None,
        })
        .collect()
}

pub fn lost(events: &[Event]) -> Vec<(Vec<TopicPartition>, kgroup::LostReason)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Lost { partitions, reason } => Some((partitions.clone(), *reason)),
            _ => None,
        })
        .collect()
}

pub fn fatal(events: &[Event]) -> Option<&kgroup::GroupError> {
    events.iter().find_map(|e| match e {
        Event::Fatal(err) => Some(err),
        _ => None,
    })
}

/// Test assignors: every partition to the first member in member-id order
/// ("first", eager), and the same claiming cooperative support ("coop-first").
#[derive(Debug)]
pub struct FirstTakesAll {
    name: &'static str,
    protocols: &'static [RebalanceProtocol],
}

pub fn eager_first() -> Arc<dyn Assignor> {
    Arc::new(FirstTakesAll {
        name: "first",
        protocols: &[RebalanceProtocol::Eager],
    })
}

pub fn coop_first() -> Arc<dyn Assignor> {
    Arc::new(FirstTakesAll {
        name: "coop-first",
        protocols: &[RebalanceProtocol::Cooperative, RebalanceProtocol::Eager],
    })
}

impl Assignor for FirstTakesAll {
    fn name(&self) -> &str {
        self.name
    }
    fn supported_protocols(&self) -> &[RebalanceProtocol] {
        self.protocols
    }
    fn assign(
        &self,
        metadata: &ClusterMetadata,
        members: &[MemberSubscription],
    ) -> Result<GroupAssignment, AssignError> {
        let mut out = GroupAssignment::new();
        let mut ids: Vec<&str> = members.iter().map(|m| m.member_id.as_str()).collect();
        ids.sort();
        for (i, id) in ids.iter().enumerate() {
            let mut a = MemberAssignment::default();
            if i == 0 {
                let m = members.iter().find(|m| m.member_id == *id).unwrap();
                for t in &m.topics {
                    if let Some(info) = metadata.get(t) {
                        for p in 0..info.partitions {
                            a.partitions.push(TopicPartition::new(t.clone(), p));
                        }
                    }
                }
            }
            out.insert((*id).to_owned(), a);
        }
        Ok(out)
    }
}
