//! The invariant checker: DESIGN.md's invariants, evaluated at every step of
//! a run against what the coordinator, the engines and the simulated
//! applications say. `docs/simulation.md` defines each one precisely,
//! including the zombie window the single-owner rule allows.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use bytes::Bytes;
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
use kafka_protocol::protocol::Decodable;
use kgroup::TopicPartition;

use crate::clock::{SimTime, fmt_time};

/// The invariants, by number in `docs/simulation.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Invariant {
    /// 1. No partition owned at once by two members that both hold a live
    ///    session at the coordinator.
    SingleOwner,
    /// 2. Cooperative: a partition is revoked by its old owner before a new
    ///    owner is assigned it (leader plan and member events).
    RevokeBeforeReassign,
    /// 3. Commits are sent only for owned partitions with the current
    ///    generation, and accepted only at the group's current generation
    ///    from a live member.
    CommitFromOwner,
    /// 4. Committed offsets never regress and never pass what was processed.
    AtLeastOnce,
    /// 5. After faults stop: every partition owned exactly once, the group
    ///    stable, within a bounded number of rebalances and time; what an
    ///    engine reports owned matches what its application was handed.
    Convergence,
    /// 6. The same seed gives the same trace hash.
    Determinism,
}

impl Invariant {
    /// Short name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Invariant::SingleOwner => "single-owner",
            Invariant::RevokeBeforeReassign => "revoke-before-reassign",
            Invariant::CommitFromOwner => "commit-from-owner",
            Invariant::AtLeastOnce => "at-least-once",
            Invariant::Convergence => "convergence",
            Invariant::Determinism => "determinism",
        }
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One broken invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Which invariant.
    pub invariant: Invariant,
    /// Virtual time.
    pub at: SimTime,
    /// What happened, naming members and partitions.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}] at {}: {}",
            self.invariant,
            fmt_time(self.at),
            self.detail
        )
    }
}

/// Keep at most this many violations per run (all are counted).
const MAX_KEPT: usize = 32;

/// Accumulates checks and violations for one run.
#[derive(Debug, Default)]
pub struct Checker {
    violations: Vec<Violation>,
    violation_count: u64,
    checks: u64,
    committed: BTreeMap<TopicPartition, i64>,
    processed: BTreeMap<TopicPartition, i64>,
}

/// An owner of a partition, as the single-owner rule sees it.
#[derive(Clone, Debug)]
pub struct Owner<'a> {
    /// Simulated member name.
    pub name: &'a str,
    /// Its current member id at the engine.
    pub member_id: &'a str,
}

impl Checker {
    /// A checker with nothing checked yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of invariant evaluations so far.
    pub fn checks(&self) -> u64 {
        self.checks
    }

    /// Violations kept (the first few).
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// Number of violations found.
    pub fn violation_count(&self) -> u64 {
        self.violation_count
    }

    /// Fold another checker's counts and violations into this one.
    pub fn absorb(&mut self, other: Checker) {
        self.checks += other.checks;
        let kept = other.violations.len() as u64;
        for v in other.violations {
            self.violate(v.invariant, v.at, v.detail);
        }
        self.violation_count += other.violation_count.saturating_sub(kept);
    }

    /// Record a violation.
    pub fn violate(&mut self, invariant: Invariant, at: SimTime, detail: String) {
        self.violation_count += 1;
        if self.violations.len() < MAX_KEPT {
            self.violations.push(Violation {
                invariant,
                at,
                detail,
            });
        }
    }

    fn check(
        &mut self,
        ok: bool,
        invariant: Invariant,
        at: SimTime,
        detail: impl FnOnce() -> String,
    ) {
        self.checks += 1;
        if !ok {
            self.violate(invariant, at, detail());
        }
    }

    /// Invariant 1 over the whole group: `owners` lists, per partition, the
    /// members whose application holds it; `live` the member ids the
    /// coordinator currently counts as members.
    pub fn single_owner(
        &mut self,
        at: SimTime,
        owners: &BTreeMap<&TopicPartition, Vec<Owner<'_>>>,
        live: &dyn Fn(&str) -> bool,
    ) {
        for (tp, list) in owners {
            let live_owners: Vec<&Owner<'_>> = list.iter().filter(|o| live(o.member_id)).collect();
            self.check(live_owners.len() <= 1, Invariant::SingleOwner, at, || {
                let names: Vec<String> = live_owners
                    .iter()
                    .map(|o| format!("{} ({})", o.name, o.member_id))
                    .collect();
                format!("{tp} owned by live members {}", names.join(" and "))
            });
        }
    }

    /// Invariant 2, member side: `member` was just handed `added` in a
    /// cooperative generation; `held_by_other` names a live member that still
    /// holds one of them.
    pub fn assigned_while_held(
        &mut self,
        at: SimTime,
        member: &str,
        generation: i32,
        conflicts: &[(TopicPartition, String)],
    ) {
        self.check(
            conflicts.is_empty(),
            Invariant::RevokeBeforeReassign,
            at,
            || {
                let list: Vec<String> = conflicts
                    .iter()
                    .map(|(tp, who)| format!("{tp} (still held by {who})"))
                    .collect();
                format!(
                    "{member} assigned {} in cooperative generation {generation}",
                    list.join(", ")
                )
            },
        );
    }

    /// Invariant 2, leader side: in a cooperative generation, the stored
    /// assignment gives no member a partition another member of the same
    /// generation still claims as owned (KIP-429; Java's
    /// `validateCooperativeAssignment`).
    pub fn cooperative_plan(
        &mut self,
        at: SimTime,
        generation: i32,
        subscriptions: &[(String, Bytes)],
        assignments: &[(String, Bytes)],
    ) {
        let mut claimed: BTreeMap<TopicPartition, &str> = BTreeMap::new();
        for (member, bytes) in subscriptions {
            let Some(sub) = decode_subscription(bytes) else {
                continue;
            };
            for t in &sub.owned_partitions {
                for p in &t.partitions {
                    claimed.insert(TopicPartition::new(t.topic.0.as_str(), *p), member);
                }
            }
        }
        for (member, bytes) in assignments {
            let Some(asg) = decode_assignment(bytes) else {
                if !bytes.is_empty() {
                    self.check(false, Invariant::RevokeBeforeReassign, at, || {
                        format!("generation {generation}: the leader's assignment for {member} does not decode")
                    });
                }
                continue;
            };
            for t in &asg.assigned_partitions {
                for p in &t.partitions {
                    let tp = TopicPartition::new(t.topic.0.as_str(), *p);
                    let owner = claimed.get(&tp).copied();
                    self.check(owner.is_none_or(|o| o == member), Invariant::RevokeBeforeReassign, at, || {
                        format!(
                            "generation {generation}: leader moved {tp} from {} to {member} in one rebalance",
                            owner.unwrap_or_default()
                        )
                    });
                }
            }
        }
    }

    /// Invariant 3, send side: a commit leaving `member` at `sent_generation`
    /// must carry its current generation and only partitions it owns.
    pub fn commit_sent(
        &mut self,
        at: SimTime,
        member: &str,
        sent_generation: i32,
        current_generation: i32,
        not_owned: &[TopicPartition],
    ) {
        self.check(sent_generation == current_generation, Invariant::CommitFromOwner, at, || {
            format!("{member} sent a commit at generation {sent_generation} while its generation is {current_generation}")
        });
        self.check(not_owned.is_empty(), Invariant::CommitFromOwner, at, || {
            let list: Vec<String> = not_owned.iter().map(ToString::to_string).collect();
            format!(
                "{member} committed partitions it does not own: {}",
                list.join(", ")
            )
        });
    }

    /// Invariants 3 (coordinator side) and 4 for an accepted commit.
    pub fn commit_accepted(
        &mut self,
        at: SimTime,
        member_id: &str,
        generation: i32,
        group_generation: i32,
        live: bool,
        offsets: &[(String, i32, i64)],
    ) {
        self.check(generation == group_generation, Invariant::CommitFromOwner, at, || {
            format!("commit from {member_id} at generation {generation} accepted in generation {group_generation}")
        });
        self.check(live, Invariant::CommitFromOwner, at, || {
            format!("commit from {member_id}, not a member of the group, accepted")
        });
        for (topic, partition, offset) in offsets {
            let tp = TopicPartition::new(topic.as_str(), *partition);
            let prev = self.committed.get(&tp).copied().unwrap_or(-1);
            let processed = self.processed.get(&tp).copied().unwrap_or(0);
            let offset = *offset;
            self.check(offset >= prev, Invariant::AtLeastOnce, at, || {
                format!(
                    "committed offset of {tp} regressed from {prev} to {offset} (by {member_id})"
                )
            });
            self.check(offset <= processed, Invariant::AtLeastOnce, at, || {
                format!("{member_id} committed {tp} at {offset} beyond what was processed ({processed}): records would be skipped")
            });
            if offset > prev {
                self.committed.insert(tp, offset);
            }
        }
    }

    /// Records up to `position` (exclusive) of `tp` were processed.
    pub fn processed(&mut self, tp: &TopicPartition, position: i64) {
        let e = self.processed.entry(tp.clone()).or_insert(0);
        if position > *e {
            *e = position;
        }
    }

    /// Invariant 5, member side: after an `Assigned` event the application
    /// holds exactly what the engine says it owns.
    pub fn views_agree(
        &mut self,
        at: SimTime,
        member: &str,
        engine: &BTreeSet<TopicPartition>,
        app: &BTreeSet<TopicPartition>,
    ) {
        self.check(engine == app, Invariant::Convergence, at, || {
            let idle: Vec<String> = engine.difference(app).map(ToString::to_string).collect();
            let extra: Vec<String> = app.difference(engine).map(ToString::to_string).collect();
            format!(
                "{member}: engine owns partitions its application was never given [{}] / application holds [{}] the engine does not own",
                idle.join(", "),
                extra.join(", ")
            )
        });
    }

    /// Invariant 5, end of run.
    pub fn converged(
        &mut self,
        at: SimTime,
        expected: &BTreeSet<TopicPartition>,
        owners: &BTreeMap<&TopicPartition, Vec<Owner<'_>>>,
        settle: &Settlement,
    ) {
        for tp in expected {
            let n = owners.get(tp).map_or(0, Vec::len);
            self.check(n == 1, Invariant::Convergence, at, || {
                let who: Vec<&str> = owners
                    .get(tp)
                    .into_iter()
                    .flatten()
                    .map(|o| o.name)
                    .collect();
                format!(
                    "after faults stopped {tp} is owned by {n} members [{}]",
                    who.join(", ")
                )
            });
        }
        self.check(
            settle.rebalances_after_faults <= settle.max_rebalances,
            Invariant::Convergence,
            at,
            || {
                format!(
                    "{} rebalances after faults stopped (bound {})",
                    settle.rebalances_after_faults, settle.max_rebalances
                )
            },
        );
        self.check(
            settle
                .last_rebalance
                .is_none_or(|t| t <= settle.stable_from),
            Invariant::Convergence,
            at,
            || {
                format!(
                    "group not stable at the end: last generation started at {}",
                    settle.last_rebalance.map(fmt_time).unwrap_or_default()
                )
            },
        );
    }
}

/// What the end-of-run convergence check needs to know about rebalances.
#[derive(Clone, Copy, Debug)]
pub struct Settlement {
    /// Generations started after the fault window closed.
    pub rebalances_after_faults: u32,
    /// The most allowed.
    pub max_rebalances: u32,
    /// When the last generation started.
    pub last_rebalance: Option<SimTime>,
    /// No generation may start after this (the group must be stable since).
    pub stable_from: SimTime,
}

/// Decode a ConsumerProtocol subscription (version prefix, then the body,
/// newer versions read as the newest known, as PROTOCOL.md §4.6 says).
pub fn decode_subscription(bytes: &Bytes) -> Option<ConsumerProtocolSubscription> {
    let mut b = bytes.clone();
    if b.len() < 2 {
        return None;
    }
    let version = i16::from_be_bytes([b[0], b[1]]).min(3);
    let _ = bytes::Buf::get_i16(&mut b);
    ConsumerProtocolSubscription::decode(&mut b, version).ok()
}

/// Decode a ConsumerProtocol assignment.
pub fn decode_assignment(bytes: &Bytes) -> Option<ConsumerProtocolAssignment> {
    let mut b = bytes.clone();
    if b.len() < 2 {
        return None;
    }
    let version = i16::from_be_bytes([b[0], b[1]]).min(3);
    let _ = bytes::Buf::get_i16(&mut b);
    ConsumerProtocolAssignment::decode(&mut b, version).ok()
}
