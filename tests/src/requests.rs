//! Request builders for the integration tests, so each test reads as the
//! protocol steps it takes. Messages are `#[non_exhaustive]` in
//! kafka-protocol 0.18: they are built with `Default` and `with_*` setters.

use bytes::Bytes;
use kgroup::kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kgroup::kafka_protocol::messages::leave_group_request::MemberIdentity;
use kgroup::kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kgroup::kafka_protocol::messages::{
    FindCoordinatorRequest, GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest,
    SyncGroupRequest,
};
use kgroup::kafka_protocol::protocol::StrBytes;

/// A `StrBytes` from a `&str`.
pub fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

/// An empty ConsumerProtocol subscription/assignment payload body (version
/// 0, no topics, no user data): the mock treats it as opaque bytes.
pub const EMPTY_CONSUMER_PAYLOAD: &[u8] = &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

/// FindCoordinator for `group` (key type 0 = group from v1 on).
pub fn find_coordinator(group: &str) -> FindCoordinatorRequest {
    FindCoordinatorRequest::default().with_key(s(group))
}

/// JoinGroup for `group` with `member_id` (empty on first join), protocol
/// type `consumer` and the given protocol names, in preference order.
pub fn join_group(
    group: &str,
    member_id: &str,
    session_ms: i32,
    protocols: &[&str],
) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(session_ms)
        .with_rebalance_timeout_ms(session_ms)
        .with_member_id(s(member_id))
        .with_protocol_type(s("consumer"))
        .with_protocols(
            protocols
                .iter()
                .map(|name| {
                    JoinGroupRequestProtocol::default()
                        .with_name(s(name))
                        .with_metadata(Bytes::from_static(EMPTY_CONSUMER_PAYLOAD))
                })
                .collect(),
        )
}

/// SyncGroup for `group` at `generation`; a leader passes the assignments
/// of every member, a follower none.
pub fn sync_group(
    group: &str,
    generation: i32,
    member_id: &str,
    assignments: &[&str],
) -> SyncGroupRequest {
    SyncGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(generation)
        .with_member_id(s(member_id))
        .with_assignments(
            assignments
                .iter()
                .map(|m| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(s(m))
                        .with_assignment(Bytes::from_static(EMPTY_CONSUMER_PAYLOAD))
                })
                .collect(),
        )
}

/// Heartbeat for `member_id` of `group` at `generation`.
pub fn heartbeat(group: &str, generation: i32, member_id: &str) -> HeartbeatRequest {
    HeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(generation)
        .with_member_id(s(member_id))
}

/// LeaveGroup for one member, in the layout of `version` (v0-2: a single
/// `MemberId`; v3+: the `Members` batch).
pub fn leave_group(group: &str, member_id: &str, version: i16) -> LeaveGroupRequest {
    let request = LeaveGroupRequest::default().with_group_id(GroupId(s(group)));
    if version < 3 {
        request.with_member_id(s(member_id))
    } else {
        request.with_members(vec![MemberIdentity::default().with_member_id(s(member_id))])
    }
}
