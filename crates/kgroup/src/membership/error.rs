//! [`GroupError`]: the membership layer's errors, classified.
//!
//! Every message names the group, the member, the API and the broker where
//! they are known, so one log line says who failed talking to whom.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ApiKey;

use crate::ErrorClass;
use crate::assignor::AssignError;
use crate::config::ConfigError;
use crate::wire::WireError;

/// Displays an optional broker id (`broker 3`, `any broker`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BrokerRef(pub Option<i32>);

impl std::fmt::Display for BrokerRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(id) => write!(f, "broker {id}"),
            None => f.write_str("a bootstrap broker"),
        }
    }
}

impl GroupError {
    /// A [`GroupError::Wire`]; the wire error learns the broker it came
    /// from when the engine knows it and the wire layer did not.
    pub(crate) fn wire(
        group: String,
        member: String,
        api: ApiKey,
        broker: BrokerRef,
        source: WireError,
    ) -> Self {
        let source = match broker.0 {
            Some(id) if source.broker().is_none() => source.with_broker(id),
            _ => source,
        };
        GroupError::Wire {
            group,
            member,
            api,
            broker,
            source,
        }
    }
}

/// An error of the group membership engine.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum GroupError {
    /// The broker answered with an error code.
    #[error("group {group:?}, member {member:?}: {api:?} to {broker} failed: {error} (code {code})", code = error.code())]
    Broker {
        /// Group id.
        group: String,
        /// Member id at the time ("" before the first join).
        member: String,
        /// API that failed.
        api: ApiKey,
        /// Broker that answered.
        broker: BrokerRef,
        /// The error code.
        error: ResponseError,
    },
    /// A response (or a ConsumerProtocol payload in it) could not be read.
    #[error("group {group:?}, member {member:?}: {api:?} response from {broker}: {source}")]
    Wire {
        /// Group id.
        group: String,
        /// Member id at the time.
        member: String,
        /// API of the response.
        api: ApiKey,
        /// Broker that sent it.
        broker: BrokerRef,
        /// What the wire layer found.
        source: WireError,
    },
    /// The connection failed or the request timed out.
    #[error("group {group:?}, member {member:?}: {api:?} to {broker}: {detail}")]
    Transport {
        /// Group id.
        group: String,
        /// Member id at the time.
        member: String,
        /// API of the request.
        api: ApiKey,
        /// Broker concerned.
        broker: BrokerRef,
        /// What happened (from the adapter, or "request timed out").
        detail: String,
    },
    /// As leader: a member's subscription metadata is corrupt; it gets no partitions.
    #[error(
        "group {group:?}, leader {member:?}: subscription of member {subject:?} is unreadable, it gets no partitions: {source}"
    )]
    CorruptSubscription {
        /// Group id.
        group: String,
        /// Our (the leader's) member id.
        member: String,
        /// The member whose metadata is corrupt.
        subject: String,
        /// Why.
        source: WireError,
    },
    /// As leader: the assignor's output would hand a partition to a member
    /// while another still owns it (or to two members); the partition was
    /// withheld this round.
    #[error(
        "group {group:?}, leader {member:?}: assignor {assignor:?} gave {partition} to {to:?} while {owner:?} still owns it; withheld until it is revoked"
    )]
    InvalidLeaderAssignment {
        /// Group id.
        group: String,
        /// Our (the leader's) member id.
        member: String,
        /// Assignor name.
        assignor: String,
        /// Partition concerned.
        partition: crate::TopicPartition,
        /// Member it was given to.
        to: String,
        /// Member that owns (or was also given) it.
        owner: String,
    },
    /// As leader: the assignor failed.
    #[error("group {group:?}, leader {member:?}: assignor {assignor:?} failed: {source}")]
    Assignor {
        /// Group id.
        group: String,
        /// Our (the leader's) member id.
        member: String,
        /// Assignor name.
        assignor: String,
        /// Its error.
        source: AssignError,
    },
    /// The coordinator selected a protocol (assignor) this member did not offer,
    /// or a protocol type other than `consumer`.
    #[error(
        "group {group:?}, member {member:?}: coordinator selected protocol {protocol:?} which this member did not offer"
    )]
    UnknownProtocol {
        /// Group id.
        group: String,
        /// Member id.
        member: String,
        /// What the coordinator selected.
        protocol: String,
    },
    /// The assignment this member received is unusable (topics it does not
    /// subscribe to, unreadable bytes); it rejoins.
    #[error(
        "group {group:?}, member {member:?}: invalid assignment in generation {generation}: {detail}"
    )]
    InvalidAssignment {
        /// Group id.
        group: String,
        /// Member id.
        member: String,
        /// Generation of the assignment.
        generation: i32,
        /// What is wrong.
        detail: String,
    },
    /// The configuration was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl GroupError {
    /// What to do about this error (see [`ErrorClass`]).
    pub fn class(&self) -> ErrorClass {
        match self {
            GroupError::Broker { error, .. } => classify_code(*error),
            GroupError::Wire { source, .. } => source.class(),
            GroupError::Transport { .. } => ErrorClass::Retriable,
            GroupError::CorruptSubscription { .. }
            | GroupError::InvalidLeaderAssignment { .. }
            | GroupError::InvalidAssignment { .. } => ErrorClass::Rejoin,
            GroupError::Assignor { .. } | GroupError::UnknownProtocol { .. } => ErrorClass::Fatal,
            GroupError::Config(e) => e.class(),
        }
    }

    /// The broker error code, when the broker sent one.
    pub fn code(&self) -> Option<i16> {
        match self {
            GroupError::Broker { error, .. } => Some(error.code()),
            _ => None,
        }
    }
}

/// The class of a broker error code for the group APIs (PROTOCOL.md §2.1).
pub fn classify_code(error: ResponseError) -> ErrorClass {
    match error {
        ResponseError::RebalanceInProgress
        | ResponseError::IllegalGeneration
        | ResponseError::UnknownMemberId
        | ResponseError::MemberIdRequired => ErrorClass::Rejoin,
        ResponseError::FencedInstanceId => ErrorClass::Fenced,
        ResponseError::CoordinatorNotAvailable
        | ResponseError::NotCoordinator
        | ResponseError::CoordinatorLoadInProgress
        | ResponseError::RequestTimedOut
        | ResponseError::NetworkException => ErrorClass::Retriable,
        _ => ErrorClass::Fatal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::BrokerLabel;

    #[test]
    fn a_wire_error_from_a_known_broker_names_it_inside_too() {
        let source = WireError::NegativeFrameLength {
            size: -7,
            broker: BrokerLabel(None),
        };
        let e = GroupError::wire(
            "g".into(),
            "m".into(),
            ApiKey::Heartbeat,
            BrokerRef(Some(3)),
            source.clone(),
        );
        let text = e.to_string();
        assert!(text.contains("Heartbeat response from broker 3"), "{text}");
        assert!(!text.contains("broker ?"), "{text}");
        // A broker the wire layer already named is kept.
        let named = source.with_broker(2);
        let e = GroupError::wire(
            "g".into(),
            "m".into(),
            ApiKey::Heartbeat,
            BrokerRef(Some(3)),
            named,
        );
        assert!(e.to_string().contains(": broker 2:"), "{e}");
        // Unknown (bootstrap): nothing invented.
        let e = GroupError::wire(
            "g".into(),
            "m".into(),
            ApiKey::Metadata,
            BrokerRef(None),
            WireError::NegativeFrameLength {
                size: -7,
                broker: BrokerLabel(None),
            },
        );
        assert!(
            e.to_string().contains("a bootstrap broker: broker ?"),
            "{e}"
        );
    }
}
