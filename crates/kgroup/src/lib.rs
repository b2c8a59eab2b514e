//! kgroup: the Kafka consumer-group protocol as a Sans-IO state machine.
//!
//! The engine consumes broker responses, timer ticks and application commands
//! and emits requests to send, the next deadline and group events. It owns no
//! socket, clock, thread or unseeded randomness: time is always an argument,
//! jitter comes from a seed in the configuration, so the same inputs give the
//! same outputs, byte for byte.
//!
//! Layers, bottom up (see `docs/architecture.md`):
//! - [`wire`]: framing, bounded decoding, version negotiation, ConsumerProtocol codec;
//! - [`assignor`]: the [`assignor::Assignor`] trait and the built-in assignors;
//! - [`offsets`]: OffsetCommit/OffsetFetch fenced by the generation, commit on revoke, auto-commit.
//! - [`coordinator`]: FindCoordinator, the coordinator's address, rediscovery with backoff;
//! - [`membership`]: JoinGroup, SyncGroup, Heartbeat, LeaveGroup (eager, cooperative, static);
//! - [`group`]: [`Group`], the public object composing the layers.
//!
//! The driving loop, stated once: feed one input (`handle_response`,
//! `handle_transport_error`, `handle_timeout` or a command); drain every
//! output (`poll_transmit` until `None`, sending each frame on the
//! connection it names, then `poll_event` until `None`); read
//! `poll_timeout` and wait for the next input or that instant. See
//! [`group`] and `docs/architecture.md`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// The `kafka-protocol` crate kgroup is built on, re-exported so embedders
/// share exactly one version of its message types.
pub use kafka_protocol;

pub mod assignor;
pub mod backoff;
pub mod config;
pub mod coordinator;
pub mod driver;
pub mod error;
pub mod event;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod group;
pub mod membership;
#[cfg(feature = "mutations")]
pub mod mutation;
pub mod offsets;
pub mod rng;
pub mod timer;
pub mod types;
pub mod wire;

/// The one clock read in the engine crate, for its unit tests only: an
/// arbitrary origin from which they move virtual time by hand. The engine
/// itself takes every instant as an argument (clippy.toml forbids the rest).
#[cfg(test)]
#[allow(clippy::disallowed_methods)]
pub(crate) fn test_origin() -> std::time::Instant {
    std::time::Instant::now()
}

pub use config::{Config, ConfigBuilder, ConfigError, RevokeMode};
pub use error::ErrorClass;
pub use event::{Committed, Event, LostReason, RejoinReason};
pub use group::{
    Broker, BrokerNode, ConnectionId, Destination, Group, GroupState, RequestId, Transmit,
    TransportError,
};
pub use membership::GroupError;
pub use timer::Timer;
pub use types::TopicPartition;
pub use wire::WireError;
