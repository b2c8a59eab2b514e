//! [`TestBroker`]: a running `kgroup-testbroker` process and its command pipe.
//!
//! The mock cluster lives in a child process so that an assertion inside
//! librdkafka's mock (it aborts on some inputs) ends that process, not the
//! test. stdout is read by a small thread that forwards lines over a channel,
//! so every wait for a reply has a deadline.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

/// The environment variable naming the test broker binary, for callers that
/// are not integration tests of this package (those use
/// `env!("CARGO_BIN_EXE_kgroup-testbroker")`).
pub const BINARY_ENV: &str = "KGROUP_TESTBROKER";

/// What went wrong talking to the test broker.
#[derive(Debug, thiserror::Error)]
pub enum TestBrokerError {
    /// The binary could not be started.
    #[error("cannot start test broker {path}: {source}")]
    Spawn {
        /// The binary that was started.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// No line came back within the timeout.
    #[error("test broker did not answer {what} within {timeout:?}")]
    Timeout {
        /// What was awaited (the address line or a command).
        what: String,
        /// How long we waited.
        timeout: Duration,
    },
    /// The process closed stdout (it exited or crashed).
    #[error("test broker exited while waiting for {what}")]
    Exited {
        /// What was awaited.
        what: String,
    },
    /// Writing a command to the process failed.
    #[error("cannot send {command:?} to the test broker: {source}")]
    Send {
        /// The command line.
        command: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The broker refused a command (`err <reason>`).
    #[error("test broker refused {command:?}: {reason}")]
    Refused {
        /// The command line.
        command: String,
        /// The reason it gave.
        reason: String,
    },
    /// The broker answered something that is not `ok` or `err`, or printed an
    /// address line that does not parse.
    #[error("unexpected line from test broker after {what}: {line:?}")]
    Protocol {
        /// What was awaited.
        what: String,
        /// The line received.
        line: String,
    },
}

/// Options for [`TestBroker::start`].
#[derive(Debug, Clone)]
pub struct TestBrokerOptions {
    /// Number of brokers (ids `1..=brokers`).
    pub brokers: u32,
    /// Topics to create at start, `(name, partitions)`.
    pub topics: Vec<(String, i32)>,
    /// How long to wait for the address line and for each command's reply.
    pub timeout: Duration,
    /// Pass `--raw-versions`: advertise the mock's own version ranges,
    /// including versions it cannot parse (only for tests of the mock).
    pub raw_versions: bool,
}

impl Default for TestBrokerOptions {
    fn default() -> Self {
        TestBrokerOptions {
            brokers: 3,
            topics: Vec::new(),
            timeout: Duration::from_secs(15),
            raw_versions: false,
        }
    }
}

impl TestBrokerOptions {
    /// Sets the number of brokers.
    pub fn brokers(mut self, n: u32) -> Self {
        self.brokers = n;
        self
    }

    /// Adds a topic to create at start.
    pub fn topic(mut self, name: &str, partitions: i32) -> Self {
        self.topics.push((name.to_owned(), partitions));
        self
    }

    /// Keeps the mock's raw advertised version ranges (`--raw-versions`).
    pub fn raw_versions(mut self) -> Self {
        self.raw_versions = true;
        self
    }
}

/// A running mock cluster. Killed (and reaped) on drop.
#[derive(Debug)]
pub struct TestBroker {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    bootstrap: String,
    addrs: Vec<SocketAddr>,
    timeout: Duration,
}

impl TestBroker {
    /// The binary named by `KGROUP_TESTBROKER`, if set.
    pub fn binary_from_env() -> Option<PathBuf> {
        std::env::var_os(BINARY_ENV).map(PathBuf::from)
    }

    /// Starts `binary` (pass `env!("CARGO_BIN_EXE_kgroup-testbroker")`) and
    /// waits for its bootstrap address.
    pub fn start(
        binary: impl AsRef<Path>,
        opts: &TestBrokerOptions,
    ) -> Result<Self, TestBrokerError> {
        let path = binary.as_ref().to_path_buf();
        let mut cmd = Command::new(&path);
        cmd.arg("--brokers").arg(opts.brokers.to_string());
        for (name, partitions) in &opts.topics {
            cmd.arg("--topic").arg(format!("{name}:{partitions}"));
        }
        if opts.raw_versions {
            cmd.arg("--raw-versions");
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().map_err(|source| TestBrokerError::Spawn {
            path: path.clone(),
            source,
        })?;
        let stdin = child.stdin.take();
        let (tx, lines) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let mut broker = TestBroker {
            child,
            stdin,
            lines,
            bootstrap: String::new(),
            addrs: Vec::new(),
            timeout: opts.timeout,
        };
        let what = "the bootstrap address";
        let line = broker.next_line(what)?;
        let addrs = parse_bootstrap(&line).ok_or_else(|| TestBrokerError::Protocol {
            what: what.to_owned(),
            line: line.clone(),
        })?;
        broker.bootstrap = line;
        broker.addrs = addrs;
        Ok(broker)
    }

    fn next_line(&self, what: &str) -> Result<String, TestBrokerError> {
        match self.lines.recv_timeout(self.timeout) {
            Ok(line) => Ok(line),
            Err(RecvTimeoutError::Timeout) => Err(TestBrokerError::Timeout {
                what: what.to_owned(),
                timeout: self.timeout,
            }),
            Err(RecvTimeoutError::Disconnected) => Err(TestBrokerError::Exited {
                what: what.to_owned(),
            }),
        }
    }

    /// The bootstrap list, as printed: `127.0.0.1:PORT,127.0.0.1:PORT,...`.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// Every broker's address, in broker id order (id 1 first).
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The address of broker `id` (ids start at 1, as in the mock).
    pub fn addr(&self, id: i32) -> Option<SocketAddr> {
        let index = usize::try_from(id).ok()?.checked_sub(1)?;
        self.addrs.get(index).copied()
    }

    /// Sends one command line and waits for its reply. Returns the value
    /// after `ok` (empty for a bare `ok`).
    pub fn command(&mut self, line: &str) -> Result<String, TestBrokerError> {
        let send_error = |source| TestBrokerError::Send {
            command: line.to_owned(),
            source,
        };
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| send_error(std::io::Error::from(std::io::ErrorKind::BrokenPipe)))?;
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .map_err(send_error)?;
        let what = format!("{line:?}");
        let reply = self.next_line(&what)?;
        if reply == "ok" {
            Ok(String::new())
        } else if let Some(value) = reply.strip_prefix("ok ") {
            Ok(value.to_owned())
        } else if let Some(reason) = reply.strip_prefix("err ") {
            Err(TestBrokerError::Refused {
                command: line.to_owned(),
                reason: reason.to_owned(),
            })
        } else {
            Err(TestBrokerError::Protocol { what, line: reply })
        }
    }

    /// `broker down N`: closes broker `id`'s connections and refuses new ones.
    pub fn broker_down(&mut self, id: i32) -> Result<(), TestBrokerError> {
        self.command(&format!("broker down {id}")).map(drop)
    }

    /// `broker up N`.
    pub fn broker_up(&mut self, id: i32) -> Result<(), TestBrokerError> {
        self.command(&format!("broker up {id}")).map(drop)
    }

    /// `coordinator group G N`: makes broker `id` the coordinator of `group`.
    pub fn set_group_coordinator(&mut self, group: &str, id: i32) -> Result<(), TestBrokerError> {
        self.command(&format!("coordinator group {group} {id}"))
            .map(drop)
    }

    /// `push-errors API ERR,...`: the next requests of `api` on any broker
    /// fail with `errors`, in order.
    pub fn push_errors(&mut self, api: i16, errors: &[i16]) -> Result<(), TestBrokerError> {
        self.command(&format!("push-errors {api} {}", join(errors)))
            .map(drop)
    }

    /// `push-errors broker N API ERR@MS,...` on broker `id` only.
    pub fn push_broker_errors(
        &mut self,
        id: i32,
        api: i16,
        errors: &[(i16, u32)],
    ) -> Result<(), TestBrokerError> {
        let list: Vec<String> = errors.iter().map(|(e, ms)| format!("{e}@{ms}")).collect();
        self.command(&format!("push-errors broker {id} {api} {}", list.join(",")))
            .map(drop)
    }

    /// `rtt N MS`: delays every response of broker `id` (-1: all).
    pub fn set_rtt(&mut self, id: i32, rtt: Duration) -> Result<(), TestBrokerError> {
        self.command(&format!("rtt {id} {}", rtt.as_millis()))
            .map(drop)
    }

    /// `cap-version API MIN MAX` (`-1 -1` disables the API).
    pub fn cap_version(&mut self, api: i16, min: i16, max: i16) -> Result<(), TestBrokerError> {
        self.command(&format!("cap-version {api} {min} {max}"))
            .map(drop)
    }

    /// `create-topic NAME PARTITIONS`.
    pub fn create_topic(&mut self, name: &str, partitions: i32) -> Result<(), TestBrokerError> {
        self.command(&format!("create-topic {name} {partitions}"))
            .map(drop)
    }

    /// `track on` / `track off`: start or stop recording the requests the
    /// brokers receive (both forget what was recorded).
    pub fn track_requests(&mut self, on: bool) -> Result<(), TestBrokerError> {
        self.command(if on { "track on" } else { "track off" })
            .map(drop)
    }

    /// `requests API [N]`: how many requests of `api` were recorded since
    /// [`TestBroker::track_requests`], on broker `broker` only if given.
    pub fn request_count(
        &mut self,
        api: i16,
        broker: Option<i32>,
    ) -> Result<usize, TestBrokerError> {
        let line = match broker {
            Some(id) => format!("requests {api} {id}"),
            None => format!("requests {api}"),
        };
        let value = self.command(&line)?;
        value.parse().map_err(|_| TestBrokerError::Protocol {
            what: line,
            line: value,
        })
    }
}

fn join(errors: &[i16]) -> String {
    let list: Vec<String> = errors.iter().map(i16::to_string).collect();
    list.join(",")
}

fn parse_bootstrap(line: &str) -> Option<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = line
        .split(',')
        .map(|hp| hp.to_socket_addrs().ok()?.next())
        .collect::<Option<_>>()?;
    (!addrs.is_empty()).then_some(addrs)
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        // Closing stdin asks it to exit; kill makes sure, wait reaps it.
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::parse_bootstrap;

    #[test]
    fn bootstrap_line_parses_in_broker_order() {
        let addrs = parse_bootstrap("127.0.0.1:9001,127.0.0.1:9002").unwrap_or_default();
        let ports: Vec<u16> = addrs.iter().map(|a| a.port()).collect();
        assert_eq!(ports, [9001, 9002]);
        assert!(parse_bootstrap("not an address").is_none());
        assert!(parse_bootstrap("").is_none());
    }
}
