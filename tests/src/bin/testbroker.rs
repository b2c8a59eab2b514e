//! `kgroup-testbroker`: librdkafka's mock cluster in its own process.
//!
//! This is the "real peer" of kgroup's third test depth: a Kafka broker that
//! no one on this project wrote. It starts librdkafka's built-in mock cluster
//! (`rdkafka_mock.c`, librdkafka 2.12.1 built from source by `rdkafka-sys`)
//! with N brokers on 127.0.0.1, creates the topics named on the command line,
//! sets `group.initial.rebalance.delay.ms` to 0, caps the API versions the
//! mock advertises but cannot parse (unless `--raw-versions`), prints the bootstrap address
//! as the first line on stdout and then obeys fault commands read from stdin,
//! one per line, answering each with one line: `ok`, `ok <value>` or
//! `err <reason>`. End of stdin, or `quit`, stops it.
//!
//! It runs as its own process so that an assertion inside the mock (it has
//! several, e.g. when group members list different first protocols) kills
//! this process, never the test that drives it. The command protocol is
//! documented in `docs/testing.md` and in `--help`.
//!
//! Unsafe code is confined to this file: the mock's control functions exist
//! only in librdkafka's C API (`rdkafka::bindings::rd_kafka_mock_*`), and the
//! safe `rdkafka::mocking::MockCluster` does not expose everything needed here
//! (per-broker error stacks, the initial rebalance delay).
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_int};
use std::io::{self, BufRead, Write};
use std::process::ExitCode;

use clap::Parser;
use rdkafka::ClientConfig;
use rdkafka::bindings as rd;
use rdkafka::client::{Client, DefaultClientContext};
use rdkafka::types::RDKafkaType;

const COMMANDS: &str = "\
COMMANDS (stdin, one per line; each answered by one line on stdout):
  broker down N|all              close broker N's connections and refuse new ones
  broker up N|all                accept connections again
  rtt N|all MS                   delay every response of broker N by MS ms
  coordinator group|txn KEY N    make broker N the coordinator of group/txn KEY
  push-errors API ERR[,ERR...]   the next requests of API (cluster-wide) fail
                                 with these errors, in order
  push-errors broker N API ERR[@MS][,ERR[@MS]...]
                                 same on broker N only, optionally delaying each
                                 of those responses by MS ms (broker stacks take
                                 precedence over the cluster-wide one)
  clear-errors API               drop the cluster-wide pushed errors of API
  error-count N API              ok <number of errors left on broker N's stack>
  cap-version API MIN MAX        advertise and accept only MIN..=MAX for API
                                 (-1 -1 disables the API; MAX may not exceed
                                 what the mock implements)
  create-topic NAME PARTITIONS [REPLICATION]
  partition-leader TOPIC PARTITION N
  rebalance-delay MS             group.initial.rebalance.delay.ms (starts at 0)
  track on|off                   start (or stop) recording every request the
                                 brokers receive; both clear the record
  requests API [N]               ok <number of API requests recorded since
                                 `track on`, on broker N only if given>
  clear-requests                 forget the requests recorded so far
  bootstrap                      ok <bootstrap address>
  ping                           ok
  quit                           ok, then exit
API is a number (11) or a name (JoinGroup); ERR is a number (16) or a
librdkafka error name (NOT_COORDINATOR, _TRANSPORT = drop the connection).
Replies: `ok`, `ok <value>` or `err <reason>`.";

/// Command line of the test broker.
#[derive(Debug, Parser)]
#[command(
    name = "kgroup-testbroker",
    about = "librdkafka's mock Kafka cluster, driven by fault commands on stdin",
    after_help = COMMANDS
)]
struct Args {
    /// Number of brokers (ids 1..=N).
    #[arg(long, default_value_t = 3)]
    brokers: i32,
    /// Topic to create, `NAME:PARTITIONS`; repeatable or comma separated.
    #[arg(long = "topic", value_delimiter = ',')]
    topics: Vec<String>,
    /// Replication factor of the topics created on the command line.
    #[arg(long, default_value_t = 1)]
    replication: i32,
    /// Keep the version ranges the mock advertises, including versions it
    /// cannot parse or answers malformed; by default JoinGroup is capped to
    /// v5, SyncGroup to v3, LeaveGroup to v2, Heartbeat to v4 and Metadata
    /// to v8.
    #[arg(long)]
    raw_versions: bool,
}

/// Version caps applied at start unless `--raw-versions`: librdkafka 2.12.1's
/// mock advertises these APIs up to versions its handlers do not implement
/// or answer malformed (`rd_kafka_mock_api_handlers` in
/// rdkafka_mock_handlers.c lists the maxima). A client negotiating
/// honestly (`min(ours, theirs)`) would pick them and fail, so the test broker
/// advertises only what the mock really serves. Each cap was observed through
/// kgroup's wire layer; `tests/tests/mock_quirks.rs` checks them again.
const HONEST_CAPS: &[(&str, i16, i16, i16)] = &[
    // v6 (flexible): the handler reads the protocols count as an int32, not
    // a compact array count, and closes the connection.
    ("JoinGroup", 11, 0, 5),
    // v4 (flexible): the connection is closed.
    ("SyncGroup", 14, 0, 3),
    // v3+ (batched members): the body is parsed as the v0-2 single-member
    // form; the member is not removed and the response is malformed.
    ("LeaveGroup", 13, 0, 2),
    // v5 does not exist in Kafka's schema (Heartbeat.json stops at v4).
    ("Heartbeat", 12, 0, 4),
    // v9+ (flexible): the handler writes the top-level tagged fields and
    // rd_kafka_mock_connection_send_response writes them again, so every
    // answer ends with one stray byte, which a strict decoder refuses.
    ("Metadata", 3, 0, 8),
];

/// The mock cluster and the librdkafka handle that owns its threads.
struct Mock {
    cluster: *mut rd::rd_kafka_mock_cluster_t,
    // Dropped after `cluster` is destroyed (see `Drop for Mock`).
    _client: Client<DefaultClientContext>,
}

impl Drop for Mock {
    fn drop(&mut self) {
        // SAFETY: `cluster` came from `rd_kafka_mock_cluster_new`, is non-null,
        // is destroyed exactly once here, and its owning client is still alive
        // (struct fields drop after this body runs).
        unsafe { rd::rd_kafka_mock_cluster_destroy(self.cluster) }
    }
}

/// Turns a librdkafka result code into `Ok` or a reply reason.
fn check(err: rd::rd_kafka_resp_err_t) -> Result<(), String> {
    if err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        Ok(())
    } else {
        Err(err_name(err))
    }
}

fn err_name(err: rd::rd_kafka_resp_err_t) -> String {
    // SAFETY: rd_kafka_err2name accepts any code and returns a pointer to a
    // static NUL-terminated string (or a static "ERR_<n>?" buffer).
    let name = unsafe { CStr::from_ptr(rd::rd_kafka_err2name(err)) };
    name.to_string_lossy().into_owned()
}

fn cstring(s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("{s:?} contains a NUL byte"))
}

impl Mock {
    fn new(brokers: i32) -> Result<Self, String> {
        // A client with no bootstrap servers: it only hosts the mock cluster
        // and never connects anywhere, so it never consumes pushed errors.
        let config = ClientConfig::new();
        let native = config
            .create_native_config()
            .map_err(|e| format!("librdkafka config: {e}"))?;
        let client = Client::new(
            &config,
            native,
            RDKafkaType::RD_KAFKA_PRODUCER,
            DefaultClientContext,
        )
        .map_err(|e| format!("librdkafka client: {e}"))?;
        // SAFETY: the client handle is valid for the lifetime of `client`,
        // which `Mock` keeps alive until after the cluster is destroyed.
        let cluster = unsafe { rd::rd_kafka_mock_cluster_new(client.native_ptr(), brokers) };
        if cluster.is_null() {
            return Err(format!("rd_kafka_mock_cluster_new({brokers}) failed"));
        }
        Ok(Mock {
            cluster,
            _client: client,
        })
    }

    fn bootstrap(&self) -> String {
        // SAFETY: `cluster` is valid; the returned string is owned by the
        // cluster and copied out before any other call.
        let s = unsafe { CStr::from_ptr(rd::rd_kafka_mock_cluster_bootstraps(self.cluster)) };
        s.to_string_lossy().into_owned()
    }

    fn create_topic(&self, name: &str, partitions: i32, replication: i32) -> Result<(), String> {
        let name = cstring(name)?;
        // SAFETY: valid cluster, NUL-terminated topic name that outlives the call.
        check(unsafe {
            rd::rd_kafka_mock_topic_create(self.cluster, name.as_ptr(), partitions, replication)
        })
    }

    fn rebalance_delay(&self, ms: i32) {
        // SAFETY: valid cluster; plain integer argument.
        unsafe { rd::rd_kafka_mock_group_initial_rebalance_delay_ms(self.cluster, ms) }
    }

    /// How many recorded requests (`track on`) have API key `api`, on
    /// broker `broker` if given. The mock records each request it parses,
    /// before its handler runs (`rd_kafka_mock_connection_parse_request`).
    fn count_requests(&self, api: i16, broker: Option<i32>) -> usize {
        let mut cnt: usize = 0;
        // SAFETY: valid cluster; `cnt` is a valid out-pointer. The mock
        // returns an rd_calloc'ed array of `cnt` request copies (NULL when
        // there are none), which we own and free below.
        let reqs = unsafe { rd::rd_kafka_mock_get_requests(self.cluster, &mut cnt) };
        if reqs.is_null() {
            return 0;
        }
        let mut n = 0;
        for i in 0..cnt {
            // SAFETY: `i < cnt`, the length of the array the mock returned;
            // each element is a valid request copy until the array is freed.
            let req = unsafe { *reqs.add(i) };
            // SAFETY: `req` is a valid request copy (see above).
            let (key, id) = unsafe {
                (
                    rd::rd_kafka_mock_request_api_key(req),
                    rd::rd_kafka_mock_request_id(req),
                )
            };
            if key == api && broker.is_none_or(|b| b == id) {
                n += 1;
            }
        }
        // SAFETY: frees each of the `cnt` copies and the array itself,
        // exactly once; nothing refers to them afterwards.
        unsafe { rd::rd_kafka_mock_request_destroy_array(reqs, cnt) };
        n
    }

    /// Runs one command line; `Ok(Some(v))` is replied as `ok v`.
    fn execute(&self, words: &[&str]) -> Result<Option<String>, String> {
        let c = self.cluster;
        match words {
            ["broker", dir @ ("down" | "up"), n] => {
                let id = parse_broker(n)?;
                // SAFETY: valid cluster; the mock looks the broker id up itself
                // and reports unknown ids as an error code.
                check(unsafe {
                    if *dir == "down" {
                        rd::rd_kafka_mock_broker_set_down(c, id)
                    } else {
                        rd::rd_kafka_mock_broker_set_up(c, id)
                    }
                })?;
                Ok(None)
            }
            ["rtt", n, ms] => {
                let id = parse_broker(n)?;
                let ms: c_int = parse_num(ms, "MS")?;
                // SAFETY: valid cluster; integer arguments.
                check(unsafe { rd::rd_kafka_mock_broker_set_rtt(c, id, ms) })?;
                Ok(None)
            }
            [
                "coordinator",
                kind @ ("group" | "txn" | "transaction"),
                key,
                n,
            ] => {
                let kind = cstring(if *kind == "group" {
                    "group"
                } else {
                    "transaction"
                })?;
                let key = cstring(key)?;
                let id: i32 = parse_num(n, "N")?;
                // SAFETY: valid cluster; both strings are NUL-terminated and
                // outlive the call (the mock copies them).
                check(unsafe {
                    rd::rd_kafka_mock_coordinator_set(c, kind.as_ptr(), key.as_ptr(), id)
                })?;
                Ok(None)
            }
            ["push-errors", "broker", n, api, errs] => {
                let id: i32 = parse_num(n, "N")?;
                let api = parse_api(api)?;
                for item in errs.split(',') {
                    let (err, ms) = match item.split_once('@') {
                        Some((e, ms)) => (parse_err(e)?, parse_num::<c_int>(ms, "MS")?),
                        None => (parse_err(item)?, 0),
                    };
                    // One (error, rtt) pair per call: the mock appends to the
                    // broker's stack, so the order of the list is kept.
                    // SAFETY: valid cluster; the variadic list is exactly one
                    // (rd_kafka_resp_err_t as int, int) pair as cnt = 1 says.
                    check(unsafe {
                        rd::rd_kafka_mock_broker_push_request_error_rtts(
                            c,
                            id,
                            api,
                            1,
                            err as c_int,
                            ms,
                        )
                    })?;
                }
                Ok(None)
            }
            ["push-errors", api, errs] => {
                let api = parse_api(api)?;
                let errs = errs
                    .split(',')
                    .map(parse_err)
                    .collect::<Result<Vec<_>, _>>()?;
                // SAFETY: valid cluster; `errs` holds exactly `errs.len()`
                // valid enum values and outlives the call (the mock copies).
                unsafe {
                    rd::rd_kafka_mock_push_request_errors_array(c, api, errs.len(), errs.as_ptr())
                };
                Ok(None)
            }
            ["clear-errors", api] => {
                let api = parse_api(api)?;
                // SAFETY: valid cluster; integer argument.
                unsafe { rd::rd_kafka_mock_clear_request_errors(c, api) };
                Ok(None)
            }
            ["error-count", n, api] => {
                let id: i32 = parse_num(n, "N")?;
                let api = parse_api(api)?;
                let mut cnt: usize = 0;
                // SAFETY: valid cluster; `cnt` is a valid out-pointer.
                check(unsafe { rd::rd_kafka_mock_broker_error_stack_cnt(c, id, api, &mut cnt) })?;
                Ok(Some(cnt.to_string()))
            }
            ["cap-version", api, min, max] => {
                let api = parse_api(api)?;
                let min: i16 = parse_num(min, "MIN")?;
                let max: i16 = parse_num(max, "MAX")?;
                // SAFETY: valid cluster; the mock range-checks the API key.
                check(unsafe { rd::rd_kafka_mock_set_apiversion(c, api, min, max) })?;
                Ok(None)
            }
            ["create-topic", name, parts] => {
                self.create_topic(name, parse_num(parts, "PARTITIONS")?, 1)?;
                Ok(None)
            }
            ["create-topic", name, parts, repl] => {
                self.create_topic(
                    name,
                    parse_num(parts, "PARTITIONS")?,
                    parse_num(repl, "REPLICATION")?,
                )?;
                Ok(None)
            }
            ["partition-leader", topic, part, n] => {
                let topic = cstring(topic)?;
                let part: i32 = parse_num(part, "PARTITION")?;
                let id: i32 = parse_num(n, "N")?;
                // SAFETY: valid cluster; NUL-terminated topic outliving the call.
                check(unsafe {
                    rd::rd_kafka_mock_partition_set_leader(c, topic.as_ptr(), part, id)
                })?;
                Ok(None)
            }
            ["rebalance-delay", ms] => {
                self.rebalance_delay(parse_num(ms, "MS")?);
                Ok(None)
            }
            ["track", on @ ("on" | "off")] => {
                // SAFETY: valid cluster; the mock takes its own lock.
                unsafe {
                    if *on == "on" {
                        rd::rd_kafka_mock_start_request_tracking(c)
                    } else {
                        rd::rd_kafka_mock_stop_request_tracking(c)
                    }
                };
                Ok(None)
            }
            ["requests", api, rest @ ..] => {
                let api = parse_api(api)?;
                let broker = match rest {
                    [] => None,
                    [n] => Some(parse_num::<i32>(n, "N")?),
                    _ => return Err("usage: requests API [N]".to_owned()),
                };
                Ok(Some(self.count_requests(api, broker).to_string()))
            }
            ["clear-requests"] => {
                // SAFETY: valid cluster; the mock takes its own lock.
                unsafe { rd::rd_kafka_mock_clear_requests(c) };
                Ok(None)
            }
            ["bootstrap"] => Ok(Some(self.bootstrap())),
            ["ping"] => Ok(None),
            [] => Err("empty command".to_owned()),
            _ => Err(format!(
                "unknown command {:?} (see --help)",
                words.join(" ")
            )),
        }
    }
}

fn parse_num<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, String> {
    s.parse()
        .map_err(|_| format!("{what}: {s:?} is not a valid number"))
}

/// A broker id, or `all` (-1: every broker, as the mock API defines it).
fn parse_broker(s: &str) -> Result<i32, String> {
    if s == "all" {
        Ok(-1)
    } else {
        parse_num(s, "N")
    }
}

/// Kafka API keys by name (keys from the Apache Kafka protocol JSON schemas),
/// for the APIs a consumer-group client uses.
const API_NAMES: &[(&str, i16)] = &[
    ("Produce", 0),
    ("Fetch", 1),
    ("ListOffsets", 2),
    ("Metadata", 3),
    ("OffsetCommit", 8),
    ("OffsetFetch", 9),
    ("FindCoordinator", 10),
    ("JoinGroup", 11),
    ("Heartbeat", 12),
    ("LeaveGroup", 13),
    ("SyncGroup", 14),
    ("DescribeGroups", 15),
    ("ListGroups", 16),
    ("ApiVersions", 18),
    ("ConsumerGroupHeartbeat", 68),
];

fn parse_api(s: &str) -> Result<i16, String> {
    if let Ok(n) = s.parse::<i16>() {
        // The mock itself rejects keys it has no handler slot for.
        return if n >= 0 {
            Ok(n)
        } else {
            Err(format!("API key {n} is negative"))
        };
    }
    API_NAMES
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(s))
        .map(|&(_, key)| key)
        .ok_or_else(|| format!("unknown API {s:?}"))
}

/// An error code by number or by librdkafka name (`NOT_COORDINATOR`,
/// `_TRANSPORT`, with or without the `RD_KAFKA_RESP_ERR_` prefix).
fn parse_err(s: &str) -> Result<rd::rd_kafka_resp_err_t, String> {
    if let Ok(n) = s.parse::<i32>() {
        return rd::rd_kafka_resp_err_t::try_from(n)
            .map_err(|_| format!("{n} is not an error code librdkafka knows"));
    }
    let want = s.strip_prefix("RD_KAFKA_RESP_ERR_").unwrap_or(s);
    // Error codes span -200 (RD_KAFKA_RESP_ERR__BEGIN) to the broker codes.
    (-200..200)
        .filter_map(|n| rd::rd_kafka_resp_err_t::try_from(n).ok())
        .find(|&e| err_name(e).eq_ignore_ascii_case(want))
        .ok_or_else(|| format!("unknown error name {s:?}"))
}

fn parse_topic(spec: &str) -> Result<(&str, i32), String> {
    let (name, parts) = spec
        .rsplit_once(':')
        .ok_or_else(|| format!("--topic {spec:?}: expected NAME:PARTITIONS"))?;
    Ok((name, parse_num(parts, "PARTITIONS")?))
}

fn run(args: &Args) -> Result<(), String> {
    if args.brokers < 1 {
        return Err("--brokers must be at least 1".to_owned());
    }
    let mock = Mock::new(args.brokers)?;
    mock.rebalance_delay(0);
    if !args.raw_versions {
        for &(name, key, min, max) in HONEST_CAPS {
            mock.execute(&[
                "cap-version",
                &key.to_string(),
                &min.to_string(),
                &max.to_string(),
            ])
            .map_err(|e| format!("cap {name} to {min}..={max}: {e}"))?;
        }
    }
    for spec in &args.topics {
        let (name, parts) = parse_topic(spec)?;
        mock.create_topic(name, parts, args.replication)
            .map_err(|e| format!("create topic {name}: {e}"))?;
    }

    let stdout = io::stdout();
    let mut out = stdout.lock();
    let reply = |out: &mut io::StdoutLock<'_>, line: &str| -> Result<(), String> {
        writeln!(out, "{line}")
            .and_then(|()| out.flush())
            .map_err(|e| format!("stdout: {e}"))
    };
    reply(&mut out, &mock.bootstrap())?;

    for line in io::stdin().lock().lines() {
        let line = line.map_err(|e| format!("stdin: {e}"))?;
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first().is_none_or(|w| w.starts_with('#')) {
            continue;
        }
        if words == ["quit"] {
            reply(&mut out, "ok")?;
            break;
        }
        let answer = match mock.execute(&words) {
            Ok(None) => "ok".to_owned(),
            Ok(Some(v)) => format!("ok {v}"),
            Err(reason) => format!("err {reason}"),
        };
        reply(&mut out, &answer)?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kgroup-testbroker: {e}");
            ExitCode::FAILURE
        }
    }
}
