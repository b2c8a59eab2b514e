//! [`WireClient`]: a blocking test driver over one [`TcpStream`], built only
//! from [`kgroup::wire`].
//!
//! It does what an adapter does around the Sans-IO wire layer, with no cleverness:
//! encode a request into a frame ([`encode_request_into`]), record it in the
//! [`InFlight`] table, write it, read bytes into a [`FrameDecoder`] until a
//! frame is complete, match it by correlation id and decode it at the
//! request's version ([`decode_response`]). Every read is bounded by a
//! deadline. Tests use it to check the wire layer against a real broker.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kgroup::kafka_protocol::messages::ApiKey;
use kgroup::kafka_protocol::protocol::{Decodable, HeaderVersion, Request};
use kgroup::wire::{
    DEFAULT_MAX_FRAME, FrameDecoder, InFlight, NegotiatedVersions, Negotiation, WireError,
    decode_response, decode_response_lenient, encode_request_into,
};

use crate::{deadline_after, remaining};

/// What went wrong in a [`WireClient`] exchange.
#[derive(Debug, thiserror::Error)]
pub enum WireClientError {
    /// Socket error talking to `broker`.
    #[error("broker {broker} ({addr}): {op}: {source}")]
    Io {
        /// Broker id.
        broker: i32,
        /// Its address.
        addr: SocketAddr,
        /// What we were doing.
        op: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The broker closed the connection with `in_flight` requests unanswered.
    #[error("broker {broker} ({addr}) closed the connection with {in_flight} request(s) in flight")]
    Closed {
        /// Broker id.
        broker: i32,
        /// Its address.
        addr: SocketAddr,
        /// Requests left unanswered.
        in_flight: usize,
    },
    /// No complete response within the timeout.
    #[error("broker {broker} ({addr}): no response within {timeout:?}")]
    Timeout {
        /// Broker id.
        broker: i32,
        /// Its address.
        addr: SocketAddr,
        /// The timeout.
        timeout: Duration,
    },
    /// The wire layer refused something (encoding, framing, decoding,
    /// correlation, negotiation).
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The negotiation neither finished nor failed (a bug in it).
    #[error("broker {broker}: ApiVersions negotiation stalled after sending versions {sent:?}")]
    Stalled {
        /// Broker id.
        broker: i32,
        /// ApiVersions versions sent.
        sent: Vec<i16>,
    },
    /// A request type's key is not an API kafka-protocol knows.
    #[error("unknown API key {0}")]
    UnknownApi(i16),
}

/// A blocking connection to one broker, driven through `kgroup::wire`.
#[derive(Debug)]
pub struct WireClient {
    stream: TcpStream,
    addr: SocketAddr,
    broker: i32,
    client_id: String,
    out: BytesMut,
    decoder: FrameDecoder,
    in_flight: InFlight,
    next_correlation_id: i32,
    timeout: Duration,
}

impl WireClient {
    /// Connects to broker `broker` at `addr`; every later wait is bounded by
    /// `timeout`.
    pub fn connect(
        addr: SocketAddr,
        broker: i32,
        timeout: Duration,
    ) -> Result<Self, WireClientError> {
        let io = |op, source| WireClientError::Io {
            broker,
            addr,
            op,
            source,
        };
        let stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| io("connect", e))?;
        stream.set_nodelay(true).map_err(|e| io("set_nodelay", e))?;
        Ok(WireClient {
            stream,
            addr,
            broker,
            client_id: "kgroup-tests".to_owned(),
            out: BytesMut::with_capacity(4096),
            decoder: FrameDecoder::new(DEFAULT_MAX_FRAME).with_broker(broker),
            in_flight: InFlight::for_broker(broker),
            next_correlation_id: 1,
            timeout,
        })
    }

    /// The broker id this client talks to.
    pub fn broker(&self) -> i32 {
        self.broker
    }

    /// The broker's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn io(&self, op: &'static str, source: std::io::Error) -> WireClientError {
        WireClientError::Io {
            broker: self.broker,
            addr: self.addr,
            op,
            source,
        }
    }

    /// Encodes and writes one request of `api` at `version`; returns its
    /// correlation id. The response is read by [`WireClient::recv_frame`].
    pub fn send<T: kgroup::kafka_protocol::protocol::Encodable + HeaderVersion>(
        &mut self,
        api: ApiKey,
        version: i16,
        body: &T,
    ) -> Result<i32, WireClientError> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        self.out.clear();
        encode_request_into(
            &mut self.out,
            api,
            version,
            correlation_id,
            &self.client_id,
            body,
        )
        .map_err(|e| e.with_broker(self.broker))?;
        self.in_flight
            .register(correlation_id, api, version)
            .map_err(|e| e.with_broker(self.broker))?;
        let frame = std::mem::take(&mut self.out);
        let written = self.stream.write_all(&frame);
        self.out = frame;
        written.map_err(|e| self.io("write", e))?;
        Ok(correlation_id)
    }

    /// Reads until one whole response frame has arrived, matches it to the
    /// oldest request in flight, and returns that request's API and version
    /// with the frame (without its size prefix).
    pub fn recv_frame(&mut self) -> Result<(ApiKey, i16, Bytes), WireClientError> {
        let deadline = deadline_after(self.timeout);
        let mut buf = [0u8; 16 * 1024];
        loop {
            if let Some(frame) = self
                .decoder
                .next_frame()
                .map_err(|e| e.with_broker(self.broker))?
            {
                let (_, api, version) = self
                    .in_flight
                    .take_for_frame(&frame)
                    .map_err(|e| e.with_broker(self.broker))?;
                return Ok((api, version, frame));
            }
            let left = remaining(deadline);
            if left.is_zero() {
                return Err(WireClientError::Timeout {
                    broker: self.broker,
                    addr: self.addr,
                    timeout: self.timeout,
                });
            }
            self.stream
                .set_read_timeout(Some(left))
                .map_err(|e| self.io("set_read_timeout", e))?;
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    return Err(WireClientError::Closed {
                        broker: self.broker,
                        addr: self.addr,
                        in_flight: self.in_flight.len(),
                    });
                }
                Ok(n) => {
                    let data = buf.get(..n).unwrap_or_default();
                    self.decoder
                        .push(data)
                        .map_err(|e| e.with_broker(self.broker))?;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(self.io("read", e)),
            }
        }
    }

    /// Runs the engine's ApiVersions [`Negotiation`] on this connection from
    /// its first version (v3): sends what it polls, feeds it each response
    /// frame, until it is done or fails. Returns the ApiVersions versions
    /// sent, in order, with the result (so tests can see the v3 retry).
    pub fn negotiate(&mut self) -> Result<(Vec<i16>, NegotiatedVersions), WireClientError> {
        let negotiation = Negotiation::new("kgroup-tests", env!("CARGO_PKG_VERSION"))?;
        self.drive(negotiation)
    }

    /// Like [`WireClient::negotiate`], starting at ApiVersions `version`
    /// (what an engine does with the version that worked on this broker
    /// before; tests whose subject is not the v3 retry use it).
    pub fn negotiate_from(
        &mut self,
        version: i16,
    ) -> Result<(Vec<i16>, NegotiatedVersions), WireClientError> {
        let negotiation =
            Negotiation::new("kgroup-tests", env!("CARGO_PKG_VERSION"))?.starting_at(version);
        self.drive(negotiation)
    }

    fn drive(
        &mut self,
        negotiation: Negotiation,
    ) -> Result<(Vec<i16>, NegotiatedVersions), WireClientError> {
        let mut negotiation = negotiation.with_broker(self.broker);
        let mut sent = Vec::new();
        // Each step either finishes or lowers the version, so this ends; the
        // bound only guards against a negotiation that would loop.
        for _ in 0..8 {
            if let Some(versions) = negotiation.versions() {
                return Ok((sent, versions.clone()));
            }
            let Some((version, request)) = negotiation.poll_request() else {
                break;
            };
            sent.push(version);
            self.send(ApiKey::ApiVersions, version, &request)?;
            let (_, _, frame) = self.recv_frame()?;
            negotiation.handle_response_frame(frame)?;
        }
        match negotiation.versions() {
            Some(versions) => Ok((sent, versions.clone())),
            None => Err(WireClientError::Stalled {
                broker: self.broker,
                sent,
            }),
        }
    }

    fn api_of<R: Request>() -> Result<ApiKey, WireClientError> {
        ApiKey::try_from(R::KEY).map_err(|()| WireClientError::UnknownApi(R::KEY))
    }

    /// Sends `body` at `version`, waits for the answer and decodes it
    /// strictly ([`decode_response`]).
    pub fn request<R: Request>(
        &mut self,
        version: i16,
        body: &R,
    ) -> Result<R::Response, WireClientError>
    where
        R::Response: Decodable + HeaderVersion,
    {
        let api = Self::api_of::<R>()?;
        self.send(api, version, body)?;
        let (api, version, frame) = self.recv_frame()?;
        let (_, response) = decode_response::<R::Response>(api, version, frame)
            .map_err(|e| e.with_broker(self.broker))?;
        Ok(response)
    }

    /// Like [`WireClient::request`], decoding with
    /// [`decode_response_lenient`]: a malformed error response still yields
    /// its error code as `WireError::MalformedErrorResponse`.
    pub fn request_lenient<R: Request>(
        &mut self,
        version: i16,
        body: &R,
    ) -> Result<R::Response, WireClientError>
    where
        R::Response: Decodable + HeaderVersion,
    {
        let api = Self::api_of::<R>()?;
        self.send(api, version, body)?;
        let (api, version, frame) = self.recv_frame()?;
        let (_, response) = decode_response_lenient::<R::Response>(api, version, frame)
            .map_err(|e| e.with_broker(self.broker))?;
        Ok(response)
    }
}
