//! End to end, against the test broker (librdkafka's mock cluster): a
//! kgroup-blocking member commits and fetches offsets, and every
//! OffsetCommit error that docs/offsets.md documents is injected with
//! `push-errors broker N OffsetCommit CODE` on the group's coordinator.
//! Each gives its documented result:
//!
//! - `NOT_COORDINATOR`, `COORDINATOR_NOT_AVAILABLE`, `REQUEST_TIMED_OUT`:
//!   coordinator rediscovered, commit retried, `CommitDone` `Ok`, the offset
//!   readable afterwards, nothing lost;
//! - `REBALANCE_IN_PROGRESS`: `RebalanceInProgress`, rejoin keeping the
//!   member id, nothing lost;
//! - `ILLEGAL_GENERATION`: `Stale`, partitions `Lost`, rejoin keeping the
//!   member id (KAFKA-13419);
//! - `UNKNOWN_MEMBER_ID`: `Stale`, partitions `Lost`, rejoin with a new
//!   member id.
//!
//! A refused commit never lands: the offset read afterwards is the last one
//! committed `Ok`. Finally a second member joins after the first left and
//! reads that offset in its `Assigned` (commit/fetch round trip across
//! members). Waits are bounded polls, never sleeps.
#![allow(clippy::disallowed_methods)] // harness code: real time bounds real waits

use std::collections::BTreeMap;
use std::time::Duration;

use kgroup::event::{LostReason, RejoinReason};
use kgroup::offsets::{CommitError, CommittedOffset, OffsetEvent, StaleCause};
use kgroup::{Committed, Config, Event, TopicPartition};
use kgroup_blocking::Consumer;
use kgroup_tests::{TestBroker, TestBrokerOptions, deadline_after, remaining};

const BROKER: &str = env!("CARGO_BIN_EXE_kgroup-testbroker");
const TOPIC: &str = "ledger";
const GROUP: &str = "e2e-offsets-errors";
/// The group's coordinator; errors are pushed on this broker only, so that
/// `error-count` proves each one was served.
const COORDINATOR: i32 = 2;
/// Long enough for the mock's rebalance (it waits up to the session timeout
/// for an unknown-member's old identity to expire).
const STEP: Duration = Duration::from_secs(20);

fn config() -> Config {
    let a = kgroup::assignor::builtin("cooperative-sticky").expect("built-in assignor");
    Config::builder(GROUP)
        .assignors(vec![a])
        .session_timeout(Duration::from_millis(6000))
        .heartbeat_interval(Duration::from_millis(500))
        .rebalance_timeout(Duration::from_secs(20))
        .request_timeout(Duration::from_secs(5))
        .build()
        .expect("valid config")
}

fn tps() -> Vec<TopicPartition> {
    (0..2).map(|p| TopicPartition::new(TOPIC, p)).collect()
}

/// Polls `c` until `done` picks an event, within `STEP`; returns every event
/// seen, the picked one last.
fn until(c: &mut Consumer, what: &str, mut done: impl FnMut(&Event) -> bool) -> Vec<Event> {
    let deadline = deadline_after(STEP);
    let mut seen = Vec::new();
    loop {
        let left = remaining(deadline);
        assert!(
            !left.is_zero(),
            "{what}: not within {STEP:?}; saw {seen:#?}"
        );
        if let Some(e) = c.poll(left.min(Duration::from_millis(200))) {
            assert!(!matches!(e, Event::Fatal(_)), "{what}: {e:?}");
            let hit = done(&e);
            seen.push(e);
            if hit {
                return seen;
            }
        }
    }
}

/// Commits `offset` on every partition and returns the `CommitDone` result
/// plus every event seen until then.
fn commit(c: &mut Consumer, offset: i64, what: &str) -> (Result<(), CommitError>, Vec<Event>) {
    let offsets = tps()
        .into_iter()
        .map(|tp| (tp, CommittedOffset::new(offset)))
        .collect();
    let id = c.commit(offsets).expect("commit accepted");
    let mut seen = until(
        c,
        what,
        |e| matches!(e, Event::Offsets(OffsetEvent::CommitDone { id: i, .. }) if *i == id),
    );
    let Some(Event::Offsets(OffsetEvent::CommitDone { result, .. })) = seen.pop() else {
        unreachable!("until returns the matched event last")
    };
    (result, seen)
}

/// Reads the committed offsets of every partition with an OffsetFetch.
fn fetch(c: &mut Consumer, what: &str) -> BTreeMap<TopicPartition, Option<i64>> {
    let id = c.fetch_committed(tps()).expect("fetch accepted");
    let mut seen = until(
        c,
        what,
        |e| matches!(e, Event::Offsets(OffsetEvent::FetchDone { id: i, .. }) if *i == id),
    );
    let Some(Event::Offsets(OffsetEvent::FetchDone { result, .. })) = seen.pop() else {
        unreachable!("until returns the matched event last")
    };
    let fetched = result.unwrap_or_else(|e| panic!("{what}: fetch failed: {e}"));
    fetched
        .into_iter()
        .map(|(tp, r)| {
            let o = r.unwrap_or_else(|e| panic!("{what}: {tp:?}: {e:?}"));
            (tp, o.map(|o| o.offset))
        })
        .collect()
}

fn all_at(offset: i64) -> BTreeMap<TopicPartition, Option<i64>> {
    tps().into_iter().map(|tp| (tp, Some(offset))).collect()
}

/// The offsets an `Assigned` carried, per partition (`None`: none committed).
fn offsets_of(
    committed: &BTreeMap<TopicPartition, Committed>,
) -> BTreeMap<TopicPartition, Option<i64>> {
    committed
        .iter()
        .map(|(tp, c)| (tp.clone(), c.offset()))
        .collect()
}

/// Waits for the next `Assigned` and returns (generation, member id,
/// committed offsets it carries, events seen).
fn assigned(
    c: &mut Consumer,
    what: &str,
) -> (i32, String, BTreeMap<TopicPartition, Committed>, Vec<Event>) {
    let mut seen = until(c, what, |e| matches!(e, Event::Assigned { .. }));
    let Some(Event::Assigned {
        generation,
        member_id,
        partitions,
        committed,
        ..
    }) = seen.pop()
    else {
        unreachable!("until returns the matched event last")
    };
    assert_eq!(partitions, tps(), "{what}: the only member owns everything");
    (generation, member_id, committed, seen)
}

fn push(broker: &mut TestBroker, code: &str) {
    let r = broker
        .command(&format!(
            "push-errors broker {COORDINATOR} OffsetCommit {code}"
        ))
        .unwrap_or_else(|e| panic!("push-errors {code}: {e}"));
    assert_eq!(r, "", "push-errors {code}");
}

fn assert_served(broker: &mut TestBroker, code: &str) {
    let r = broker
        .command(&format!("error-count {COORDINATOR} OffsetCommit"))
        .expect("error-count");
    assert_eq!(r, "0", "{code} was served to the commit");
}

fn lost(seen: &[Event]) -> Vec<(Vec<TopicPartition>, LostReason)> {
    seen.iter()
        .filter_map(|e| match e {
            Event::Lost { partitions, reason } => Some((partitions.clone(), *reason)),
            _ => None,
        })
        .collect()
}

#[test]
fn commit_errors_give_their_documented_results_and_offsets_round_trip() {
    let mut broker = TestBroker::start(BROKER, &TestBrokerOptions::default().topic(TOPIC, 2))
        .expect("test broker starts");
    broker
        .set_group_coordinator(GROUP, COORDINATOR)
        .expect("coordinator on broker 2");

    let mut c = Consumer::new(config(), broker.bootstrap()).expect("consumer");
    c.subscribe([TOPIC]);
    let (mut generation, member, committed, _) = assigned(&mut c, "first assignment");
    assert!(
        committed.values().all(|c| *c == Committed::None),
        "a new group has nothing committed: {committed:?}"
    );

    // Round trip: commit, then read it back.
    let (r, _) = commit(&mut c, 5, "first commit");
    assert_eq!(r, Ok(()), "first commit");
    assert_eq!(fetch(&mut c, "first fetch"), all_at(5));
    let mut last_ok = 5;

    // Retriable: coordinator rediscovered, commit retried, Ok, readable.
    for code in [
        "NOT_COORDINATOR",
        "COORDINATOR_NOT_AVAILABLE",
        "REQUEST_TIMED_OUT",
    ] {
        push(&mut broker, code);
        let offset = last_ok + 10;
        let (r, seen) = commit(&mut c, offset, code);
        assert_eq!(r, Ok(()), "{code}: retried to Ok");
        assert_served(&mut broker, code);
        assert!(lost(&seen).is_empty(), "{code}: nothing lost: {seen:?}");
        assert!(
            !seen.iter().any(|e| matches!(e, Event::Rejoining { .. })),
            "{code}: no rejoin: {seen:?}"
        );
        assert_eq!(fetch(&mut c, code), all_at(offset), "{code}: readable");
        last_ok = offset;
    }

    // REBALANCE_IN_PROGRESS: result RebalanceInProgress, rejoin keeping the
    // member id, nothing lost, the offset not committed.
    let code = "REBALANCE_IN_PROGRESS";
    push(&mut broker, code);
    let (r, mut seen) = commit(&mut c, last_ok + 10, code);
    assert!(
        matches!(r, Err(CommitError::RebalanceInProgress { .. })),
        "{code}: {r:?}"
    );
    assert_served(&mut broker, code);
    let (g, m, _, more) = assigned(&mut c, "after REBALANCE_IN_PROGRESS");
    seen.extend(more);
    assert!(
        seen.iter().any(|e| matches!(
            e,
            Event::Rejoining {
                reason: RejoinReason::RebalanceInProgress(_)
            }
        )),
        "{code}: rejoins: {seen:?}"
    );
    assert!(lost(&seen).is_empty(), "{code}: nothing lost: {seen:?}");
    assert!(g > generation, "{code}: new generation {g} > {generation}");
    assert_eq!(m, member, "{code}: member id kept");
    generation = g;
    assert_eq!(
        fetch(&mut c, code),
        all_at(last_ok),
        "{code}: not committed"
    );

    // ILLEGAL_GENERATION and UNKNOWN_MEMBER_ID: Stale, partitions lost, a
    // rejoin; the member id is kept after ILLEGAL_GENERATION (generation
    // reset only, KAFKA-13419) and replaced after UNKNOWN_MEMBER_ID.
    let resets = [
        (
            "ILLEGAL_GENERATION",
            StaleCause::IllegalGeneration,
            LostReason::IllegalGeneration,
            true,
        ),
        (
            "UNKNOWN_MEMBER_ID",
            StaleCause::UnknownMemberId,
            LostReason::UnknownMember,
            false,
        ),
    ];
    for (code, stale, reason, keeps_member_id) in resets {
        push(&mut broker, code);
        let (r, mut seen) = commit(&mut c, last_ok + 10, code);
        assert!(
            matches!(&r, Err(CommitError::Stale { cause, .. }) if *cause == stale),
            "{code}: {r:?}"
        );
        assert_served(&mut broker, code);
        let (g, m, committed, more) = assigned(&mut c, &format!("after {code}"));
        seen.extend(more);
        assert_eq!(
            lost(&seen),
            vec![(tps(), reason)],
            "{code}: everything lost: {seen:?}"
        );
        assert!(
            seen.iter().any(|e| matches!(
                e,
                Event::Rejoining {
                    reason: RejoinReason::Reset(r)
                } if *r == reason
            )),
            "{code}: rejoins: {seen:?}"
        );
        assert!(g > generation, "{code}: new generation {g} > {generation}");
        if keeps_member_id {
            assert_eq!(m, member, "{code}: member id kept");
        } else {
            assert!(!m.is_empty() && m != member, "{code}: new member id {m:?}");
        }
        generation = g;
        assert_eq!(
            offsets_of(&committed),
            all_at(last_ok),
            "{code}: re-assigned at the last Ok commit"
        );
    }

    // Still working after all that: one more Ok commit, then a second member
    // reads it in its assignment once the first has left.
    let (r, _) = commit(&mut c, last_ok + 1, "final commit");
    assert_eq!(r, Ok(()), "final commit");
    last_ok += 1;
    let closing = c.close_within(STEP);
    assert!(
        closing.iter().any(|e| matches!(e, Event::Left)),
        "first member leaves: {closing:?}"
    );
    drop(c);

    let mut d = Consumer::new(config(), broker.bootstrap()).expect("second consumer");
    d.subscribe([TOPIC]);
    let (_, _, committed, _) = assigned(&mut d, "second member's assignment");
    assert_eq!(
        offsets_of(&committed),
        all_at(last_ok),
        "second member reads the last commit"
    );
    let closing = d.close_within(STEP);
    assert!(
        closing.iter().any(|e| matches!(e, Event::Left)),
        "second member leaves: {closing:?}"
    );
}
