//! The simulated application behind each engine: it processes the partitions
//! it was handed (advancing a position over virtual time), commits what it
//! processed, holds rebalances during batches and acknowledges revocations,
//! sometimes late. It follows the engine's events only (`added`, `Revoked`,
//! `Lost`), as a real application does, so a wrong event shows up as an
//! idle or doubly-owned partition.

use std::collections::{BTreeMap, BTreeSet};

use kgroup::TopicPartition;

use crate::clock::SimTime;

/// One owned partition's processing state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionWork {
    /// The next offset to process (everything below it is processed).
    pub position: i64,
}

/// How the application behaves (drawn per member from the seed).
#[derive(Clone, Debug)]
pub struct AppProfile {
    /// Average time between processing ticks.
    pub tick_ms: (u64, u64),
    /// Records processed per partition per tick.
    pub records_per_tick: (u64, u64),
    /// Probability that a tick starts a batch that holds rebalances.
    pub hold_chance: f64,
    /// Batch length range.
    pub batch_ms: (u64, u64),
    /// Commit period.
    pub commit_every_ms: u64,
    /// Delay before acknowledging a revocation.
    pub ack_ms: (u64, u64),
    /// Probability that an ack comes very late (past the rebalance timeout).
    pub late_ack_chance: f64,
}

/// The application state of one member incarnation.
#[derive(Clone, Debug, Default)]
pub struct App {
    /// Partitions it processes now.
    pub owned: BTreeMap<TopicPartition, PartitionWork>,
    /// A batch in progress holds rebalances until this time.
    pub batch_until: Option<SimTime>,
    /// Partitions revoked and not yet acknowledged, with the ack's sequence.
    pub revoking: Option<(Vec<TopicPartition>, u64)>,
    /// Sequence for ack events.
    pub ack_seq: u64,
    /// When the application last committed.
    pub last_commit: SimTime,
    /// Partitions revoked cleanly (acknowledged) in generation `.1`: the
    /// engine may still send their commit-on-revoke in that generation.
    pub released: (BTreeSet<TopicPartition>, i32),
}

impl App {
    /// Drop `partitions` from a revocation waiting for its ack (they were
    /// lost, or handed back): the ack, when it comes, must not touch them.
    pub fn forget_revoking(&mut self, partitions: &[TopicPartition]) {
        if let Some((list, _)) = &mut self.revoking {
            list.retain(|p| !partitions.contains(p));
        }
    }

    /// Partitions held now.
    pub fn owned_set(&self) -> BTreeSet<TopicPartition> {
        self.owned.keys().cloned().collect()
    }
}
