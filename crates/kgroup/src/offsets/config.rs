//! Settings of the offsets component, validated once at construction.
//!
//! Names and defaults follow the Java consumer: `default.api.timeout.ms`
//! (60 s) bounds a commit's or fetch's retries, `retry.backoff.ms` /
//! `retry.backoff.max.ms` (100 ms / 1 s, KIP-580) space them,
//! `auto.commit.interval.ms` (5 s) paces auto-commit. The group engine builds
//! this from its own configuration.

use std::time::Duration;

use super::error::OffsetsConfigError;
use super::types::OffsetVersions;

/// Settings of [`super::Offsets`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetsConfig {
    pub(crate) group_id: String,
    pub(crate) commit_timeout: Duration,
    pub(crate) fetch_timeout: Duration,
    pub(crate) retry_backoff: Duration,
    pub(crate) retry_backoff_max: Duration,
    pub(crate) auto_commit_interval: Option<Duration>,
    pub(crate) require_stable: bool,
    pub(crate) max_metadata_bytes: usize,
    pub(crate) seed: u64,
}

impl OffsetsConfig {
    /// Defaults for `group_id`: commit/fetch deadline 60 s, backoff
    /// 100 ms → 1 s, auto-commit off, `require_stable` on (as Java always
    /// sets it), metadata bound 4096 bytes (the broker's default
    /// `offset.metadata.max.bytes`), seed 0.
    pub fn new(group_id: impl Into<String>) -> Self {
        Self {
            group_id: group_id.into(),
            commit_timeout: Duration::from_secs(60),
            fetch_timeout: Duration::from_secs(60),
            retry_backoff: Duration::from_millis(100),
            retry_backoff_max: Duration::from_secs(1),
            auto_commit_interval: None,
            require_stable: true,
            max_metadata_bytes: 4096,
            seed: 0,
        }
    }

    /// How long a commit is retried (retriable errors, no coordinator, a
    /// cooperative rebalance holding it) before it is reported.
    pub fn with_commit_timeout(mut self, d: Duration) -> Self {
        self.commit_timeout = d;
        self
    }

    /// How long a fetch is retried before it is reported.
    pub fn with_fetch_timeout(mut self, d: Duration) -> Self {
        self.fetch_timeout = d;
        self
    }

    /// Exponential backoff between retries: `initial` doubling up to `max`,
    /// ±20 % seeded jitter (KIP-580).
    pub fn with_retry_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.retry_backoff = initial;
        self.retry_backoff_max = max;
        self
    }

    /// Commit marked offsets every `interval` (`enable.auto.commit`), before
    /// a revoke completes and on close. `None` turns it off.
    pub fn with_auto_commit(mut self, interval: Option<Duration>) -> Self {
        self.auto_commit_interval = interval;
        self
    }

    /// Whether OffsetFetch (v7+) asks for stable offsets (KIP-447).
    pub fn with_require_stable(mut self, on: bool) -> Self {
        self.require_stable = on;
        self
    }

    /// Longest committed metadata accepted from a fetch; longer is reported
    /// as a per-partition error. Match the broker's `offset.metadata.max.bytes`.
    pub fn with_max_metadata_bytes(mut self, max: usize) -> Self {
        self.max_metadata_bytes = max;
        self
    }

    /// Seed for backoff jitter.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The group id.
    pub fn group_id(&self) -> &str {
        &self.group_id
    }

    /// The bound on fetched metadata.
    pub fn max_metadata_bytes(&self) -> usize {
        self.max_metadata_bytes
    }

    /// Check every setting; says what to change.
    pub fn validate(&self) -> Result<(), OffsetsConfigError> {
        if self.group_id.is_empty() {
            return Err(OffsetsConfigError::EmptyGroupId);
        }
        for (name, d) in [
            ("commit_timeout", Some(self.commit_timeout)),
            ("fetch_timeout", Some(self.fetch_timeout)),
            ("retry_backoff", Some(self.retry_backoff)),
            ("auto_commit_interval", self.auto_commit_interval),
        ] {
            if d == Some(Duration::ZERO) {
                return Err(OffsetsConfigError::ZeroDuration { name });
            }
        }
        if self.retry_backoff > self.retry_backoff_max {
            return Err(OffsetsConfigError::BackoffAboveMax {
                backoff_ms: self.retry_backoff.as_millis(),
                max_ms: self.retry_backoff_max.as_millis(),
            });
        }
        Ok(())
    }
}

impl OffsetVersions {
    /// Check that kgroup speaks both versions.
    pub fn validate(self) -> Result<Self, OffsetsConfigError> {
        let check = |api, v: i16, min: i16, max: i16| {
            if (min..=max).contains(&v) {
                Ok(())
            } else {
                Err(OffsetsConfigError::UnsupportedVersion {
                    api,
                    version: v,
                    min,
                    max,
                })
            }
        };
        check(
            "OffsetCommit",
            self.commit,
            Self::MIN.commit,
            Self::MAX.commit,
        )?;
        check("OffsetFetch", self.fetch, Self::MIN.fetch, Self::MAX.fetch)?;
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_settings_say_what_to_change() {
        assert_eq!(OffsetsConfig::new("g").validate(), Ok(()));
        assert_eq!(
            OffsetsConfig::new("").validate(),
            Err(OffsetsConfigError::EmptyGroupId)
        );
        assert_eq!(
            OffsetsConfig::new("g")
                .with_auto_commit(Some(Duration::ZERO))
                .validate(),
            Err(OffsetsConfigError::ZeroDuration {
                name: "auto_commit_interval"
            })
        );
        let e = OffsetsConfig::new("g")
            .with_retry_backoff(Duration::from_secs(2), Duration::from_secs(1))
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("retry_backoff_max"), "{e}");
    }

    #[test]
    fn versions_outside_what_kgroup_speaks_are_rejected() {
        assert!(
            OffsetVersions {
                commit: 9,
                fetch: 9
            }
            .validate()
            .is_ok()
        );
        assert!(
            OffsetVersions {
                commit: 1,
                fetch: 9
            }
            .validate()
            .is_err()
        );
        assert!(
            OffsetVersions {
                commit: 8,
                fetch: 0
            }
            .validate()
            .is_err()
        );
        assert!(
            OffsetVersions {
                commit: 10,
                fetch: 9
            }
            .validate()
            .is_err()
        );
    }
}
