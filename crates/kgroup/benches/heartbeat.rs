//! CPU cost of one stable heartbeat round: the heartbeat timer fires, the
//! request is built into the reused buffer and handed out, the response is
//! decoded and handled. `tests/heartbeat_alloc.rs` proves the same round
//! makes no heap allocation.
#![allow(clippy::disallowed_methods)] // a bench's arbitrary origin; time then advances virtually

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use criterion::{Criterion, criterion_group, criterion_main};
use kgroup::assignor::{
    AssignError, Assignor, ClusterMetadata, GroupAssignment, MemberSubscription, RebalanceProtocol,
};
use kgroup::kafka_protocol::messages::api_versions_response::ApiVersion;
use kgroup::kafka_protocol::messages::*;
use kgroup::kafka_protocol::protocol::{Encodable, HeaderVersion, StrBytes};
use kgroup::wire::Assignment;
use kgroup::{Config, Group, TopicPartition, Transmit};

#[derive(Debug)]
struct Noop;

impl Assignor for Noop {
    fn name(&self) -> &str {
        "noop"
    }
    fn supported_protocols(&self) -> &[RebalanceProtocol] {
        &[RebalanceProtocol::Cooperative]
    }
    fn assign(
        &self,
        _: &ClusterMetadata,
        _: &[MemberSubscription],
    ) -> Result<GroupAssignment, AssignError> {
        Ok(GroupAssignment::new())
    }
}

fn version_of(t: &Transmit) -> i16 {
    i16::from_be_bytes([t.bytes[6], t.bytes[7]])
}

fn answer<R: Encodable + HeaderVersion>(g: &mut Group, now: Instant, t: &Transmit, body: R) {
    let version = version_of(t);
    let mut out = BytesMut::new();
    out.put_i32(t.id.0);
    if R::header_version(version) >= 1 {
        out.put_u8(0);
    }
    body.encode(&mut out, version).unwrap();
    g.handle_response(now, t.id, out.freeze());
}

/// A member in the stable state, driven through the whole join.
fn stable_group(now: Instant) -> Group {
    let config = Config::builder("bench")
        .assignor(Arc::new(Noop))
        .instance_id("pod-1")
        .build()
        .unwrap();
    let mut g = Group::new(config, now);
    g.subscribe(now, ["orders"]);
    let versions = ApiVersionsResponse::default().with_api_keys(
        [
            (18, 3),
            (3, 12),
            (10, 3),
            (11, 9),
            (14, 5),
            (12, 4),
            (13, 5),
            (8, 9),
            (9, 9),
        ]
        .iter()
        .map(|(k, v)| ApiVersion::default().with_api_key(*k).with_max_version(*v))
        .collect(),
    );
    while let Some(t) = g.poll_transmit(now) {
        match t.api {
            ApiKey::ApiVersions => answer(&mut g, now, &t, versions.clone()),
            ApiKey::FindCoordinator => answer(
                &mut g,
                now,
                &t,
                FindCoordinatorResponse::default()
                    .with_node_id(BrokerId(1))
                    .with_host(StrBytes::from_static_str("b1"))
                    .with_port(9092),
            ),
            ApiKey::JoinGroup => answer(
                &mut g,
                now,
                &t,
                JoinGroupResponse::default()
                    .with_generation_id(1)
                    .with_protocol_type(Some(StrBytes::from_static_str("consumer")))
                    .with_protocol_name(Some(StrBytes::from_static_str("noop")))
                    .with_leader(StrBytes::from_static_str("other"))
                    .with_member_id(StrBytes::from_static_str("member-1")),
            ),
            ApiKey::SyncGroup => answer(
                &mut g,
                now,
                &t,
                SyncGroupResponse::default().with_assignment(
                    Assignment::new(vec![TopicPartition::new("orders", 0)])
                        .encode(3)
                        .unwrap(),
                ),
            ),
            other => panic!("unexpected {other:?}"),
        }
    }
    while g.poll_event().is_some() {}
    g
}

fn heartbeat_round(c: &mut Criterion) {
    let mut now = Instant::now();
    let mut g = stable_group(now);
    let mut frames = BytesMut::with_capacity(1 << 16);
    c.bench_function("stable heartbeat round", |b| {
        b.iter(|| {
            now += Duration::from_secs(3);
            g.handle_timeout(now);
            let t = g.poll_transmit(now).expect("heartbeat");
            frames.reserve(16);
            frames.put_i32(t.id.0);
            frames.put_u8(0);
            frames.put_i32(0);
            frames.put_i16(0);
            frames.put_u8(0);
            let id = t.id;
            black_box(&t.bytes);
            drop(t);
            g.handle_response(now, id, frames.split().freeze());
            black_box(g.poll_event());
            black_box(g.poll_timeout())
        })
    });
}

criterion_group!(benches, heartbeat_round);
criterion_main!(benches);
