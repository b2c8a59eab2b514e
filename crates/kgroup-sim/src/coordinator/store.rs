//! What survives a coordinator crash or move: the content of the group's
//! `__consumer_offsets` partition.
//!
//! Kafka persists two kinds of records there (`GroupCoordinatorRecordHelpers`):
//! committed offsets, written before a commit is acknowledged, and group
//! metadata (generation, protocol, leader, members with their selected
//! subscription and assignment), written when a generation's assignment is
//! stored at SyncGroup, when a static member is replaced, and when the group
//! becomes empty. A new coordinator replays them (`GroupMetadataManager`
//! load path): members and generation survive, parked joins and syncs do not.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;

/// One persisted member (`GroupMetadataValue.MemberMetadata`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberRecord {
    /// Member id.
    pub member_id: String,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Session timeout.
    pub session_timeout: Duration,
    /// Rebalance timeout.
    pub rebalance_timeout: Duration,
    /// Subscription metadata for the selected protocol only: Kafka stores no
    /// other protocol, so after a reload each member "supports" just that one.
    pub subscription: Bytes,
    /// Assignment of the stored generation.
    pub assignment: Bytes,
}

/// One persisted group (`GroupMetadataValue`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupRecord {
    /// Protocol type (`"consumer"`).
    pub protocol_type: Option<String>,
    /// Generation stored.
    pub generation: i32,
    /// Selected protocol.
    pub protocol_name: Option<String>,
    /// Leader member id.
    pub leader: Option<String>,
    /// Members (empty for an empty group).
    pub members: Vec<MemberRecord>,
}

/// A committed offset (`OffsetCommitValue`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedOffset {
    /// The offset of the next record to consume.
    pub offset: i64,
    /// Leader epoch sent with the commit (-1 when unknown).
    pub leader_epoch: i32,
    /// Metadata string sent with the commit.
    pub metadata: Option<String>,
}

/// The persisted state of every group a coordinator partition holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupStore {
    /// Latest group metadata record per group.
    pub groups: BTreeMap<String, GroupRecord>,
    /// Committed offsets per group, topic and partition.
    pub offsets: BTreeMap<String, BTreeMap<(String, i32), CommittedOffset>>,
}

impl GroupStore {
    /// The committed offset of `topic`/`partition` for `group`.
    pub fn committed(&self, group: &str, topic: &str, partition: i32) -> Option<&CommittedOffset> {
        self.offsets
            .get(group)
            .and_then(|m| m.get(&(topic.to_string(), partition)))
    }
}
