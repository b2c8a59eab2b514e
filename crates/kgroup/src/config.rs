//! Group configuration: a builder validated once, at construction.
//!
//! Names and defaults follow the Java consumer (`group.id`,
//! `group.instance.id`, `session.timeout.ms`, `heartbeat.interval.ms`,
//! `max.poll.interval.ms` as the rebalance timeout, `retry.backoff.ms`,
//! `retry.backoff.max.ms`, `metadata.max.age.ms`, `request.timeout.ms`).
//! Everything the engine would otherwise reject at run time is rejected
//! here, with an error that says what to change. The seed for backoff jitter
//! lives here too: the same configuration and inputs give the same outputs.

use std::sync::Arc;
use std::time::Duration;

use crate::assignor::{Assignor, RebalanceProtocol};
use crate::offsets::{OffsetsConfig, OffsetsConfigError};

/// Longest `group.instance.id` accepted, as for topic names (`Topic.MAX_NAME_LENGTH`).
const MAX_INSTANCE_ID_LEN: usize = 249;
/// Largest duration the protocol's `int32` millisecond fields can carry.
const MAX_PROTOCOL_MS: u64 = i32::MAX as u64;
/// Broker bounds for the session timeout (`group.min/max.session.timeout.ms`
/// defaults are 6 s and 30 min; the client only checks the hard outer bound).
const MAX_SESSION_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Whether a `Revoked` event waits for [`crate::Group::ack_revoked`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RevokeMode {
    /// The rebalance goes on as soon as `Revoked` is emitted: the application
    /// must stop using the partitions before it handles the next event.
    #[default]
    Immediate,
    /// The rebalance waits for `ack_revoked()` (heartbeats go on meanwhile);
    /// an ack later than the rebalance timeout turns them into `Lost`.
    Gated,
}

/// A validated group configuration. Build it with [`Config::builder`].
#[derive(Clone, Debug)]
pub struct Config {
    pub(crate) group_id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) rack: Option<String>,
    pub(crate) assignors: Vec<Arc<dyn Assignor>>,
    pub(crate) protocol: RebalanceProtocol,
    pub(crate) session_timeout: Duration,
    pub(crate) heartbeat_interval: Duration,
    pub(crate) rebalance_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) retry_backoff: Duration,
    pub(crate) retry_backoff_max: Duration,
    pub(crate) metadata_max_age: Duration,
    pub(crate) revoke_mode: RevokeMode,
    pub(crate) seed: u64,
    pub(crate) offsets: OffsetsConfig,
    pub(crate) fetch_on_assign: bool,
}

impl Config {
    /// Start a configuration for `group_id`; add at least one assignor.
    pub fn builder(group_id: impl Into<String>) -> ConfigBuilder {
        ConfigBuilder::new(group_id.into())
    }

    /// `group.id`.
    pub fn group_id(&self) -> &str {
        &self.group_id
    }
    /// `group.instance.id` of a static member (KIP-345).
    pub fn instance_id(&self) -> Option<&str> {
        self.instance_id.as_deref()
    }
    /// `client.id` sent in every request header.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }
    /// `client.rack` sent in the subscription (v3).
    pub fn rack(&self) -> Option<&str> {
        self.rack.as_deref()
    }
    /// The assignors, in preference order.
    pub fn assignors(&self) -> &[Arc<dyn Assignor>] {
        &self.assignors
    }
    /// The rebalance protocol this member runs, derived from its assignors as
    /// the Java `ConsumerCoordinator` does: cooperative only if every
    /// configured assignor supports it.
    pub fn protocol(&self) -> RebalanceProtocol {
        self.protocol
    }
    /// `session.timeout.ms`.
    pub fn session_timeout(&self) -> Duration {
        self.session_timeout
    }
    /// `heartbeat.interval.ms`.
    pub fn heartbeat_interval(&self) -> Duration {
        self.heartbeat_interval
    }
    /// Rebalance timeout (`max.poll.interval.ms`).
    pub fn rebalance_timeout(&self) -> Duration {
        self.rebalance_timeout
    }
    /// `request.timeout.ms` (JoinGroup uses the rebalance timeout + 5 s).
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }
    /// Whether revocations wait for an acknowledgement.
    pub fn revoke_mode(&self) -> RevokeMode {
        self.revoke_mode
    }
    /// Seed of the jitter generator.
    pub fn seed(&self) -> u64 {
        self.seed
    }
    /// `retry.backoff.ms`.
    pub fn retry_backoff(&self) -> Duration {
        self.retry_backoff
    }
    /// `retry.backoff.max.ms`.
    pub fn retry_backoff_max(&self) -> Duration {
        self.retry_backoff_max
    }
    /// `metadata.max.age.ms`.
    pub fn metadata_max_age(&self) -> Duration {
        self.metadata_max_age
    }
    /// Settings of the offsets component (commit deadlines, auto-commit).
    pub fn offsets(&self) -> &OffsetsConfig {
        &self.offsets
    }
}

/// Builder for [`Config`]; [`ConfigBuilder::build`] validates everything.
#[derive(Clone, Debug)]
pub struct ConfigBuilder {
    config: Config,
}

impl ConfigBuilder {
    fn new(group_id: String) -> Self {
        Self {
            config: Config {
                group_id: group_id.clone(),
                instance_id: None,
                client_id: "kgroup".to_owned(),
                rack: None,
                assignors: Vec::new(),
                protocol: RebalanceProtocol::Eager,
                session_timeout: Duration::from_secs(45),
                heartbeat_interval: Duration::from_secs(3),
                rebalance_timeout: Duration::from_secs(300),
                request_timeout: Duration::from_secs(30),
                retry_backoff: Duration::from_millis(100),
                retry_backoff_max: Duration::from_secs(1),
                metadata_max_age: Duration::from_secs(300),
                revoke_mode: RevokeMode::Immediate,
                seed: 0,
                offsets: OffsetsConfig::new(group_id.clone()),
                // Java's consumer always reads the committed offsets of
                // newly assigned partitions before fetching records.
                fetch_on_assign: true,
            },
        }
    }

    /// Make this a static member with `group.instance.id` (KIP-345).
    pub fn instance_id(mut self, id: impl Into<String>) -> Self {
        self.config.instance_id = Some(id.into());
        self
    }
    /// `client.id` (default `"kgroup"`).
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.config.client_id = id.into();
        self
    }
    /// `client.rack`, sent in the subscription for rack-aware assignors (KIP-881).
    pub fn rack(mut self, rack: impl Into<String>) -> Self {
        self.config.rack = Some(rack.into());
        self
    }
    /// Add an assignor; the order of calls is the order of preference.
    pub fn assignor(mut self, assignor: Arc<dyn Assignor>) -> Self {
        self.config.assignors.push(assignor);
        self
    }
    /// Replace the assignor list.
    pub fn assignors(mut self, assignors: Vec<Arc<dyn Assignor>>) -> Self {
        self.config.assignors = assignors;
        self
    }
    /// `session.timeout.ms` (default 45 s).
    pub fn session_timeout(mut self, d: Duration) -> Self {
        self.config.session_timeout = d;
        self
    }
    /// `heartbeat.interval.ms` (default 3 s).
    pub fn heartbeat_interval(mut self, d: Duration) -> Self {
        self.config.heartbeat_interval = d;
        self
    }
    /// Rebalance timeout, `max.poll.interval.ms` (default 300 s).
    pub fn rebalance_timeout(mut self, d: Duration) -> Self {
        self.config.rebalance_timeout = d;
        self
    }
    /// `request.timeout.ms` (default 30 s).
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.config.request_timeout = d;
        self
    }
    /// `retry.backoff.ms` and `retry.backoff.max.ms` (default 100 ms, 1 s).
    pub fn retry_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.config.retry_backoff = initial;
        self.config.retry_backoff_max = max;
        self
    }
    /// `metadata.max.age.ms` (default 300 s): how often the leader re-reads
    /// topic metadata to notice partition-count changes.
    pub fn metadata_max_age(mut self, d: Duration) -> Self {
        self.config.metadata_max_age = d;
        self
    }
    /// Whether `Revoked` waits for `ack_revoked()` (default: immediate).
    pub fn revoke_mode(mut self, mode: RevokeMode) -> Self {
        self.config.revoke_mode = mode;
        self
    }
    /// Seed for backoff jitter (default 0).
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = seed;
        self
    }

    /// Settings of the offsets component (commit/fetch deadlines,
    /// auto-commit interval, `require_stable`). Its group id is replaced by
    /// this configuration's.
    pub fn offsets(mut self, offsets: OffsetsConfig) -> Self {
        self.config.offsets = offsets;
        self
    }

    /// Read the committed offsets of newly assigned partitions before
    /// reporting them (default **on**, as Java's consumer does before it
    /// fetches records): `Assigned` is held back until the OffsetFetch of its
    /// `added` partitions answers (retried with backoff, bounded by the
    /// offsets component's fetch timeout) and carries each one's
    /// [`crate::event::Committed`] offset, none, or error. Off: `Assigned` is
    /// emitted at once with every `added` partition
    /// [`crate::event::Committed::NotFetched`].
    pub fn fetch_committed_on_assign(mut self, on: bool) -> Self {
        self.config.fetch_on_assign = on;
        self
    }

    /// Validate and build.
    pub fn build(self) -> Result<Config, ConfigError> {
        let mut c = self.config;
        if c.group_id.is_empty() {
            return Err(ConfigError::EmptyGroupId);
        }
        if let Some(id) = &c.instance_id {
            validate_instance_id(id)?;
        }
        if c.assignors.is_empty() {
            return Err(ConfigError::NoAssignor {
                group: c.group_id.clone(),
            });
        }
        c.protocol = derive_protocol(&c)?;
        check_range("session.timeout.ms", c.session_timeout, MAX_SESSION_TIMEOUT)?;
        check_range(
            "heartbeat.interval.ms",
            c.heartbeat_interval,
            MAX_SESSION_TIMEOUT,
        )?;
        if c.heartbeat_interval >= c.session_timeout {
            return Err(ConfigError::HeartbeatNotBelowSession {
                heartbeat: c.heartbeat_interval,
                session: c.session_timeout,
            });
        }
        let protocol_max = Duration::from_millis(MAX_PROTOCOL_MS);
        // JoinGroup waits rebalance timeout + 5 s: keep that in int32 ms too.
        check_range(
            "max.poll.interval.ms (rebalance timeout)",
            c.rebalance_timeout,
            protocol_max - Duration::from_secs(5),
        )?;
        check_range("request.timeout.ms", c.request_timeout, protocol_max)?;
        check_range("retry.backoff.ms", c.retry_backoff, protocol_max)?;
        check_range("retry.backoff.max.ms", c.retry_backoff_max, protocol_max)?;
        check_range("metadata.max.age.ms", c.metadata_max_age, protocol_max)?;
        c.offsets.group_id = c.group_id.clone();
        c.offsets.validate()?;
        if c.retry_backoff > c.retry_backoff_max {
            return Err(ConfigError::BackoffMaxBelowInitial {
                initial: c.retry_backoff,
                max: c.retry_backoff_max,
            });
        }
        Ok(c)
    }
}

/// Java's rule (`ConsumerCoordinator` constructor): the protocol is the
/// highest one every configured assignor supports; none in common is a
/// configuration error.
fn derive_protocol(c: &Config) -> Result<RebalanceProtocol, ConfigError> {
    let all_support = |p| {
        c.assignors
            .iter()
            .all(|a| a.supported_protocols().contains(&p))
    };
    if all_support(RebalanceProtocol::Cooperative) {
        Ok(RebalanceProtocol::Cooperative)
    } else if all_support(RebalanceProtocol::Eager) {
        Ok(RebalanceProtocol::Eager)
    } else {
        Err(ConfigError::NoCommonProtocol {
            assignors: c.assignors.iter().map(|a| a.name().to_owned()).collect(),
        })
    }
}

/// `JoinGroupRequest.validateGroupInstanceId`: the rules of topic names.
fn validate_instance_id(id: &str) -> Result<(), ConfigError> {
    let valid_char = |ch: char| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-');
    if id.is_empty() {
        return Err(ConfigError::InvalidInstanceId {
            id: id.to_owned(),
            reason: "it is empty; omit instance_id for a dynamic member",
        });
    }
    if id.len() > MAX_INSTANCE_ID_LEN {
        return Err(ConfigError::InvalidInstanceId {
            id: id.to_owned(),
            reason: "it is longer than 249 characters",
        });
    }
    if id == "." || id == ".." {
        return Err(ConfigError::InvalidInstanceId {
            id: id.to_owned(),
            reason: "'.' and '..' are reserved",
        });
    }
    if !id.chars().all(valid_char) {
        return Err(ConfigError::InvalidInstanceId {
            id: id.to_owned(),
            reason: "use only ASCII letters, digits, '.', '_' and '-'",
        });
    }
    Ok(())
}

fn check_range(name: &'static str, value: Duration, max: Duration) -> Result<(), ConfigError> {
    if value.is_zero() || value > max {
        return Err(ConfigError::OutOfRange { name, value, max });
    }
    Ok(())
}

/// A configuration the engine refuses, with what to change.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `group.id` is empty.
    #[error("group.id is empty: set a non-empty group id")]
    EmptyGroupId,
    /// No assignor configured.
    #[error(
        "group {group:?} has no assignor: add at least one (e.g. \"range\" or \"cooperative-sticky\")"
    )]
    NoAssignor {
        /// Group concerned.
        group: String,
    },
    /// The assignors support no rebalance protocol in common.
    #[error(
        "assignors {assignors:?} share no rebalance protocol: configure only eager or only cooperative-capable assignors"
    )]
    NoCommonProtocol {
        /// Names of the configured assignors.
        assignors: Vec<String>,
    },
    /// `group.instance.id` is not a valid id.
    #[error("group.instance.id {id:?} is invalid: {reason}")]
    InvalidInstanceId {
        /// The rejected id.
        id: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A duration is zero or too large.
    #[error("{name} = {value:?} is out of range: use a value above 0 and at most {max:?}")]
    OutOfRange {
        /// Setting name.
        name: &'static str,
        /// The rejected value.
        value: Duration,
        /// Largest accepted value.
        max: Duration,
    },
    /// `heartbeat.interval.ms` is not below `session.timeout.ms`.
    #[error(
        "heartbeat.interval.ms ({heartbeat:?}) must be below session.timeout.ms ({session:?}); Java recommends at most a third of it"
    )]
    HeartbeatNotBelowSession {
        /// Configured heartbeat interval.
        heartbeat: Duration,
        /// Configured session timeout.
        session: Duration,
    },
    /// The offsets settings are invalid.
    #[error("offsets settings: {0}")]
    Offsets(#[from] OffsetsConfigError),
    /// `retry.backoff.max.ms` is below `retry.backoff.ms`.
    #[error(
        "retry.backoff.max.ms ({max:?}) is below retry.backoff.ms ({initial:?}): raise the maximum"
    )]
    BackoffMaxBelowInitial {
        /// Initial backoff.
        initial: Duration,
        /// Maximum backoff.
        max: Duration,
    },
}

impl ConfigError {
    /// Configuration errors are always fatal: change the configuration.
    pub fn class(&self) -> crate::ErrorClass {
        crate::ErrorClass::Fatal
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assignor::builtin;

    fn base() -> ConfigBuilder {
        Config::builder("g").assignor(builtin("range").unwrap())
    }

    #[test]
    fn defaults_build_and_follow_the_java_client() {
        let c = base().build().unwrap();
        assert_eq!(c.session_timeout(), Duration::from_secs(45));
        assert_eq!(c.heartbeat_interval(), Duration::from_secs(3));
        assert_eq!(c.rebalance_timeout(), Duration::from_secs(300));
        assert_eq!(c.protocol(), RebalanceProtocol::Eager);
        assert_eq!(c.offsets().group_id, "g");
    }

    #[test]
    fn errors_say_what_to_change() {
        let e = Config::builder("")
            .assignor(builtin("range").unwrap())
            .build()
            .unwrap_err();
        assert_eq!(e, ConfigError::EmptyGroupId);
        let e = Config::builder("g").build().unwrap_err();
        assert!(e.to_string().contains("add at least one"), "{e}");
        let e = base()
            .heartbeat_interval(Duration::from_secs(10))
            .session_timeout(Duration::from_secs(10))
            .build()
            .unwrap_err();
        assert!(
            e.to_string().contains("must be below session.timeout.ms"),
            "{e}"
        );
        let e = base().session_timeout(Duration::ZERO).build().unwrap_err();
        assert!(e.to_string().contains("session.timeout.ms"), "{e}");
        let e = base()
            .rebalance_timeout(Duration::from_secs(u64::from(u32::MAX)))
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("max.poll.interval.ms"), "{e}");
        let e = base()
            .retry_backoff(Duration::from_secs(2), Duration::from_secs(1))
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("raise the maximum"), "{e}");
        for bad in ["", "a b", "..", &"x".repeat(250)] {
            let e = base().instance_id(bad).build().unwrap_err();
            assert!(
                matches!(e, ConfigError::InvalidInstanceId { .. }),
                "{bad:?}: {e}"
            );
        }
        assert!(base().instance_id("pod-1.eu_west").build().is_ok());
        assert_eq!(e_class(), crate::ErrorClass::Fatal);
    }

    fn e_class() -> crate::ErrorClass {
        ConfigError::EmptyGroupId.class()
    }

    #[test]
    fn cooperative_only_when_every_assignor_supports_it() {
        let coop = builtin("cooperative-sticky").unwrap();
        let c = Config::builder("g").assignor(coop.clone()).build().unwrap();
        assert_eq!(c.protocol(), RebalanceProtocol::Cooperative);
        let c = Config::builder("g")
            .assignor(coop)
            .assignor(builtin("range").unwrap())
            .build()
            .unwrap();
        assert_eq!(c.protocol(), RebalanceProtocol::Eager);
    }
}
