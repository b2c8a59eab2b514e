//! Generation tagging (PROTOCOL.md §0.3, KAFKA-9823): a response to a
//! request sent under an older generation, member id or coordinator never
//! acts on the current membership. Plus hostile responses: any bytes give a
//! typed error or a valid transition, never a panic.

mod membership_harness;

use std::time::Duration;

use bytes::Bytes;
use kgroup::kafka_protocol::messages::*;
use kgroup::rng::Rng;
use kgroup::wire::Subscription;
use kgroup::{GroupState, LostReason, RequestId};
use membership_harness::*;

const UNKNOWN_MEMBER_ID: i16 = 25;
const ILLEGAL_GENERATION: i16 = 22;

#[test]
fn a_late_response_to_a_timed_out_heartbeat_is_ignored() {
    let mut h = Harness::new(
        Harness::config(&[coop_first()])
            .request_timeout(Duration::from_secs(3))
            .build()
            .unwrap(),
    );
    h.join_stable(&["t"], "m1", 1, &[("t", 0)]);
    h.take_events();
    let old = h.next_heartbeat();
    // No answer within the request timeout: the coordinator is forgotten.
    h.advance(Duration::from_secs(3));
    h.fire_next_timer();
    let fc = h.expect(ApiKey::FindCoordinator);
    h.respond(&fc, coordinator_found(COORD));
    h.answer_api_versions();
    let hb = h.next_heartbeat();
    h.respond(&hb, HeartbeatResponse::default());
    // The old coordinator finally answers the old heartbeat.
    h.respond(&old, heartbeat_error(UNKNOWN_MEMBER_ID));
    assert!(lost(&h.take_events()).is_empty());
    assert_eq!(h.group.state(), GroupState::Stable);
    assert_eq!(h.group.member_id(), "m1");
    assert_eq!(h.group.generation(), 1);
}

#[test]
fn a_heartbeat_error_for_a_superseded_membership_is_ignored() {
    let mut h = Harness::new(Harness::config(&[coop_first()]).build().unwrap());
    h.join_stable(&["t"], "m1", 1, &[("t", 0)]);
    h.take_events();
    let old = h.next_heartbeat();
    // The heartbeat hangs; the local session expires first (10 s).
    h.advance(Duration::from_secs(10));
    let ev = h.take_events();
    assert_eq!(
        lost(&ev),
        vec![(tps(&[("t", 0)]), LostReason::SessionExpired)]
    );
    assert_eq!(h.group.member_id(), "");
    // Its answer arrives, about the old member id: ignored, no second loss.
    h.respond(&old, heartbeat_error(UNKNOWN_MEMBER_ID));
    assert!(lost(&h.take_events()).is_empty());
    let j = h.expect(ApiKey::JoinGroup);
    assert_eq!(j.join().member_id.as_str(), "");
}

#[test]
fn a_response_with_an_unknown_request_id_is_ignored() {
    let mut h = Harness::new(Harness::config(&[coop_first()]).build().unwrap());
    h.join_stable(&["t"], "m1", 1, &[("t", 0)]);
    h.take_events();
    h.group.handle_response(
        h.now,
        RequestId(9999),
        Bytes::from_static(&[0, 0, 0x27, 0x0f, 0, 25]),
    );
    assert!(h.take_events().is_empty());
    assert_eq!(h.group.state(), GroupState::Stable);
    let hb = h.next_heartbeat();
    assert_eq!(hb.heartbeat().generation_id, 1);
}

#[test]
fn metadata_for_an_older_generation_does_not_produce_an_assignment() {
    let mut h = Harness::new(Harness::config(&[coop_first()]).build().unwrap());
    h.subscribe(&["t"]);
    h.find_coordinator();
    let j = h.expect(ApiKey::JoinGroup);
    h.respond(
        &j,
        join_response(1, "coop-first", "a", "a")
            .with_members(vec![member("a", &Subscription::new(["t"]))]),
    );
    let m = h.expect(ApiKey::Metadata);
    // Meanwhile a heartbeat learns that generation 1 is gone.
    let hb = h.next_heartbeat();
    h.respond(&hb, heartbeat_error(ILLEGAL_GENERATION));
    let j2 = h.expect(ApiKey::JoinGroup);
    assert_eq!(j2.subscription().generation_id, -1);
    // The metadata answer for generation 1 arrives: no SyncGroup follows.
    h.respond(&m, metadata(&[("t", 2)]));
    h.expect_nothing();
    assert_eq!(h.group.state(), GroupState::Joining);
}

#[test]
fn the_same_seed_and_inputs_give_the_same_outputs() {
    let run = |seed: u64| {
        let mut h = Harness::new(Harness::config(&[coop_first()]).seed(seed).build().unwrap());
        h.subscribe(&["t"]);
        h.answer_api_versions();
        let start = h.now;
        let mut trace = vec![];
        for _ in 0..5 {
            let fc = h.expect(ApiKey::FindCoordinator);
            trace.push(h.now - start);
            h.respond(&fc, FindCoordinatorResponse::default().with_error_code(15));
            h.fire_next_timer();
        }
        trace
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1), run(2), "jitter comes from the seed");
}

/// Random and mutated frames as responses to every kind of request: the
/// engine must stay usable (no panic; a request, an event or a deadline).
#[test]
fn hostile_responses_never_panic() {
    let mut rng = Rng::new(0x5eed);
    for round in 0..300 {
        let mut h = Harness::new(Harness::config(&[coop_first()]).build().unwrap());
        h.subscribe(&["t"]);
        // Walk the happy path, replacing one response (chosen by `round`)
        // with garbage.
        let victim = round % 6;
        let mut step = 0;
        for _ in 0..12 {
            let Some(s) = h.next() else {
                h.fire_next_timer();
                continue;
            };
            let garbage = step == victim;
            step += 1;
            if garbage {
                let len = (rng.next_u64() % 64) as usize;
                let mut bytes = vec![0u8; len];
                for b in &mut bytes {
                    *b = rng.next_u64() as u8;
                }
                if len >= 4 {
                    bytes[..4].copy_from_slice(&s.id.0.to_be_bytes());
                }
                h.respond_raw(&s, Bytes::from(bytes));
                continue;
            }
            match s.api {
                ApiKey::ApiVersions => h.respond(&s, api_versions(&Default::default())),
                ApiKey::FindCoordinator => h.respond(&s, coordinator_found(COORD)),
                ApiKey::JoinGroup => h.respond(&s, join_response(1, "coop-first", "x", "m")),
                ApiKey::SyncGroup => h.respond(&s, SyncGroupResponse::default()),
                ApiKey::Heartbeat => h.respond(&s, HeartbeatResponse::default()),
                _ => {}
            }
        }
        let alive = h.group.state() == GroupState::Failed || h.group.poll_timeout().is_some();
        assert!(alive, "round {round}: engine wedged in {}", h.group.state());
    }
}
