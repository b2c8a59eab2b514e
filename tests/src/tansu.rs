//! [`Tansu`]: a running tansu broker, the second real peer of the
//! integration tests.
//!
//! tansu (<https://github.com/tansu-io/tansu>, tested at 0.6.0) is a
//! Kafka-compatible broker written in Rust by people who are not us. Unlike
//! librdkafka's mock it answers a dynamic member's first JoinGroup with
//! MEMBER_ID_REQUIRED (KIP-394) and gives a static member (KIP-345) its
//! member id back when it rejoins, so it covers those two happy paths. It is
//! lenient elsewhere (it never fences, never checks commit generations and
//! fixes the group protocol to the first joiner's first choice), so tests use
//! it for nothing else. See `docs/testing.md`, "Second peer: tansu".
//!
//! It is not built here: tests that need it run when [`TANSU_ENV`] names the
//! binary (`cargo install tansu@0.6.0 --locked --features dynostore`) and
//! skip otherwise. Each [`Tansu`] is one broker process with in-memory
//! storage on its own free port; its output goes to a log file (kept after
//! the test, for evidence) and it is killed on drop.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kgroup::kafka_protocol::messages::create_topics_request::CreatableTopic;
use kgroup::kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, RequestHeader, ResponseHeader, TopicName,
};
use kgroup::kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};
use kgroup::wire::NegotiatedVersions;

use crate::requests::s;
use crate::{WireClient, WireClientError, deadline_after, remaining};

/// The environment variable naming the tansu binary. Tests that need tansu
/// skip (with a message) when it is not set.
pub const TANSU_ENV: &str = "KGROUP_TANSU";

/// tansu's node id for a single broker (it answers FindCoordinator and
/// Metadata with it).
const NODE_ID: i32 = 111;

/// Highest CreateTopics version kafka-protocol 0.18 encodes.
const CREATE_TOPICS_MAX: i16 = 7;

/// Largest CreateTopics answer read (one topic's answer is a few hundred
/// bytes).
const MAX_RESPONSE: usize = 1 << 20;

/// Kafka error codes (`Errors.java`).
const TOPIC_ALREADY_EXISTS: i16 = 36;

/// What went wrong starting or using a tansu broker.
#[derive(Debug, thiserror::Error)]
pub enum TansuError {
    /// The binary could not be started, or its log file created.
    #[error("cannot start tansu {path}: {source}")]
    Spawn {
        /// The binary.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// It exited before it listened.
    #[error("tansu exited with {status} before listening on {addr} (log: {log})")]
    Exited {
        /// Its exit status.
        status: std::process::ExitStatus,
        /// Where it was to listen.
        addr: SocketAddr,
        /// Its log file.
        log: String,
    },
    /// It did not accept connections in time.
    #[error("tansu did not listen on {addr} within {timeout:?} (log: {log})")]
    Timeout {
        /// Where it was to listen.
        addr: SocketAddr,
        /// How long we waited.
        timeout: Duration,
        /// Its log file.
        log: String,
    },
    /// A request to it failed.
    #[error("tansu at {addr}: {source}")]
    Wire {
        /// Its address.
        addr: SocketAddr,
        /// The failure.
        source: WireClientError,
    },
    /// A request framed outside kgroup's wire layer failed.
    #[error("tansu at {addr}: {what}: {reason}")]
    Raw {
        /// Its address.
        addr: SocketAddr,
        /// The request.
        what: String,
        /// What went wrong.
        reason: String,
    },
    /// It refused to create a topic.
    #[error("tansu at {addr} refused to create topic {topic}: error {error_code} {message:?}")]
    CreateTopic {
        /// Its address.
        addr: SocketAddr,
        /// The topic.
        topic: String,
        /// The Kafka error code.
        error_code: i16,
        /// Its error message, if any.
        message: Option<String>,
    },
}

/// A running tansu broker on 127.0.0.1. Killed (and reaped) on drop.
#[derive(Debug)]
pub struct Tansu {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
    timeout: Duration,
}

impl Tansu {
    /// The binary named by [`TANSU_ENV`], if set and not empty.
    pub fn binary_from_env() -> Option<PathBuf> {
        std::env::var_os(TANSU_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    }

    /// Starts `binary` with in-memory storage on a free port of 127.0.0.1
    /// and waits (up to `timeout`) until it accepts connections.
    ///
    /// The port is found by binding port 0 and releasing it, so another
    /// process can take it in between: a broker that exits before it listens
    /// is retried on a new port, twice.
    pub fn start(binary: impl AsRef<Path>, timeout: Duration) -> Result<Self, TansuError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::start_once(binary.as_ref(), timeout) {
                Err(TansuError::Exited { .. }) if attempt < 3 => continue,
                other => return other,
            }
        }
    }

    fn start_once(binary: &Path, timeout: Duration) -> Result<Self, TansuError> {
        let spawn_error = |source| TansuError::Spawn {
            path: binary.to_path_buf(),
            source,
        };
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map_err(spawn_error)?
            .port();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let url = format!("tcp://{addr}");
        let log = std::env::temp_dir().join(format!("kgroup-tansu-{port}.log"));
        let out = File::create(&log).map_err(spawn_error)?;
        let err = out.try_clone().map_err(spawn_error)?;
        let child = Command::new(binary)
            .args(["broker", "--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(spawn_error)?;
        let mut tansu = Tansu {
            child,
            addr,
            log,
            timeout,
        };
        tansu.wait_listening()?;
        Ok(tansu)
    }

    #[allow(clippy::disallowed_methods)] // harness code: polls a real port
    fn wait_listening(&mut self) -> Result<(), TansuError> {
        let deadline = deadline_after(self.timeout);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(TansuError::Exited {
                    status,
                    addr: self.addr,
                    log: self.log.display().to_string(),
                });
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if remaining(deadline).is_zero() {
                return Err(TansuError::Timeout {
                    addr: self.addr,
                    timeout: self.timeout,
                    log: self.log.display().to_string(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bootstrap list for a member: `127.0.0.1:PORT`.
    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    /// Its log file (stdout and stderr), kept after the broker ends.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// A [`WireClient`] connected to it.
    pub fn client(&self) -> Result<WireClient, TansuError> {
        WireClient::connect(self.addr, NODE_ID, self.timeout).map_err(|source| TansuError::Wire {
            addr: self.addr,
            source,
        })
    }

    /// Runs kgroup's ApiVersions negotiation with it on a new connection:
    /// the ApiVersions versions sent, in order, and the result.
    pub fn negotiate(&self) -> Result<(Vec<i16>, NegotiatedVersions), TansuError> {
        self.client()?
            .negotiate()
            .map_err(|source| TansuError::Wire {
                addr: self.addr,
                source,
            })
    }

    /// Creates `topic` with `partitions` partitions (replication factor 1)
    /// through CreateTopics; an existing topic is fine.
    ///
    /// kgroup's wire layer sends only the APIs the engine implements, so
    /// this one request is framed here with kafka-protocol directly.
    pub fn create_topic(&self, topic: &str, partitions: i32) -> Result<(), TansuError> {
        let (_, versions) = self.negotiate()?;
        let version = versions
            .offered(ApiKey::CreateTopics)
            .map_or(2, |span| span.max.min(CREATE_TOPICS_MAX));
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(i32::try_from(self.timeout.as_millis()).unwrap_or(i32::MAX))
            .with_topics(vec![
                CreatableTopic::default()
                    .with_name(TopicName(s(topic)))
                    .with_num_partitions(partitions)
                    .with_replication_factor(1),
            ]);
        let response = self
            .raw_create_topics(version, &request)
            .map_err(|reason| TansuError::Raw {
                addr: self.addr,
                what: format!("CreateTopics v{version}"),
                reason,
            })?;
        for t in &response.topics {
            if t.error_code != 0 && t.error_code != TOPIC_ALREADY_EXISTS {
                return Err(TansuError::CreateTopic {
                    addr: self.addr,
                    topic: topic.to_owned(),
                    error_code: t.error_code,
                    message: t.error_message.as_ref().map(|m| m.to_string()),
                });
            }
        }
        Ok(())
    }

    /// One CreateTopics exchange on a fresh connection, bounded by the
    /// timeout.
    fn raw_create_topics(
        &self,
        version: i16,
        request: &CreateTopicsRequest,
    ) -> Result<CreateTopicsResponse, String> {
        let mut stream = TcpStream::connect_timeout(&self.addr, self.timeout)
            .map_err(|e| format!("connect: {e}"))?;
        stream
            .set_read_timeout(Some(self.timeout))
            .map_err(|e| e.to_string())?;
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::CreateTopics as i16)
            .with_request_api_version(version)
            .with_correlation_id(1)
            .with_client_id(Some(s("kgroup-tests")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, CreateTopicsRequest::header_version(version))
            .and_then(|()| request.encode(&mut body, version))
            .map_err(|e| format!("encode: {e}"))?;
        let size = i32::try_from(body.len()).map_err(|e| e.to_string())?;
        let mut frame = size.to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        stream
            .write_all(&frame)
            .map_err(|e| format!("write: {e}"))?;
        let mut size = [0u8; 4];
        stream
            .read_exact(&mut size)
            .map_err(|e| format!("read: {e}"))?;
        let size = usize::try_from(i32::from_be_bytes(size))
            .ok()
            .filter(|n| *n <= MAX_RESPONSE)
            .ok_or("bad response size")?;
        let mut answer = vec![0u8; size];
        stream
            .read_exact(&mut answer)
            .map_err(|e| format!("read: {e}"))?;
        let mut answer = Bytes::from(answer);
        ResponseHeader::decode(&mut answer, CreateTopicsResponse::header_version(version))
            .and_then(|_| CreateTopicsResponse::decode(&mut answer, version))
            .map_err(|e| format!("decode: {e}"))
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
