//! `Assigned` carries the committed offsets of its new partitions (issue 6,
//! item 1): the engine sends an OffsetFetch for the `added` partitions
//! before it reports them (as Java's consumer refreshes committed offsets
//! before fetching records), with `RequireStable` from v7 (KIP-447), retries
//! `UNSTABLE_OFFSET_COMMIT` after a backoff, reports per-partition errors per
//! partition, and never emits an `Assigned` whose generation was replaced
//! while its fetch was outstanding. Scripted broker, virtual time.

mod membership_harness;

use std::collections::BTreeMap;
use std::time::Duration;

use kgroup::event::Committed;
use kgroup::kafka_protocol::messages::offset_fetch_response::*;
use kgroup::kafka_protocol::messages::*;
use kgroup::kafka_protocol::protocol::StrBytes;
use kgroup::offsets::{CommittedOffset, FetchError, PartitionFetchError};
use kgroup::{Event, GroupState, TopicPartition};
use membership_harness::*;

/// One partition's answer: `Ok((offset, leader_epoch, metadata))` or an
/// error code.
type Answer = Result<(i64, i32, Option<&'static str>), i16>;

fn fetch_response(partitions: &[(&str, i32, Answer)]) -> OffsetFetchResponse {
    let mut topics: BTreeMap<&str, Vec<OffsetFetchResponsePartitions>> = BTreeMap::new();
    for (topic, index, answer) in partitions {
        let p = OffsetFetchResponsePartitions::default().with_partition_index(*index);
        let p = match answer {
            Ok((offset, epoch, metadata)) => p
                .with_committed_offset(*offset)
                .with_committed_leader_epoch(*epoch)
                .with_metadata(metadata.map(StrBytes::from_static_str)),
            Err(code) => p.with_committed_offset(-1).with_error_code(*code),
        };
        topics.entry(topic).or_default().push(p);
    }
    OffsetFetchResponse::default().with_groups(vec![
        OffsetFetchResponseGroup::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_topics(
                topics
                    .into_iter()
                    .map(|(name, partitions)| {
                        OffsetFetchResponseTopics::default()
                            .with_name(TopicName(StrBytes::from_string(name.to_owned())))
                            .with_partitions(partitions)
                    })
                    .collect(),
            ),
    ])
}

/// The partitions an OffsetFetch (v8+) asks for, sorted.
fn fetched(sent: &membership_harness::Sent) -> Vec<TopicPartition> {
    let r = sent.fetch();
    let mut out: Vec<TopicPartition> = if sent.version >= 8 {
        r.groups
            .iter()
            .flat_map(|g| g.topics.iter().flatten())
            .flat_map(|t| {
                t.partition_indexes
                    .iter()
                    .map(|p| TopicPartition::new(t.name.0.as_str(), *p))
            })
            .collect()
    } else {
        r.topics
            .iter()
            .flatten()
            .flat_map(|t| {
                t.partition_indexes
                    .iter()
                    .map(|p| TopicPartition::new(t.name.0.as_str(), *p))
            })
            .collect()
    };
    out.sort();
    out
}

type AssignedEvent = (
    i32,
    Vec<TopicPartition>,
    BTreeMap<TopicPartition, Committed>,
);

fn assigned_with_committed(events: &[Event]) -> Vec<AssignedEvent> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Assigned {
                generation,
                added,
                committed,
                ..
            } => Some((*generation, added.clone(), committed.clone())),
            _ => None,
        })
        .collect()
}

fn tp(topic: &str, p: i32) -> TopicPartition {
    TopicPartition::new(topic, p)
}

fn harness(assignor: std::sync::Arc<dyn kgroup::assignor::Assignor>) -> Harness {
    Harness::new(
        Harness::config(&[assignor])
            .fetch_committed_on_assign(true)
            .build()
            .unwrap(),
    )
}

#[test]
fn fetch_is_on_by_default() {
    let config = kgroup::Config::builder("g")
        .assignor(eager_first())
        .build()
        .unwrap();
    let mut h = Harness::new(config);
    h.join_stable(&["t"], "m1", 1, &[("t", 0)]);
    assert!(assigned(&h.take_events()).is_empty(), "held for the fetch");
    let f = h.expect(ApiKey::OffsetFetch);
    assert_eq!(fetched(&f), vec![tp("t", 0)]);
}

#[test]
fn assigned_carries_offsets_none_and_per_partition_errors() {
    let mut h = harness(eager_first());
    h.join_stable(&["t"], "m1", 1, &[("t", 0), ("t", 1), ("t", 2)]);
    let ev = h.take_events();
    assert!(assigned(&ev).is_empty(), "Assigned waits: {ev:?}");
    let f = h.expect(ApiKey::OffsetFetch);
    assert_eq!(f.version, 9);
    assert!(f.fetch().require_stable, "RequireStable at v9");
    assert_eq!(fetched(&f), vec![tp("t", 0), tp("t", 1), tp("t", 2)]);
    h.respond(
        &f,
        fetch_response(&[
            ("t", 0, Ok((41, 3, Some("meta")))),
            ("t", 1, Ok((-1, -1, None))),
            // TOPIC_AUTHORIZATION_FAILED (29): about this partition only.
            ("t", 2, Err(29)),
        ]),
    );
    let ev = h.take_events();
    assert!(
        !ev.iter().any(|e| matches!(e, Event::Offsets(_))),
        "the engine's own fetch is not reported as FetchDone: {ev:?}"
    );
    let got = assigned_with_committed(&ev);
    let want = BTreeMap::from([
        (
            tp("t", 0),
            Committed::Offset(
                CommittedOffset::new(41)
                    .with_leader_epoch(3)
                    .with_metadata("meta"),
            ),
        ),
        (tp("t", 1), Committed::None),
        (
            tp("t", 2),
            Committed::Error(PartitionFetchError::TopicAuthorizationFailed),
        ),
    ]);
    assert_eq!(
        got,
        vec![(1, vec![tp("t", 0), tp("t", 1), tp("t", 2)], want)]
    );
    assert_eq!(h.group.state(), GroupState::Stable);
}

#[test]
fn unstable_offset_commit_is_retried_after_a_backoff_and_assigned_waits() {
    let mut h = harness(eager_first());
    h.join_stable(&["t"], "m1", 1, &[("t", 0), ("t", 1)]);
    h.take_events();
    let f = h.expect(ApiKey::OffsetFetch);
    // UNSTABLE_OFFSET_COMMIT (88) on t-0 (KIP-447: a transaction pending).
    h.respond(
        &f,
        fetch_response(&[("t", 0, Err(88)), ("t", 1, Ok((5, -1, None)))]),
    );
    let ev = h.take_events();
    assert!(assigned(&ev).is_empty(), "still waiting for t-0: {ev:?}");
    // The retry waits for the backoff (100 ms, ±20 % jitter).
    h.advance(Duration::from_millis(70));
    h.expect_nothing();
    h.advance(Duration::from_millis(60));
    let retry = h.expect(ApiKey::OffsetFetch);
    assert_eq!(fetched(&retry), vec![tp("t", 0)], "only the unstable one");
    assert!(retry.fetch().require_stable);
    assert!(assigned(&h.take_events()).is_empty());
    h.respond(&retry, fetch_response(&[("t", 0, Ok((9, -1, None)))]));
    let got = assigned_with_committed(&h.take_events());
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].2[&tp("t", 0)].offset(), Some(9));
    assert_eq!(got[0].2[&tp("t", 1)].offset(), Some(5));
}

#[test]
fn a_fetch_that_keeps_failing_ends_in_per_partition_errors_at_its_deadline() {
    let mut h = Harness::new(
        Harness::config(&[eager_first()])
            .fetch_committed_on_assign(true)
            .session_timeout(Duration::from_secs(60))
            .heartbeat_interval(Duration::from_secs(20))
            .offsets(
                kgroup::offsets::OffsetsConfig::new("g")
                    .with_fetch_timeout(Duration::from_millis(500)),
            )
            .build()
            .unwrap(),
    );
    h.join_stable(&["t"], "m1", 1, &[("t", 0)]);
    h.take_events();
    // UNSTABLE_OFFSET_COMMIT every time, until the fetch timeout.
    let mut rounds = 0;
    let mut events = Vec::new();
    while assigned(&events).is_empty() {
        if let Some(f) = h.next() {
            assert_eq!(f.api, ApiKey::OffsetFetch, "{:?}", f.body);
            h.respond(&f, fetch_response(&[("t", 0, Err(88))]));
            rounds += 1;
        } else {
            h.fire_next_timer();
        }
        assert!(rounds < 20, "the wait is bounded");
        events.extend(h.take_events());
    }
    assert!(rounds >= 2, "retried before giving up ({rounds})");
    let got = assigned_with_committed(&events);
    assert_eq!(
        got[0].2[&tp("t", 0)],
        Committed::Error(PartitionFetchError::Unstable)
    );
}

#[test]
fn a_group_level_fetch_error_is_reported_for_every_partition() {
    let mut h = harness(eager_first());
    h.join_stable(&["t"], "m1", 1, &[("t", 0), ("t", 1)]);
    h.take_events();
    let f = h.expect(ApiKey::OffsetFetch);
    // GROUP_AUTHORIZATION_FAILED (30) at group level: fatal for the fetch.
    let mut r = fetch_response(&[]);
    r.groups[0].error_code = 30;
    h.respond(&f, r);
    let got = assigned_with_committed(&h.take_events());
    assert_eq!(got.len(), 1);
    for p in [0, 1] {
        assert!(
            matches!(
                &got[0].2[&tp("t", p)],
                Committed::FetchFailed(FetchError::Fatal { .. })
            ),
            "{got:?}"
        );
    }
}

#[test]
fn require_stable_is_sent_from_v7_only() {
    for (version, stable) in [(6, false), (7, true)] {
        let mut h = harness(eager_first());
        h.cap_version(ApiKey::OffsetFetch, version);
        h.join_stable(&["t"], "m1", 1, &[("t", 0)]);
        let f = h.expect(ApiKey::OffsetFetch);
        assert_eq!(f.version, version);
        assert_eq!(f.fetch().require_stable, stable, "v{version}");
    }
}

#[test]
fn a_generation_change_during_the_fetch_drops_the_stale_assigned() {
    let mut h = harness(coop_first());
    h.join_stable(&["t", "u"], "m1", 1, &[("t", 0)]);
    h.take_events();
    let f = h.expect(ApiKey::OffsetFetch);
    // Unstable: the retry waits for its backoff, and meanwhile a rebalance
    // moves the group to generation 2.
    h.respond(&f, fetch_response(&[("t", 0, Err(88))]));
    h.subscribe(&["t", "u", "v"]);
    h.join_as_follower("m1", 2);
    h.sync_with(&[("t", 0), ("u", 0)]);
    let ev = h.take_events();
    assert!(
        assigned(&ev).is_empty(),
        "generation 1's Assigned is never emitted: {ev:?}"
    );
    let f2 = loop {
        match h.next() {
            Some(s) if s.api == ApiKey::OffsetFetch => break s,
            Some(s) => panic!("unexpected {:?}", s.body),
            None => {
                h.fire_next_timer();
            }
        }
    };
    assert_eq!(fetched(&f2), vec![tp("t", 0), tp("u", 0)]);
    h.respond(
        &f2,
        fetch_response(&[("t", 0, Ok((3, -1, None))), ("u", 0, Ok((-1, -1, None)))]),
    );
    let got = assigned_with_committed(&h.take_events());
    assert_eq!(got.len(), 1, "{got:?}");
    let (generation, added, committed) = &got[0];
    assert_eq!(*generation, 2);
    assert_eq!(added, &vec![tp("t", 0), tp("u", 0)]);
    assert_eq!(committed[&tp("t", 0)].offset(), Some(3));
    assert_eq!(committed[&tp("u", 0)], Committed::None);
    h.expect_nothing();
}

#[test]
fn a_revocation_during_the_fetch_emits_the_assigned_first() {
    let mut h = harness(eager_first());
    h.join_stable(&["t"], "m1", 1, &[("t", 0)]);
    h.take_events();
    let _f = h.expect(ApiKey::OffsetFetch);
    // Unanswered; the subscription changes: eager revokes everything.
    h.subscribe(&["t", "u"]);
    let ev = h.take_events();
    let a = ev
        .iter()
        .position(|e| matches!(e, Event::Assigned { .. }))
        .expect("Assigned first");
    let r = ev
        .iter()
        .position(|e| matches!(e, Event::Revoked { .. }))
        .expect("then Revoked");
    assert!(a < r, "{ev:?}");
    let got = assigned_with_committed(&ev);
    assert_eq!(got[0].2[&tp("t", 0)], Committed::NotFetched);
}

#[test]
fn with_fetch_off_assigned_is_immediate_and_says_not_fetched() {
    let mut h = Harness::new(
        Harness::config(&[eager_first()])
            .fetch_committed_on_assign(false)
            .build()
            .unwrap(),
    );
    h.join_stable(&["t"], "m1", 1, &[("t", 0)]);
    let got = assigned_with_committed(&h.take_events());
    assert_eq!(
        got,
        vec![(
            1,
            vec![tp("t", 0)],
            BTreeMap::from([(tp("t", 0), Committed::NotFetched)])
        )]
    );
    h.expect_nothing();
}
