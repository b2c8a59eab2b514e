//! A simulated Kafka cluster as the group protocol sees it: brokers that
//! answer ApiVersions, Metadata and FindCoordinator, and the one
//! `__consumer_offsets` partition whose leader is the group coordinator.
//!
//! It speaks real frames: requests are decoded and responses encoded with
//! `kafka-protocol` at the version each request was sent with, so engines are
//! driven through their real wire path. As a Kafka broker does
//! (`SocketServer` muting, PROTOCOL.md §0.1), each connection is served one
//! request at a time: a parked JoinGroup holds back every later request on
//! its connection.
//!
//! Coordinator failover follows Kafka: when the coordinator's broker crashes
//! the partition is offline until another broker is elected leader; the new
//! leader loads the persisted [`GroupStore`] (answering
//! `COORDINATOR_LOAD_IN_PROGRESS` meanwhile) and other brokers answer
//! `NOT_COORDINATOR`. Members and generation survive; parked requests do not.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::api_versions_response::{ApiVersion, ApiVersionsResponse};
use kafka_protocol::messages::find_coordinator_response::{Coordinator, FindCoordinatorResponse};
use kafka_protocol::messages::heartbeat_response::HeartbeatResponse;
use kafka_protocol::messages::leave_group_response::LeaveGroupResponse;
use kafka_protocol::messages::metadata_response::{
    MetadataResponse, MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponse, OffsetFetchResponseGroup, OffsetFetchResponsePartition,
    OffsetFetchResponseTopic,
};
use kafka_protocol::messages::sync_group_response::SyncGroupResponse;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, BrokerId, FindCoordinatorRequest, HeartbeatRequest,
    JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, MetadataRequest, OffsetCommitRequest,
    OffsetFetchRequest, SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use kgroup::offsets::commit_response_for;

use crate::clock::SimTime;
use crate::coordinator::store::GroupStore;
use crate::coordinator::{
    COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, CoordEvent, CoordinatorConfig,
    GroupCoordinator, NONE, NOT_COORDINATOR, Reply, ReplyBody, ReplyTo, UNKNOWN_TOPIC_OR_PARTITION,
    UNSUPPORTED_VERSION,
};
use crate::frames::{self, FrameError};

/// The API version ranges a simulated broker advertises.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiVersionTable {
    /// `(api key, min, max)` per supported API.
    pub ranges: BTreeMap<i16, (i16, i16)>,
}

impl ApiVersionTable {
    /// A Kafka 4.x broker (after KIP-896), per PROTOCOL.md §1.
    pub fn modern() -> Self {
        Self::from_list(&[
            (ApiKey::ApiVersions, 0, 4),
            (ApiKey::Metadata, 0, 12),
            (ApiKey::FindCoordinator, 0, 6),
            (ApiKey::JoinGroup, 0, 9),
            (ApiKey::SyncGroup, 0, 5),
            (ApiKey::Heartbeat, 0, 4),
            (ApiKey::LeaveGroup, 0, 5),
            (ApiKey::OffsetCommit, 2, 9),
            (ApiKey::OffsetFetch, 1, 9),
        ])
    }

    /// A Kafka 2.3 broker: static membership (JoinGroup v5) but no KIP-814,
    /// no batched FindCoordinator, no flexible group APIs.
    pub fn kafka_2_3() -> Self {
        Self::from_list(&[
            (ApiKey::ApiVersions, 0, 2),
            (ApiKey::Metadata, 0, 8),
            (ApiKey::FindCoordinator, 0, 2),
            (ApiKey::JoinGroup, 0, 5),
            (ApiKey::SyncGroup, 0, 3),
            (ApiKey::Heartbeat, 0, 3),
            (ApiKey::LeaveGroup, 0, 2),
            (ApiKey::OffsetCommit, 2, 7),
            (ApiKey::OffsetFetch, 1, 6),
        ])
    }

    fn from_list(list: &[(ApiKey, i16, i16)]) -> Self {
        Self {
            ranges: list
                .iter()
                .map(|(k, lo, hi)| (*k as i16, (*lo, *hi)))
                .collect(),
        }
    }

    /// Whether `version` of `api` is served.
    pub fn supports(&self, api: ApiKey, version: i16) -> bool {
        self.ranges
            .get(&(api as i16))
            .is_some_and(|(lo, hi)| (*lo..=*hi).contains(&version))
    }
}

/// Cluster-wide settings.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// Number of brokers (node ids 0..n).
    pub brokers: i32,
    /// Topics and their partition counts.
    pub topics: BTreeMap<String, i32>,
    /// Versions every broker advertises.
    pub versions: ApiVersionTable,
    /// Coordinator rules.
    pub coordinator: CoordinatorConfig,
    /// How long a new coordinator takes to load the offsets partition.
    pub load_time: Duration,
    /// How long the offsets partition stays leaderless after its leader dies.
    pub election_delay: Duration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            brokers: 3,
            topics: BTreeMap::new(),
            versions: ApiVersionTable::modern(),
            coordinator: CoordinatorConfig::default(),
            load_time: Duration::from_millis(500),
            election_delay: Duration::from_millis(1000),
        }
    }
}

/// Where the coordinator partition is.
#[derive(Debug)]
enum Partition {
    /// Led by `broker`, loaded.
    Loaded {
        broker: i32,
        coordinator: Box<GroupCoordinator>,
    },
    /// Being loaded by `broker` until `until`.
    Loading {
        broker: i32,
        until: SimTime,
        store: GroupStore,
    },
    /// No leader; a new one is elected at `elect_at` if a broker is alive.
    Offline {
        elect_at: SimTime,
        store: GroupStore,
    },
}

/// What the cluster wants the network to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterOutput {
    /// Send a response frame (size-prefixed) on a connection.
    Response {
        /// Connection.
        conn: u64,
        /// Frame.
        frame: Bytes,
    },
    /// The broker closes a connection (malformed request, unsupported
    /// version): in-flight requests on it fail.
    Close {
        /// Connection.
        conn: u64,
    },
}

#[derive(Debug, Default)]
struct Conn {
    broker: i32,
    /// The request being served: its reply is awaited before the next is read.
    busy: Option<(ApiKey, ReplyTo)>,
    queue: VecDeque<Bytes>,
}

/// A notable cluster change, for traces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterEvent {
    /// Broker went down.
    BrokerCrashed(i32),
    /// Broker came back.
    BrokerRestarted(i32),
    /// The coordinator partition went offline.
    CoordinatorOffline,
    /// A broker started loading the coordinator partition.
    CoordinatorLoading(i32),
    /// The coordinator is serving on a broker.
    CoordinatorReady(i32),
}

/// The simulated cluster.
#[derive(Debug)]
pub struct Cluster {
    config: ClusterConfig,
    alive: Vec<bool>,
    partition: Partition,
    conns: BTreeMap<u64, Conn>,
    outputs: Vec<ClusterOutput>,
    coord_events: Vec<(String, CoordEvent)>,
    events: Vec<ClusterEvent>,
    id_seed: u64,
    loads: u64,
    /// Time of the latest input, for requests served later from a queue.
    now_cache: SimTime,
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

impl Cluster {
    /// A cluster whose coordinator starts loaded on broker 0.
    pub fn new(config: ClusterConfig, id_seed: u64) -> Self {
        let n = usize::try_from(config.brokers.max(1)).unwrap_or(1);
        let coordinator = GroupCoordinator::new(config.coordinator.clone(), id_seed);
        Self {
            config,
            alive: vec![true; n],
            partition: Partition::Loaded {
                broker: 0,
                coordinator: Box::new(coordinator),
            },
            conns: BTreeMap::new(),
            outputs: Vec::new(),
            coord_events: Vec::new(),
            events: Vec::new(),
            id_seed,
            loads: 0,
            now_cache: SimTime::ZERO,
        }
    }

    /// Settings.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// Number of brokers.
    pub fn broker_count(&self) -> i32 {
        i32::try_from(self.alive.len()).unwrap_or(i32::MAX)
    }

    /// Whether broker `b` is up.
    pub fn is_alive(&self, b: i32) -> bool {
        usize::try_from(b)
            .ok()
            .and_then(|i| self.alive.get(i))
            .copied()
            .unwrap_or(false)
    }

    /// The loaded coordinator, if the partition is online and loaded.
    pub fn coordinator(&self) -> Option<&GroupCoordinator> {
        match &self.partition {
            Partition::Loaded { coordinator, .. } => Some(coordinator),
            _ => None,
        }
    }

    /// Mutable access to the loaded coordinator (fault switches).
    pub fn coordinator_mut(&mut self) -> Option<&mut GroupCoordinator> {
        match &mut self.partition {
            Partition::Loaded { coordinator, .. } => Some(coordinator),
            _ => None,
        }
    }

    /// The broker that leads the coordinator partition (loaded or loading).
    pub fn coordinator_broker(&self) -> Option<i32> {
        match &self.partition {
            Partition::Loaded { broker, .. } | Partition::Loading { broker, .. } => Some(*broker),
            Partition::Offline { .. } => None,
        }
    }

    /// The persisted group state, wherever the partition is.
    pub fn store(&self) -> &GroupStore {
        match &self.partition {
            Partition::Loaded { coordinator, .. } => coordinator.store(),
            Partition::Loading { store, .. } | Partition::Offline { store, .. } => store,
        }
    }

    /// Outputs for the network, in order.
    pub fn drain_outputs(&mut self) -> Vec<ClusterOutput> {
        std::mem::take(&mut self.outputs)
    }

    /// Coordinator events since the last call.
    pub fn drain_coord_events(&mut self) -> Vec<(String, CoordEvent)> {
        std::mem::take(&mut self.coord_events)
    }

    /// Cluster events since the last call.
    pub fn drain_events(&mut self) -> Vec<ClusterEvent> {
        std::mem::take(&mut self.events)
    }

    /// Open connection `conn` to broker `b` (refused when `b` is down).
    pub fn connect(&mut self, conn: u64, b: i32) -> bool {
        if !self.is_alive(b) {
            return false;
        }
        self.conns.insert(
            conn,
            Conn {
                broker: b,
                ..Default::default()
            },
        );
        true
    }

    /// The client side closed `conn` (or it was reset): queued requests are
    /// dropped; a parked request is still answered by the coordinator later,
    /// into the void, as Kafka does.
    pub fn disconnect(&mut self, conn: u64) {
        self.conns.remove(&conn);
    }

    /// Whether `conn` is open.
    pub fn is_connected(&self, conn: u64) -> bool {
        self.conns.contains_key(&conn)
    }

    /// Crash broker `b`: its connections die; if it led the coordinator
    /// partition, the partition goes offline (in-memory state lost).
    pub fn crash_broker(&mut self, now: SimTime, b: i32) {
        let Some(slot) = usize::try_from(b).ok().and_then(|i| self.alive.get_mut(i)) else {
            return;
        };
        *slot = false;
        self.events.push(ClusterEvent::BrokerCrashed(b));
        self.conns.retain(|_, c| c.broker != b);
        if self.coordinator_broker() == Some(b) {
            self.take_offline(now);
        }
    }

    /// Restart broker `b`.
    pub fn restart_broker(&mut self, now: SimTime, b: i32) {
        if let Some(slot) = usize::try_from(b).ok().and_then(|i| self.alive.get_mut(i)) {
            *slot = true;
            self.events.push(ClusterEvent::BrokerRestarted(b));
        }
        self.handle_timeout(now);
    }

    /// Move the coordinator partition to broker `to` (a leader change of
    /// `__consumer_offsets`): the old leader unloads (parked requests get
    /// `NOT_COORDINATOR`), `to` loads.
    pub fn move_coordinator(&mut self, now: SimTime, to: i32) {
        if !self.is_alive(to) || self.coordinator_broker() == Some(to) {
            return;
        }
        let store = self.unload();
        self.start_loading(now, to, store);
    }

    fn unload(&mut self) -> GroupStore {
        let placeholder = Partition::Offline {
            elect_at: SimTime::ZERO,
            store: GroupStore::default(),
        };
        match std::mem::replace(&mut self.partition, placeholder) {
            Partition::Loaded {
                broker,
                mut coordinator,
            } => {
                coordinator.unload();
                let replies = coordinator.drain_replies();
                self.coord_events.extend(coordinator.drain_events());
                let store = coordinator.into_store();
                let alive = self.is_alive(broker);
                if alive {
                    for r in replies {
                        self.send_reply(r);
                    }
                }
                store
            }
            Partition::Loading { store, .. } | Partition::Offline { store, .. } => store,
        }
    }

    fn take_offline(&mut self, now: SimTime) {
        let store = self.unload();
        self.partition = Partition::Offline {
            elect_at: now + self.config.election_delay,
            store,
        };
        self.events.push(ClusterEvent::CoordinatorOffline);
    }

    fn start_loading(&mut self, now: SimTime, broker: i32, store: GroupStore) {
        self.partition = Partition::Loading {
            broker,
            until: now + self.config.load_time,
            store,
        };
        self.events.push(ClusterEvent::CoordinatorLoading(broker));
    }

    /// The earliest time [`Self::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<SimTime> {
        match &self.partition {
            Partition::Loaded { coordinator, .. } => coordinator.poll_timeout(),
            Partition::Loading { until, .. } => Some(*until),
            Partition::Offline { elect_at, .. } => {
                if self.alive.iter().any(|a| *a) {
                    Some(*elect_at)
                } else {
                    None
                }
            }
        }
    }

    /// Run timers due at `now`.
    pub fn handle_timeout(&mut self, now: SimTime) {
        self.now_cache = now;
        match &mut self.partition {
            Partition::Loaded { coordinator, .. } => {
                coordinator.handle_timeout(now);
                self.flush_coordinator();
            }
            Partition::Loading {
                broker,
                until,
                store,
            } if *until <= now => {
                let broker = *broker;
                let store = std::mem::take(store);
                self.loads += 1;
                let seed = self.id_seed ^ self.loads.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let coordinator =
                    GroupCoordinator::load(self.config.coordinator.clone(), store, now, seed);
                self.partition = Partition::Loaded {
                    broker,
                    coordinator: Box::new(coordinator),
                };
                self.events.push(ClusterEvent::CoordinatorReady(broker));
            }
            Partition::Offline { elect_at, store } if *elect_at <= now => {
                // Elect the lowest-numbered live broker (deterministic).
                if let Some(b) = self.alive.iter().position(|a| *a) {
                    let store = std::mem::take(store);
                    let b = i32::try_from(b).unwrap_or(0);
                    self.start_loading(now, b, store);
                }
            }
            _ => {}
        }
    }

    fn flush_coordinator(&mut self) {
        let (replies, events) = match &mut self.partition {
            Partition::Loaded { coordinator, .. } => {
                (coordinator.drain_replies(), coordinator.drain_events())
            }
            _ => return,
        };
        self.coord_events.extend(events);
        for r in replies {
            self.send_reply(r);
        }
    }

    /// Encode a coordinator reply, send it if its connection is still open,
    /// and let that connection's next request through.
    fn send_reply(&mut self, reply: Reply) {
        let Reply { to, body } = reply;
        let encoded = match body {
            ReplyBody::Join(r) => {
                let mut r = r;
                if to.version < 9 {
                    r.skip_assignment = false;
                }
                frames::encode_response(
                    ApiKey::JoinGroup,
                    to.version,
                    to.correlation_id,
                    &r,
                    "JoinGroup",
                )
            }
            ReplyBody::Sync(r) => frames::encode_response(
                ApiKey::SyncGroup,
                to.version,
                to.correlation_id,
                &r,
                "SyncGroup",
            ),
            ReplyBody::Heartbeat(r) => frames::encode_response(
                ApiKey::Heartbeat,
                to.version,
                to.correlation_id,
                &r,
                "Heartbeat",
            ),
            ReplyBody::Leave(r) => frames::encode_response(
                ApiKey::LeaveGroup,
                to.version,
                to.correlation_id,
                &r,
                "LeaveGroup",
            ),
            ReplyBody::Commit(r) => frames::encode_response(
                ApiKey::OffsetCommit,
                to.version,
                to.correlation_id,
                &r,
                "OffsetCommit",
            ),
            ReplyBody::Fetch(r) => frames::encode_response(
                ApiKey::OffsetFetch,
                to.version,
                to.correlation_id,
                &r,
                "OffsetFetch",
            ),
        };
        let Some(conn) = self.conns.get_mut(&to.conn) else {
            return; // connection gone: the answer is lost
        };
        if conn.busy.map(|(_, t)| t) != Some(to) {
            return; // an answer for a request of a previous connection
        }
        conn.busy = None;
        match encoded {
            Ok(frame) => self.outputs.push(ClusterOutput::Response {
                conn: to.conn,
                frame,
            }),
            Err(_) => self.close(to.conn),
        }
        self.serve_next(to.conn);
    }

    fn close(&mut self, conn: u64) {
        self.conns.remove(&conn);
        self.outputs.push(ClusterOutput::Close { conn });
    }

    /// A request frame (size-prefixed) arrives on `conn`.
    pub fn handle_request(&mut self, now: SimTime, conn: u64, frame: Bytes) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.queue.push_back(frame);
        if c.busy.is_none() {
            self.now_cache = now;
            self.serve_next(conn);
        }
    }
}

// The per-request work needs the current time while serving queued requests
// from `send_reply`, which has no `now` argument; the cluster remembers the
// time of the last input.
impl Cluster {
    fn serve_next(&mut self, conn: u64) {
        loop {
            let now = self.now_cache;
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            if c.busy.is_some() {
                return;
            }
            let Some(frame) = c.queue.pop_front() else {
                return;
            };
            let broker = c.broker;
            match self.serve(now, conn, broker, &frame) {
                Ok(()) => {}
                Err(_) => {
                    self.close(conn);
                    return;
                }
            }
        }
    }

    fn serve(
        &mut self,
        now: SimTime,
        conn: u64,
        broker: i32,
        frame: &[u8],
    ) -> Result<(), FrameError> {
        let mut payload = frames::unframe(frame)?;
        let (api, header) = frames::decode_request_header(&mut payload)?;
        let version = header.request_api_version;
        let corr = header.correlation_id;
        let client_id = header.client_id.as_deref().unwrap_or_default().to_string();
        let to = ReplyTo {
            conn,
            correlation_id: corr,
            version,
        };
        if !self.config.versions.supports(api, version) {
            if api == ApiKey::ApiVersions {
                // KIP-511: answer at v0 with our ranges so the client can retry lower.
                let resp = self.api_versions_response(UNSUPPORTED_VERSION);
                let frame = frames::encode_response(api, 0, corr, &resp, "ApiVersions")?;
                self.outputs.push(ClusterOutput::Response { conn, frame });
                return Ok(());
            }
            return Err(FrameError::Decode {
                what: "api version",
                detail: format!("{api:?} v{version} not supported"),
            });
        }
        match api {
            ApiKey::ApiVersions => {
                let _req = ApiVersionsRequest::decode(&mut payload, version).map_err(decode_err)?;
                let resp = self.api_versions_response(NONE);
                self.respond(conn, api, version, corr, &resp, "ApiVersions")
            }
            ApiKey::Metadata => {
                let req = MetadataRequest::decode(&mut payload, version).map_err(decode_err)?;
                let resp = self.metadata_response(&req, version);
                self.respond(conn, api, version, corr, &resp, "Metadata")
            }
            ApiKey::FindCoordinator => {
                let req =
                    FindCoordinatorRequest::decode(&mut payload, version).map_err(decode_err)?;
                let resp = self.find_coordinator_response(&req, version);
                self.respond(conn, api, version, corr, &resp, "FindCoordinator")
            }
            ApiKey::JoinGroup
            | ApiKey::SyncGroup
            | ApiKey::Heartbeat
            | ApiKey::LeaveGroup
            | ApiKey::OffsetCommit
            | ApiKey::OffsetFetch => {
                self.group_request(now, broker, api, to, &client_id, &mut payload)
            }
            _ => Err(FrameError::Decode {
                what: "api key",
                detail: format!("{api:?} not served by the simulator"),
            }),
        }
    }

    fn respond<T: kafka_protocol::protocol::Encodable>(
        &mut self,
        conn: u64,
        api: ApiKey,
        version: i16,
        corr: i32,
        body: &T,
        what: &'static str,
    ) -> Result<(), FrameError> {
        let frame = frames::encode_response(api, version, corr, body, what)?;
        self.outputs.push(ClusterOutput::Response { conn, frame });
        Ok(())
    }

    fn group_request(
        &mut self,
        now: SimTime,
        broker: i32,
        api: ApiKey,
        to: ReplyTo,
        client_id: &str,
        payload: &mut Bytes,
    ) -> Result<(), FrameError> {
        let version = to.version;
        // Decode first: a malformed request closes the connection whatever
        // the coordinator's state.
        let req = match api {
            ApiKey::JoinGroup => {
                GroupReq::Join(JoinGroupRequest::decode(payload, version).map_err(decode_err)?)
            }
            ApiKey::SyncGroup => {
                GroupReq::Sync(SyncGroupRequest::decode(payload, version).map_err(decode_err)?)
            }
            ApiKey::Heartbeat => {
                GroupReq::Heartbeat(HeartbeatRequest::decode(payload, version).map_err(decode_err)?)
            }
            ApiKey::LeaveGroup => {
                GroupReq::Leave(LeaveGroupRequest::decode(payload, version).map_err(decode_err)?)
            }
            ApiKey::OffsetCommit => {
                GroupReq::Commit(OffsetCommitRequest::decode(payload, version).map_err(decode_err)?)
            }
            _ => GroupReq::Fetch(OffsetFetchRequest::decode(payload, version).map_err(decode_err)?),
        };
        let state_error = match &self.partition {
            Partition::Loaded { broker: b, .. } if *b == broker => None,
            Partition::Loading { broker: b, .. } if *b == broker => {
                Some(COORDINATOR_LOAD_IN_PROGRESS)
            }
            _ => Some(NOT_COORDINATOR),
        };
        if let Some(code) = state_error {
            let reply = Reply {
                to,
                body: loading_or_error_body(&req, version, code),
            };
            self.mark_busy(to, api);
            self.send_reply(reply);
            return Ok(());
        }
        self.mark_busy(to, api);
        let Partition::Loaded { coordinator, .. } = &mut self.partition else {
            return Ok(());
        };
        match &req {
            GroupReq::Join(r) => coordinator.handle_join(now, to, client_id, r),
            GroupReq::Sync(r) => coordinator.handle_sync(now, to, r),
            GroupReq::Heartbeat(r) => coordinator.handle_heartbeat(now, to, r),
            GroupReq::Leave(r) => coordinator.handle_leave(now, to, r),
            GroupReq::Commit(r) => coordinator.handle_commit(now, to, r),
            GroupReq::Fetch(r) => coordinator.handle_fetch(to, r),
        }
        self.flush_coordinator();
        Ok(())
    }

    fn mark_busy(&mut self, to: ReplyTo, api: ApiKey) {
        if let Some(c) = self.conns.get_mut(&to.conn) {
            c.busy = Some((api, to));
        }
    }

    fn api_versions_response(&self, error: i16) -> ApiVersionsResponse {
        ApiVersionsResponse::default()
            .with_error_code(error)
            .with_api_keys(
                self.config
                    .versions
                    .ranges
                    .iter()
                    .map(|(k, (lo, hi))| {
                        ApiVersion::default()
                            .with_api_key(*k)
                            .with_min_version(*lo)
                            .with_max_version(*hi)
                    })
                    .collect(),
            )
    }

    fn live_brokers(&self) -> Vec<i32> {
        (0..self.broker_count())
            .filter(|b| self.is_alive(*b))
            .collect()
    }

    fn metadata_response(&self, req: &MetadataRequest, version: i16) -> MetadataResponse {
        let brokers = self
            .live_brokers()
            .into_iter()
            .map(|b| {
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(b))
                    .with_host(sb(&broker_host(b)))
                    .with_port(9092)
            })
            .collect();
        let all = req.topics.is_none()
            || (version == 0 && req.topics.as_ref().is_some_and(Vec::is_empty));
        let names: Vec<String> = if all {
            self.config.topics.keys().cloned().collect()
        } else {
            req.topics
                .iter()
                .flatten()
                .filter_map(|t| t.name.as_ref().map(|n| n.0.as_str().to_string()))
                .collect()
        };
        let leader = self.live_brokers().first().copied().unwrap_or(-1);
        let topics = names
            .into_iter()
            .map(|name| match self.config.topics.get(&name) {
                Some(&count) => MetadataResponseTopic::default()
                    .with_name(Some(TopicName(sb(&name))))
                    .with_partitions(
                        (0..count)
                            .map(|p| {
                                MetadataResponsePartition::default()
                                    .with_partition_index(p)
                                    .with_leader_id(BrokerId(leader))
                                    .with_replica_nodes(vec![BrokerId(leader)])
                                    .with_isr_nodes(vec![BrokerId(leader)])
                            })
                            .collect(),
                    ),
                None => MetadataResponseTopic::default()
                    .with_name(Some(TopicName(sb(&name))))
                    .with_error_code(UNKNOWN_TOPIC_OR_PARTITION),
            })
            .collect();
        MetadataResponse::default()
            .with_brokers(brokers)
            .with_controller_id(BrokerId(leader))
            .with_topics(topics)
    }

    fn find_coordinator_response(
        &self,
        req: &FindCoordinatorRequest,
        version: i16,
    ) -> FindCoordinatorResponse {
        let (error, node) = match self.coordinator_broker() {
            Some(b) if self.is_alive(b) => (NONE, b),
            _ => (COORDINATOR_NOT_AVAILABLE, -1),
        };
        let host = if node >= 0 {
            broker_host(node)
        } else {
            String::new()
        };
        let port = if node >= 0 { 9092 } else { -1 };
        if version >= 4 {
            let coordinators = req
                .coordinator_keys
                .iter()
                .map(|k| {
                    Coordinator::default()
                        .with_key(k.clone())
                        .with_node_id(BrokerId(node))
                        .with_host(sb(&host))
                        .with_port(port)
                        .with_error_code(error)
                })
                .collect();
            FindCoordinatorResponse::default().with_coordinators(coordinators)
        } else {
            FindCoordinatorResponse::default()
                .with_error_code(error)
                .with_node_id(BrokerId(node))
                .with_host(sb(&host))
                .with_port(port)
        }
    }
}

/// Host name of broker `b` (cosmetic: the network routes by node id).
pub fn broker_host(b: i32) -> String {
    format!("broker-{b}.sim")
}

fn decode_err<E: std::fmt::Display>(e: E) -> FrameError {
    FrameError::Decode {
        what: "request body",
        detail: e.to_string(),
    }
}

#[derive(Debug)]
enum GroupReq {
    Join(JoinGroupRequest),
    Sync(SyncGroupRequest),
    Heartbeat(HeartbeatRequest),
    Leave(LeaveGroupRequest),
    Commit(OffsetCommitRequest),
    Fetch(OffsetFetchRequest),
}

/// The response while the coordinator cannot serve a request. While the
/// group is loading Kafka answers a Heartbeat `NONE` ("the group is still
/// loading, so respond just blindly") and a SyncGroup
/// `REBALANCE_IN_PROGRESS` (the rebalance's state is lost; older clients do
/// not expect `COORDINATOR_LOAD_IN_PROGRESS` there), in
/// `GroupCoordinator.handleHeartbeat` / `handleSyncGroup`.
fn loading_or_error_body(req: &GroupReq, version: i16, code: i16) -> ReplyBody {
    if code == COORDINATOR_LOAD_IN_PROGRESS {
        match req {
            GroupReq::Heartbeat(_) => {
                return ReplyBody::Heartbeat(HeartbeatResponse::default().with_error_code(NONE));
            }
            GroupReq::Sync(_) => {
                return ReplyBody::Sync(
                    SyncGroupResponse::default()
                        .with_error_code(crate::coordinator::REBALANCE_IN_PROGRESS),
                );
            }
            _ => {}
        }
    }
    error_body(req, version, code)
}

/// The response a group API gives when the coordinator cannot serve it.
fn error_body(req: &GroupReq, version: i16, code: i16) -> ReplyBody {
    match req {
        GroupReq::Join(r) => ReplyBody::Join(
            JoinGroupResponse::default()
                .with_error_code(code)
                .with_generation_id(-1)
                .with_member_id(r.member_id.clone()),
        ),
        GroupReq::Sync(_) => ReplyBody::Sync(SyncGroupResponse::default().with_error_code(code)),
        GroupReq::Heartbeat(_) => {
            ReplyBody::Heartbeat(HeartbeatResponse::default().with_error_code(code))
        }
        GroupReq::Leave(_) => ReplyBody::Leave(LeaveGroupResponse::default().with_error_code(code)),
        GroupReq::Commit(r) => ReplyBody::Commit(commit_response_for(r, |_, _| code)),
        GroupReq::Fetch(r) => {
            if version >= 8 {
                ReplyBody::Fetch(
                    OffsetFetchResponse::default().with_groups(
                        r.groups
                            .iter()
                            .map(|g| {
                                OffsetFetchResponseGroup::default()
                                    .with_group_id(g.group_id.clone())
                                    .with_error_code(code)
                            })
                            .collect(),
                    ),
                )
            } else if version >= 2 {
                ReplyBody::Fetch(OffsetFetchResponse::default().with_error_code(code))
            } else {
                // v1 has no top-level error: report it on every partition.
                ReplyBody::Fetch(
                    OffsetFetchResponse::default().with_topics(
                        r.topics
                            .iter()
                            .flatten()
                            .map(|t| {
                                OffsetFetchResponseTopic::default()
                                    .with_name(t.name.clone())
                                    .with_partitions(
                                        t.partition_indexes
                                            .iter()
                                            .map(|p| {
                                                OffsetFetchResponsePartition::default()
                                                    .with_partition_index(*p)
                                                    .with_committed_offset(-1)
                                                    .with_error_code(code)
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    ),
                )
            }
        }
    }
}
