//! Responses: matching them to requests in flight, and decoding them safely.
//!
//! [`decode_response`] reads the response header, has the bounded validator
//! (`super::bounded`) walk the whole body against the schema of the API and
//! version, and only then lets `kafka-protocol` decode it. The validator
//! requires the body to end exactly where the schema ends: trailing bytes
//! are an error, not ignored. A longer body than the schema allows means the
//! broker and kgroup disagree about the version or the schema, so the values
//! already read are suspect; being strict also lets the tests cross-check the
//! schemas against `kafka-protocol` byte for byte.

use std::collections::VecDeque;

use bytes::{Buf, Bytes};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Decodable, HeaderVersion};

use super::bounded::{self, Limits};
use super::error::{BrokerLabel, VersionSpan, WireError};
use super::frame::peek_correlation_id;

/// Prefix of the [`WireError::Decode`] detail when `kafka-protocol` refuses a
/// body the bounded validator accepted (a schema mismatch, never expected).
pub const DECODER_DISAGREES: &str = "kafka-protocol refused a body the validator accepted";

/// The response header version for `api` at `version`: v1 for flexible
/// versions, else v0, except ApiVersions, whose responses always use v0 so a
/// client can read the error whatever version it sent (PROTOCOL.md §0.4).
pub fn response_header_version(api: ApiKey, version: i16) -> i16 {
    if api == ApiKey::ApiVersions {
        0
    } else {
        api.response_header_version(version)
    }
}

/// Requests sent on one connection and not yet answered, oldest first.
///
/// Brokers answer in request order (PROTOCOL.md §0.2), so a response must
/// carry the oldest id in flight; anything else is an error, never a panic.
#[derive(Debug, Default)]
pub struct InFlight {
    queue: VecDeque<(i32, ApiKey, i16)>,
    broker: Option<i32>,
}

impl InFlight {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty table whose errors name `broker`.
    pub fn for_broker(broker: i32) -> Self {
        Self {
            queue: VecDeque::new(),
            broker: Some(broker),
        }
    }

    /// Records a request sent with `correlation_id`.
    pub fn register(
        &mut self,
        correlation_id: i32,
        api: ApiKey,
        version: i16,
    ) -> Result<(), WireError> {
        if self.queue.iter().any(|(id, _, _)| *id == correlation_id) {
            return Err(WireError::DuplicateCorrelationId {
                api,
                version,
                correlation_id,
                broker: BrokerLabel(self.broker),
            });
        }
        self.queue.push_back((correlation_id, api, version));
        Ok(())
    }

    /// Takes the request a response with `correlation_id` answers, returning
    /// its API and version.
    pub fn take(&mut self, correlation_id: i32) -> Result<(ApiKey, i16), WireError> {
        match self.queue.front() {
            Some(&(id, api, version)) if id == correlation_id => {
                self.queue.pop_front();
                Ok((api, version))
            }
            front => {
                let expected = front.map(|(id, _, _)| *id);
                match self.queue.iter().find(|(id, _, _)| *id == correlation_id) {
                    Some(&(_, api, version)) => Err(WireError::OutOfOrderCorrelationId {
                        api,
                        version,
                        correlation_id,
                        expected: expected.unwrap_or_default(),
                        broker: BrokerLabel(self.broker),
                    }),
                    None => Err(WireError::UnknownCorrelationId {
                        correlation_id,
                        expected,
                        broker: BrokerLabel(self.broker),
                    }),
                }
            }
        }
    }

    /// Takes the request the response `frame` answers (by its correlation id).
    pub fn take_for_frame(&mut self, frame: &[u8]) -> Result<(i32, ApiKey, i16), WireError> {
        let correlation_id = peek_correlation_id(frame).ok_or(WireError::Truncated {
            what: "response header",
            needed: 4,
            available: frame.len() as u64,
            broker: BrokerLabel(self.broker),
        })?;
        let (api, version) = self.take(correlation_id)?;
        Ok((correlation_id, api, version))
    }

    /// Number of requests in flight.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// True when nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Forgets every request (the connection was closed).
    pub fn clear(&mut self) {
        self.queue.clear();
    }
}

/// Decodes a response `frame` (without its size prefix) of `api` at
/// `version` into `R`, returning the correlation id and the body.
///
/// The body is validated against kgroup's schema before `kafka-protocol`
/// decodes it, with the default [`Limits`]: no count or length may exceed the
/// bytes that remain, and no array may need more memory than the bound for
/// this frame's size. `R` must be the response type of `api`.
pub fn decode_response<R: Decodable + HeaderVersion>(
    api: ApiKey,
    version: i16,
    frame: Bytes,
) -> Result<(i32, R), WireError> {
    decode_response_with(api, version, frame, &Limits::default())
}

/// [`decode_response`] with explicit allocation [`Limits`].
pub fn decode_response_with<R: Decodable + HeaderVersion>(
    api: ApiKey,
    version: i16,
    mut frame: Bytes,
    limits: &Limits,
) -> Result<(i32, R), WireError> {
    let header_version = response_header_version(api, version);
    if R::header_version(version) != header_version {
        return Err(WireError::Decode {
            api,
            version,
            detail: "response type does not match the API (header versions differ)".into(),
            broker: BrokerLabel(None),
        });
    }
    let frame_len = frame.len();
    let correlation_id = peek_correlation_id(&frame).ok_or(WireError::Truncated {
        what: "response header",
        needed: 4,
        available: frame_len as u64,
        broker: BrokerLabel(None),
    })?;
    let header_len = bounded::validate_response(api, version, header_version, &frame, limits)?;
    frame.advance(header_len);
    let body = R::decode(&mut frame, version).map_err(|e| WireError::Decode {
        api,
        version,
        // Unreachable while the schemas match kafka-protocol (the schema
        // tests hold them to it); the prefix makes a mismatch recognisable.
        detail: format!("{DECODER_DISAGREES}: {e:#}"),
        broker: BrokerLabel(None),
    })?;
    if !frame.is_empty() {
        // The validator already requires the schema to end at the frame's end;
        // this guards a disagreement between the schema and kafka-protocol.
        return Err(WireError::TrailingBytes {
            api,
            version,
            extra: frame.len() as u64,
            broker: BrokerLabel(None),
        });
    }
    Ok((correlation_id, body))
}

/// Like [`decode_response`], but when strict decoding fails and the top-level
/// error code can still be read at its fixed position and is non-zero, the
/// error becomes [`WireError::MalformedErrorResponse`] carrying that code, so
/// the engine still learns e.g. `NOT_COORDINATOR` from a malformed reply.
///
/// librdkafka's mock broker writes nulls where the schema forbids them in
/// some error responses (FindCoordinator, JoinGroup, SyncGroup).
pub fn decode_response_lenient<R: Decodable + HeaderVersion>(
    api: ApiKey,
    version: i16,
    frame: Bytes,
) -> Result<(i32, R), WireError> {
    let header_version = response_header_version(api, version);
    let strict = decode_response::<R>(api, version, frame.clone());
    match strict {
        Ok(ok) => Ok(ok),
        Err(err) if is_body_error(&err) => {
            let header_len = if header_version >= 1 {
                bounded::header_len_v1(&frame)
            } else {
                Some(4)
            };
            let code = header_len
                .and_then(|len| frame.get(len..))
                .and_then(|body| lenient_error_code(api, version, body));
            match code {
                Some(error_code) if error_code != 0 => Err(WireError::MalformedErrorResponse {
                    api,
                    version,
                    error_code,
                    cause: Box::new(err),
                    broker: BrokerLabel(None),
                }),
                _ => Err(err),
            }
        }
        Err(err) => Err(err),
    }
}

fn is_body_error(err: &WireError) -> bool {
    matches!(
        err,
        WireError::Decode { .. }
            | WireError::HostileCount { .. }
            | WireError::DenseFrame { .. }
            | WireError::InvalidUtf8 { .. }
            | WireError::TrailingBytes { .. }
            | WireError::Truncated { .. }
    )
}

/// Reads the top-level error code of a response `body` (after the response
/// header) at its fixed position, without decoding the rest.
///
/// Returns `None` for APIs or versions whose top-level error code is not at
/// a fixed offset (OffsetCommit has none; OffsetFetch v1 has none, v2..=7
/// puts it after the topics array; v8+ moved it per group; FindCoordinator
/// v4+ has it per coordinator), or when the body is too short.
pub fn lenient_error_code(api: ApiKey, version: i16, body: &[u8]) -> Option<i16> {
    // Offsets follow the response schemas: a throttle time (int32) precedes
    // the error code from the version named below.
    let offset = match api {
        // ApiVersions puts the error code first, even at v1+ (throttle after).
        ApiKey::ApiVersions => 0,
        ApiKey::FindCoordinator if (0..=3).contains(&version) => throttle_from(version, 1),
        ApiKey::JoinGroup if (0..=9).contains(&version) => throttle_from(version, 2),
        ApiKey::SyncGroup if (0..=5).contains(&version) => throttle_from(version, 1),
        ApiKey::Heartbeat if (0..=4).contains(&version) => throttle_from(version, 1),
        ApiKey::LeaveGroup if (0..=5).contains(&version) => throttle_from(version, 1),
        ApiKey::ConsumerGroupHeartbeat if (0..=1).contains(&version) => 4,
        _ => return None,
    };
    let bytes: [u8; 2] = body.get(offset..offset + 2)?.try_into().ok()?;
    Some(i16::from_be_bytes(bytes))
}

/// Offset of the error code: 4 when the version has a leading throttle time.
fn throttle_from(version: i16, first_with_throttle: i16) -> usize {
    if version >= first_with_throttle { 4 } else { 0 }
}

/// The versions kgroup can decode for `api`, if it decodes that API at all.
pub fn decodable_versions(api: ApiKey) -> Option<VersionSpan> {
    bounded::schema_for(api).map(|s| s.versions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{HeartbeatResponse, JoinGroupResponse, SyncGroupResponse};

    /// JoinGroup v9 response: header v1, then a body whose compact members
    /// count is u32::MAX (the input that aborts an unbounded decoder).
    pub(crate) fn killer_join_group_v9() -> Bytes {
        let mut f = vec![0, 0, 0, 1, 0]; // correlation id 1, no header tags
        f.extend_from_slice(&[0, 0, 0, 0]); // throttle
        f.extend_from_slice(&[0, 0]); // error code
        f.extend_from_slice(&[0, 0, 0, 1]); // generation
        f.extend_from_slice(&[0, 0, 1, 0, 1]); // type null, name null, leader "", skip false, member ""
        f.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]); // members: u32::MAX
        Bytes::from(f)
    }

    #[test]
    fn killer_join_group_frame_is_a_typed_error() {
        let err =
            decode_response::<JoinGroupResponse>(ApiKey::JoinGroup, 9, killer_join_group_v9())
                .unwrap_err();
        assert!(
            matches!(
                err,
                WireError::HostileCount {
                    api: ApiKey::JoinGroup,
                    version: 9,
                    field: "members",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn heartbeat_v4_decodes_with_header_v1() {
        let frame = Bytes::from_static(&[0, 0, 0, 9, 0, 0, 0, 0, 5, 0, 27, 0]);
        let (id, r) = decode_response::<HeartbeatResponse>(ApiKey::Heartbeat, 4, frame).unwrap();
        assert_eq!(id, 9);
        assert_eq!(r.throttle_time_ms, 5);
        assert_eq!(r.error_code, 27);
    }

    #[test]
    fn trailing_bytes_and_unsupported_versions_are_typed() {
        let frame = Bytes::from_static(&[0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        let err =
            decode_response::<HeartbeatResponse>(ApiKey::Heartbeat, 4, frame.clone()).unwrap_err();
        assert!(
            matches!(err, WireError::TrailingBytes { extra: 1, .. }),
            "{err}"
        );
        let err = decode_response::<HeartbeatResponse>(ApiKey::Heartbeat, 5, frame).unwrap_err();
        assert!(
            matches!(err, WireError::UnsupportedVersion { version: 5, .. }),
            "{err}"
        );
        let err =
            decode_response::<HeartbeatResponse>(ApiKey::Heartbeat, 0, Bytes::from_static(&[0, 0]))
                .unwrap_err();
        assert!(matches!(err, WireError::Truncated { .. }), "{err}");
    }

    #[test]
    fn invalid_utf8_is_typed() {
        // SyncGroup v5: protocol_type "\xff".
        let frame = Bytes::from_static(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0xff, 0, 1, 0]);
        let err = decode_response::<SyncGroupResponse>(ApiKey::SyncGroup, 5, frame).unwrap_err();
        assert!(
            matches!(
                err,
                WireError::InvalidUtf8 {
                    field: "protocol_type",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn in_flight_matches_in_order_and_rejects_unknown_and_repeated_ids() {
        let mut t = InFlight::for_broker(3);
        t.register(1, ApiKey::Heartbeat, 4).unwrap();
        t.register(2, ApiKey::OffsetCommit, 8).unwrap();
        assert!(matches!(
            t.register(2, ApiKey::Heartbeat, 4),
            Err(WireError::DuplicateCorrelationId {
                correlation_id: 2,
                ..
            })
        ));
        assert!(matches!(
            t.take(2),
            Err(WireError::OutOfOrderCorrelationId { expected: 1, .. })
        ));
        assert_eq!(t.take(1).unwrap(), (ApiKey::Heartbeat, 4));
        assert_eq!(t.take(2).unwrap(), (ApiKey::OffsetCommit, 8));
        let err = t.take(2).unwrap_err();
        assert!(matches!(
            err,
            WireError::UnknownCorrelationId {
                correlation_id: 2,
                expected: None,
                ..
            }
        ));
        assert!(err.to_string().contains("broker 3"));
        assert!(t.take_for_frame(&[0, 1]).is_err());
    }

    #[test]
    fn lenient_path_recovers_the_error_code_of_a_null_leader() {
        // JoinGroup v5 (non-flexible): throttle, error 16, generation -1,
        // protocol name null (allowed), leader null (forbidden).
        let frame = Bytes::from_static(&[
            0, 0, 0, 4, 0, 0, 0, 0, 0, 16, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ]);
        let strict =
            decode_response::<JoinGroupResponse>(ApiKey::JoinGroup, 5, frame.clone()).unwrap_err();
        assert!(matches!(strict, WireError::Decode { .. }), "{strict}");
        let err =
            decode_response_lenient::<JoinGroupResponse>(ApiKey::JoinGroup, 5, frame).unwrap_err();
        assert_eq!(err.error_code(), Some(16), "{err}");
    }
}
