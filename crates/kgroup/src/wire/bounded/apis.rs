//! Response schemas of every API the engine decodes, plus the two
//! ConsumerProtocol payloads.
//!
//! Each table was derived from the generated `Decodable` impls in
//! `kafka-protocol` 0.18 (`src/messages/*_response.rs`): field order, the
//! version range of each field, compact-from version and nullability (the
//! Rust type: `Option<_>` fields accept null in every version). The tests in
//! `tests/wire_schema.rs` cross-check every version against that crate's
//! own encoder and decoder.

use kafka_protocol::messages::{
    ApiKey, BrokerId, api_versions_response as av, consumer_group_heartbeat_response as cgh,
    consumer_protocol_assignment as cpa, consumer_protocol_subscription as cps,
    find_coordinator_response as fc, join_group_response as jg, leave_group_response as lg,
    metadata_response as md, offset_commit_response as oc, offset_fetch_response as of,
};
use kafka_protocol::protocol::StrBytes;

use super::schema::*;
use crate::wire::error::VersionSpan;

// --- ApiVersions (key 18): ApiVersionsResponse.json, flexible 3+ ---

const API_VERSION: &[Field] = &[
    f("api_key", 0, ANY, I16),
    f("min_version", 0, ANY, I16),
    f("max_version", 0, ANY, I16),
];
const SUPPORTED_FEATURE: &[Field] = &[
    f("name", 3, ANY, STR),
    f("min_version", 3, ANY, I16),
    f("max_version", 3, ANY, I16),
];
const FINALIZED_FEATURE: &[Field] = &[
    f("name", 3, ANY, STR),
    f("max_version_level", 3, ANY, I16),
    f("min_version_level", 3, ANY, I16),
];
const API_VERSIONS: &[Field] = &[
    f("error_code", 0, ANY, I16),
    f("api_keys", 0, ANY, structs::<av::ApiVersion>(API_VERSION)),
    f("throttle_time_ms", 1, ANY, I32),
    tagged(
        "supported_features",
        0,
        3,
        ANY,
        structs::<av::SupportedFeatureKey>(SUPPORTED_FEATURE),
    ),
    tagged("finalized_features_epoch", 1, 3, ANY, I64),
    tagged(
        "finalized_features",
        2,
        3,
        ANY,
        structs::<av::FinalizedFeatureKey>(FINALIZED_FEATURE),
    ),
    tagged("zk_migration_ready", 3, 3, ANY, BOOL),
];

// --- FindCoordinator (key 10): flexible 3+, batched Coordinators from v4 ---

const COORDINATOR: &[Field] = &[
    f("key", 4, ANY, STR),
    f("node_id", 4, ANY, I32),
    f("host", 4, ANY, STR),
    f("port", 4, ANY, I32),
    f("error_code", 4, ANY, I16),
    f("error_message", 4, ANY, NSTR),
];
const FIND_COORDINATOR: &[Field] = &[
    f("throttle_time_ms", 1, ANY, I32),
    f("error_code", 0, 3, I16),
    f("error_message", 1, 3, NSTR),
    f("node_id", 0, 3, I32),
    f("host", 0, 3, STR),
    f("port", 0, 3, I32),
    f(
        "coordinators",
        4,
        ANY,
        structs::<fc::Coordinator>(COORDINATOR),
    ),
];

// --- JoinGroup (key 11): flexible 6+ ---

const JOIN_GROUP_MEMBER: &[Field] = &[
    f("member_id", 0, ANY, STR),
    f("group_instance_id", 5, ANY, NSTR),
    f("metadata", 0, ANY, BYTES),
];
const JOIN_GROUP: &[Field] = &[
    f("throttle_time_ms", 2, ANY, I32),
    f("error_code", 0, ANY, I16),
    f("generation_id", 0, ANY, I32),
    f("protocol_type", 7, ANY, NSTR),
    f("protocol_name", 0, ANY, NSTR),
    f("leader", 0, ANY, STR),
    f("skip_assignment", 9, ANY, BOOL),
    f("member_id", 0, ANY, STR),
    f(
        "members",
        0,
        ANY,
        structs::<jg::JoinGroupResponseMember>(JOIN_GROUP_MEMBER),
    ),
];

// --- SyncGroup (key 14): flexible 4+ ---

const SYNC_GROUP: &[Field] = &[
    f("throttle_time_ms", 1, ANY, I32),
    f("error_code", 0, ANY, I16),
    f("protocol_type", 5, ANY, NSTR),
    f("protocol_name", 5, ANY, NSTR),
    f("assignment", 0, ANY, BYTES),
];

// --- Heartbeat (key 12): flexible 4+ ---

const HEARTBEAT: &[Field] = &[
    f("throttle_time_ms", 1, ANY, I32),
    f("error_code", 0, ANY, I16),
];

// --- LeaveGroup (key 13): flexible 4+, per-member results from v3 ---

const LEAVE_GROUP_MEMBER: &[Field] = &[
    f("member_id", 3, ANY, STR),
    f("group_instance_id", 3, ANY, NSTR),
    f("error_code", 3, ANY, I16),
];
const LEAVE_GROUP: &[Field] = &[
    f("throttle_time_ms", 1, ANY, I32),
    f("error_code", 0, ANY, I16),
    f(
        "members",
        3,
        ANY,
        structs::<lg::MemberResponse>(LEAVE_GROUP_MEMBER),
    ),
];

// --- OffsetCommit (key 8): flexible 8+; kgroup reads up to v9 (v10 uses topic ids) ---

const OFFSET_COMMIT_PARTITION: &[Field] = &[
    f("partition_index", 0, ANY, I32),
    f("error_code", 0, ANY, I16),
];
const OFFSET_COMMIT_TOPIC: &[Field] = &[
    f("name", 0, 9, STR),
    f("topic_id", 10, ANY, UUID),
    f(
        "partitions",
        0,
        ANY,
        structs::<oc::OffsetCommitResponsePartition>(OFFSET_COMMIT_PARTITION),
    ),
];
const OFFSET_COMMIT: &[Field] = &[
    f("throttle_time_ms", 3, ANY, I32),
    f(
        "topics",
        0,
        ANY,
        structs::<oc::OffsetCommitResponseTopic>(OFFSET_COMMIT_TOPIC),
    ),
];

// --- OffsetFetch (key 9): flexible 6+, per-group batch from v8 ---

const OFFSET_FETCH_PARTITION: &[Field] = &[
    f("partition_index", 0, 7, I32),
    f("committed_offset", 0, 7, I64),
    f("committed_leader_epoch", 5, 7, I32),
    f("metadata", 0, 7, NSTR),
    f("error_code", 0, 7, I16),
];
const OFFSET_FETCH_TOPIC: &[Field] = &[
    f("name", 0, 7, STR),
    f(
        "partitions",
        0,
        7,
        structs::<of::OffsetFetchResponsePartition>(OFFSET_FETCH_PARTITION),
    ),
];
const OFFSET_FETCH_GROUP_PARTITION: &[Field] = &[
    f("partition_index", 8, ANY, I32),
    f("committed_offset", 8, ANY, I64),
    f("committed_leader_epoch", 8, ANY, I32),
    f("metadata", 8, ANY, NSTR),
    f("error_code", 8, ANY, I16),
];
const OFFSET_FETCH_GROUP_TOPIC: &[Field] = &[
    f("name", 8, 9, STR),
    f("topic_id", 10, ANY, UUID),
    f(
        "partitions",
        8,
        ANY,
        structs::<of::OffsetFetchResponsePartitions>(OFFSET_FETCH_GROUP_PARTITION),
    ),
];
const OFFSET_FETCH_GROUP: &[Field] = &[
    f("group_id", 8, ANY, STR),
    f(
        "topics",
        8,
        ANY,
        structs::<of::OffsetFetchResponseTopics>(OFFSET_FETCH_GROUP_TOPIC),
    ),
    f("error_code", 8, ANY, I16),
];
const OFFSET_FETCH: &[Field] = &[
    f("throttle_time_ms", 3, ANY, I32),
    f(
        "topics",
        0,
        7,
        structs::<of::OffsetFetchResponseTopic>(OFFSET_FETCH_TOPIC),
    ),
    f("error_code", 2, 7, I16),
    f(
        "groups",
        8,
        ANY,
        structs::<of::OffsetFetchResponseGroup>(OFFSET_FETCH_GROUP),
    ),
];

// --- Metadata (key 3): flexible 9+; kgroup reads up to v12 ---

const METADATA_BROKER: &[Field] = &[
    f("node_id", 0, ANY, I32),
    f("host", 0, ANY, STR),
    f("port", 0, ANY, I32),
    f("rack", 1, ANY, NSTR),
];
const METADATA_PARTITION: &[Field] = &[
    f("error_code", 0, ANY, I16),
    f("partition_index", 0, ANY, I32),
    f("leader_id", 0, ANY, I32),
    f("leader_epoch", 7, ANY, I32),
    f("replica_nodes", 0, ANY, int32s::<BrokerId>()),
    f("isr_nodes", 0, ANY, int32s::<BrokerId>()),
    f("offline_replicas", 5, ANY, int32s::<BrokerId>()),
];
const METADATA_TOPIC: &[Field] = &[
    f("error_code", 0, ANY, I16),
    f("name", 0, ANY, NSTR),
    f("topic_id", 10, ANY, UUID),
    f("is_internal", 1, ANY, BOOL),
    f(
        "partitions",
        0,
        ANY,
        structs::<md::MetadataResponsePartition>(METADATA_PARTITION),
    ),
    f("topic_authorized_operations", 8, ANY, I32),
];
const METADATA: &[Field] = &[
    f("throttle_time_ms", 3, ANY, I32),
    f(
        "brokers",
        0,
        ANY,
        structs::<md::MetadataResponseBroker>(METADATA_BROKER),
    ),
    f("cluster_id", 2, ANY, NSTR),
    f("controller_id", 1, ANY, I32),
    f(
        "topics",
        0,
        ANY,
        structs::<md::MetadataResponseTopic>(METADATA_TOPIC),
    ),
    f("cluster_authorized_operations", 8, 10, I32),
    f("error_code", 13, ANY, I16),
];

// --- ConsumerGroupHeartbeat (key 68, KIP-848): flexible from v0 ---

const CGH_TOPIC_PARTITIONS: &[Field] = &[
    f("topic_id", 0, ANY, UUID),
    f("partitions", 0, ANY, int32s::<i32>()),
];
const CGH_ASSIGNMENT: &[Field] = &[f(
    "topic_partitions",
    0,
    ANY,
    structs::<cgh::TopicPartitions>(CGH_TOPIC_PARTITIONS),
)];
const CONSUMER_GROUP_HEARTBEAT: &[Field] = &[
    f("throttle_time_ms", 0, ANY, I32),
    f("error_code", 0, ANY, I16),
    f("error_message", 0, ANY, NSTR),
    f("member_id", 0, ANY, NSTR),
    f("member_epoch", 0, ANY, I32),
    f("heartbeat_interval_ms", 0, ANY, I32),
    f("assignment", 0, ANY, Kind::OptionalStruct(CGH_ASSIGNMENT)),
];

/// Response schemas, one per API the engine decodes.
pub(crate) const RESPONSES: &[Schema] = &[
    Schema {
        api: ApiKey::ApiVersions,
        versions: VersionSpan::new(0, 4),
        flexible: 3,
        fields: API_VERSIONS,
    },
    Schema {
        api: ApiKey::FindCoordinator,
        versions: VersionSpan::new(0, 6),
        flexible: 3,
        fields: FIND_COORDINATOR,
    },
    Schema {
        api: ApiKey::JoinGroup,
        versions: VersionSpan::new(0, 9),
        flexible: 6,
        fields: JOIN_GROUP,
    },
    Schema {
        api: ApiKey::SyncGroup,
        versions: VersionSpan::new(0, 5),
        flexible: 4,
        fields: SYNC_GROUP,
    },
    Schema {
        api: ApiKey::Heartbeat,
        versions: VersionSpan::new(0, 4),
        flexible: 4,
        fields: HEARTBEAT,
    },
    Schema {
        api: ApiKey::LeaveGroup,
        versions: VersionSpan::new(0, 5),
        flexible: 4,
        fields: LEAVE_GROUP,
    },
    Schema {
        api: ApiKey::OffsetCommit,
        versions: VersionSpan::new(2, 9),
        flexible: 8,
        fields: OFFSET_COMMIT,
    },
    Schema {
        api: ApiKey::OffsetFetch,
        versions: VersionSpan::new(1, 9),
        flexible: 6,
        fields: OFFSET_FETCH,
    },
    Schema {
        api: ApiKey::ConsumerGroupHeartbeat,
        versions: VersionSpan::new(0, 1),
        flexible: 0,
        fields: CONSUMER_GROUP_HEARTBEAT,
    },
    Schema {
        api: ApiKey::Metadata,
        versions: VersionSpan::new(0, 12),
        flexible: 9,
        fields: METADATA,
    },
];

// --- ConsumerProtocol payloads (PROTOCOL.md §4.6): never flexible ---

const CP_TOPIC_PARTITION: &[Field] = &[
    f("topic", 0, ANY, STR),
    f("partitions", 0, ANY, int32s::<i32>()),
];
const CP_SUBSCRIPTION: &[Field] = &[
    f("topics", 0, ANY, strings::<StrBytes>()),
    f("user_data", 0, ANY, NBYTES),
    f(
        "owned_partitions",
        1,
        ANY,
        structs::<cps::TopicPartition>(CP_TOPIC_PARTITION),
    ),
    f("generation_id", 2, ANY, I32),
    f("rack_id", 3, ANY, NSTR),
];
const CP_ASSIGNMENT: &[Field] = &[
    f(
        "assigned_partitions",
        0,
        ANY,
        structs::<cpa::TopicPartition>(CP_TOPIC_PARTITION),
    ),
    f("user_data", 0, ANY, NBYTES),
];

/// ConsumerProtocolSubscription body (after the int16 version), v0..=3.
pub(crate) const SUBSCRIPTION: Schema = Schema {
    // The payload travels inside JoinGroup; errors name that API.
    api: ApiKey::JoinGroup,
    versions: VersionSpan::new(0, 3),
    flexible: ANY,
    fields: CP_SUBSCRIPTION,
};

/// ConsumerProtocolAssignment body (after the int16 version), v0..=3.
pub(crate) const ASSIGNMENT: Schema = Schema {
    // The payload travels inside SyncGroup; errors name that API.
    api: ApiKey::SyncGroup,
    versions: VersionSpan::new(0, 3),
    flexible: ANY,
    fields: CP_ASSIGNMENT,
};
