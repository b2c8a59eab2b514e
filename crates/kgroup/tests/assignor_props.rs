//! Property tests for the built-in assignors over random topics, partition
//! counts, members, subscriptions, owned partitions (including conflicting
//! and stale claims) and racks: validity, Java's balance criterion,
//! stickiness, the cooperative rule, determinism. Sizes are small so the
//! suite runs in seconds.

use std::collections::{BTreeMap, BTreeSet};

use kgroup::TopicPartition;
use kgroup::assignor::userdata::encode_sticky;
use kgroup::assignor::{ClusterMetadata, GroupAssignment, MemberSubscription, TopicInfo, builtin};
use proptest::prelude::*;

mod prop_config;

const RACKS: [&str; 3] = ["r0", "r1", "r2"];

#[derive(Clone, Debug)]
struct Case {
    metadata: ClusterMetadata,
    members: Vec<MemberSubscription>,
}

fn case() -> impl Strategy<Value = Case> {
    let topics = prop::collection::vec((0i32..7, any::<bool>(), any::<u64>()), 1..5);
    (topics, 1usize..7, any::<u64>()).prop_map(|(topics, nmembers, seed)| {
        let mut rng = seed;
        let mut next = move |n: u64| {
            // xorshift: deterministic per case
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n.max(1)
        };
        let mut metadata = ClusterMetadata::new();
        for (i, (parts, racked, _)) in topics.iter().enumerate() {
            let partition_racks = if *racked {
                (0..*parts)
                    .map(|_| {
                        let k = next(3) as usize + 1;
                        (0..k).map(|_| RACKS[next(3) as usize].to_owned()).collect()
                    })
                    .collect()
            } else {
                Vec::new()
            };
            metadata.insert(
                format!("t{i}"),
                TopicInfo {
                    partitions: *parts,
                    partition_racks,
                },
            );
        }
        let ntopics = topics.len() as u64;
        let members = (0..nmembers)
            .map(|m| {
                // subscribe to a random subset, sometimes a missing topic
                let mut subs: Vec<String> = (0..ntopics)
                    .filter(|_| next(3) != 0)
                    .map(|t| format!("t{t}"))
                    .collect();
                if next(5) == 0 {
                    subs.push("missing".into());
                }
                let owned: Vec<TopicPartition> = (0..next(5))
                    .map(|_| TopicPartition::new(format!("t{}", next(ntopics + 1)), next(8) as i32))
                    .collect();
                MemberSubscription {
                    member_id: format!("m{m}"),
                    instance_id: (next(3) == 0).then(|| format!("i{}", next(100))),
                    rack: (next(2) == 0).then(|| RACKS[next(3) as usize].to_owned()),
                    topics: subs,
                    owned,
                    generation: (next(4) != 0).then(|| next(3) as i32),
                    user_data: None,
                }
            })
            .collect();
        Case { metadata, members }
    })
}

fn subscribed(c: &Case, m: &str) -> BTreeSet<String> {
    c.members
        .iter()
        .find(|x| x.member_id == m)
        .map(|x| {
            x.topics
                .iter()
                .filter(|t| c.metadata.contains_key(*t))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// Every member present; each partition to at most one member, subscribed to
/// its topic; with `complete`, every subscribed partition assigned.
fn check_valid(c: &Case, a: &GroupAssignment, complete: bool) -> Result<(), TestCaseError> {
    prop_assert_eq!(a.len(), c.members.len());
    let mut seen = BTreeSet::new();
    for (m, x) in a {
        let subs = subscribed(c, m);
        let mut sorted = x.partitions.clone();
        sorted.sort();
        prop_assert_eq!(&sorted, &x.partitions, "partitions sorted");
        for tp in &x.partitions {
            prop_assert!(subs.contains(&tp.topic), "{} not subscribed to {}", m, tp);
            let n = c.metadata.get(&tp.topic).map_or(0, |t| t.partitions);
            prop_assert!(
                tp.partition >= 0 && tp.partition < n,
                "{} does not exist",
                tp
            );
            prop_assert!(seen.insert(tp.clone()), "{} assigned twice", tp);
        }
    }
    if complete {
        for (t, info) in &c.metadata {
            let wanted = c.members.iter().any(|m| m.topics.contains(t));
            for p in 0..info.partitions {
                let tp = TopicPartition::new(t.clone(), p);
                prop_assert_eq!(seen.contains(&tp), wanted, "{} coverage", tp);
            }
        }
    }
    Ok(())
}

/// Java's balance criterion: a member with at least two more partitions than
/// another holds none of the topics the other subscribes to.
fn check_balanced(c: &Case, a: &GroupAssignment) -> Result<(), TestCaseError> {
    for (ma, xa) in a {
        for (mb, xb) in a {
            if xa.partitions.len() < xb.partitions.len() + 2 {
                continue;
            }
            let subs_b = subscribed(c, mb);
            for tp in &xa.partitions {
                prop_assert!(
                    !subs_b.contains(&tp.topic),
                    "{} ({}) could give {} to {} ({})",
                    ma,
                    xa.partitions.len(),
                    tp,
                    mb,
                    xb.partitions.len()
                );
            }
        }
    }
    Ok(())
}

fn with_sticky_user_data(c: &Case) -> Vec<MemberSubscription> {
    c.members
        .iter()
        .map(|m| {
            let mut m = m.clone();
            m.user_data = Some(encode_sticky(&m.owned, m.generation));
            m
        })
        .collect()
}

/// Members now owning what `a` gave them, at generation `generation`.
fn owning(c: &Case, a: &GroupAssignment, generation: i32) -> Vec<MemberSubscription> {
    c.members
        .iter()
        .map(|m| {
            let mut m = m.clone();
            m.owned = a
                .get(&m.member_id)
                .map(|x| x.partitions.clone())
                .unwrap_or_default();
            m.generation = Some(generation);
            m.user_data = None;
            m
        })
        .collect()
}

proptest! {
    #![proptest_config(prop_config::config(256))]

    #[test]
    fn range_and_roundrobin_are_valid_and_per_topic_even(c in case()) {
        for name in ["range", "roundrobin"] {
            let a = builtin(name).expect("known").assign(&c.metadata, &c.members).expect("assigns");
            check_valid(&c, &a, true)?;
        }
        // range: per topic, subscriber counts differ by at most one
        let a = builtin("range").expect("known").assign(&c.metadata, &c.members).expect("assigns");
        for t in c.metadata.keys() {
            let counts: Vec<usize> = c.members.iter().filter(|m| m.topics.contains(t)).map(|m| {
                a.get(&m.member_id).map_or(0, |x| x.partitions.iter().filter(|tp| &tp.topic == t).count())
            }).collect();
            if let (Some(min), Some(max)) = (counts.iter().min(), counts.iter().max()) {
                prop_assert!(max - min <= 1, "topic {} counts {:?}", t, counts);
            }
        }
    }

    #[test]
    fn sticky_is_valid_balanced_and_deterministic(c in case()) {
        let members = with_sticky_user_data(&c);
        let s = builtin("sticky").expect("known");
        let a = s.assign(&c.metadata, &members).expect("assigns");
        check_valid(&c, &a, true)?;
        check_balanced(&c, &a)?;
        let mut reversed = members.clone();
        reversed.reverse();
        prop_assert_eq!(&s.assign(&c.metadata, &reversed).expect("assigns"), &a);
    }

    #[test]
    fn sticky_keeps_a_balanced_assignment_unchanged(c in case()) {
        let s = builtin("sticky").expect("known");
        let first = s.assign(&c.metadata, &c.members).expect("assigns");
        let again: Vec<MemberSubscription> = owning(&c, &first, 5)
            .into_iter()
            .map(|mut m| { m.user_data = Some(encode_sticky(&m.owned, m.generation)); m })
            .collect();
        prop_assert_eq!(s.assign(&c.metadata, &again).expect("assigns"), first);
    }

    #[test]
    fn sticky_moves_only_from_members_above_balance(c in case()) {
        // members keep every previously owned partition unless they are
        // above the final maximum count among members sharing a topic
        let members = with_sticky_user_data(&c);
        let a = builtin("sticky").expect("known").assign(&c.metadata, &members).expect("assigns");
        let valid_prev = previous_owners(&c);
        for (tp, prev) in &valid_prev {
            let Some(now) = a.iter().find(|(_, x)| x.partitions.contains(tp)).map(|(m, _)| m.clone()) else { continue };
            if &now != prev {
                // a move away from `prev` is only allowed if `prev` ended with at least as many as `now`
                let n_prev = a.get(prev).map_or(0, |x| x.partitions.len());
                let n_now = a.get(&now).map_or(0, |x| x.partitions.len());
                prop_assert!(n_prev + 1 >= n_now, "{} moved {} -> {} ({} vs {})", tp, prev, now, n_prev, n_now);
            }
        }
    }

    #[test]
    fn cooperative_rule_and_convergence(c in case()) {
        let coop = builtin("cooperative-sticky").expect("known");
        let a = coop.assign(&c.metadata, &c.members).expect("assigns");
        check_valid(&c, &a, false)?;
        // a partition goes to a member that does not hold it only if no
        // other member claims it
        let valid_prev = previous_owners(&c);
        for (m, x) in &a {
            for tp in &x.partitions {
                if valid_prev.get(tp) == Some(m) {
                    continue;
                }
                for other in &c.members {
                    if &other.member_id != m {
                        prop_assert!(!other.owned.contains(tp), "{} given to {} while {} claims it", tp, m, other.member_id);
                    }
                }
            }
        }
        // members revoke what they lost; within a few rounds everything is
        // assigned, balanced, and the assignment is then stable
        let mut current = a;
        let mut rounds = 0;
        loop {
            let assigned: usize = current.values().map(|x| x.partitions.len()).sum();
            let expected: usize = c.metadata.iter()
                .filter(|(t, _)| c.members.iter().any(|m| m.topics.contains(*t)))
                .map(|(_, i)| i.partitions as usize).sum();
            if assigned == expected {
                break;
            }
            rounds += 1;
            prop_assert!(rounds <= 4, "not converged after {} rounds", rounds);
            current = coop.assign(&c.metadata, &owning(&c, &current, 10 + rounds)).expect("assigns");
        }
        check_valid(&c, &current, true)?;
        check_balanced(&c, &current)?;
        let next = coop.assign(&c.metadata, &owning(&c, &current, 20)).expect("assigns");
        prop_assert_eq!(next, current);
    }
}

/// The validated previous owner of each claimed partition: highest
/// generation wins (missing = -1), ties cancel; only existing partitions of
/// topics the claimant still subscribes to.
fn previous_owners(c: &Case) -> BTreeMap<TopicPartition, String> {
    let mut best: BTreeMap<TopicPartition, (i32, Option<String>)> = BTreeMap::new();
    for m in &c.members {
        let g = m.generation.unwrap_or(-1);
        let mut own = m.owned.clone();
        own.sort();
        own.dedup();
        for tp in own {
            let n = c.metadata.get(&tp.topic).map_or(0, |t| t.partitions);
            if tp.partition < 0 || tp.partition >= n {
                continue;
            }
            match best.get_mut(&tp) {
                None => {
                    best.insert(tp, (g, Some(m.member_id.clone())));
                }
                Some(e) if g > e.0 => *e = (g, Some(m.member_id.clone())),
                Some(e) if g == e.0 => e.1 = None,
                Some(_) => {}
            }
        }
    }
    best.into_iter()
        .filter_map(|(tp, (_, m))| {
            let m = m?;
            subscribed(c, &m).contains(&tp.topic).then_some((tp, m))
        })
        .collect()
}

proptest! {
    #![proptest_config(prop_config::config(512))]

    /// Hostile user data never panics: `sticky` treats undecodable data as no
    /// previous assignment, `cooperative-sticky` as the default generation.
    #[test]
    fn hostile_user_data_is_harmless(
        c in case(),
        blobs in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 7),
    ) {
        let members: Vec<MemberSubscription> = c
            .members
            .iter()
            .zip(blobs.iter())
            .map(|(m, b)| {
                let mut m = m.clone();
                m.user_data = Some(bytes::Bytes::copy_from_slice(b));
                m
            })
            .collect();
        for b in &blobs {
            let _ = kgroup::assignor::userdata::decode_sticky(b);
        }
        let a = builtin("sticky").expect("known").assign(&c.metadata, &members).expect("assigns");
        check_valid(&c, &a, true)?;
        check_balanced(&c, &a)?;
        let a = builtin("cooperative-sticky").expect("known").assign(&c.metadata, &members).expect("assigns");
        check_valid(&c, &a, false)?;
    }
}
