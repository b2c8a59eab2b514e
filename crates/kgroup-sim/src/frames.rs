//! Frame helpers for both sides of the simulated wire: size-prefixed Kafka
//! request and response frames built and read with `kafka-protocol`.
//!
//! The broker side uses [`decode_request_header`] and [`encode_response`];
//! tests and scripted clients use [`encode_request`] and [`decode_response`].

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};

/// A malformed frame.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// Fewer bytes than the size prefix announces, or than a header needs.
    #[error("truncated frame: {0}")]
    Truncated(&'static str),
    /// The header or body did not decode.
    #[error("cannot decode {what}: {detail}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// The codec's message.
        detail: String,
    },
    /// Encoding failed (a field not valid at the version).
    #[error("cannot encode {what} v{version}: {detail}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// Version.
        version: i16,
        /// The codec's message.
        detail: String,
    },
}

/// Strip the 4-byte size prefix, checking it matches the frame length.
pub fn unframe(frame: &[u8]) -> Result<Bytes, FrameError> {
    if frame.len() < 4 {
        return Err(FrameError::Truncated("size prefix"));
    }
    let mut size_bytes = &frame[..4];
    let size = size_bytes.get_i32();
    let body = &frame[4..];
    if size < 0 || usize::try_from(size).ok() != Some(body.len()) {
        return Err(FrameError::Truncated(
            "size prefix does not match frame length",
        ));
    }
    Ok(Bytes::copy_from_slice(body))
}

/// Decode the request header at the front of `payload` (a frame without its
/// size prefix), leaving `payload` at the body.
pub fn decode_request_header(payload: &mut Bytes) -> Result<(ApiKey, RequestHeader), FrameError> {
    if payload.len() < 8 {
        return Err(FrameError::Truncated("request header"));
    }
    let key = i16::from_be_bytes([payload[0], payload[1]]);
    let version = i16::from_be_bytes([payload[2], payload[3]]);
    let api = ApiKey::try_from(key).map_err(|_| FrameError::Decode {
        what: "api key",
        detail: format!("unknown api key {key}"),
    })?;
    let header_version = api.request_header_version(version);
    let header =
        RequestHeader::decode(payload, header_version).map_err(|e| FrameError::Decode {
            what: "request header",
            detail: e.to_string(),
        })?;
    Ok((api, header))
}

/// Encode a size-prefixed response frame for `api` at `version`.
/// ApiVersions responses always use header v0 (`ApiVersionsResponse.json`).
pub fn encode_response<T: Encodable>(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &T,
    what: &'static str,
) -> Result<Bytes, FrameError> {
    let header_version = if api == ApiKey::ApiVersions {
        0
    } else {
        api.response_header_version(version)
    };
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header
        .encode(&mut buf, header_version)
        .map_err(|e| FrameError::Encode {
            what: "response header",
            version: header_version,
            detail: e.to_string(),
        })?;
    body.encode(&mut buf, version)
        .map_err(|e| FrameError::Encode {
            what,
            version,
            detail: e.to_string(),
        })?;
    let size = i32::try_from(buf.len() - 4).map_err(|_| FrameError::Encode {
        what,
        version,
        detail: "frame too large".into(),
    })?;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

/// Encode a size-prefixed request frame (client side of scripted tests).
pub fn encode_request<T: Encodable + HeaderVersion>(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: &str,
    body: &T,
) -> Result<Bytes, FrameError> {
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(client_id.to_string())));
    header
        .encode(&mut buf, T::header_version(version))
        .map_err(|e| FrameError::Encode {
            what: "request header",
            version,
            detail: e.to_string(),
        })?;
    body.encode(&mut buf, version)
        .map_err(|e| FrameError::Encode {
            what: "request body",
            version,
            detail: e.to_string(),
        })?;
    let size = i32::try_from(buf.len() - 4).map_err(|_| FrameError::Encode {
        what: "request",
        version,
        detail: "frame too large".into(),
    })?;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

/// Decode a size-prefixed response frame: correlation id and body.
pub fn decode_response<T: Decodable>(
    api: ApiKey,
    version: i16,
    frame: &[u8],
) -> Result<(i32, T), FrameError> {
    let mut payload = unframe(frame)?;
    let header_version = if api == ApiKey::ApiVersions {
        0
    } else {
        api.response_header_version(version)
    };
    let header =
        ResponseHeader::decode(&mut payload, header_version).map_err(|e| FrameError::Decode {
            what: "response header",
            detail: e.to_string(),
        })?;
    let body = T::decode(&mut payload, version).map_err(|e| FrameError::Decode {
        what: "response body",
        detail: e.to_string(),
    })?;
    Ok((header.correlation_id, body))
}

/// The correlation id of a response frame (size prefix included), without
/// decoding the rest.
pub fn response_correlation_id(frame: &[u8]) -> Option<i32> {
    let b = frame.get(4..8)?;
    Some(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}
