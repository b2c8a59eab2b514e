//! The ConsumerProtocol payloads carried opaquely by JoinGroup (member
//! metadata = [`Subscription`]) and SyncGroup (member assignment =
//! [`Assignment`]), protocol type `"consumer"`.
//!
//! Both are non-flexible structs preceded by an int16 version, which
//! `kafka-protocol`'s `ConsumerProtocolSubscription` / `ConsumerProtocolAssignment`
//! do not write; this module adds it, bounds the decode like every response
//! (`super::bounded`), and exposes plain sorted Rust types so the membership
//! and assignor code never touches `kafka-protocol` types.
//!
//! Versions (PROTOCOL.md §4.6, `ConsumerProtocol.java`): a version newer
//! than [`CONSUMER_PROTOCOL_MAX_VERSION`] is read as the newest known one,
//! since new versions only append fields; trailing bytes are ignored, as
//! Java's reader (a `ByteBuffer` parse) does; a negative version or a payload
//! shorter than the 2-byte prefix is an error. The caller decides what an
//! empty assignment means (PROTOCOL.md §4.6: kgroup treats it as empty and
//! reports it).

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicName,
    consumer_protocol_assignment as cpa, consumer_protocol_subscription as cps,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::bounded::{self, Limits};
use super::error::{BrokerLabel, WireError};
use crate::TopicPartition;

/// Newest ConsumerProtocol version kgroup knows (and writes by default).
pub const CONSUMER_PROTOCOL_MAX_VERSION: i16 = 3;

/// The protocol type of consumer groups on the wire.
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// A member's subscription (JoinGroup protocol metadata).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Subscription {
    /// Subscribed topics, sorted and without duplicates.
    pub topics: Vec<String>,
    /// Assignor-specific data (PROTOCOL.md §4.7).
    pub user_data: Option<Bytes>,
    /// Partitions the member owns (v1+), sorted and without duplicates.
    pub owned_partitions: Vec<TopicPartition>,
    /// Generation the owned partitions belong to (v2+); -1 when unknown.
    pub generation_id: i32,
    /// The member's rack (v3+).
    pub rack_id: Option<String>,
}

/// A member's assignment (SyncGroup assignment).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Assignment {
    /// Assigned partitions, sorted and without duplicates.
    pub partitions: Vec<TopicPartition>,
    /// Assignor-specific data.
    pub user_data: Option<Bytes>,
}

impl Subscription {
    /// A subscription to `topics` with no user data, no owned partitions,
    /// generation -1 and no rack.
    pub fn new<I, S>(topics: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut topics: Vec<String> = topics.into_iter().map(Into::into).collect();
        topics.sort();
        topics.dedup();
        Self {
            topics,
            generation_id: -1,
            ..Self::default()
        }
    }

    /// Encodes at `version` (0..=3) with its int16 version prefix. Fields the
    /// version lacks are left out (owned partitions need v1, the generation
    /// v2, the rack v3).
    pub fn encode(&self, version: i16) -> Result<Bytes, WireError> {
        check_encode_version("subscription", version)?;
        let mut topics: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        topics.sort_unstable();
        topics.dedup();
        let body = ConsumerProtocolSubscription::default()
            .with_topics(
                topics
                    .into_iter()
                    .map(|t| StrBytes::from_string(t.to_owned()))
                    .collect(),
            )
            .with_user_data(self.user_data.clone())
            .with_owned_partitions(
                group_by_topic(&self.owned_partitions)
                    .into_iter()
                    .map(|(topic, partitions)| {
                        cps::TopicPartition::default()
                            .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
                            .with_partitions(partitions)
                    })
                    .collect(),
            )
            .with_generation_id(self.generation_id)
            .with_rack_id(self.rack_id.clone().map(StrBytes::from_string));
        encode_versioned("subscription", version, &body)
    }

    /// Decodes a payload of any version >= 0, returning the version it was
    /// written at and the fields kgroup knows.
    pub fn decode(payload: &[u8]) -> Result<(i16, Self), WireError> {
        let (version, mut body) =
            split_version("subscription", payload, bounded::subscription_schema())?;
        let raw = ConsumerProtocolSubscription::decode(
            &mut body,
            version.min(CONSUMER_PROTOCOL_MAX_VERSION),
        )
        .map_err(|e| cp_error("subscription", format!("{e:#}")))?;
        let mut topics: Vec<String> = raw.topics.iter().map(|t| t.as_str().to_owned()).collect();
        topics.sort();
        topics.dedup();
        let owned = flatten(
            "subscription",
            raw.owned_partitions
                .iter()
                .map(|tp| (tp.topic.0.as_str(), &tp.partitions)),
        )?;
        Ok((
            version,
            Self {
                topics,
                user_data: raw.user_data,
                owned_partitions: owned,
                generation_id: raw.generation_id,
                rack_id: raw.rack_id.map(|r| r.as_str().to_owned()),
            },
        ))
    }
}

impl Assignment {
    /// An assignment of `partitions` (sorted here) with no user data.
    pub fn new(mut partitions: Vec<TopicPartition>) -> Self {
        partitions.sort();
        partitions.dedup();
        Self {
            partitions,
            user_data: None,
        }
    }

    /// Encodes at `version` (0..=3; the body is the same in all of them)
    /// with its int16 version prefix.
    pub fn encode(&self, version: i16) -> Result<Bytes, WireError> {
        check_encode_version("assignment", version)?;
        let body = ConsumerProtocolAssignment::default()
            .with_assigned_partitions(
                group_by_topic(&self.partitions)
                    .into_iter()
                    .map(|(topic, partitions)| {
                        cpa::TopicPartition::default()
                            .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
                            .with_partitions(partitions)
                    })
                    .collect(),
            )
            .with_user_data(self.user_data.clone());
        encode_versioned("assignment", version, &body)
    }

    /// Decodes a payload of any version >= 0, returning the version it was
    /// written at and the assignment.
    pub fn decode(payload: &[u8]) -> Result<(i16, Self), WireError> {
        let (version, mut body) =
            split_version("assignment", payload, bounded::assignment_schema())?;
        let raw = ConsumerProtocolAssignment::decode(
            &mut body,
            version.min(CONSUMER_PROTOCOL_MAX_VERSION),
        )
        .map_err(|e| cp_error("assignment", format!("{e:#}")))?;
        let partitions = flatten(
            "assignment",
            raw.assigned_partitions
                .iter()
                .map(|tp| (tp.topic.0.as_str(), &tp.partitions)),
        )?;
        Ok((
            version,
            Self {
                partitions,
                user_data: raw.user_data,
            },
        ))
    }
}

fn cp_error(what: &'static str, detail: String) -> WireError {
    WireError::ConsumerProtocol {
        what,
        detail,
        broker: BrokerLabel(None),
    }
}

fn check_encode_version(what: &'static str, version: i16) -> Result<(), WireError> {
    if (0..=CONSUMER_PROTOCOL_MAX_VERSION).contains(&version) {
        Ok(())
    } else {
        Err(cp_error(
            what,
            format!(
                "cannot encode version {version} (kgroup knows 0..={CONSUMER_PROTOCOL_MAX_VERSION})"
            ),
        ))
    }
}

fn encode_versioned<T: Encodable>(
    what: &'static str,
    version: i16,
    body: &T,
) -> Result<Bytes, WireError> {
    let size = body
        .compute_size(version)
        .map_err(|e| cp_error(what, format!("{e:#}")))?;
    let mut out = BytesMut::with_capacity(2 + size);
    out.put_i16(version);
    body.encode(&mut out, version)
        .map_err(|e| cp_error(what, format!("{e:#}")))?;
    Ok(out.freeze())
}

/// Reads the version prefix and validates the body at the newest version
/// both sides know; returns the wire version and the validated body bytes.
fn split_version(
    what: &'static str,
    payload: &[u8],
    schema: &bounded::schema::Schema,
) -> Result<(i16, Bytes), WireError> {
    let (prefix, rest) = match payload.split_first_chunk::<2>() {
        Some(split) => split,
        None => {
            return Err(cp_error(
                what,
                format!(
                    "{} bytes, shorter than the 2-byte version prefix",
                    payload.len()
                ),
            ));
        }
    };
    let version = i16::from_be_bytes(*prefix);
    if version < 0 {
        return Err(cp_error(what, format!("negative version {version}")));
    }
    let read_as = version.min(CONSUMER_PROTOCOL_MAX_VERSION);
    let covered = bounded::validate_body(
        schema,
        read_as,
        rest,
        payload.len(),
        true,
        &Limits::default(),
    )
    .map_err(|e| {
        let detail = payload_detail(&e);
        cp_error(
            what,
            format!("version {version} (read as {read_as}): {detail}"),
        )
    })?;
    let body = rest.get(..covered).unwrap_or_default();
    Ok((version, Bytes::copy_from_slice(body)))
}

/// What the bounded reader found wrong in a ConsumerProtocol payload, without
/// the response framing its messages carry (the payload is not a response;
/// the caller's error says which payload and names the broker).
fn payload_detail(e: &WireError) -> String {
    match e {
        WireError::HostileCount {
            field,
            count,
            remaining,
            min_size,
            ..
        } => format!(
            "{field} declares {count} entries but only {remaining} bytes remain (at least {min_size} bytes each)"
        ),
        WireError::DenseFrame {
            field,
            count,
            bytes,
            bound,
            ..
        } => format!(
            "{field} with {count} entries needs {bytes} bytes in memory, over the bound of {bound} bytes"
        ),
        WireError::InvalidUtf8 { field, .. } => format!("field {field} is not valid UTF-8"),
        WireError::TrailingBytes { extra, .. } => {
            format!("{extra} trailing bytes after the last field")
        }
        WireError::Truncated {
            needed, available, ..
        } => format!("truncated: need {needed} bytes, have {available}"),
        other => other.to_string(),
    }
}

/// Groups sorted partitions by topic, as the wire wants them.
fn group_by_topic(partitions: &[TopicPartition]) -> Vec<(&str, Vec<i32>)> {
    let mut sorted: Vec<&TopicPartition> = partitions.iter().collect();
    sorted.sort();
    sorted.dedup();
    let mut out: Vec<(&str, Vec<i32>)> = Vec::new();
    for tp in sorted {
        match out.last_mut() {
            Some((topic, parts)) if *topic == tp.topic.as_str() => parts.push(tp.partition),
            _ => out.push((tp.topic.as_str(), vec![tp.partition])),
        }
    }
    out
}

/// Flattens per-topic partition lists into sorted, deduplicated pairs.
/// Longest topic name Kafka allows (`Topic.MAX_NAME_LENGTH` in Java's
/// `org.apache.kafka.common.internals.Topic`).
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// One [`TopicPartition`] per partition, sorted and deduplicated.
///
/// Each `TopicPartition` owns a copy of its topic name, so a name that
/// carries partitions must be a real topic name (at most
/// [`MAX_TOPIC_NAME_LEN`] bytes): otherwise a 32 KB name repeated for every
/// 4-byte partition turns a 100 KB payload into half a gigabyte (found by
/// the `consumer_protocol` fuzz target's replay,
/// `consumer_protocol_long_topic_name_amplification_is_bounded`). With the
/// limit, the decoded size stays within ~70 times the payload.
fn flatten<'a>(
    what: &'static str,
    topics: impl Iterator<Item = (&'a str, &'a Vec<i32>)>,
) -> Result<Vec<TopicPartition>, WireError> {
    let mut out: Vec<TopicPartition> = Vec::new();
    for (topic, parts) in topics {
        if topic.len() > MAX_TOPIC_NAME_LEN && !parts.is_empty() {
            return Err(cp_error(
                what,
                format!(
                    "a topic name of {} bytes (Kafka allows {MAX_TOPIC_NAME_LEN}) with {} partitions",
                    topic.len(),
                    parts.len()
                ),
            ));
        }
        out.extend(parts.iter().map(|p| TopicPartition::new(topic, *p)));
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Subscription {
        Subscription {
            topics: vec!["a".into(), "b".into()],
            user_data: Some(Bytes::from_static(b"ud")),
            owned_partitions: vec![
                TopicPartition::new("a", 0),
                TopicPartition::new("a", 2),
                TopicPartition::new("b", 1),
            ],
            generation_id: 7,
            rack_id: Some("rack-1".into()),
        }
    }

    #[test]
    fn subscription_round_trips_at_v3_and_drops_fields_at_lower_versions() {
        let s = sample();
        assert_eq!(
            Subscription::decode(&s.encode(3).unwrap()).unwrap(),
            (3, s.clone())
        );
        let (v, d) = Subscription::decode(&s.encode(2).unwrap()).unwrap();
        assert_eq!(v, 2);
        assert_eq!(d.rack_id, None);
        assert_eq!(d.generation_id, 7);
        let (_, d) = Subscription::decode(&s.encode(1).unwrap()).unwrap();
        assert_eq!(d.generation_id, -1);
        assert_eq!(d.owned_partitions, s.owned_partitions);
        let (_, d) = Subscription::decode(&s.encode(0).unwrap()).unwrap();
        assert!(d.owned_partitions.is_empty());
        assert_eq!(d.topics, s.topics);
    }

    #[test]
    fn newer_version_is_read_as_newest_known() {
        let s = sample();
        let mut bytes = s.encode(3).unwrap().to_vec();
        bytes[..2].copy_from_slice(&9i16.to_be_bytes());
        bytes.extend_from_slice(b"future fields");
        let (v, d) = Subscription::decode(&bytes).unwrap();
        assert_eq!(v, 9);
        assert_eq!(d, s);
    }

    #[test]
    fn a_hostile_count_in_a_payload_is_reported_as_the_payload_not_a_response() {
        // Version 0 assignment: one topic array entry claiming 0x7fffffff topics.
        let bad = [0u8, 0, 0x7f, 0xff, 0xff, 0xff];
        let e = Assignment::decode(&bad).expect_err("hostile count");
        let text = e.with_broker(2).to_string();
        assert!(
            text.starts_with("broker 2: ConsumerProtocol assignment: version 0"),
            "{text}"
        );
        assert!(text.contains("declares 2147483647 entries"), "{text}");
        assert!(!text.contains("response"), "{text}");
    }

    #[test]
    fn short_and_negative_payloads_are_typed_errors() {
        for bad in [&b""[..], &[0u8][..], &[0xff, 0xff, 0, 0, 0, 0][..]] {
            assert!(matches!(
                Subscription::decode(bad),
                Err(WireError::ConsumerProtocol {
                    what: "subscription",
                    ..
                })
            ));
            assert!(matches!(
                Assignment::decode(bad),
                Err(WireError::ConsumerProtocol {
                    what: "assignment",
                    ..
                })
            ));
        }
    }

    #[test]
    fn hostile_topic_count_is_refused_without_allocating() {
        // v0 subscription declaring i32::MAX topics in 6 bytes.
        let payload = [0, 0, 0x7f, 0xff, 0xff, 0xff];
        let err = Subscription::decode(&payload).unwrap_err();
        assert!(err.to_string().contains("topics"), "{err}");
    }

    #[test]
    fn assignment_is_sorted_and_round_trips() {
        let a = Assignment {
            partitions: vec![
                TopicPartition::new("z", 1),
                TopicPartition::new("a", 3),
                TopicPartition::new("a", 1),
            ],
            user_data: None,
        };
        let (v, d) = Assignment::decode(&a.encode(1).unwrap()).unwrap();
        assert_eq!(v, 1);
        assert_eq!(
            d.partitions,
            vec![
                TopicPartition::new("a", 1),
                TopicPartition::new("a", 3),
                TopicPartition::new("z", 1)
            ]
        );
    }
}
