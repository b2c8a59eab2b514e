//! Criterion benches for the assignors on the small issue-5 scenarios
//! (`small`: 10 topics x 10 partitions, 10 members; `quarter`: 100 topics x
//! 200 partitions, 500 members), phases fresh / join / leave, all
//! cooperative-sticky, plus range and roundrobin on `quarter`. The million-
//! partition scenarios are measured with `kgroup assign --repeat` on inputs
//! from `gen_assign_inputs.py` (see docs/benchmarks.md).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use kgroup::assignor::{Builtin, ClusterMetadata, MemberSubscription, TopicInfo};

fn scenario(name: &str) -> (ClusterMetadata, Vec<MemberSubscription>) {
    let (topics, parts, members): (usize, i32, usize) = match name {
        "small" => (10, 10, 10),
        _ => (100, 200, 500),
    };
    let metadata: ClusterMetadata = (0..topics)
        .map(|t| {
            (
                format!("topic{t:03}"),
                TopicInfo {
                    partitions: parts,
                    partition_racks: Vec::new(),
                },
            )
        })
        .collect();
    let members = (0..members)
        .map(|i| {
            let g = i % 4;
            let topics = (0..topics)
                .filter(|t| name == "small" || t % 4 == g || t % 4 == (g + 1) % 4)
                .map(|t| format!("topic{t:03}"))
                .collect();
            MemberSubscription {
                member_id: format!("consumer{i:04}"),
                topics,
                ..Default::default()
            }
        })
        .collect();
    (metadata, members)
}

/// (fresh, join, leave) member lists for a scenario.
fn phases(name: &str) -> (ClusterMetadata, [Vec<MemberSubscription>; 3]) {
    let (metadata, fresh) = scenario(name);
    let result = Builtin::CooperativeSticky
        .assign_compact(&metadata, &fresh)
        .expect("assigns")
        .to_group_assignment();
    let owning: Vec<MemberSubscription> = fresh
        .iter()
        .map(|m| {
            let mut m = m.clone();
            m.owned = result
                .get(&m.member_id)
                .map(|a| a.partitions.clone())
                .unwrap_or_default();
            m.generation = Some(1);
            m
        })
        .collect();
    let mut join = owning.clone();
    let mut newcomer = fresh.last().cloned().unwrap_or_default();
    newcomer.member_id = format!("consumer{:04}", fresh.len());
    join.push(newcomer);
    let leave = owning.into_iter().skip(1).collect();
    (metadata, [fresh, join, leave])
}

fn bench(c: &mut Criterion) {
    for name in ["small", "quarter"] {
        let (metadata, [fresh, join, leave]) = phases(name);
        for (phase, members) in [("fresh", &fresh), ("join", &join), ("leave", &leave)] {
            c.bench_function(&format!("cooperative-sticky/{name}/{phase}"), |b| {
                b.iter(|| {
                    Builtin::CooperativeSticky
                        .assign_compact(black_box(&metadata), black_box(members))
                        .map(|a| a.assigned())
                })
            });
        }
        c.bench_function(&format!("cooperative-sticky/{name}/join/trait"), |b| {
            b.iter(|| {
                Builtin::CooperativeSticky
                    .assign_compact(black_box(&metadata), black_box(&join))
                    .map(|a| a.to_group_assignment())
            })
        });
        for kind in [Builtin::Range, Builtin::RoundRobin] {
            c.bench_function(&format!("{}/{name}/fresh", kind.name()), |b| {
                b.iter(|| {
                    kind.assign_compact(black_box(&metadata), black_box(&fresh))
                        .map(|a| a.assigned())
                })
            });
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
