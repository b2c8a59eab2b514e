//! This member's ConsumerProtocol subscription, one per configured assignor.
//!
//! Serialized deterministically (topics and owned partitions sorted, as Java
//! does): a follower that rejoins a stable group with byte-identical
//! metadata does not start a rebalance (PROTOCOL.md §4.3, broker
//! `classicGroupJoinExistingMember`).

use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::protocol::StrBytes;

use crate::group::Group;
use crate::wire::WireError;
use crate::wire::consumer_protocol::{CONSUMER_PROTOCOL_MAX_VERSION, Subscription};

impl Group {
    /// The JoinGroup protocol list: one entry per assignor, in preference
    /// order, each with its subscription metadata (v3: owned partitions,
    /// their generation, rack).
    pub(crate) fn join_protocols(&self) -> Result<Vec<JoinGroupRequestProtocol>, WireError> {
        let mut base = Subscription::new(self.subscription.iter().cloned());
        // Owned *now* (empty after an eager revoke), with the generation they
        // are owned in; sticky user data uses the previous assignment instead.
        base.owned_partitions = self.ownership.owned.iter().cloned().collect();
        // As Java's `ConsumerCoordinator.metadata()`: the current generation
        // (-1 after a reset), which lets the leader discard stale claims (KIP-792).
        base.generation_id = self.identity.generation;
        base.rack_id = self.config.rack.clone();
        self.config
            .assignors
            .iter()
            .map(|assignor| {
                let mut sub = base.clone();
                sub.user_data = assignor.subscription_user_data(&self.ownership.previous);
                let metadata = sub.encode(CONSUMER_PROTOCOL_MAX_VERSION)?;
                Ok(JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_string(assignor.name().to_owned()))
                    .with_metadata(metadata))
            })
            .collect()
    }
}
