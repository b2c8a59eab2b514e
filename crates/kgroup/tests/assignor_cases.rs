//! Hand-built assignor cases, written as data. The scenarios mirror what the
//! Java client's own tests pin down (RangeAssignorTest, RoundRobinAssignorTest,
//! AbstractStickyAssignorTest, CooperativeStickyAssignorTest); expected results
//! follow from the Java algorithms' rules, worked out by hand.

use std::collections::BTreeMap;

use kgroup::TopicPartition;
use kgroup::assignor::userdata::{decode_sticky, encode_cooperative, encode_sticky};
use kgroup::assignor::{
    AssignError, ClusterMetadata, GroupAssignment, MemberSubscription, PreviousAssignment,
    TopicInfo, builtin, missing_topics,
};

fn meta(topics: &[(&str, i32)]) -> ClusterMetadata {
    topics
        .iter()
        .map(|&(t, n)| {
            (
                t.to_owned(),
                TopicInfo {
                    partitions: n,
                    partition_racks: Vec::new(),
                },
            )
        })
        .collect()
}

fn member(id: &str, topics: &[&str]) -> MemberSubscription {
    MemberSubscription {
        member_id: id.into(),
        topics: topics.iter().map(|t| (*t).to_owned()).collect(),
        ..Default::default()
    }
}

fn tps(list: &[(&str, i32)]) -> Vec<TopicPartition> {
    list.iter()
        .map(|&(t, p)| TopicPartition::new(t, p))
        .collect()
}

fn run(name: &str, m: &ClusterMetadata, members: &[MemberSubscription]) -> GroupAssignment {
    builtin(name)
        .expect("builtin")
        .assign(m, members)
        .expect("assigns")
}

fn parts(a: &GroupAssignment, id: &str) -> Vec<TopicPartition> {
    a.get(id).map(|x| x.partitions.clone()).unwrap_or_default()
}

#[test]
fn builtin_names_and_protocols() {
    for n in ["range", "roundrobin", "sticky", "cooperative-sticky"] {
        assert_eq!(builtin(n).expect("known").name(), n);
    }
    assert!(builtin("fair").is_none());
    let coop = builtin("cooperative-sticky").expect("known");
    assert_eq!(
        coop.supported_protocols()[0],
        kgroup::assignor::RebalanceProtocol::Cooperative
    );
}

#[test]
fn every_assignor_handles_empty_and_missing_input() {
    let m = meta(&[("t", 3), ("empty", 0)]);
    let members = vec![
        member("c0", &[]),
        member("c1", &["missing"]),
        member("c2", &["empty"]),
    ];
    for n in ["range", "roundrobin", "sticky", "cooperative-sticky"] {
        let a = run(n, &m, &members);
        assert_eq!(a.len(), 3, "{n}: every member present");
        assert!(a.values().all(|x| x.partitions.is_empty()), "{n}");
    }
    assert_eq!(
        missing_topics(&m, &members).into_iter().collect::<Vec<_>>(),
        vec!["missing".to_owned()]
    );
}

#[test]
fn duplicate_member_ids_are_an_error() {
    let m = meta(&[("t", 3)]);
    let members = vec![member("c", &["t"]), member("c", &["t"])];
    for n in ["range", "roundrobin", "sticky", "cooperative-sticky"] {
        assert_eq!(
            builtin(n).expect("known").assign(&m, &members),
            Err(AssignError::DuplicateMember("c".into()))
        );
    }
}

#[test]
fn negative_partition_count_is_invalid_metadata() {
    let m = meta(&[("t", -1)]);
    let r = builtin("range")
        .expect("known")
        .assign(&m, &[member("c", &["t"])]);
    assert!(matches!(r, Err(AssignError::InvalidMetadata { .. })));
}

#[test]
fn range_java_cases() {
    // (metadata, members, expected) — RangeAssignorTest scenarios
    type Case<'a> = (
        &'a [(&'a str, i32)],
        &'a [(&'a str, &'a [&'a str])],
        &'a [(&'a str, &'a [(&'a str, i32)])],
    );
    let cases: &[Case<'_>] = &[
        // one consumer, one topic
        (
            &[("t", 3)],
            &[("c", &["t"])],
            &[("c", &[("t", 0), ("t", 1), ("t", 2)])],
        ),
        // only subscribed topics
        (
            &[("t", 3), ("other", 3)],
            &[("c", &["t"])],
            &[("c", &[("t", 0), ("t", 1), ("t", 2)])],
        ),
        // two consumers, one partition: the first in order gets it
        (
            &[("t", 1)],
            &[("c1", &["t"]), ("c2", &["t"])],
            &[("c1", &[("t", 0)]), ("c2", &[])],
        ),
        // mixed subscriptions
        (
            &[("t1", 3), ("t2", 2)],
            &[("c1", &["t1"]), ("c2", &["t1", "t2"]), ("c3", &["t1"])],
            &[
                ("c1", &[("t1", 0)]),
                ("c2", &[("t1", 1), ("t2", 0), ("t2", 1)]),
                ("c3", &[("t1", 2)]),
            ],
        ),
        // two consumers, two topics, six partitions: extra goes to the first
        (
            &[("t1", 3), ("t2", 3)],
            &[("c1", &["t1", "t2"]), ("c2", &["t1", "t2"])],
            &[
                ("c1", &[("t1", 0), ("t1", 1), ("t2", 0), ("t2", 1)]),
                ("c2", &[("t1", 2), ("t2", 2)]),
            ],
        ),
    ];
    for (i, (topics, ms, expected)) in cases.iter().enumerate() {
        let members: Vec<_> = ms.iter().map(|(id, ts)| member(id, ts)).collect();
        let a = run("range", &meta(topics), &members);
        for (id, want) in expected.iter() {
            assert_eq!(parts(&a, id), tps(want), "case {i} member {id}");
        }
    }
}

#[test]
fn range_orders_static_members_by_instance_id_first() {
    // KIP-345: static members first by instance id, then dynamic by member id
    let m = meta(&[("t", 4)]);
    let mut b = member("b", &["t"]);
    b.instance_id = Some("i1".into());
    let mut a = member("a", &["t"]);
    a.instance_id = Some("i2".into());
    let dynamic = member("0-dynamic", &["t"]);
    let out = run("range", &m, &[a, b, dynamic]);
    assert_eq!(parts(&out, "b"), tps(&[("t", 0), ("t", 1)]));
    assert_eq!(parts(&out, "a"), tps(&[("t", 2)]));
    assert_eq!(parts(&out, "0-dynamic"), tps(&[("t", 3)]));
}

fn racked(topics: &[(&str, &[&str])]) -> ClusterMetadata {
    topics
        .iter()
        .map(|&(t, racks)| {
            (
                t.to_owned(),
                TopicInfo {
                    partitions: racks.len() as i32,
                    partition_racks: racks.iter().map(|r| vec![(*r).to_owned()]).collect(),
                },
            )
        })
        .collect()
}

fn with_rack(mut m: MemberSubscription, rack: &str) -> MemberSubscription {
    m.rack = Some(rack.into());
    m
}

#[test]
fn range_rack_aware_single_topic_matches_racks() {
    // each partition on one rack; consumers on rotated racks (KIP-881)
    let m = racked(&[("t", &["r0", "r1", "r2"])]);
    let members = vec![
        with_rack(member("c0", &["t"]), "r1"),
        with_rack(member("c1", &["t"]), "r2"),
        with_rack(member("c2", &["t"]), "r0"),
    ];
    let a = run("range", &m, &members);
    assert_eq!(parts(&a, "c0"), tps(&[("t", 1)]));
    assert_eq!(parts(&a, "c1"), tps(&[("t", 2)]));
    assert_eq!(parts(&a, "c2"), tps(&[("t", 0)]));
}

#[test]
fn range_rack_aware_keeps_co_partitioning() {
    // two topics, same subscribers and partition count: partition p of both to one consumer
    let m = racked(&[("a", &["r0", "r1"]), ("b", &["r0", "r1"])]);
    let members = vec![
        with_rack(member("c0", &["a", "b"]), "r1"),
        with_rack(member("c1", &["a", "b"]), "r0"),
    ];
    let out = run("range", &m, &members);
    assert_eq!(parts(&out, "c0"), tps(&[("a", 1), ("b", 1)]));
    assert_eq!(parts(&out, "c1"), tps(&[("a", 0), ("b", 0)]));
}

#[test]
fn range_racks_on_every_partition_change_nothing() {
    let all = ["r0", "r1"];
    let m: ClusterMetadata = [(
        "t".to_owned(),
        TopicInfo {
            partitions: 3,
            partition_racks: vec![all.iter().map(|r| (*r).to_owned()).collect(); 3],
        },
    )]
    .into();
    let members = vec![
        with_rack(member("c0", &["t"]), "r1"),
        with_rack(member("c1", &["t"]), "r0"),
    ];
    let out = run("range", &m, &members);
    assert_eq!(parts(&out, "c0"), tps(&[("t", 0), ("t", 1)]));
    assert_eq!(parts(&out, "c1"), tps(&[("t", 2)]));
}

#[test]
fn roundrobin_java_cases() {
    let m = meta(&[("t1", 3), ("t2", 3)]);
    let a = run(
        "roundrobin",
        &m,
        &[member("c1", &["t1", "t2"]), member("c2", &["t1", "t2"])],
    );
    assert_eq!(parts(&a, "c1"), tps(&[("t1", 0), ("t1", 2), ("t2", 1)]));
    assert_eq!(parts(&a, "c2"), tps(&[("t1", 1), ("t2", 0), ("t2", 2)]));

    // mixed subscriptions: the cursor skips members not subscribed
    let m = meta(&[("t1", 3), ("t2", 2)]);
    let a = run(
        "roundrobin",
        &m,
        &[
            member("c1", &["t1"]),
            member("c2", &["t1", "t2"]),
            member("c3", &["t1"]),
        ],
    );
    assert_eq!(parts(&a, "c1"), tps(&[("t1", 0)]));
    assert_eq!(parts(&a, "c2"), tps(&[("t1", 1), ("t2", 0), ("t2", 1)]));
    assert_eq!(parts(&a, "c3"), tps(&[("t1", 2)]));
}

#[test]
fn roundrobin_static_members_first() {
    let m = meta(&[("t", 3)]);
    let mut z = member("z", &["t"]);
    z.instance_id = Some("a-instance".into());
    let out = run("roundrobin", &m, &[member("a", &["t"]), z]);
    assert_eq!(parts(&out, "z"), tps(&[("t", 0), ("t", 2)]));
    assert_eq!(parts(&out, "a"), tps(&[("t", 1)]));
}

fn sticky_member(
    id: &str,
    topics: &[&str],
    prev: &[(&str, i32)],
    generation: i32,
) -> MemberSubscription {
    let mut m = member(id, topics);
    m.user_data = Some(encode_sticky(&tps(prev), Some(generation)));
    m
}

fn coop_member(
    id: &str,
    topics: &[&str],
    owned: &[(&str, i32)],
    generation: Option<i32>,
) -> MemberSubscription {
    let mut m = member(id, topics);
    m.owned = tps(owned);
    m.generation = generation;
    m
}

#[test]
fn sticky_add_consumer_moves_only_what_balance_needs() {
    let m = meta(&[("t", 3)]);
    let a = run(
        "sticky",
        &m,
        &[
            sticky_member("c1", &["t"], &[("t", 0), ("t", 1), ("t", 2)], 1),
            member("c2", &["t"]),
        ],
    );
    let c1 = parts(&a, "c1");
    assert_eq!(c1.len(), 2);
    assert_eq!(parts(&a, "c2").len(), 1);
    assert!(c1.iter().all(|tp| tp.partition <= 2));
}

#[test]
fn sticky_consumer_leaving_only_moves_its_partitions() {
    let m = meta(&[("t", 6)]);
    let members = [
        sticky_member("c1", &["t"], &[("t", 0), ("t", 1)], 3),
        sticky_member("c2", &["t"], &[("t", 2), ("t", 3)], 3),
    ];
    // c3 (which owned t-4, t-5) is gone
    let a = run("sticky", &m, &members);
    assert!(parts(&a, "c1").starts_with(&tps(&[("t", 0), ("t", 1)])) || parts(&a, "c1").len() == 3);
    for (id, kept) in [("c1", [("t", 0), ("t", 1)]), ("c2", [("t", 2), ("t", 3)])] {
        let got = parts(&a, id);
        assert_eq!(got.len(), 3, "{id}");
        for tp in tps(&kept) {
            assert!(got.contains(&tp), "{id} keeps {tp}");
        }
    }
}

#[test]
fn sticky_higher_generation_claim_wins() {
    // both claim t-0; c2's claim is from a later generation
    let m = meta(&[("t", 2)]);
    let a = run(
        "sticky",
        &m,
        &[
            sticky_member("c1", &["t"], &[("t", 0)], 1),
            sticky_member("c2", &["t"], &[("t", 0), ("t", 1)], 2),
        ],
    );
    // balance needs one each; c2 held both at generation 2 and keeps one of them
    assert_eq!(parts(&a, "c1").len(), 1);
    assert_eq!(parts(&a, "c2").len(), 1);
    let m = meta(&[("t", 3)]);
    let a = run(
        "sticky",
        &m,
        &[
            sticky_member("c1", &["t"], &[("t", 0)], 1),
            sticky_member("c2", &["t"], &[("t", 0)], 2),
            member("c3", &["t"]),
        ],
    );
    assert_eq!(parts(&a, "c2"), tps(&[("t", 0)]));
}

#[test]
fn sticky_corrupt_user_data_means_no_previous_assignment() {
    let m = meta(&[("t", 2)]);
    let mut c1 = member("c1", &["t"]);
    c1.user_data = Some(bytes::Bytes::from_static(&[0x7f, 0xff, 0xff, 0xff, 0, 1]));
    let a = run("sticky", &m, &[c1, member("c2", &["t"])]);
    assert_eq!(parts(&a, "c1").len() + parts(&a, "c2").len(), 2);
}

#[test]
fn sticky_user_data_round_trips_previous_assignment() {
    let s = builtin("sticky").expect("known");
    let prev = PreviousAssignment {
        partitions: tps(&[("a", 1), ("a", 0), ("b", 3)]),
        generation: Some(9),
    };
    let data = s.subscription_user_data(&prev).expect("user data");
    let d = decode_sticky(&data).expect("decodes");
    assert_eq!(d.partitions, prev.partitions);
    assert_eq!(d.generation, Some(9));
    assert!(
        s.subscription_user_data(&PreviousAssignment::default())
            .is_none()
    );
    let c = builtin("cooperative-sticky").expect("known");
    assert_eq!(
        c.subscription_user_data(&prev).expect("gen"),
        encode_cooperative(Some(9))
    );
}

#[test]
fn cooperative_new_member_waits_for_revocation() {
    // CooperativeStickyAssignorTest: c1 owns everything; c2 joins. The
    // partition c1 must give up is withheld from c2 this round.
    let m = meta(&[("t", 4)]);
    let a = run(
        "cooperative-sticky",
        &m,
        &[
            coop_member(
                "c1",
                &["t"],
                &[("t", 0), ("t", 1), ("t", 2), ("t", 3)],
                Some(1),
            ),
            member("c2", &["t"]),
        ],
    );
    assert_eq!(parts(&a, "c1").len(), 2);
    assert!(parts(&a, "c2").is_empty());
    // next round: c1 revoked two partitions, c2 now gets them
    let c1_now: Vec<(String, i32)> = parts(&a, "c1")
        .into_iter()
        .map(|tp| (tp.topic, tp.partition))
        .collect();
    let owned: Vec<(&str, i32)> = c1_now.iter().map(|(t, p)| (t.as_str(), *p)).collect();
    let b = run(
        "cooperative-sticky",
        &m,
        &[
            coop_member("c1", &["t"], &owned, Some(2)),
            member("c2", &["t"]),
        ],
    );
    assert_eq!(parts(&b, "c1"), tps(&owned));
    assert_eq!(parts(&b, "c2").len(), 2);
}

#[test]
fn cooperative_stale_claim_loses_and_blocks_transfer() {
    // c1 (generation 2) and c2 (stale generation 1) both claim t-0
    let m = meta(&[("t", 2)]);
    let a = run(
        "cooperative-sticky",
        &m,
        &[
            coop_member("c1", &["t"], &[("t", 0)], Some(2)),
            coop_member("c2", &["t"], &[("t", 0), ("t", 1)], Some(1)),
        ],
    );
    assert_eq!(parts(&a, "c1"), tps(&[("t", 0)]));
    // t-1 was c2's alone; it keeps it
    assert_eq!(parts(&a, "c2"), tps(&[("t", 1)]));
}

#[test]
fn cooperative_generation_from_user_data_when_field_absent() {
    let m = meta(&[("t", 1)]);
    let mut c1 = coop_member("c1", &["t"], &[("t", 0)], None);
    c1.user_data = Some(encode_cooperative(Some(5)));
    let mut c2 = coop_member("c2", &["t"], &[("t", 0)], None);
    c2.user_data = Some(encode_cooperative(Some(4)));
    let a = run("cooperative-sticky", &m, &[c2, c1]);
    assert_eq!(parts(&a, "c1"), tps(&[("t", 0)]));
}

#[test]
fn sticky_general_subscriptions_balance() {
    // AbstractStickyAssignorTest "testPoorRoundRobinAssignmentScenario"-like shape
    let m = meta(&[("t1", 2), ("t2", 1), ("t3", 2), ("t4", 1), ("t5", 2)]);
    let members = vec![
        member("c1", &["t1", "t2", "t3", "t4", "t5"]),
        member("c2", &["t1", "t3", "t5"]),
        member("c3", &["t1", "t3", "t5"]),
        member("c4", &["t1", "t2", "t3", "t4", "t5"]),
    ];
    let a = run("sticky", &m, &members);
    let counts: BTreeMap<_, _> = a
        .iter()
        .map(|(k, v)| (k.clone(), v.partitions.len()))
        .collect();
    let max = counts.values().max().copied().unwrap_or(0);
    let min = counts.values().min().copied().unwrap_or(0);
    assert!(max - min <= 1, "{counts:?}");
}
