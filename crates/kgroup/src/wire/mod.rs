//! Wire layer: framing and codec on top of the `kafka-protocol` crate.
//!
//! Bytes in, bytes out. Hostile bytes give a [`WireError`], never a panic and
//! never an allocation larger than a bound derived from the frame size.
//!
//! - [`frame`]: the size prefix, request encoding ([`encode_request_into`],
//!   allocation-free into a reused buffer) and [`FrameDecoder`];
//! - [`codec`]: the [`InFlight`] correlation table and [`decode_response`],
//!   which validates every count against the bytes that remain before
//!   `kafka-protocol` decodes ([`bounded`]), plus lenient error-code
//!   extraction for malformed error responses;
//! - [`negotiate`]: per-broker ApiVersions negotiation ([`Negotiation`]);
//! - [`consumer_protocol`]: the Subscription / Assignment payloads;
//! - [`versions`]: the API versions kgroup implements.
//!
//! See `docs/wire.md`.

pub mod bounded;
pub mod codec;
pub mod consumer_protocol;
pub mod error;
pub mod frame;
pub mod negotiate;
pub mod versions;

pub use bounded::Limits;
pub use codec::{
    InFlight, decode_response, decode_response_lenient, decode_response_with, lenient_error_code,
    response_header_version,
};
pub use consumer_protocol::{Assignment, Subscription};
pub use error::{BrokerLabel, VersionSpan, WireError};
pub use frame::{
    DEFAULT_MAX_FRAME, FrameDecoder, encode_request, encode_request_into, peek_correlation_id,
};
pub use negotiate::{NegotiatedVersions, Negotiation, NegotiationState};
pub use versions::{IMPLEMENTED, implemented};
