//! Offsets: OffsetCommit and OffsetFetch as a Sans-IO sub-state machine that
//! the group engine drives, fenced by the current generation and member id.
//!
//! What it owns and why it is separate: committing is where the membership
//! protocol meets the application's progress, and where clients have lost
//! data or whole assignments (KAFKA-14024, librdkafka #4059, the
//! `ILLEGAL_GENERATION` storms of seed 003). Keeping it a small machine of its
//! own, with a narrow interface, lets every rule below be tested without a
//! group around it.
//!
//! # Contract (quinn-proto style)
//!
//! Inputs, from the group engine: [`Offsets::handle_membership`] (a
//! [`MembershipView`] on every change), [`Offsets::handle_coordinator_ready`] /
//! [`Offsets::handle_coordinator_lost`], [`Offsets::handle_commit_response`],
//! [`Offsets::handle_fetch_response`], [`Offsets::handle_request_failure`],
//! [`Offsets::handle_timeout`]. Commands, from the application through the
//! group: [`Offsets::commit`], [`Offsets::mark_processed`],
//! [`Offsets::flush_marks`], [`Offsets::fetch`], [`Offsets::close`].
//! Outputs: [`Offsets::poll_request`] (encode and send to the coordinator,
//! keep the [`RequestTag`]), [`Offsets::poll_event`], [`Offsets::poll_timeout`],
//! and the query [`Offsets::blocking_rebalance`]. After any input, drain
//! `poll_request` and `poll_event` until `None`, then wait for the next input
//! or `poll_timeout`.
//!
//! # Commit rules (docs/offsets.md)
//!
//! 1. A commit names only partitions owned now; anything else is refused
//!    locally ([`CommitRefused`]) and never sent. While unjoined: refused.
//!    During an eager rebalance: refused with `RebalanceInProgress` (fail
//!    fast, as Java's `sendOffsetCommitRequest` outside STABLE).
//! 2. During a cooperative Join→Sync the commit is accepted and held; it goes
//!    out when the generation is settled, with the generation current *then*
//!    (franz-go's `noCommitDuringJoinAndSync`; PROTOCOL.md §9.5). The
//!    JoinGroup parks the coordinator connection anyway (§0.1).
//! 3. The generation, member id and instance id are read from the view when
//!    the request is built, not when the commit was made; requests go out
//!    only in `Stable` or `Revoking`. A partition that leaves the owned set is
//!    removed from every queued commit (reported `NoLongerOwned`) and its
//!    marks are dropped, so a commit can never be sent under a later
//!    ownership of the same partition.
//! 4. One OffsetCommit in flight at a time, FIFO: a retry is re-sent before
//!    any later commit, so an older offset can never overtake a newer one
//!    (the broker applies commits in arrival order). One OffsetFetch in
//!    flight at a time, independently.
//! 5. Retriable failures are retried with backoff until the commit's
//!    deadline (`commit_timeout`), then reported; nothing is re-sent forever
//!    (KAFKA-14024/13310).
//! 6. Marked offsets (`mark_processed`) are kept until a commit of them
//!    succeeds or the partition leaves this member; they are committed every
//!    `auto_commit_interval`, when a revoke starts, on `flush_marks` and on
//!    `close`, and only ever move the committed offset forward.

mod classify;
mod config;
mod error;
mod message;
mod retry;
mod types;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::mem;
use std::time::Instant;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{OffsetCommitResponse, OffsetFetchResponse};

use crate::TopicPartition;

pub use config::OffsetsConfig;
pub use error::{
    CommitError, CommitRefused, FetchError, FetchRefused, OffsetsConfigError, PartitionCommitError,
    PartitionFetchError, ResponseViolation, RetryCause, StaleCause,
};
pub use types::{
    CommitId, CommitKind, CommittedOffset, FetchId, FetchedOffsets, MembershipAction,
    MembershipView, OffsetApi, OffsetEvent, OffsetRequest, OffsetRequestBody, OffsetVersions,
    RebalancePhase, RequestFailure, RequestTag,
};

use classify::{CommitDisposition, commit_group_error, fetch_group_error};
pub use message::commit_response_for;
use message::{Sender, commit_request, fetch_request, read_commit, read_fetch};
use retry::RetrySchedule;

/// A commit waiting to be sent (or re-sent).
#[derive(Debug)]
struct Commit {
    id: CommitId,
    kind: CommitKind,
    /// Manual: what is left to send. Marked: filled from the marks when sent.
    offsets: BTreeMap<TopicPartition, CommittedOffset>,
    /// Committed so far, with the offset written (a partial, per-partition
    /// retry keeps the earlier attempts' partitions here).
    committed: Vec<(TopicPartition, i64)>,
    /// Final per-partition failures so far.
    failed: Vec<(TopicPartition, PartitionCommitError)>,
    /// Per-partition retriable errors of the last attempt.
    retrying: BTreeMap<TopicPartition, PartitionCommitError>,
    /// Generation and member id the commit was made under, for reports.
    made_in: (i32, String),
    deadline: Instant,
    last_cause: Option<RetryCause>,
}

/// The OffsetCommit in flight, with the identity it was sent as.
#[derive(Debug)]
struct CommitInFlight {
    seq: u64,
    generation: i32,
    member_id: String,
    /// Partitions that left this member while the request was in flight:
    /// their answer is still read (it is about the generation sent), but
    /// they are never re-sent.
    released: BTreeSet<TopicPartition>,
    commit: Commit,
}

impl CommitInFlight {
    /// The commit, without the partitions released meanwhile (reported
    /// `NoLongerOwned`), ready to be re-queued or finished.
    fn into_commit(self) -> Commit {
        let mut c = self.commit;
        for tp in self.released {
            if c.offsets.remove(&tp).is_some() {
                c.retrying.remove(&tp);
                c.failed.push((tp, PartitionCommitError::NoLongerOwned));
            }
        }
        c
    }
}

/// A fetch waiting to be sent (or re-sent).
#[derive(Debug)]
struct Fetch {
    id: FetchId,
    generation: i32,
    member_id: String,
    /// Partitions still to read.
    pending: BTreeSet<TopicPartition>,
    results: FetchedOffsets,
    deadline: Instant,
    last_cause: Option<RetryCause>,
}

#[derive(Debug)]
struct FetchInFlight {
    seq: u64,
    version: i16,
    fetch: Fetch,
}

/// The offsets sub-state machine. See the module documentation.
#[derive(Debug)]
pub struct Offsets {
    config: OffsetsConfig,
    view: MembershipView,
    /// Negotiated versions while a coordinator is known and ready.
    coordinator: Option<OffsetVersions>,
    closing: bool,
    next_id: u64,
    next_seq: u64,
    commits: VecDeque<Commit>,
    commit_in_flight: Option<CommitInFlight>,
    commit_retry_at: Option<Instant>,
    commit_retry: RetrySchedule,
    fetches: VecDeque<Fetch>,
    fetch_in_flight: Option<FetchInFlight>,
    fetch_retry_at: Option<Instant>,
    fetch_retry: RetrySchedule,
    /// The application's offset store: processed positions per owned partition.
    marks: BTreeMap<TopicPartition, CommittedOffset>,
    /// Last offset this member committed successfully, per owned partition.
    acked: BTreeMap<TopicPartition, i64>,
    /// Per owned partition, the highest offset sent in an OffsetCommit whose
    /// outcome this member never learned (abandoned when the coordinator was
    /// lost, or failed in transport): the broker may have applied it. A
    /// commit of the marks never sends less than this (see `mark_to_send`).
    unsettled: BTreeMap<TopicPartition, CommittedOffset>,
    auto_commit_at: Option<Instant>,
    events: VecDeque<OffsetEvent>,
    /// A reintroduced bug (`mutations` feature, test-only).
    #[cfg(feature = "mutations")]
    pub(crate) mutation: Option<crate::mutation::Mutation>,
}

impl Offsets {
    /// A component for `config`, not a member yet and with no coordinator.
    pub fn new(config: OffsetsConfig, now: Instant) -> Result<Self, OffsetsConfigError> {
        config.validate()?;
        let _ = now;
        let commit_retry =
            RetrySchedule::new(config.retry_backoff, config.retry_backoff_max, config.seed);
        let fetch_retry = RetrySchedule::new(
            config.retry_backoff,
            config.retry_backoff_max,
            config.seed ^ 0x6f66_6673_6574_7321,
        );
        Ok(Self {
            config,
            view: MembershipView::unjoined(),
            coordinator: None,
            closing: false,
            next_id: 0,
            next_seq: 0,
            commits: VecDeque::new(),
            commit_in_flight: None,
            commit_retry_at: None,
            commit_retry,
            fetches: VecDeque::new(),
            fetch_in_flight: None,
            fetch_retry_at: None,
            fetch_retry,
            marks: BTreeMap::new(),
            acked: BTreeMap::new(),
            unsettled: BTreeMap::new(),
            auto_commit_at: None,
            events: VecDeque::new(),
            #[cfg(feature = "mutations")]
            mutation: None,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &OffsetsConfig {
        &self.config
    }

    /// The membership last handed in.
    pub fn view(&self) -> &MembershipView {
        &self.view
    }

    /// The marked (processed, not necessarily committed) offsets.
    pub fn marks(&self) -> &BTreeMap<TopicPartition, CommittedOffset> {
        &self.marks
    }

    // ----- inputs from the group engine -----

    /// The membership changed (generation, member id, owned set or phase).
    ///
    /// Partitions no longer owned lose their marks and are removed from
    /// queued commits (`NoLongerOwned`); fetches of another generation are
    /// superseded; entering `Revoking` commits the marks (auto-commit).
    pub fn handle_membership(&mut self, now: Instant, view: MembershipView) {
        let mut view = view;
        if !view.is_member() || view.phase == RebalancePhase::EagerJoining {
            // Nothing is owned while unjoined, nor once an eager revoke is done.
            view.owned.clear();
        }
        let old = mem::replace(&mut self.view, view);
        let identity_changed = old.member_id != self.view.member_id;
        let removed: Vec<TopicPartition> = old
            .owned
            .iter()
            .filter(|tp| identity_changed || !self.view.owned.contains(*tp))
            .cloned()
            .collect();
        self.release(&removed);
        if old.generation_id != self.view.generation_id || identity_changed {
            self.supersede_fetches(|_| true);
        } else if !removed.is_empty() {
            self.supersede_fetches(|f| f.pending.iter().any(|tp| removed.contains(tp)));
        }
        if self.view.phase == RebalancePhase::Revoking && old.phase != RebalancePhase::Revoking {
            // Java commits consumed offsets before revoking (`onJoinPrepare`,
            // eager; `onPartitionsRevoked` path, cooperative).
            if self.config.auto_commit_interval.is_some() {
                self.enqueue_marked(now);
            }
        }
        // Not once closing: `close` stopped auto-commit for good (a view
        // handed while leaving must not re-arm it; found by the fuzzer).
        if let Some(interval) = self.config.auto_commit_interval
            && self.view.is_member()
            && !self.closing
            && self.auto_commit_at.is_none()
        {
            self.auto_commit_at = now.checked_add(interval);
        }
    }

    /// A coordinator is known and connected, with these negotiated versions.
    pub fn handle_coordinator_ready(
        &mut self,
        now: Instant,
        versions: OffsetVersions,
    ) -> Result<(), OffsetsConfigError> {
        let _ = now;
        self.coordinator = Some(versions.validate()?);
        Ok(())
    }

    /// The coordinator is unknown (moved, disconnected, rediscovering).
    ///
    /// Requests in flight are abandoned: their responses, if any arrive, are
    /// ignored, and they are re-sent (same offsets) to the next coordinator,
    /// within their deadlines.
    pub fn handle_coordinator_lost(&mut self, now: Instant) {
        let _ = now;
        self.coordinator = None;
        if let Some(f) = self.commit_in_flight.take() {
            self.note_unsettled(&f);
            let mut c = f.into_commit();
            c.last_cause = Some(RetryCause::NoCoordinator);
            if c.offsets.is_empty() {
                self.finish_commit(c, None);
            } else {
                self.commits.push_front(c);
            }
        }
        if let Some(f) = self.fetch_in_flight.take() {
            let mut fetch = f.fetch;
            fetch.last_cause = Some(RetryCause::NoCoordinator);
            self.fetches.push_front(fetch);
        }
    }

    /// The response to an OffsetCommit sent with `tag`.
    pub fn handle_commit_response(
        &mut self,
        now: Instant,
        tag: RequestTag,
        response: &OffsetCommitResponse,
    ) {
        let Some(f) = self.take_commit_in_flight(tag) else {
            return;
        };
        let reply = read_commit(&f.commit.offsets, response);
        let (generation, member_id) = (f.generation, f.member_id.clone());
        // The offsets sent for partitions released meanwhile: `into_commit`
        // drops them, but the broker's answer about them is still reported.
        let released: BTreeMap<TopicPartition, i64> = f
            .released
            .iter()
            .filter_map(|tp| f.commit.offsets.get(tp).map(|o| (tp.clone(), o.offset)))
            .collect();
        let mut commit = f.into_commit();
        let reply = match reply {
            Ok(r) => r,
            Err(violation) => {
                let group = self.config.group_id.clone();
                self.finish_commit(
                    commit,
                    Some(CommitError::InvalidResponse { group, violation }),
                );
                return;
            }
        };
        if let Some(level) = reply.group {
            let unchanged = self.view.same_generation(generation, &member_id);
            let (disposition, action) = commit_group_error(level, unchanged, self.view.phase);
            if let Some(action) = action {
                self.membership_action(action, OffsetApi::Commit, level.error());
            }
            let group = self.config.group_id.clone();
            match disposition {
                CommitDisposition::Retry(cause) => self.retry_commit(now, commit, cause),
                CommitDisposition::RebalanceInProgress => {
                    self.finish_commit(commit, Some(CommitError::RebalanceInProgress { group }))
                }
                CommitDisposition::Stale(cause) => self.finish_commit(
                    commit,
                    Some(CommitError::Stale {
                        group,
                        member: member_id,
                        generation,
                        cause,
                    }),
                ),
                CommitDisposition::Fatal(error) => {
                    self.finish_commit(commit, Some(CommitError::Fatal { group, error }))
                }
            }
            return;
        }
        self.commit_retry.reset();
        for tp in reply.ok {
            let written = if let Some(&offset) = released.get(&tp) {
                // Committed under the ownership it was sent in; that one is over.
                commit.failed.retain(|(f, _)| *f != tp);
                Some(offset)
            } else if let Some(o) = commit.offsets.remove(&tp) {
                if self.view.owns(&tp) {
                    self.acked.insert(tp.clone(), o.offset);
                    // Applied after whatever was left unsettled before it
                    // (the broker applies a member's commits in the order
                    // it receives them): the floor no longer matters.
                    self.unsettled.remove(&tp);
                }
                Some(o.offset)
            } else {
                // read_commit admits only partitions that were sent, once.
                None
            };
            if let Some(offset) = written {
                commit.committed.push((tp, offset));
            }
        }
        for (tp, e) in reply.failed {
            if released.contains_key(&tp) {
                continue; // already reported NoLongerOwned
            }
            commit.offsets.remove(&tp);
            commit.failed.push((tp, e));
        }
        commit.retrying = reply
            .retry
            .into_iter()
            .filter(|(tp, _)| !released.contains_key(tp))
            .collect();
        if commit.retrying.is_empty() {
            self.finish_commit(commit, None);
        } else {
            commit
                .offsets
                .retain(|tp, _| commit.retrying.contains_key(tp));
            let cause = RetryCause::Broker(ResponseError::UnknownTopicOrPartition);
            self.retry_commit(now, commit, cause);
        }
    }

    /// The response to an OffsetFetch sent with `tag`.
    pub fn handle_fetch_response(
        &mut self,
        now: Instant,
        tag: RequestTag,
        response: &OffsetFetchResponse,
    ) {
        let Some(f) = self.take_fetch_in_flight(tag) else {
            return;
        };
        let FetchInFlight {
            version, mut fetch, ..
        } = f;
        let group = self.config.group_id.clone();
        let reply = match read_fetch(
            &self.config.group_id,
            version,
            &fetch.pending,
            response,
            self.config.max_metadata_bytes,
        ) {
            Ok(r) => r,
            Err(violation) => {
                self.finish_fetch(fetch, Err(FetchError::InvalidResponse { group, violation }));
                return;
            }
        };
        if let Some(level) = reply.group {
            let (disposition, action) = fetch_group_error(level);
            if let Some(action) = action {
                self.membership_action(action, OffsetApi::Fetch, level.error());
            }
            match disposition {
                Ok(cause) => self.retry_fetch(now, fetch, cause),
                Err(error) => self.finish_fetch(fetch, Err(FetchError::Fatal { group, error })),
            }
            return;
        }
        self.fetch_retry.reset();
        fetch.results.extend(reply.results);
        fetch.pending = reply.unstable;
        if fetch.pending.is_empty() {
            let results = mem::take(&mut fetch.results);
            self.finish_fetch(fetch, Ok(results));
        } else {
            // KIP-447: a transactional commit is pending; ask again later.
            self.retry_fetch(
                now,
                fetch,
                RetryCause::Broker(ResponseError::UnstableOffsetCommit),
            );
        }
    }

    /// The request sent with `tag` got no usable response. Retried within
    /// its deadline; the group engine handles the connection itself.
    pub fn handle_request_failure(
        &mut self,
        now: Instant,
        tag: RequestTag,
        failure: RequestFailure,
    ) {
        let cause = RetryCause::Transport(failure.to_string());
        match tag.api {
            OffsetApi::Commit => {
                if let Some(f) = self.take_commit_in_flight(tag) {
                    self.note_unsettled(&f);
                    self.retry_commit(now, f.into_commit(), cause);
                }
            }
            OffsetApi::Fetch => {
                if let Some(f) = self.take_fetch_in_flight(tag) {
                    self.retry_fetch(now, f.fetch, cause);
                }
            }
        }
    }

    /// Time passed: auto-commit, deadlines, backoffs.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.commit_retry_at.is_some_and(|t| t <= now) {
            self.commit_retry_at = None;
        }
        if self.fetch_retry_at.is_some_and(|t| t <= now) {
            self.fetch_retry_at = None;
        }
        if let (Some(at), Some(interval)) = (self.auto_commit_at, self.config.auto_commit_interval)
            && at <= now
        {
            self.auto_commit_at = if self.view.is_member() {
                now.checked_add(interval)
            } else {
                None
            };
            self.enqueue_marked(now);
        }
        // Expire queued commits (the one in flight waits for its response or
        // failure; the group engine's request timeout bounds it).
        let mut i = 0;
        while i < self.commits.len() {
            if self.commits.get(i).is_some_and(|c| c.deadline <= now) {
                if let Some(c) = self.commits.remove(i) {
                    let error = if c.kind == CommitKind::Marked && !self.has_dirty_marks() {
                        None // nothing left to commit: Ok
                    } else {
                        self.deadline_error(&c)
                    };
                    self.finish_commit(c, error);
                }
            } else {
                i += 1;
            }
        }
        let mut i = 0;
        while i < self.fetches.len() {
            if self.fetches.get(i).is_some_and(|f| f.deadline <= now) {
                if let Some(f) = self.fetches.remove(i) {
                    self.fetch_deadline(f);
                }
            } else {
                i += 1;
            }
        }
    }

    // ----- commands -----

    /// Commit `offsets` (next offset to consume, per partition).
    ///
    /// Refused locally, never sent, when not a member, during an eager
    /// rebalance, or for a partition not owned (see the module rules). The
    /// result comes as one [`OffsetEvent::CommitDone`] with the returned id.
    pub fn commit(
        &mut self,
        now: Instant,
        offsets: Vec<(TopicPartition, CommittedOffset)>,
    ) -> Result<CommitId, CommitRefused> {
        let group = || self.config.group_id.clone();
        if self.closing {
            return Err(CommitRefused::Closed { group: group() });
        }
        let Some(first) = offsets.first().map(|(tp, _)| tp.clone()) else {
            return Err(CommitRefused::Empty { group: group() });
        };
        match self.view.phase {
            RebalancePhase::Unjoined => {
                return Err(CommitRefused::NotMember {
                    group: group(),
                    partition: first,
                });
            }
            RebalancePhase::EagerJoining => {
                return Err(CommitRefused::RebalanceInProgress {
                    group: group(),
                    partition: first,
                });
            }
            _ if !self.view.is_member() => {
                return Err(CommitRefused::NotMember {
                    group: group(),
                    partition: first,
                });
            }
            _ => {}
        }
        let mut map = BTreeMap::new();
        for (tp, o) in offsets {
            self.check_markable(&tp, o.offset)?;
            if map.contains_key(&tp) {
                return Err(CommitRefused::DuplicatePartition {
                    group: group(),
                    partition: tp,
                });
            }
            map.insert(tp, o);
        }
        let id = self.next_commit_id();
        self.commits.push_back(Commit {
            id,
            kind: CommitKind::Manual,
            offsets: map,
            committed: Vec::new(),
            failed: Vec::new(),
            retrying: BTreeMap::new(),
            made_in: (self.view.generation_id, self.view.member_id.clone()),
            deadline: self.deadline(now, self.config.commit_timeout),
            last_cause: None,
        });
        Ok(id)
    }

    /// Record that everything before `offset` on `tp` has been processed
    /// (librdkafka's offset store). Committed by auto-commit, before a revoke
    /// completes, on [`Offsets::flush_marks`] and on close. A later mark
    /// replaces an earlier one; the committed offset only moves forward.
    pub fn mark_processed(
        &mut self,
        tp: TopicPartition,
        offset: impl Into<CommittedOffset>,
    ) -> Result<(), CommitRefused> {
        let offset = offset.into();
        if self.closing {
            return Err(CommitRefused::Closed {
                group: self.config.group_id.clone(),
            });
        }
        if self.view.phase == RebalancePhase::EagerJoining {
            return Err(CommitRefused::RebalanceInProgress {
                group: self.config.group_id.clone(),
                partition: tp,
            });
        }
        if !self.view.is_member() {
            return Err(CommitRefused::NotMember {
                group: self.config.group_id.clone(),
                partition: tp,
            });
        }
        self.check_markable(&tp, offset.offset)?;
        self.marks.insert(tp, offset);
        Ok(())
    }

    /// Commit the marks that are ahead of what was committed, now (the group
    /// engine calls this when a revoke is acknowledged). `None` when there is
    /// nothing to commit or a commit of the marks is already queued.
    pub fn flush_marks(&mut self, now: Instant) -> Option<CommitId> {
        self.enqueue_marked(now)
    }

    /// Read the committed offsets of `partitions` (owned, newly assigned) for
    /// the current generation. The result comes as one
    /// [`OffsetEvent::FetchDone`]; if the generation changes first it is
    /// [`FetchError::Superseded`].
    pub fn fetch(
        &mut self,
        now: Instant,
        partitions: impl IntoIterator<Item = TopicPartition>,
    ) -> Result<FetchId, FetchRefused> {
        let group = || self.config.group_id.clone();
        if self.closing {
            return Err(FetchRefused::Closed { group: group() });
        }
        if !self.view.is_member() {
            return Err(FetchRefused::NotMember { group: group() });
        }
        let mut pending = BTreeSet::new();
        for tp in partitions {
            if !self.view.owns(&tp) {
                return Err(FetchRefused::NotOwned {
                    group: group(),
                    partition: tp,
                });
            }
            pending.insert(tp);
        }
        if pending.is_empty() {
            return Err(FetchRefused::Empty { group: group() });
        }
        self.next_id += 1;
        let id = FetchId(self.next_id);
        self.fetches.push_back(Fetch {
            id,
            generation: self.view.generation_id,
            member_id: self.view.member_id.clone(),
            pending,
            results: BTreeMap::new(),
            deadline: self.deadline(now, self.config.fetch_timeout),
            last_cause: None,
        });
        Ok(id)
    }

    /// Begin closing: commit the marks (when auto-commit is on), refuse new
    /// commands, fail queued fetches. The group engine waits while
    /// [`Offsets::blocking_rebalance`] before its LeaveGroup (bounded), then
    /// may call [`Offsets::abandon`].
    pub fn close(&mut self, now: Instant) {
        if self.closing {
            return;
        }
        if self.config.auto_commit_interval.is_some() {
            self.enqueue_marked(now);
        }
        self.closing = true;
        self.auto_commit_at = None;
        let group = self.config.group_id.clone();
        if let Some(f) = self.fetch_in_flight.take() {
            self.fetches.push_front(f.fetch);
        }
        while let Some(f) = self.fetches.pop_front() {
            self.finish_fetch(
                f,
                Err(FetchError::Closed {
                    group: group.clone(),
                }),
            );
        }
    }

    /// Give up on everything not finished (after close, when the group
    /// engine will not wait any longer): each gets its `Closed` result.
    pub fn abandon(&mut self, now: Instant) {
        self.close(now);
        let group = self.config.group_id.clone();
        if let Some(f) = self.commit_in_flight.take() {
            self.commits.push_front(f.into_commit());
        }
        while let Some(c) = self.commits.pop_front() {
            self.finish_commit(
                c,
                Some(CommitError::Closed {
                    group: group.clone(),
                }),
            );
        }
    }

    // ----- outputs -----

    /// The next request to send to the coordinator, if any may go now.
    pub fn poll_request(&mut self, now: Instant) -> Option<OffsetRequest> {
        if let Some(r) = self.poll_commit_request(now) {
            return Some(r);
        }
        self.poll_fetch_request(now)
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<OffsetEvent> {
        self.events.pop_front()
    }

    /// The earliest instant at which [`Offsets::handle_timeout`] has work:
    /// auto-commit, a retry backoff ending, or a deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        consider(self.auto_commit_at);
        if !self.commits.is_empty() {
            consider(self.commit_retry_at);
        }
        if !self.fetches.is_empty() {
            consider(self.fetch_retry_at);
        }
        consider(self.commits.iter().map(|c| c.deadline).min());
        consider(self.fetches.iter().map(|f| f.deadline).min());
        next
    }

    /// Whether commit work is pending (a commit in flight, or queued with
    /// something to send). The group engine waits while this is true before
    /// it rejoins after an eager revoke, gives up cooperatively revoked
    /// partitions, or leaves on close — bounded by the rebalance timeout
    /// (KAFKA-14024: one commit, bounded; never re-sent forever).
    pub fn blocking_rebalance(&self) -> bool {
        self.commit_in_flight.is_some()
            || self.commits.iter().any(|c| match c.kind {
                CommitKind::Manual => !c.offsets.is_empty(),
                CommitKind::Marked => self.has_dirty_marks(),
            })
    }

    /// Whether a commit touching any of `partitions` is queued or in flight.
    pub fn has_pending_for(&self, partitions: &[TopicPartition]) -> bool {
        let touches = |c: &Commit| match c.kind {
            CommitKind::Manual => partitions.iter().any(|tp| c.offsets.contains_key(tp)),
            CommitKind::Marked => partitions.iter().any(|tp| self.is_dirty(tp)),
        };
        self.commit_in_flight
            .as_ref()
            .is_some_and(|f| touches(&f.commit))
            || self.commits.iter().any(touches)
    }

    // ----- internals -----

    fn next_commit_id(&mut self) -> CommitId {
        self.next_id += 1;
        CommitId(self.next_id)
    }

    fn deadline(&self, now: Instant, d: std::time::Duration) -> Instant {
        now.checked_add(d).unwrap_or(now)
    }

    fn check_markable(&self, tp: &TopicPartition, offset: i64) -> Result<(), CommitRefused> {
        if !self.view.owns(tp) {
            return Err(CommitRefused::NotOwned {
                group: self.config.group_id.clone(),
                member: self.view.member_id.clone(),
                generation: self.view.generation_id,
                partition: tp.clone(),
            });
        }
        if offset < 0 {
            return Err(CommitRefused::InvalidOffset {
                group: self.config.group_id.clone(),
                partition: tp.clone(),
                offset,
            });
        }
        Ok(())
    }

    /// What a commit of the marks sends for `tp`: the mark, or, when an
    /// OffsetCommit with a higher offset for `tp` had an unknown outcome,
    /// that offset again. The broker may have applied it; sending the lower
    /// mark after it would move the committed offset back (found by
    /// `offsets_props`: a manual commit abandoned on a coordinator loss, its
    /// retry expired, then the older mark went out). Re-sending it is safe:
    /// the application committed it during this ownership, and it covers
    /// the mark.
    fn mark_to_send(&self, tp: &TopicPartition) -> Option<&CommittedOffset> {
        let mark = self.marks.get(tp)?;
        match self.unsettled.get(tp) {
            Some(u) if u.offset > mark.offset => Some(u),
            _ => Some(mark),
        }
    }

    fn is_dirty(&self, tp: &TopicPartition) -> bool {
        match (self.mark_to_send(tp), self.acked.get(tp)) {
            (Some(m), Some(a)) => m.offset > *a,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }

    /// Remember the offsets of an OffsetCommit abandoned without an answer.
    fn note_unsettled(&mut self, f: &CommitInFlight) {
        for (tp, o) in &f.commit.offsets {
            if f.released.contains(tp) || !self.view.owns(tp) {
                continue;
            }
            if self.unsettled.get(tp).is_none_or(|u| u.offset < o.offset) {
                self.unsettled.insert(tp.clone(), o.clone());
            }
        }
    }

    fn has_dirty_marks(&self) -> bool {
        self.marks.keys().any(|tp| self.is_dirty(tp))
    }

    fn dirty_marks(&self) -> BTreeMap<TopicPartition, CommittedOffset> {
        self.marks
            .keys()
            .filter(|tp| self.is_dirty(tp) && self.view.owns(tp))
            .filter_map(|tp| Some((tp.clone(), self.mark_to_send(tp)?.clone())))
            .collect()
    }

    fn marked_pending(&self) -> bool {
        self.commits.iter().any(|c| c.kind == CommitKind::Marked)
            || self
                .commit_in_flight
                .as_ref()
                .is_some_and(|f| f.commit.kind == CommitKind::Marked)
    }

    /// Queue a commit of the marks (one at a time; built when sent, so it
    /// always carries the latest marks).
    fn enqueue_marked(&mut self, now: Instant) -> Option<CommitId> {
        if self.closing || !self.has_dirty_marks() || self.marked_pending() {
            return None;
        }
        let id = self.next_commit_id();
        self.commits.push_back(Commit {
            id,
            kind: CommitKind::Marked,
            offsets: BTreeMap::new(),
            committed: Vec::new(),
            failed: Vec::new(),
            retrying: BTreeMap::new(),
            made_in: (self.view.generation_id, self.view.member_id.clone()),
            deadline: self.deadline(now, self.config.commit_timeout),
            last_cause: None,
        });
        Some(id)
    }

    /// Partitions left this member: drop their marks and take them out of
    /// queued commits. The commit in flight keeps them: its response is
    /// about the generation it was sent with.
    fn release(&mut self, removed: &[TopicPartition]) {
        if removed.is_empty() {
            return;
        }
        for tp in removed {
            self.marks.remove(tp);
            self.acked.remove(tp);
            self.unsettled.remove(tp);
        }
        if let Some(f) = self.commit_in_flight.as_mut() {
            for tp in removed {
                if f.commit.offsets.contains_key(tp) {
                    f.released.insert(tp.clone());
                }
            }
        }
        let mut emptied = Vec::new();
        for (i, c) in self.commits.iter_mut().enumerate() {
            if c.kind != CommitKind::Manual {
                continue;
            }
            for tp in removed {
                if c.offsets.remove(tp).is_some() {
                    c.retrying.remove(tp);
                    c.failed
                        .push((tp.clone(), PartitionCommitError::NoLongerOwned));
                }
            }
            if c.offsets.is_empty() {
                emptied.push(i);
            }
        }
        for i in emptied.into_iter().rev() {
            if let Some(c) = self.commits.remove(i) {
                self.finish_commit(c, None);
            }
        }
    }

    fn supersede_fetches(&mut self, which: impl Fn(&Fetch) -> bool) {
        let group = self.config.group_id.clone();
        if self
            .fetch_in_flight
            .as_ref()
            .is_some_and(|f| which(&f.fetch))
            && let Some(f) = self.fetch_in_flight.take()
        {
            let generation = f.fetch.generation;
            self.finish_fetch(
                f.fetch,
                Err(FetchError::Superseded {
                    group: group.clone(),
                    generation,
                }),
            );
        }
        let (gone, kept): (Vec<Fetch>, Vec<Fetch>) = mem::take(&mut self.fetches)
            .into_iter()
            .partition(|f| which(f));
        self.fetches = kept.into();
        for f in gone {
            let generation = f.generation;
            self.finish_fetch(
                f,
                Err(FetchError::Superseded {
                    group: group.clone(),
                    generation,
                }),
            );
        }
    }

    fn membership_action(
        &mut self,
        action: MembershipAction,
        api: OffsetApi,
        error: ResponseError,
    ) {
        if action == MembershipAction::MarkCoordinatorUnknown {
            // Send nothing more until the group engine reports a coordinator again.
            self.coordinator = None;
        }
        self.events
            .push_back(OffsetEvent::Membership { action, api, error });
    }

    fn take_commit_in_flight(&mut self, tag: RequestTag) -> Option<CommitInFlight> {
        if tag.api == OffsetApi::Commit
            && self
                .commit_in_flight
                .as_ref()
                .is_some_and(|f| f.seq == tag.seq)
        {
            self.commit_in_flight.take()
        } else {
            None
        }
    }

    fn take_fetch_in_flight(&mut self, tag: RequestTag) -> Option<FetchInFlight> {
        if tag.api == OffsetApi::Fetch
            && self
                .fetch_in_flight
                .as_ref()
                .is_some_and(|f| f.seq == tag.seq)
        {
            self.fetch_in_flight.take()
        } else {
            None
        }
    }

    fn poll_commit_request(&mut self, now: Instant) -> Option<OffsetRequest> {
        if self.commit_in_flight.is_some() || self.commit_retry_at.is_some_and(|t| t > now) {
            return None;
        }
        let versions = self.coordinator?;
        if !self.view.can_send() {
            return None;
        }
        while let Some(mut c) = self.commits.pop_front() {
            if c.kind == CommitKind::Marked {
                // Leave out partitions that a manual commit queued behind
                // this one will commit: sending a newer mark first and the
                // older manual offset after it would move the committed
                // offset backwards. Their marks stay dirty for the next round.
                let behind: BTreeSet<&TopicPartition> = self
                    .commits
                    .iter()
                    .filter(|q| q.kind == CommitKind::Manual)
                    .flat_map(|q| q.offsets.keys())
                    .collect();
                let mut offsets = self.dirty_marks();
                offsets.retain(|tp, _| !behind.contains(tp));
                c.offsets = offsets;
            }
            // Re-check ownership at send time (handle_membership already
            // removed released partitions; this guards the invariant).
            let not_owned: Vec<TopicPartition> = c
                .offsets
                .keys()
                .filter(|tp| !self.view.owns(tp))
                .cloned()
                .collect();
            for tp in not_owned {
                c.offsets.remove(&tp);
                c.failed.push((tp, PartitionCommitError::NoLongerOwned));
            }
            if c.offsets.is_empty() {
                self.finish_commit(c, None);
                continue;
            }
            let sender = Sender {
                group_id: &self.config.group_id,
                generation: self.view.generation_id,
                member_id: &self.view.member_id,
                instance_id: self.view.group_instance_id.as_deref(),
            };
            #[cfg(feature = "mutations")]
            let sender = Sender {
                generation: crate::mutation::commit_generation(
                    self.mutation,
                    sender.generation,
                    c.made_in.0,
                ),
                ..sender
            };
            let body = match commit_request(&sender, versions.commit, &c.offsets) {
                Ok(body) => body,
                Err(error) => {
                    let group = self.config.group_id.clone();
                    self.finish_commit(c, Some(CommitError::Fatal { group, error }));
                    continue;
                }
            };
            self.next_seq += 1;
            let tag = RequestTag {
                seq: self.next_seq,
                api: OffsetApi::Commit,
                generation: self.view.generation_id,
            };
            self.commit_in_flight = Some(CommitInFlight {
                seq: tag.seq,
                released: BTreeSet::new(),
                generation: self.view.generation_id,
                member_id: self.view.member_id.clone(),
                commit: c,
            });
            return Some(OffsetRequest {
                tag,
                version: versions.commit,
                body: OffsetRequestBody::Commit(body),
            });
        }
        None
    }

    fn poll_fetch_request(&mut self, now: Instant) -> Option<OffsetRequest> {
        if self.fetch_in_flight.is_some() || self.fetch_retry_at.is_some_and(|t| t > now) {
            return None;
        }
        let versions = self.coordinator?;
        if !self.view.can_send() {
            return None;
        }
        let fetch = self.fetches.pop_front()?;
        if !self
            .view
            .same_generation(fetch.generation, &fetch.member_id)
        {
            // Cannot happen (handle_membership supersedes), kept as a guard.
            let group = self.config.group_id.clone();
            let generation = fetch.generation;
            self.finish_fetch(fetch, Err(FetchError::Superseded { group, generation }));
            return None;
        }
        let body = fetch_request(
            &self.config.group_id,
            versions.fetch,
            &fetch.pending,
            self.config.require_stable,
        );
        self.next_seq += 1;
        let tag = RequestTag {
            seq: self.next_seq,
            api: OffsetApi::Fetch,
            generation: fetch.generation,
        };
        self.fetch_in_flight = Some(FetchInFlight {
            seq: tag.seq,
            version: versions.fetch,
            fetch,
        });
        Some(OffsetRequest {
            tag,
            version: versions.fetch,
            body: OffsetRequestBody::Fetch(body),
        })
    }

    /// Re-queue `c` at the head after a backoff, or report it if its
    /// deadline has passed.
    fn retry_commit(&mut self, now: Instant, mut c: Commit, cause: RetryCause) {
        c.last_cause = Some(cause);
        if c.deadline <= now {
            let error = self.deadline_error(&c);
            self.finish_commit(c, error);
            return;
        }
        self.commit_retry_at = Some(self.commit_retry.next_retry(now));
        self.commits.push_front(c);
    }

    /// The report for a commit whose deadline passed before it succeeded.
    fn deadline_error(&self, c: &Commit) -> Option<CommitError> {
        let group = self.config.group_id.clone();
        if !c.committed.is_empty() || !c.failed.is_empty() || !c.retrying.is_empty() {
            // Partly done: report per partition (finish_commit adds the rest).
            return None;
        }
        if c.last_cause.is_none() && self.view.phase == RebalancePhase::CooperativeJoining {
            return Some(CommitError::RebalanceInProgress { group });
        }
        Some(CommitError::Retriable {
            group,
            cause: c.last_cause.clone().unwrap_or(RetryCause::NoCoordinator),
        })
    }

    /// Emit `CommitDone` for `c`: `error` if given, else from its partitions.
    fn finish_commit(&mut self, mut c: Commit, error: Option<CommitError>) {
        let group = self.config.group_id.clone();
        let result = match error {
            Some(e) => Err(e),
            None => {
                // Whatever is still unsent was not committed.
                for (tp, _) in mem::take(&mut c.offsets) {
                    let e = c
                        .retrying
                        .remove(&tp)
                        .unwrap_or(PartitionCommitError::NotCommitted);
                    c.failed.push((tp, e));
                }
                c.failed.sort_by(|a, b| a.0.cmp(&b.0));
                c.committed.sort();
                if c.failed.is_empty() {
                    // (A commit of the marks that found nothing left to send
                    // is `Ok` too: every id gets its one `CommitDone`.)
                    Ok(())
                } else if c.committed.is_empty()
                    && c.failed
                        .iter()
                        .all(|(_, e)| *e == PartitionCommitError::NoLongerOwned)
                {
                    Err(CommitError::Stale {
                        group,
                        member: c.made_in.1,
                        generation: c.made_in.0,
                        cause: StaleCause::NoLongerOwned,
                    })
                } else {
                    Err(CommitError::Partitions {
                        group,
                        committed: c.committed.iter().map(|(tp, _)| tp.clone()).collect(),
                        failed: c.failed,
                    })
                }
            }
        };
        self.events.push_back(OffsetEvent::CommitDone {
            id: c.id,
            kind: c.kind,
            committed: c.committed,
            result,
        });
    }

    fn retry_fetch(&mut self, now: Instant, mut f: Fetch, cause: RetryCause) {
        f.last_cause = Some(cause);
        if f.deadline <= now {
            self.fetch_deadline(f);
            return;
        }
        self.fetch_retry_at = Some(self.fetch_retry.next_retry(now));
        self.fetches.push_front(f);
    }

    fn fetch_deadline(&mut self, mut f: Fetch) {
        let group = self.config.group_id.clone();
        match f.last_cause.take() {
            Some(RetryCause::Broker(ResponseError::UnstableOffsetCommit)) => {
                for tp in mem::take(&mut f.pending) {
                    f.results.insert(tp, Err(PartitionFetchError::Unstable));
                }
                let results = mem::take(&mut f.results);
                self.finish_fetch(f, Ok(results));
            }
            cause => {
                let cause = cause.unwrap_or(RetryCause::NoCoordinator);
                self.finish_fetch(f, Err(FetchError::Retriable { group, cause }));
            }
        }
    }

    fn finish_fetch(&mut self, f: Fetch, result: Result<FetchedOffsets, FetchError>) {
        self.events.push_back(OffsetEvent::FetchDone {
            id: f.id,
            generation: f.generation,
            result,
        });
    }
}

#[cfg(test)]
mod tests;
