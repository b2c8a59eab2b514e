//! Framing: the 4-byte big-endian size prefix that delimits every Kafka
//! request and response, and the request header.
//!
//! Encoding writes straight into a caller-owned [`BytesMut`], so a connection
//! that keeps one output buffer makes no heap allocation per request once the
//! buffer has grown to its working size (the request header is written by
//! hand for that reason: building a `RequestHeader` would allocate the client
//! id). Decoding splits a byte stream into frames and never buffers more than
//! one maximum-size frame.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Encodable, HeaderVersion};

use super::error::{BrokerLabel, WireError};

/// Default maximum frame size: 100 MiB, Kafka's `socket.request.max.bytes`
/// default.
pub const DEFAULT_MAX_FRAME: usize = 100 * 1024 * 1024;

/// Appends one complete request frame to `out`: the size prefix, the request
/// header (v1, or v2 with an empty tagged-field section for flexible
/// versions, as `ApiKey::request_header_version` says) and `body` encoded at
/// `version`.
///
/// Makes no heap allocation when `out` has room for the frame. On error,
/// `out` is left as it was.
pub fn encode_request_into<T: Encodable + HeaderVersion>(
    out: &mut BytesMut,
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: &str,
    body: &T,
) -> Result<(), WireError> {
    let start = out.len();
    let result = write_frame(out, api, version, correlation_id, client_id, body);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn write_frame<T: Encodable + HeaderVersion>(
    out: &mut BytesMut,
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: &str,
    body: &T,
) -> Result<(), WireError> {
    let encode_error = |detail: String| WireError::Encode {
        api,
        version,
        detail,
        broker: BrokerLabel(None),
    };
    let client_len = i16::try_from(client_id.len())
        .map_err(|_| encode_error(format!("client id of {} bytes", client_id.len())))?;
    let header_version = T::header_version(version);
    if header_version != api.request_header_version(version) {
        return Err(encode_error(format!(
            "body type's header version {header_version} does not match {api:?}'s"
        )));
    }
    let start = out.len();
    out.put_i32(0); // size, patched below
    out.put_i16(api as i16);
    out.put_i16(version);
    out.put_i32(correlation_id);
    // Request header v1+: nullable string client id (never compact, even in
    // header v2, as RequestHeader.json says: "flexibleVersions": "none" for it).
    out.put_i16(client_len);
    out.put_slice(client_id.as_bytes());
    if header_version >= 2 {
        out.put_u8(0); // no tagged fields
    }
    body.encode(out, version)
        .map_err(|e| encode_error(e.to_string()))?;
    let size = out.len() - start - 4;
    let size = i32::try_from(size).map_err(|_| WireError::FrameTooLarge {
        size: size as u64,
        max: i32::MAX as u64,
        broker: BrokerLabel(None),
    })?;
    if let Some(prefix) = out.get_mut(start..start + 4) {
        prefix.copy_from_slice(&size.to_be_bytes());
    }
    Ok(())
}

/// [`encode_request_into`] into a new buffer sized for the frame.
pub fn encode_request<T: Encodable + HeaderVersion>(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: &str,
    body: &T,
) -> Result<Bytes, WireError> {
    let body_size = body.compute_size(version).map_err(|e| WireError::Encode {
        api,
        version,
        detail: e.to_string(),
        broker: BrokerLabel(None),
    })?;
    let mut out = BytesMut::with_capacity(4 + 8 + 2 + client_id.len() + 1 + body_size);
    encode_request_into(&mut out, api, version, correlation_id, client_id, body)?;
    Ok(out.freeze())
}

/// The correlation id at the start of a response frame (without its size
/// prefix), if the frame is long enough to have one.
pub fn peek_correlation_id(frame: &[u8]) -> Option<i32> {
    let bytes: [u8; 4] = frame.get(..4)?.try_into().ok()?;
    Some(i32::from_be_bytes(bytes))
}

/// Splits a byte stream into frames.
///
/// Push bytes in with [`FrameDecoder::push`], take complete frames out with
/// [`FrameDecoder::next_frame`] (each one without its 4-byte size prefix).
/// The decoder holds at most one maximum-size frame plus its prefix: a push
/// that would exceed that is refused with [`WireError::BufferFull`], so the
/// caller drains frames between pushes (as any read loop does).
#[derive(Debug)]
pub struct FrameDecoder {
    buf: BytesMut,
    max_frame: usize,
    broker: Option<i32>,
    failed: bool,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME)
    }
}

impl FrameDecoder {
    /// A decoder that rejects frames longer than `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            max_frame: max_frame.min(i32::MAX as usize),
            broker: None,
            failed: false,
        }
    }

    /// Names the broker this stream comes from in every error.
    pub fn with_broker(mut self, broker: i32) -> Self {
        self.broker = Some(broker);
        self
    }

    /// The maximum frame size.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Bytes buffered and not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    fn label(&self) -> BrokerLabel {
        BrokerLabel(self.broker)
    }

    /// Appends bytes read from the connection.
    ///
    /// Refuses (and keeps nothing of) a push that would make the buffer hold
    /// more than one maximum frame plus its prefix; reports a bad size
    /// prefix as soon as it is complete.
    pub fn push(&mut self, data: &[u8]) -> Result<(), WireError> {
        let limit = self.max_frame + 4;
        let total = self.buf.len().saturating_add(data.len());
        if total > limit {
            return Err(WireError::BufferFull {
                buffered: total as u64,
                limit: limit as u64,
                broker: self.label(),
            });
        }
        self.buf.extend_from_slice(data);
        self.check_prefix().map(|_| ())
    }

    /// The length of the frame at the front of the buffer, once its prefix
    /// is complete; an error for a negative or oversize prefix.
    fn check_prefix(&mut self) -> Result<Option<usize>, WireError> {
        let Some(size) = peek_correlation_id(&self.buf) else {
            return Ok(None);
        };
        if size < 0 {
            self.failed = true;
            return Err(WireError::NegativeFrameLength {
                size,
                broker: self.label(),
            });
        }
        let size = size as usize;
        if size > self.max_frame {
            self.failed = true;
            return Err(WireError::FrameTooLarge {
                size: size as u64,
                max: self.max_frame as u64,
                broker: self.label(),
            });
        }
        Ok(Some(size))
    }

    /// The next complete frame, without its size prefix, or `None` when more
    /// bytes are needed. After a framing error the stream is unusable and
    /// every call returns the error again.
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, WireError> {
        let Some(size) = self.check_prefix()? else {
            return Ok(None);
        };
        if self.buf.len() < 4 + size {
            return Ok(None);
        }
        self.buf.advance(4);
        let frame = self.buf.split_to(size).freeze();
        Ok(Some(frame))
    }

    /// Call when the stream has ended: an error if it ended inside a frame.
    pub fn finish(&self) -> Result<(), WireError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let needed = match peek_correlation_id(&self.buf) {
            Some(size) if size >= 0 => size as u64 + 4,
            _ => 4,
        };
        Err(WireError::Truncated {
            what: "frame",
            needed,
            available: self.buf.len() as u64,
            broker: self.label(),
        })
    }

    /// True once a framing error has been reported.
    pub fn is_failed(&self) -> bool {
        self.failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{GroupId, HeartbeatRequest};
    use kafka_protocol::protocol::StrBytes;

    fn heartbeat() -> HeartbeatRequest {
        HeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_generation_id(3)
            .with_member_id(StrBytes::from_static_str("m-1"))
    }

    #[test]
    fn header_v1_layout() {
        let frame = encode_request(ApiKey::Heartbeat, 3, 42, "cli", &heartbeat()).unwrap();
        let size = i32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
        assert_eq!(size, frame.len() - 4);
        assert_eq!(&frame[4..6], &12i16.to_be_bytes());
        assert_eq!(&frame[6..8], &3i16.to_be_bytes());
        assert_eq!(&frame[8..12], &42i32.to_be_bytes());
        assert_eq!(&frame[12..14], &3i16.to_be_bytes());
        assert_eq!(&frame[14..17], b"cli");
        // v3 body: group id (non-compact) follows directly.
        assert_eq!(&frame[17..19], &1i16.to_be_bytes());
    }

    #[test]
    fn header_v2_has_empty_tag_section_and_parses_back() {
        let frame = encode_request(ApiKey::Heartbeat, 4, 7, "cli", &heartbeat()).unwrap();
        assert_eq!(frame[17], 0, "empty tagged fields in header v2");
        let mut body = frame.slice(4..);
        let header =
            kafka_protocol::protocol::decode_request_header_from_buffer(&mut body).unwrap();
        assert_eq!(header.correlation_id, 7);
        assert_eq!(header.client_id.as_deref(), Some("cli"));
        use kafka_protocol::protocol::Decodable;
        let decoded = HeartbeatRequest::decode(&mut body, 4).unwrap();
        assert_eq!(decoded, heartbeat());
        assert!(body.is_empty());
    }

    #[test]
    fn unsupported_version_is_typed_and_leaves_buffer_untouched() {
        let mut out = BytesMut::from(&b"abc"[..]);
        let err =
            encode_request_into(&mut out, ApiKey::Heartbeat, 99, 1, "c", &heartbeat()).unwrap_err();
        assert!(matches!(
            err,
            WireError::Encode {
                api: ApiKey::Heartbeat,
                version: 99,
                ..
            }
        ));
        assert_eq!(&out[..], b"abc");
    }

    #[test]
    fn decoder_splits_frames_across_pushes() {
        let a = encode_request(ApiKey::Heartbeat, 3, 1, "c", &heartbeat()).unwrap();
        let b = encode_request(ApiKey::Heartbeat, 3, 2, "c", &heartbeat()).unwrap();
        let mut stream = a.to_vec();
        stream.extend_from_slice(&b);
        let mut dec = FrameDecoder::default();
        let mut frames = Vec::new();
        for byte in &stream {
            dec.push(std::slice::from_ref(byte)).unwrap();
            while let Some(f) = dec.next_frame().unwrap() {
                frames.push(f);
            }
        }
        assert_eq!(frames.len(), 2);
        assert_eq!(&frames[0][..], &a[4..]);
        assert_eq!(&frames[1][..], &b[4..]);
        dec.finish().unwrap();
    }

    #[test]
    fn negative_oversize_and_truncated_frames_are_typed() {
        let mut dec = FrameDecoder::new(16).with_broker(5);
        let err = dec.push(&(-2i32).to_be_bytes()).unwrap_err();
        assert!(matches!(
            err,
            WireError::NegativeFrameLength { size: -2, .. }
        ));
        assert!(err.to_string().contains("broker 5"));
        assert!(dec.next_frame().is_err());

        let mut dec = FrameDecoder::new(16);
        let err = dec.push(&17i32.to_be_bytes()).unwrap_err();
        assert!(matches!(
            err,
            WireError::FrameTooLarge {
                size: 17,
                max: 16,
                ..
            }
        ));

        let mut dec = FrameDecoder::new(16);
        dec.push(&8i32.to_be_bytes()).unwrap();
        dec.push(&[1, 2, 3]).unwrap();
        assert_eq!(dec.next_frame().unwrap(), None);
        let err = dec.finish().unwrap_err();
        assert!(matches!(
            err,
            WireError::Truncated {
                needed: 12,
                available: 7,
                ..
            }
        ));
    }

    #[test]
    fn decoder_never_buffers_more_than_one_max_frame() {
        let mut dec = FrameDecoder::new(8);
        let err = dec.push(&[0u8; 13]).unwrap_err();
        assert!(matches!(err, WireError::BufferFull { .. }));
        assert_eq!(dec.buffered(), 0);
        dec.push(&[0, 0, 0, 8]).unwrap();
        dec.push(&[9; 8]).unwrap();
        assert!(dec.push(&[0]).is_err());
        assert_eq!(dec.next_frame().unwrap().unwrap().len(), 8);
        dec.push(&[0]).unwrap();
    }

    #[test]
    fn peek_correlation_id_needs_four_bytes() {
        assert_eq!(peek_correlation_id(&[0, 0, 1]), None);
        assert_eq!(peek_correlation_id(&[0, 0, 1, 2, 9]), Some(258));
    }
}
