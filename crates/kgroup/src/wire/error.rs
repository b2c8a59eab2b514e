//! [`WireError`]: everything that can go wrong between bytes and messages.
//!
//! Every variant that concerns one request or response names its API and
//! version; every variant carries a `broker` slot that the layer which knows
//! the connection fills with [`WireError::with_broker`], so a message always
//! says which broker sent the bad bytes when that is known.

use kafka_protocol::messages::ApiKey;

use crate::ErrorClass;

/// Displays an optional broker id as `broker 3` or `broker ?`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BrokerLabel(pub Option<i32>);

impl std::fmt::Display for BrokerLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(id) => write!(f, "broker {id}"),
            None => f.write_str("broker ?"),
        }
    }
}

/// An inclusive range of API versions, as ApiVersions reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VersionSpan {
    /// Lowest version.
    pub min: i16,
    /// Highest version.
    pub max: i16,
}

impl VersionSpan {
    /// The span `min..=max`.
    pub const fn new(min: i16, max: i16) -> Self {
        Self { min, max }
    }

    /// True when `version` lies in the span.
    pub const fn contains(self, version: i16) -> bool {
        self.min <= version && version <= self.max
    }
}

impl std::fmt::Display for VersionSpan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "v{}..=v{}", self.min, self.max)
    }
}

/// Errors of the wire layer: framing, correlation, bounded decoding,
/// ConsumerProtocol payloads and version negotiation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// A frame's length prefix exceeds the configured maximum frame size.
    #[error("{broker}: frame of {size} bytes exceeds the maximum frame size of {max} bytes")]
    FrameTooLarge {
        /// Declared (or encoded) frame size.
        size: u64,
        /// Configured maximum.
        max: u64,
        /// Broker the frame came from, when known.
        broker: BrokerLabel,
    },
    /// A frame's length prefix is negative.
    #[error("{broker}: frame length prefix is negative ({size})")]
    NegativeFrameLength {
        /// The length read from the wire.
        size: i32,
        /// Broker the frame came from, when known.
        broker: BrokerLabel,
    },
    /// The stream ended inside a frame, or a frame is shorter than its header.
    #[error("{broker}: truncated {what}: need {needed} bytes, have {available}")]
    Truncated {
        /// What was being read ("frame", "response header", ...).
        what: &'static str,
        /// Bytes needed.
        needed: u64,
        /// Bytes available.
        available: u64,
        /// Broker the bytes came from, when known.
        broker: BrokerLabel,
    },
    /// The frame decoder refused more input: it already holds a whole
    /// maximum-size frame's worth of bytes that were not taken out.
    #[error(
        "{broker}: frame decoder buffer full ({buffered} bytes buffered, limit {limit}); take frames out before pushing more"
    )]
    BufferFull {
        /// Bytes buffered plus bytes offered.
        buffered: u64,
        /// The limit (maximum frame plus its 4-byte prefix).
        limit: u64,
        /// Broker the bytes came from, when known.
        broker: BrokerLabel,
    },
    /// A response carried a correlation id with no request in flight.
    #[error(
        "{broker}: response with unknown correlation id {correlation_id} (oldest in flight: {expected:?})"
    )]
    UnknownCorrelationId {
        /// The id read from the response.
        correlation_id: i32,
        /// The id of the oldest request in flight, if any.
        expected: Option<i32>,
        /// Broker the response came from, when known.
        broker: BrokerLabel,
    },
    /// A response arrived out of request order (a broker answers in order,
    /// PROTOCOL.md §0.2), or the id is in flight but is not the oldest.
    #[error(
        "{broker}: {api:?} v{version} response with correlation id {correlation_id} arrived before the response to {expected}"
    )]
    OutOfOrderCorrelationId {
        /// API of the request this id belongs to.
        api: ApiKey,
        /// Version of that request.
        version: i16,
        /// The id read from the response.
        correlation_id: i32,
        /// The id of the oldest request in flight.
        expected: i32,
        /// Broker the response came from, when known.
        broker: BrokerLabel,
    },
    /// A request was registered with a correlation id already in flight.
    #[error(
        "{broker}: {api:?} v{version} request reuses correlation id {correlation_id}, which is still in flight"
    )]
    DuplicateCorrelationId {
        /// API of the new request.
        api: ApiKey,
        /// Version of the new request.
        version: i16,
        /// The repeated id.
        correlation_id: i32,
        /// Broker the request goes to, when known.
        broker: BrokerLabel,
    },
    /// An API version that kgroup (or the message type) does not implement.
    #[error("{broker}: {api:?} v{version} is not supported by kgroup (implemented: {supported})")]
    UnsupportedVersion {
        /// The API.
        api: ApiKey,
        /// The version asked for.
        version: i16,
        /// What kgroup implements for this API.
        supported: VersionSpan,
        /// Broker concerned, when known.
        broker: BrokerLabel,
    },
    /// Encoding a request failed (a value did not fit its wire type).
    #[error("{broker}: cannot encode {api:?} v{version} request: {detail}")]
    Encode {
        /// The API.
        api: ApiKey,
        /// The version.
        version: i16,
        /// What went wrong.
        detail: String,
        /// Broker the request goes to, when known.
        broker: BrokerLabel,
    },
    /// The response body does not match the schema of its API and version.
    #[error("{broker}: cannot decode {api:?} v{version} response: {detail}")]
    Decode {
        /// The API.
        api: ApiKey,
        /// The version.
        version: i16,
        /// What went wrong, with the field path.
        detail: String,
        /// Broker the response came from, when known.
        broker: BrokerLabel,
    },
    /// An array count or a length is larger than the bytes that remain could
    /// hold: the frame is lying about its contents.
    #[error(
        "{broker}: hostile {api:?} v{version} response: {field} declares {count} entries but only {remaining} bytes remain (at least {min_size} bytes each)"
    )]
    HostileCount {
        /// The API.
        api: ApiKey,
        /// The version.
        version: i16,
        /// Field path, e.g. `members[]`.
        field: &'static str,
        /// Declared count or length.
        count: u64,
        /// Bytes remaining in the frame.
        remaining: u64,
        /// Minimum wire size of one entry.
        min_size: u64,
        /// Broker the response came from, when known.
        broker: BrokerLabel,
    },
    /// An array's in-memory size would exceed the allocation bound for a
    /// frame of this size (see `docs/wire.md`): a dense, hostile frame.
    #[error(
        "{broker}: dense {api:?} v{version} response: {field} with {count} entries needs {bytes} bytes in memory, over the bound of {bound} bytes for a {frame_len}-byte frame"
    )]
    DenseFrame {
        /// The API.
        api: ApiKey,
        /// The version.
        version: i16,
        /// Field path.
        field: &'static str,
        /// Declared count.
        count: u64,
        /// In-memory bytes the decoder would allocate.
        bytes: u64,
        /// The bound.
        bound: u64,
        /// Frame length.
        frame_len: u64,
        /// Broker the response came from, when known.
        broker: BrokerLabel,
    },
    /// A string field is not valid UTF-8.
    #[error("{broker}: {api:?} v{version} response: field {field} is not valid UTF-8")]
    InvalidUtf8 {
        /// The API.
        api: ApiKey,
        /// The version.
        version: i16,
        /// Field path.
        field: &'static str,
        /// Broker the response came from, when known.
        broker: BrokerLabel,
    },
    /// The body continues after the last field of the schema.
    #[error(
        "{broker}: {api:?} v{version} response has {extra} trailing bytes after its last field"
    )]
    TrailingBytes {
        /// The API.
        api: ApiKey,
        /// The version.
        version: i16,
        /// Bytes left over.
        extra: u64,
        /// Broker the response came from, when known.
        broker: BrokerLabel,
    },
    /// A strict decode failed, but the top-level error code could be read at
    /// its fixed position (librdkafka's mock broker writes nulls where the
    /// schema forbids them in some error responses).
    #[error(
        "{broker}: {api:?} v{version} response carries error code {error_code} but its body is malformed: {cause}"
    )]
    MalformedErrorResponse {
        /// The API.
        api: ApiKey,
        /// The version.
        version: i16,
        /// The error code read at its fixed position.
        error_code: i16,
        /// Why strict decoding failed.
        cause: Box<WireError>,
        /// Broker the response came from, when known.
        broker: BrokerLabel,
    },
    /// A ConsumerProtocol Subscription or Assignment payload is unusable.
    #[error("{broker}: ConsumerProtocol {what}: {detail}")]
    ConsumerProtocol {
        /// "subscription" or "assignment".
        what: &'static str,
        /// What is wrong with it.
        detail: String,
        /// Broker the payload came from, when known.
        broker: BrokerLabel,
    },
    /// The broker does not offer an API the engine needs.
    #[error("{broker} does not support {api:?}, which kgroup needs (kgroup implements {ours})")]
    MissingApi {
        /// The API.
        api: ApiKey,
        /// What kgroup implements.
        ours: VersionSpan,
        /// Broker concerned, when known.
        broker: BrokerLabel,
    },
    /// The broker's and kgroup's version ranges for an API do not overlap.
    #[error(
        "{broker}: no common version for {api:?}: broker offers {broker_range}, kgroup implements {ours}"
    )]
    NoCommonVersion {
        /// The API.
        api: ApiKey,
        /// What the broker offers.
        broker_range: VersionSpan,
        /// What kgroup implements.
        ours: VersionSpan,
        /// Broker concerned, when known.
        broker: BrokerLabel,
    },
    /// The broker answered ApiVersions with an error other than a version
    /// downgrade, or kept refusing after the retry.
    #[error("{broker}: ApiVersions v{version} failed with error code {error_code}")]
    ApiVersionsFailed {
        /// Version of the failed request.
        version: i16,
        /// Error code of the response.
        error_code: i16,
        /// Broker concerned, when known.
        broker: BrokerLabel,
    },
    /// A method of the negotiation was called in a state that does not take it.
    #[error("{broker}: ApiVersions negotiation: {detail}")]
    NegotiationState {
        /// What was called in which state.
        detail: &'static str,
        /// Broker concerned, when known.
        broker: BrokerLabel,
    },
    /// The client software name or version does not match
    /// `[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?` (ApiVersionsRequest.isValid).
    #[error(
        "invalid client software {field} {value:?}: must match [a-zA-Z0-9](?:[a-zA-Z0-9\\-.]*[a-zA-Z0-9])?"
    )]
    InvalidClientSoftware {
        /// "name" or "version".
        field: &'static str,
        /// The rejected value.
        value: String,
    },
}

impl WireError {
    /// What to do about this error.
    ///
    /// Framing, correlation and decoding errors mean the connection's byte
    /// stream can no longer be trusted: close it and retry on a new one
    /// ([`ErrorClass::Retriable`]). A broker that lacks an API or version the
    /// engine needs, a version kgroup does not implement, or an invalid
    /// client software name cannot be fixed by retrying ([`ErrorClass::Fatal`]).
    pub fn class(&self) -> ErrorClass {
        match self {
            WireError::FrameTooLarge { .. }
            | WireError::NegativeFrameLength { .. }
            | WireError::Truncated { .. }
            | WireError::BufferFull { .. }
            | WireError::UnknownCorrelationId { .. }
            | WireError::OutOfOrderCorrelationId { .. }
            | WireError::Decode { .. }
            | WireError::HostileCount { .. }
            | WireError::DenseFrame { .. }
            | WireError::InvalidUtf8 { .. }
            | WireError::TrailingBytes { .. }
            | WireError::MalformedErrorResponse { .. }
            | WireError::ConsumerProtocol { .. }
            | WireError::ApiVersionsFailed { .. } => ErrorClass::Retriable,
            WireError::DuplicateCorrelationId { .. }
            | WireError::UnsupportedVersion { .. }
            | WireError::Encode { .. }
            | WireError::MissingApi { .. }
            | WireError::NoCommonVersion { .. }
            | WireError::NegotiationState { .. }
            | WireError::InvalidClientSoftware { .. } => ErrorClass::Fatal,
        }
    }

    /// The API this error concerns, when it concerns one.
    pub fn api(&self) -> Option<ApiKey> {
        match self {
            WireError::OutOfOrderCorrelationId { api, .. }
            | WireError::DuplicateCorrelationId { api, .. }
            | WireError::UnsupportedVersion { api, .. }
            | WireError::Encode { api, .. }
            | WireError::Decode { api, .. }
            | WireError::HostileCount { api, .. }
            | WireError::DenseFrame { api, .. }
            | WireError::InvalidUtf8 { api, .. }
            | WireError::TrailingBytes { api, .. }
            | WireError::MalformedErrorResponse { api, .. }
            | WireError::MissingApi { api, .. }
            | WireError::NoCommonVersion { api, .. } => Some(*api),
            WireError::ApiVersionsFailed { .. } | WireError::NegotiationState { .. } => {
                Some(ApiKey::ApiVersions)
            }
            _ => None,
        }
    }

    /// The top-level error code a malformed response still carried
    /// ([`WireError::MalformedErrorResponse`]), if any.
    pub fn error_code(&self) -> Option<i16> {
        match self {
            WireError::MalformedErrorResponse { error_code, .. } => Some(*error_code),
            _ => None,
        }
    }

    /// The same error, naming `broker` (the layer that owns the connection
    /// knows which broker it talks to; the codec does not).
    pub fn with_broker(mut self, id: i32) -> Self {
        let label = BrokerLabel(Some(id));
        match &mut self {
            WireError::FrameTooLarge { broker, .. }
            | WireError::NegativeFrameLength { broker, .. }
            | WireError::Truncated { broker, .. }
            | WireError::BufferFull { broker, .. }
            | WireError::UnknownCorrelationId { broker, .. }
            | WireError::OutOfOrderCorrelationId { broker, .. }
            | WireError::DuplicateCorrelationId { broker, .. }
            | WireError::UnsupportedVersion { broker, .. }
            | WireError::Encode { broker, .. }
            | WireError::Decode { broker, .. }
            | WireError::HostileCount { broker, .. }
            | WireError::DenseFrame { broker, .. }
            | WireError::InvalidUtf8 { broker, .. }
            | WireError::TrailingBytes { broker, .. }
            | WireError::ConsumerProtocol { broker, .. }
            | WireError::MissingApi { broker, .. }
            | WireError::NoCommonVersion { broker, .. }
            | WireError::ApiVersionsFailed { broker, .. }
            | WireError::NegotiationState { broker, .. } => *broker = label,
            WireError::MalformedErrorResponse { broker, cause, .. } => {
                *broker = label;
                let inner = cause.as_ref().clone().with_broker(id);
                **cause = inner;
            }
            WireError::InvalidClientSoftware { .. } => {}
        }
        self
    }

    /// The broker this error names, if known.
    pub fn broker(&self) -> Option<i32> {
        match self {
            WireError::FrameTooLarge { broker, .. }
            | WireError::NegativeFrameLength { broker, .. }
            | WireError::Truncated { broker, .. }
            | WireError::BufferFull { broker, .. }
            | WireError::UnknownCorrelationId { broker, .. }
            | WireError::OutOfOrderCorrelationId { broker, .. }
            | WireError::DuplicateCorrelationId { broker, .. }
            | WireError::UnsupportedVersion { broker, .. }
            | WireError::Encode { broker, .. }
            | WireError::Decode { broker, .. }
            | WireError::HostileCount { broker, .. }
            | WireError::DenseFrame { broker, .. }
            | WireError::InvalidUtf8 { broker, .. }
            | WireError::TrailingBytes { broker, .. }
            | WireError::MalformedErrorResponse { broker, .. }
            | WireError::ConsumerProtocol { broker, .. }
            | WireError::MissingApi { broker, .. }
            | WireError::NoCommonVersion { broker, .. }
            | WireError::ApiVersionsFailed { broker, .. }
            | WireError::NegotiationState { broker, .. } => broker.0,
            WireError::InvalidClientSoftware { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_api_version_and_broker() {
        let e = WireError::TrailingBytes {
            api: ApiKey::JoinGroup,
            version: 9,
            extra: 3,
            broker: BrokerLabel(None),
        }
        .with_broker(7);
        let text = e.to_string();
        assert!(text.contains("JoinGroup"), "{text}");
        assert!(text.contains("v9"), "{text}");
        assert!(text.contains("broker 7"), "{text}");
        assert_eq!(e.broker(), Some(7));
        assert_eq!(e.api(), Some(ApiKey::JoinGroup));
        assert_eq!(e.class(), ErrorClass::Retriable);
    }

    #[test]
    fn with_broker_reaches_the_cause_of_a_malformed_response() {
        let e = WireError::MalformedErrorResponse {
            api: ApiKey::SyncGroup,
            version: 3,
            error_code: 27,
            cause: Box::new(WireError::Decode {
                api: ApiKey::SyncGroup,
                version: 3,
                detail: "null".into(),
                broker: BrokerLabel(None),
            }),
            broker: BrokerLabel(None),
        }
        .with_broker(2);
        assert_eq!(e.error_code(), Some(27));
        match e {
            WireError::MalformedErrorResponse { cause, .. } => assert_eq!(cause.broker(), Some(2)),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn missing_api_is_fatal_and_names_both_ranges() {
        let e = WireError::NoCommonVersion {
            api: ApiKey::JoinGroup,
            broker_range: VersionSpan::new(10, 12),
            ours: VersionSpan::new(0, 9),
            broker: BrokerLabel(Some(1)),
        };
        assert_eq!(e.class(), ErrorClass::Fatal);
        let text = e.to_string();
        assert!(
            text.contains("v10..=v12") && text.contains("v0..=v9"),
            "{text}"
        );
    }
}
