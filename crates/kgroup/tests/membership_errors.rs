//! One scripted test per row of PROTOCOL.md §2's error matrix for
//! FindCoordinator, JoinGroup, SyncGroup, Heartbeat and LeaveGroup: each
//! asserts the next request the engine sends and the events it reports.

mod membership_harness;

use std::time::Duration;

use kgroup::kafka_protocol::messages::*;
use kgroup::kafka_protocol::protocol::StrBytes;
use kgroup::{ErrorClass, Event, GroupState, LostReason, Timer};
use membership_harness::*;

const REBALANCE_IN_PROGRESS: i16 = 27;
const ILLEGAL_GENERATION: i16 = 22;
const UNKNOWN_MEMBER_ID: i16 = 25;
const FENCED_INSTANCE_ID: i16 = 82;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const NOT_COORDINATOR: i16 = 16;
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const GROUP_AUTHORIZATION_FAILED: i16 = 30;

fn coop() -> Harness {
    Harness::new(Harness::config(&[coop_first()]).build().unwrap())
}

/// A cooperative member, stable in generation 1 as "m1" owning t-0, t-1,
/// with a JoinGroup for generation 2 in flight (cooperative keeps its
/// partitions while it rejoins).
fn coop_rejoining() -> (Harness, Sent) {
    let mut h = coop();
    h.join_stable(&["t"], "m1", 1, &[("t", 0), ("t", 1)]);
    let hb = h.next_heartbeat();
    h.respond(&hb, heartbeat_error(REBALANCE_IN_PROGRESS));
    let j = h.expect(ApiKey::JoinGroup);
    h.take_events();
    (h, j)
}

/// A cooperative member joined generation 2, SyncGroup in flight.
fn coop_syncing() -> (Harness, Sent) {
    let (mut h, j) = coop_rejoining();
    h.respond(&j, join_ok("m1", 2, "coop-first"));
    let s = h.expect(ApiKey::SyncGroup);
    h.take_events();
    (h, s)
}

fn join_ok(member: &str, generation: i32, protocol: &'static str) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_generation_id(generation)
        .with_protocol_type(Some(StrBytes::from_static_str("consumer")))
        .with_protocol_name(Some(StrBytes::from_static_str(protocol)))
        .with_leader(StrBytes::from_static_str("leader"))
        .with_member_id(StrBytes::from_string(member.into()))
}

fn join_error(code: i16) -> JoinGroupResponse {
    JoinGroupResponse::default().with_error_code(code)
}

fn sync_error(code: i16) -> SyncGroupResponse {
    SyncGroupResponse::default().with_error_code(code)
}

#[track_caller]
fn assert_fatal(h: &mut Harness, code: i16) {
    let ev = h.take_events();
    let err = fatal(&ev).unwrap_or_else(|| panic!("no Fatal event for code {code}: {ev:?}"));
    assert_eq!(err.code(), Some(code));
    let text = err.to_string();
    assert!(text.contains("group \"g\""), "{text}");
    assert_eq!(h.group.state(), GroupState::Failed);
    h.expect_nothing();
}

// ----- FindCoordinator (§2.2) ---------------------------------------------

#[test]
fn find_coordinator_group_authorization_failed_is_fatal() {
    let mut h = coop();
    h.subscribe(&["t"]);
    h.answer_api_versions();
    let fc = h.expect(ApiKey::FindCoordinator);
    h.respond(
        &fc,
        FindCoordinatorResponse::default().with_error_code(GROUP_AUTHORIZATION_FAILED),
    );
    assert_fatal(&mut h, GROUP_AUTHORIZATION_FAILED);
}

#[test]
fn find_coordinator_other_non_retriable_error_is_fatal() {
    let mut h = coop();
    h.subscribe(&["t"]);
    h.answer_api_versions();
    let fc = h.expect(ApiKey::FindCoordinator);
    h.respond(&fc, FindCoordinatorResponse::default().with_error_code(42)); // INVALID_REQUEST
    assert_fatal(&mut h, 42);
}

#[test]
fn find_coordinator_retriable_errors_retry_with_growing_jittered_backoff() {
    for code in [
        COORDINATOR_NOT_AVAILABLE,
        NOT_COORDINATOR,
        COORDINATOR_LOAD_IN_PROGRESS,
    ] {
        let mut h = coop();
        h.subscribe(&["t"]);
        h.answer_api_versions();
        let mut last = h.now;
        let mut delays = vec![];
        for _ in 0..4 {
            let fc = h.expect(ApiKey::FindCoordinator);
            delays.push(h.now - last);
            h.respond(
                &fc,
                FindCoordinatorResponse::default().with_error_code(code),
            );
            last = h.now;
            h.expect_nothing();
            assert_eq!(h.fire_next_timer(), Timer::CoordinatorBackoff);
        }
        // KIP-580: 100, 200, 400 ms ±20 %.
        for (d, base) in delays[1..].iter().zip([100.0, 200.0, 400.0]) {
            let ms = d.as_secs_f64() * 1000.0;
            assert!(
                ms >= base * 0.8 && ms <= base * 1.2,
                "code {code}: {ms} ms vs {base}"
            );
        }
        assert!(fatal(&h.take_events()).is_none());
    }
}

#[test]
fn find_coordinator_transport_error_renegotiates_on_a_new_connection_after_backoff() {
    let mut h = coop();
    h.subscribe(&["t"]);
    let a = h.answer_api_versions();
    let fc = h.expect(ApiKey::FindCoordinator);
    h.fail(&fc);
    h.expect_nothing();
    assert_eq!(h.fire_next_timer(), Timer::CoordinatorBackoff);
    let b = h.answer_api_versions();
    assert_ne!(a.connection, b.connection, "a new bootstrap connection");
    h.expect(ApiKey::FindCoordinator);
}

#[test]
fn find_coordinator_request_timeout_is_a_transport_error() {
    let mut h = coop();
    h.subscribe(&["t"]);
    h.answer_api_versions();
    h.expect(ApiKey::FindCoordinator);
    assert_eq!(h.fire_next_timer(), Timer::BootstrapRequest);
    assert_eq!(h.fire_next_timer(), Timer::CoordinatorBackoff);
    h.answer_api_versions();
    h.expect(ApiKey::FindCoordinator);
}

// ----- JoinGroup (§2.3) ---------------------------------------------------

#[test]
fn join_unknown_member_id_hard_resets_loses_partitions_and_rejoins_at_once() {
    let (mut h, j) = coop_rejoining();
    h.respond(&j, join_error(UNKNOWN_MEMBER_ID));
    let ev = h.take_events();
    assert_eq!(
        lost(&ev),
        vec![(tps(&[("t", 0), ("t", 1)]), LostReason::UnknownMember)]
    );
    let j2 = h.expect(ApiKey::JoinGroup);
    assert_eq!(j2.join().member_id.as_str(), "");
    assert!(j2.subscription().owned_partitions.is_empty());
    assert_eq!(j2.subscription().generation_id, -1);
}

#[test]
fn join_rebalance_in_progress_rejoins_at_once_keeping_member_id_and_partitions() {
    let (mut h, j) = coop_rejoining();
    h.respond(&j, join_error(REBALANCE_IN_PROGRESS));
    assert!(lost(&h.take_events()).is_empty());
    let j2 = h.expect(ApiKey::JoinGroup);
    assert_eq!(j2.join().member_id.as_str(), "m1");
    assert_eq!(
        j2.subscription().owned_partitions,
        tps(&[("t", 0), ("t", 1)])
    );
}

#[test]
fn join_coordinator_load_in_progress_retries_after_retry_backoff_on_the_same_coordinator() {
    let (mut h, j) = coop_rejoining();
    h.respond(&j, join_error(COORDINATOR_LOAD_IN_PROGRESS));
    h.expect_nothing();
    let at = h.now;
    assert_eq!(h.fire_next_timer(), Timer::JoinBackoff);
    assert_eq!(h.now - at, Duration::from_millis(100));
    let j2 = h.expect(ApiKey::JoinGroup);
    assert_eq!(j2.connection, j.connection, "coordinator kept");
    assert_eq!(j2.join().member_id.as_str(), "m1");
}

#[test]
fn join_not_coordinator_and_coordinator_not_available_rediscover_then_rejoin() {
    for code in [NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE] {
        let (mut h, j) = coop_rejoining();
        h.respond(&j, join_error(code));
        assert!(lost(&h.take_events()).is_empty(), "membership kept");
        h.expect_nothing();
        h.fire_next_timer();
        let fc = h.expect(ApiKey::FindCoordinator);
        h.respond(&fc, coordinator_found(2));
        h.answer_api_versions();
        let j2 = h.expect(ApiKey::JoinGroup);
        assert_ne!(j2.connection, j.connection);
        assert_eq!(j2.join().member_id.as_str(), "m1");
        assert_eq!(
            j2.subscription().owned_partitions,
            tps(&[("t", 0), ("t", 1)])
        );
    }
}

#[test]
fn join_fenced_instance_id_is_fatal_and_loses_partitions() {
    let (mut h, j) = coop_rejoining();
    h.respond(&j, join_error(FENCED_INSTANCE_ID));
    let ev = h.take_events();
    assert_eq!(
        lost(&ev),
        vec![(tps(&[("t", 0), ("t", 1)]), LostReason::Fatal)]
    );
    let err = fatal(&ev).unwrap();
    assert_eq!(err.class(), ErrorClass::Fenced);
    assert_eq!(h.group.state(), GroupState::Failed);
}

#[test]
fn join_fatal_errors_are_fatal() {
    // INCONSISTENT_GROUP_PROTOCOL, INVALID_GROUP_ID, INVALID_SESSION_TIMEOUT,
    // GROUP_AUTHORIZATION_FAILED, GROUP_MAX_SIZE_REACHED, UNSUPPORTED_VERSION,
    // and anything else (ILLEGAL_GENERATION).
    for code in [24, 26, 30, 81, 35, ILLEGAL_GENERATION] {
        let (mut h, j) = coop_rejoining();
        h.respond(&j, join_error(code));
        assert_fatal(&mut h, code);
    }
}

#[test]
fn join_inconsistent_group_protocol_is_reported_and_retried_with_backoff() {
    // librdkafka's choice (PROTOCOL.md §2.9): a rolling upgrade can leave no
    // protocol in common until a lingering member's session expires.
    let (mut h, j) = coop_rejoining();
    h.respond(&j, join_error(23));
    let ev = h.take_events();
    assert!(fatal(&ev).is_none());
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::Warning(w) if w.code() == Some(23)))
    );
    h.expect_nothing();
    assert_eq!(h.fire_next_timer(), Timer::JoinBackoff);
    let j2 = h.expect(ApiKey::JoinGroup);
    assert_eq!(j2.join().member_id.as_str(), "m1");
    h.respond(&j2, join_error(23));
    let at = h.now;
    h.fire_next_timer();
    let ms = (h.now - at).as_millis();
    assert!((160..=240).contains(&ms), "second backoff doubles: {ms} ms");
}

#[test]
fn join_with_another_protocol_type_is_inconsistent_and_fatal() {
    let (mut h, j) = coop_rejoining();
    h.respond(
        &j,
        join_ok("m1", 2, "coop-first")
            .with_protocol_type(Some(StrBytes::from_static_str("connect"))),
    );
    assert_fatal(&mut h, 23);
}

#[test]
fn join_transport_error_rediscovers_the_coordinator_and_keeps_membership() {
    let (mut h, j) = coop_rejoining();
    h.fail(&j);
    assert!(lost(&h.take_events()).is_empty());
    h.fire_next_timer();
    let fc = h.expect(ApiKey::FindCoordinator);
    h.respond(&fc, coordinator_found(COORD));
    h.answer_api_versions();
    assert_eq!(h.expect(ApiKey::JoinGroup).join().member_id.as_str(), "m1");
}

// ----- SyncGroup (§2.4) ---------------------------------------------------

#[test]
fn sync_rebalance_in_progress_rejoins_at_once_without_reset() {
    let (mut h, s) = coop_syncing();
    h.respond(&s, sync_error(REBALANCE_IN_PROGRESS));
    assert!(lost(&h.take_events()).is_empty());
    let j = h.expect(ApiKey::JoinGroup);
    assert_eq!(j.join().member_id.as_str(), "m1");
    assert_eq!(j.subscription().generation_id, 2);
    assert_eq!(
        j.subscription().owned_partitions,
        tps(&[("t", 0), ("t", 1)])
    );
}

#[test]
fn sync_illegal_generation_resets_the_generation_keeps_the_member_id_and_loses_partitions() {
    let (mut h, s) = coop_syncing();
    h.respond(&s, sync_error(ILLEGAL_GENERATION));
    assert_eq!(
        lost(&h.take_events()),
        vec![(tps(&[("t", 0), ("t", 1)]), LostReason::IllegalGeneration)]
    );
    let j = h.expect(ApiKey::JoinGroup);
    assert_eq!(j.join().member_id.as_str(), "m1");
    assert_eq!(j.subscription().generation_id, -1);
    assert!(j.subscription().owned_partitions.is_empty());
}

#[test]
fn sync_unknown_member_id_hard_resets_and_loses_partitions() {
    let (mut h, s) = coop_syncing();
    h.respond(&s, sync_error(UNKNOWN_MEMBER_ID));
    assert_eq!(
        lost(&h.take_events()),
        vec![(tps(&[("t", 0), ("t", 1)]), LostReason::UnknownMember)]
    );
    assert_eq!(h.expect(ApiKey::JoinGroup).join().member_id.as_str(), "");
}

#[test]
fn sync_coordinator_errors_rediscover_and_rejoin_keeping_partitions() {
    for code in [NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE] {
        let (mut h, s) = coop_syncing();
        h.respond(&s, sync_error(code));
        assert!(lost(&h.take_events()).is_empty());
        h.fire_next_timer();
        let fc = h.expect(ApiKey::FindCoordinator);
        h.respond(&fc, coordinator_found(COORD));
        h.answer_api_versions();
        let j = h.expect(ApiKey::JoinGroup);
        assert_eq!(j.join().member_id.as_str(), "m1");
        assert_eq!(
            j.subscription().owned_partitions,
            tps(&[("t", 0), ("t", 1)])
        );
    }
}

#[test]
fn sync_invalid_request_warns_and_rejoins_after_a_backoff_keeping_member_and_partitions() {
    // librdkafka's mock refuses a follower's late SyncGroup with
    // INVALID_REQUEST; librdkafka rejoins, and so do we (not fatal).
    let (mut h, s) = coop_syncing();
    h.respond(&s, sync_error(42));
    let events = h.take_events();
    assert!(lost(&events).is_empty());
    assert!(events.iter().any(|e| matches!(e, Event::Warning(_))));
    assert!(!events.iter().any(|e| matches!(e, Event::Fatal(_))));
    h.expect_nothing();
    h.fire_next_timer();
    let j = h.expect(ApiKey::JoinGroup);
    assert_eq!(j.join().member_id.as_str(), "m1");
    assert_eq!(
        j.subscription().owned_partitions,
        tps(&[("t", 0), ("t", 1)])
    );
}

#[test]
fn sync_fatal_errors_are_fatal() {
    // FENCED_INSTANCE_ID, GROUP_AUTHORIZATION_FAILED, INCONSISTENT_GROUP_PROTOCOL, other.
    for code in [FENCED_INSTANCE_ID, GROUP_AUTHORIZATION_FAILED, 23, -1] {
        let (mut h, s) = coop_syncing();
        h.respond(&s, sync_error(code));
        assert_fatal(&mut h, code);
    }
}

// ----- Heartbeat (§2.5) ---------------------------------------------------

fn coop_stable() -> Harness {
    let mut h = coop();
    h.join_stable(&["t"], "m1", 1, &[("t", 0), ("t", 1)]);
    h.take_events();
    h
}

#[test]
fn heartbeat_none_keeps_the_session_and_schedules_the_next() {
    let mut h = coop_stable();
    let hb = h.next_heartbeat();
    let at = h.now;
    h.respond(&hb, HeartbeatResponse::default());
    let hb2 = h.next_heartbeat();
    assert_eq!(h.now - at, Duration::from_secs(1));
    assert_eq!(hb2.heartbeat().generation_id, 1);
}

#[test]
fn heartbeat_rebalance_in_progress_requests_a_rejoin_and_counts_for_the_session() {
    let mut h = coop_stable();
    let hb = h.next_heartbeat();
    h.respond(&hb, heartbeat_error(REBALANCE_IN_PROGRESS));
    let ev = h.take_events();
    assert!(ev.iter().any(|e| matches!(e, Event::Rejoining { .. })));
    assert!(lost(&ev).is_empty() && revoked(&ev).is_empty());
    assert_eq!(h.expect(ApiKey::JoinGroup).join().member_id.as_str(), "m1");
}

#[test]
fn heartbeat_illegal_generation_resets_generation_and_loses_partitions() {
    let mut h = coop_stable();
    let hb = h.next_heartbeat();
    h.respond(&hb, heartbeat_error(ILLEGAL_GENERATION));
    assert_eq!(
        lost(&h.take_events()),
        vec![(tps(&[("t", 0), ("t", 1)]), LostReason::IllegalGeneration)]
    );
    let j = h.expect(ApiKey::JoinGroup);
    assert_eq!(j.join().member_id.as_str(), "m1");
    assert_eq!(j.subscription().generation_id, -1);
}

#[test]
fn heartbeat_unknown_member_id_hard_resets_and_loses_partitions() {
    let mut h = coop_stable();
    let hb = h.next_heartbeat();
    h.respond(&hb, heartbeat_error(UNKNOWN_MEMBER_ID));
    assert_eq!(
        lost(&h.take_events()),
        vec![(tps(&[("t", 0), ("t", 1)]), LostReason::UnknownMember)]
    );
    assert_eq!(h.expect(ApiKey::JoinGroup).join().member_id.as_str(), "");
}

#[test]
fn heartbeat_fenced_instance_id_loses_partitions_and_is_fatal() {
    let mut h = Harness::new(
        Harness::config(&[coop_first()])
            .instance_id("pod-1")
            .build()
            .unwrap(),
    );
    h.join_stable(&["t"], "m1", 1, &[("t", 0)]);
    h.take_events();
    let hb = h.next_heartbeat();
    h.respond(&hb, heartbeat_error(FENCED_INSTANCE_ID));
    let ev = h.take_events();
    assert_eq!(lost(&ev), vec![(tps(&[("t", 0)]), LostReason::Fenced)]);
    assert_eq!(fatal(&ev).unwrap().class(), ErrorClass::Fenced);
    assert_eq!(h.group.state(), GroupState::Failed);
    h.expect_nothing();
    assert_eq!(h.group.poll_timeout(), None);
}

#[test]
fn heartbeat_coordinator_errors_rediscover_and_keep_membership() {
    for code in [NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE] {
        let mut h = coop_stable();
        let hb = h.next_heartbeat();
        h.respond(&hb, heartbeat_error(code));
        assert!(lost(&h.take_events()).is_empty());
        assert_eq!(h.group.owned().len(), 2);
        assert_eq!(h.group.state(), GroupState::Stable);
        h.fire_next_timer();
        let fc = h.expect(ApiKey::FindCoordinator);
        h.respond(&fc, coordinator_found(2));
        h.answer_api_versions();
        let hb2 = h.next_heartbeat();
        assert_eq!(hb2.heartbeat().generation_id, 1);
        assert_eq!(hb2.heartbeat().member_id.as_str(), "m1");
        assert!(matches!(hb2.broker, kgroup::Broker::Node(ref n) if n.node_id == 2));
    }
}

#[test]
fn heartbeat_transport_error_rediscovers_and_keeps_membership() {
    let mut h = coop_stable();
    let hb = h.next_heartbeat();
    h.fail(&hb);
    assert!(lost(&h.take_events()).is_empty());
    assert_eq!(h.group.state(), GroupState::Stable);
    h.fire_next_timer();
    h.expect(ApiKey::FindCoordinator);
}

#[test]
fn heartbeat_group_authorization_failed_is_fatal() {
    let mut h = coop_stable();
    let hb = h.next_heartbeat();
    h.respond(&hb, heartbeat_error(GROUP_AUTHORIZATION_FAILED));
    assert_fatal(&mut h, GROUP_AUTHORIZATION_FAILED);
}

#[test]
fn heartbeat_other_errors_back_off_and_retry() {
    let mut h = coop_stable();
    let hb = h.next_heartbeat();
    let at = h.now;
    h.respond(&hb, heartbeat_error(-1)); // UNKNOWN_SERVER_ERROR
    assert!(fatal(&h.take_events()).is_none());
    let _hb2 = h.next_heartbeat();
    let ms = (h.now - at).as_millis();
    assert!((80..=120).contains(&ms), "{ms} ms");
}

#[test]
fn local_session_expiry_loses_partitions_and_rejoins_as_a_new_member() {
    let mut h = coop_stable();
    // Heartbeats go unanswered: the coordinator connection hangs.
    let _hb = h.next_heartbeat();
    h.advance(Duration::from_secs(11));
    let ev = h.take_events();
    assert_eq!(
        lost(&ev),
        vec![(tps(&[("t", 0), ("t", 1)]), LostReason::SessionExpired)]
    );
}

#[test]
fn coordinator_unreachable_within_the_session_keeps_membership() {
    let mut h = coop_stable();
    let hb = h.next_heartbeat();
    h.fail(&hb);
    // FindCoordinator keeps failing for 5 s (session is 10 s).
    let until = h.now + Duration::from_secs(5);
    while h.now < until {
        h.fire_next_timer();
        for s in h.poll_all() {
            match s.api {
                ApiKey::FindCoordinator => h.respond(
                    &s,
                    FindCoordinatorResponse::default().with_error_code(COORDINATOR_NOT_AVAILABLE),
                ),
                ApiKey::ApiVersions => h.respond(&s, api_versions(&Default::default())),
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert!(lost(&h.take_events()).is_empty());
    assert_eq!(h.group.owned().len(), 2);
    h.fire_next_timer();
    let fc = h.expect(ApiKey::FindCoordinator);
    h.respond(&fc, coordinator_found(3));
    h.answer_api_versions();
    let hb = h.next_heartbeat();
    h.respond(&hb, HeartbeatResponse::default());
    assert!(lost(&h.take_events()).is_empty());
    assert_eq!(h.group.generation(), 1);
}

// ----- LeaveGroup (§2.6) --------------------------------------------------

#[test]
fn leave_group_any_answer_ends_leaving_and_is_never_retried() {
    for (code, member_code) in [
        (0, 0),
        (0, UNKNOWN_MEMBER_ID),
        (0, FENCED_INSTANCE_ID),
        (COORDINATOR_NOT_AVAILABLE, 0),
    ] {
        let mut h = coop_stable();
        h.group.close(h.now);
        let l = h.expect(ApiKey::LeaveGroup);
        let member = leave_group_response::MemberResponse::default()
            .with_member_id(StrBytes::from_static_str("m1"))
            .with_error_code(member_code);
        h.respond(
            &l,
            LeaveGroupResponse::default()
                .with_error_code(code)
                .with_members(vec![member]),
        );
        assert_eq!(h.group.state(), GroupState::Left);
        assert!(matches!(h.take_events().last(), Some(Event::Left)));
        h.advance(Duration::from_secs(60));
        h.expect_nothing();
    }
}

#[test]
fn leave_group_transport_error_ends_leaving() {
    let mut h = coop_stable();
    h.group.close(h.now);
    let l = h.expect(ApiKey::LeaveGroup);
    h.fail(&l);
    assert_eq!(h.group.state(), GroupState::Left);
    h.expect_nothing();
}

#[test]
fn close_while_join_group_is_parked_leaves_on_a_fresh_connection_and_loses_partitions() {
    let (mut h, j) = coop_rejoining();
    h.group.close(h.now);
    let ev = h.take_events();
    assert_eq!(
        lost(&ev),
        vec![(tps(&[("t", 0), ("t", 1)]), LostReason::LeftDuringRebalance)]
    );
    let v = h.answer_api_versions();
    assert_ne!(v.connection, j.connection);
    let l = h.expect(ApiKey::LeaveGroup);
    assert_eq!(l.leave().members[0].member_id.as_str(), "m1");
}

#[test]
fn join_fenced_after_a_coordinator_failover_rejoins_once_as_a_new_incarnation() {
    let mut h = Harness::new(
        Harness::config(&[coop_first()])
            .instance_id("pod-1")
            .build()
            .unwrap(),
    );
    h.join_stable(&["t"], "m1", 1, &[("t", 0)]);
    h.take_events();
    // The coordinator moves; the new one loaded an older generation that
    // maps pod-1 to an earlier member id.
    let hb = h.next_heartbeat();
    h.respond(&hb, heartbeat_error(NOT_COORDINATOR));
    h.fire_next_timer();
    let fc = h.expect(ApiKey::FindCoordinator);
    h.respond(&fc, coordinator_found(2));
    h.answer_api_versions();
    let hb = h.next_heartbeat();
    h.respond(&hb, heartbeat_error(REBALANCE_IN_PROGRESS));
    let j = h.expect(ApiKey::JoinGroup);
    assert_eq!(j.join().member_id.as_str(), "m1");
    h.respond(&j, join_error(FENCED_INSTANCE_ID));
    let ev = h.take_events();
    assert!(fatal(&ev).is_none(), "{ev:?}");
    assert_eq!(lost(&ev), vec![(tps(&[("t", 0)]), LostReason::Fenced)]);
    let j2 = h.expect(ApiKey::JoinGroup);
    assert_eq!(j2.join().member_id.as_str(), "");
    assert_eq!(
        j2.join().group_instance_id.as_ref().map(|s| s.as_str()),
        Some("pod-1")
    );
    // Fenced again in the same coordinator epoch: another process holds it.
    h.respond(&j2, join_error(FENCED_INSTANCE_ID));
    assert!(fatal(&h.take_events()).is_some());
    assert_eq!(h.group.state(), GroupState::Failed);
}
