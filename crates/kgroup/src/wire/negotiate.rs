//! ApiVersions negotiation with one broker, Sans-IO.
//!
//! Every connection starts with ApiVersions (the coordinator is often not
//! the bootstrap broker, so this runs per broker, PROTOCOL.md §0.5). The
//! [`Negotiation`] sends v3 (with the client software name and version,
//! KIP-511); a broker that does not know v3 answers `UNSUPPORTED_VERSION`
//! (35) in the v0 layout and lists the ApiVersions range it does serve, and
//! the negotiation retries at the highest of those (v0 when the list lacks
//! ApiVersions), as Java's `NetworkClient.handleApiVersionsResponse` does.
//! The successful answer becomes [`NegotiatedVersions`]: per API kgroup
//! needs, `min(ours.max, broker.max)`, checked against
//! `max(ours.min, broker.min)`.
//!
//! Inputs: [`Negotiation::handle_response_frame`] (or
//! [`Negotiation::handle_response`]). Outputs: [`Negotiation::poll_request`]
//! and [`Negotiation::versions`].

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::StrBytes;

use super::codec::{decode_response, lenient_error_code};
use super::error::{BrokerLabel, VersionSpan, WireError};
use super::versions::{IMPLEMENTED, implemented};

/// Error code UNSUPPORTED_VERSION (Kafka `Errors.UNSUPPORTED_VERSION`).
pub const UNSUPPORTED_VERSION: i16 = 35;

/// The ApiVersions version a negotiation starts with.
pub const FIRST_API_VERSIONS_VERSION: i16 = 3;

/// True when `s` matches `[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?`, the
/// rule a broker applies to the client software name and version
/// (`ApiVersionsRequest.isValid`); anything else gets `INVALID_REQUEST`.
pub fn is_valid_client_software(s: &str) -> bool {
    let bytes = s.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    first.is_ascii_alphanumeric()
        && last.is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'.')
}

/// The versions to use with one broker, decided by ApiVersions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NegotiatedVersions {
    broker: Option<i32>,
    /// Chosen version per API, in [`IMPLEMENTED`] order.
    chosen: Vec<(ApiKey, i16)>,
    /// Everything the broker offered, by raw API key, sorted.
    offered: Vec<(i16, VersionSpan)>,
}

impl NegotiatedVersions {
    /// Picks a version for every API in [`IMPLEMENTED`] from the ranges a
    /// broker offered (`(api key, min, max)` as in ApiVersionsResponse).
    ///
    /// Fails with [`WireError::MissingApi`] when the broker lacks an API and
    /// [`WireError::NoCommonVersion`] when the ranges do not overlap.
    pub fn from_offered(
        offered: impl IntoIterator<Item = (i16, i16, i16)>,
        broker: Option<i32>,
    ) -> Result<Self, WireError> {
        let mut offered: Vec<(i16, VersionSpan)> = offered
            .into_iter()
            .map(|(key, min, max)| (key, VersionSpan::new(min, max)))
            .collect();
        offered.sort();
        offered.dedup_by_key(|(key, _)| *key);
        let mut chosen = Vec::with_capacity(IMPLEMENTED.len());
        for &(api, ours) in IMPLEMENTED {
            let theirs = offered
                .iter()
                .find(|(key, _)| *key == api as i16)
                .map(|(_, span)| *span)
                .ok_or(WireError::MissingApi {
                    api,
                    ours,
                    broker: BrokerLabel(broker),
                })?;
            let version = ours.max.min(theirs.max);
            if version < ours.min.max(theirs.min) {
                return Err(WireError::NoCommonVersion {
                    api,
                    broker_range: theirs,
                    ours,
                    broker: BrokerLabel(broker),
                });
            }
            chosen.push((api, version));
        }
        Ok(Self {
            broker,
            chosen,
            offered,
        })
    }

    /// The version to send `api` at, for every API kgroup implements.
    pub fn version(&self, api: ApiKey) -> Option<i16> {
        self.chosen
            .iter()
            .find(|(key, _)| *key == api)
            .map(|(_, v)| *v)
    }

    /// The version to send `api` at, or a typed error naming the API.
    pub fn require(&self, api: ApiKey) -> Result<i16, WireError> {
        self.version(api).ok_or(WireError::UnsupportedVersion {
            api,
            version: -1,
            supported: implemented(api).unwrap_or(VersionSpan::new(0, -1)),
            broker: BrokerLabel(self.broker),
        })
    }

    /// The range the broker offered for `api`, whether or not kgroup uses it
    /// (e.g. ConsumerGroupHeartbeat, to tell a KIP-848 broker).
    pub fn offered(&self, api: ApiKey) -> Option<VersionSpan> {
        self.offered
            .iter()
            .find(|(key, _)| *key == api as i16)
            .map(|(_, span)| *span)
    }

    /// Every chosen `(api, version)`, in [`IMPLEMENTED`] order.
    pub fn chosen(&self) -> &[(ApiKey, i16)] {
        &self.chosen
    }

    /// The broker these versions are for, if known.
    pub fn broker(&self) -> Option<i32> {
        self.broker
    }
}

/// Where a negotiation stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NegotiationState {
    /// An ApiVersions request at this version is due ([`Negotiation::poll_request`]).
    Send {
        /// Version to send.
        version: i16,
    },
    /// Waiting for the answer to the request sent at this version.
    Awaiting {
        /// Version sent.
        version: i16,
    },
    /// Negotiated.
    Done(NegotiatedVersions),
    /// Failed; the error was returned by the `handle_*` call that caused it.
    Failed(WireError),
}

/// ApiVersions negotiation with one broker (see the module docs).
#[derive(Clone, Debug)]
pub struct Negotiation {
    state: NegotiationState,
    broker: Option<i32>,
    software_name: String,
    software_version: String,
}

impl Negotiation {
    /// A negotiation that will identify the client as `software_name`
    /// `software_version` (both must match
    /// `[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?`).
    pub fn new(software_name: &str, software_version: &str) -> Result<Self, WireError> {
        for (field, value) in [("name", software_name), ("version", software_version)] {
            if !is_valid_client_software(value) {
                return Err(WireError::InvalidClientSoftware {
                    field,
                    value: value.to_owned(),
                });
            }
        }
        Ok(Self {
            state: NegotiationState::Send {
                version: FIRST_API_VERSIONS_VERSION,
            },
            broker: None,
            software_name: software_name.to_owned(),
            software_version: software_version.to_owned(),
        })
    }

    /// Names the broker in errors and in the result.
    pub fn with_broker(mut self, broker: i32) -> Self {
        self.broker = Some(broker);
        self
    }

    /// Starts at `version` instead of v3 (e.g. the version that worked on
    /// this broker last time).
    pub fn starting_at(mut self, version: i16) -> Self {
        let top = implemented(ApiKey::ApiVersions).map_or(0, |s| s.max);
        self.state = NegotiationState::Send {
            version: version.clamp(0, top),
        };
        self
    }

    /// The current state.
    pub fn state(&self) -> &NegotiationState {
        &self.state
    }

    /// The negotiated versions, once done.
    pub fn versions(&self) -> Option<&NegotiatedVersions> {
        match &self.state {
            NegotiationState::Done(v) => Some(v),
            _ => None,
        }
    }

    /// The ApiVersions request to send now, with its version, if one is due.
    pub fn poll_request(&mut self) -> Option<(i16, ApiVersionsRequest)> {
        let NegotiationState::Send { version } = self.state else {
            return None;
        };
        self.state = NegotiationState::Awaiting { version };
        let mut request = ApiVersionsRequest::default();
        if version >= 3 {
            request = request
                .with_client_software_name(StrBytes::from_string(self.software_name.clone()))
                .with_client_software_version(StrBytes::from_string(self.software_version.clone()));
        }
        Some((version, request))
    }

    fn label(&self) -> BrokerLabel {
        BrokerLabel(self.broker)
    }

    fn awaiting(&self) -> Result<i16, WireError> {
        match self.state {
            NegotiationState::Awaiting { version } => Ok(version),
            _ => Err(WireError::NegotiationState {
                detail: "a response arrived while no ApiVersions request was in flight",
                broker: self.label(),
            }),
        }
    }

    /// Handles the response frame (without its size prefix) to the request
    /// from [`Negotiation::poll_request`].
    ///
    /// A broker that does not support the version sent answers in the v0
    /// layout, so a body that does not parse at the version sent is parsed
    /// again as v0 (Java's `ApiVersionsResponse.parse` does the same). When
    /// neither parses but the leading error code is UNSUPPORTED_VERSION (as
    /// librdkafka's mock answers v3), the next request steps down one version.
    pub fn handle_response_frame(&mut self, frame: Bytes) -> Result<(), WireError> {
        let sent = self.awaiting()?;
        let decoded =
            decode_response::<ApiVersionsResponse>(ApiKey::ApiVersions, sent, frame.clone());
        let response = match decoded {
            Ok((_, response)) => response,
            Err(err) if sent > 0 => {
                match decode_response::<ApiVersionsResponse>(ApiKey::ApiVersions, 0, frame.clone())
                {
                    Ok((_, v0)) if v0.error_code == UNSUPPORTED_VERSION => v0,
                    _ => {
                        // librdkafka's mock answers a v3 request with error 35
                        // followed by a body in neither layout (a one-byte plain
                        // count, then non-flexible entries). The error code is
                        // still first: step down one version and ask again.
                        let code = frame
                            .get(4..)
                            .and_then(|body| lenient_error_code(ApiKey::ApiVersions, sent, body));
                        if code == Some(UNSUPPORTED_VERSION) {
                            self.state = NegotiationState::Send { version: sent - 1 };
                            return Ok(());
                        }
                        return self.fail(err);
                    }
                }
            }
            Err(err) => return self.fail(err),
        };
        self.handle_response(&response)
    }

    /// Handles a decoded response to the request in flight.
    pub fn handle_response(&mut self, response: &ApiVersionsResponse) -> Result<(), WireError> {
        let sent = self.awaiting()?;
        match response.error_code {
            0 => {
                let offered = response
                    .api_keys
                    .iter()
                    .map(|k| (k.api_key, k.min_version, k.max_version));
                match NegotiatedVersions::from_offered(offered, self.broker) {
                    Ok(versions) => {
                        self.state = NegotiationState::Done(versions);
                        Ok(())
                    }
                    Err(err) => self.fail(err),
                }
            }
            UNSUPPORTED_VERSION => {
                // KIP-511: the answer lists the ApiVersions range the broker
                // serves; retry at its top (v0 when it is not listed).
                let ours = implemented(ApiKey::ApiVersions).map_or(0, |s| s.max);
                let next = response
                    .api_keys
                    .iter()
                    .find(|k| k.api_key == ApiKey::ApiVersions as i16)
                    .map_or(0, |k| k.max_version.min(ours));
                if next < sent && next >= 0 {
                    self.state = NegotiationState::Send { version: next };
                    Ok(())
                } else {
                    self.fail(WireError::ApiVersionsFailed {
                        version: sent,
                        error_code: UNSUPPORTED_VERSION,
                        broker: self.label(),
                    })
                }
            }
            code => self.fail(WireError::ApiVersionsFailed {
                version: sent,
                error_code: code,
                broker: self.label(),
            }),
        }
    }

    fn fail(&mut self, err: WireError) -> Result<(), WireError> {
        let err = match self.broker {
            Some(id) if err.broker().is_none() => err.with_broker(id),
            _ => err,
        };
        self.state = NegotiationState::Failed(err.clone());
        Err(err)
    }
}
