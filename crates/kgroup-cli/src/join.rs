//! `kgroup join`: one group member on a real cluster, reporting every
//! membership and commit event, one line each (JSON with `--json`).
//!
//! This is what end-to-end checks run next to real librdkafka members, so it
//! never panics, reconnects by itself (the adapters' driver) and exits only:
//! 0 after leaving (SIGTERM, SIGINT or end of stdin: commit what is marked,
//! leave if dynamic, print `left`), 1 after a fatal group error (printed
//! first), 2 on bad usage.
//!
//! `--advance-offsets-ms N` stands in for consumption: every N ms each owned
//! partition's processed position moves up by one, starting from its
//! committed offset (read with OffsetFetch when assigned) or 0, and is marked
//! processed, so auto-commit (`--auto-commit-interval-ms`) commits it.
#![allow(clippy::disallowed_methods)] // a command owns the clock

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Args, ValueEnum};
use kgroup::driver::{Command, Reply};
use kgroup::offsets::{FetchId, OffsetEvent};
use kgroup::{Config, Event, TopicPartition};
use serde_json::{Value, json};

/// Exit code after leaving cleanly.
const EXIT_OK: i32 = 0;
/// Exit code after a fatal group error.
const EXIT_FATAL: i32 = 1;
/// Exit code on bad usage (as clap's own).
const EXIT_USAGE: i32 = 2;
/// Longest wait for the leave to complete once asked to stop.
const CLOSE_WAIT: Duration = Duration::from_secs(30);

/// Which adapter drives the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Runtime {
    /// `kgroup-blocking`: std::net, one thread, no async runtime (default).
    Blocking,
    /// `kgroup-tokio`.
    Tokio,
    /// `kgroup-async-std`: futures-io + async-io, run on async-std.
    AsyncStd,
}

/// Arguments of `kgroup join`.
#[derive(Debug, Args)]
pub struct JoinArgs {
    /// Bootstrap brokers, host:port[,host:port...].
    #[arg(long)]
    bootstrap: String,
    /// Group id.
    #[arg(long)]
    group: String,
    /// Topics to subscribe to, comma separated.
    #[arg(long, value_delimiter = ',', required = true)]
    topics: Vec<String>,
    /// Assignors in preference order, comma separated (Java's default).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "range,cooperative-sticky"
    )]
    assignor: Vec<String>,
    /// group.instance.id: makes this a static member (KIP-345).
    #[arg(long)]
    instance_id: Option<String>,
    /// session.timeout.ms.
    #[arg(long, default_value_t = 45_000)]
    session_timeout_ms: u64,
    /// heartbeat.interval.ms (default: 3000, or a third of the session
    /// timeout when that is smaller).
    #[arg(long)]
    heartbeat_interval_ms: Option<u64>,
    /// Rebalance timeout (max.poll.interval.ms).
    #[arg(long, default_value_t = 300_000)]
    rebalance_timeout_ms: u64,
    /// auto.commit.interval.ms: how often marked offsets are committed.
    #[arg(long, default_value_t = 5_000)]
    auto_commit_interval_ms: u64,
    /// Simulated consumption: every N ms each owned partition's processed
    /// offset moves up by one and is marked processed.
    #[arg(long)]
    advance_offsets_ms: Option<u64>,
    /// Adapter that drives the engine.
    #[arg(long, value_enum, default_value_t = Runtime::Blocking)]
    runtime: Runtime,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

/// A member as `kgroup join` drives it, whatever the adapter.
pub trait Member {
    /// The next event, waiting at most `timeout`.
    fn next_event(&mut self, timeout: Duration) -> Option<Event>;
    /// Apply a command and return its result.
    fn apply(&mut self, command: Command) -> Reply;
}

impl<C: kgroup_blocking::Connector> Member for kgroup_blocking::Consumer<C> {
    fn next_event(&mut self, timeout: Duration) -> Option<Event> {
        self.poll(timeout)
    }
    fn apply(&mut self, command: Command) -> Reply {
        kgroup_blocking::Consumer::apply(self, command)
    }
}

/// Run `kgroup join`; returns the exit code.
pub fn run(args: JoinArgs) -> i32 {
    let out = Output { json: args.json };
    let config = match build_config(&args) {
        Ok(c) => c,
        Err(why) => {
            eprintln!("kgroup join: {why}");
            return EXIT_USAGE;
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    if let Err(e) = watch_for_stop(&stop) {
        eprintln!("kgroup join: cannot install signal handlers: {e}");
        return EXIT_FATAL;
    }
    let bootstrap = args.bootstrap.clone();
    let mut session = Session::new(&args, out, stop);
    match args.runtime {
        Runtime::Blocking => match kgroup_blocking::Consumer::new(config, &bootstrap) {
            Ok(mut m) => session.run(&mut m),
            Err(e) => {
                eprintln!("kgroup join: {e}");
                EXIT_USAGE
            }
        },
        Runtime::Tokio => match crate::join_async::tokio_member(config, &bootstrap) {
            Ok(mut m) => session.run(&mut m),
            Err(e) => {
                eprintln!("kgroup join: {e}");
                EXIT_USAGE
            }
        },
        Runtime::AsyncStd => match crate::join_async::async_std_member(config, &bootstrap) {
            Ok(mut m) => session.run(&mut m),
            Err(e) => {
                eprintln!("kgroup join: {e}");
                EXIT_USAGE
            }
        },
    }
}

fn build_config(args: &JoinArgs) -> Result<Config, String> {
    let mut assignors = Vec::new();
    for name in &args.assignor {
        let a = kgroup::assignor::builtin(name.trim()).ok_or_else(|| {
            format!(
                "unknown assignor {name:?}: use range, roundrobin, sticky or cooperative-sticky"
            )
        })?;
        assignors.push(a);
    }
    let topics: Vec<&String> = args.topics.iter().filter(|t| !t.is_empty()).collect();
    if topics.is_empty() {
        return Err("--topics names no topic".to_owned());
    }
    let session = Duration::from_millis(args.session_timeout_ms);
    let heartbeat = Duration::from_millis(
        args.heartbeat_interval_ms
            .unwrap_or_else(|| (args.session_timeout_ms / 3).clamp(1, 3_000)),
    );
    if args.auto_commit_interval_ms == 0 {
        return Err("--auto-commit-interval-ms must be above 0".to_owned());
    }
    if args.advance_offsets_ms == Some(0) {
        return Err("--advance-offsets-ms must be above 0".to_owned());
    }
    // Jitter seeds must differ between processes, or every member backs off
    // in lock step.
    let seed = u64::from(std::process::id())
        ^ SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
    let offsets = kgroup::offsets::OffsetsConfig::new(args.group.clone())
        .with_auto_commit(Some(Duration::from_millis(args.auto_commit_interval_ms)))
        .with_seed(seed);
    let mut b = Config::builder(args.group.clone())
        .assignors(assignors)
        .session_timeout(session)
        .heartbeat_interval(heartbeat)
        .rebalance_timeout(Duration::from_millis(args.rebalance_timeout_ms))
        .offsets(offsets)
        .seed(seed);
    if let Some(id) = &args.instance_id {
        b = b.instance_id(id.clone());
    }
    b.build().map_err(|e| e.to_string())
}

/// SIGTERM and SIGINT set `stop`; so does end of stdin (a thread reads it).
fn watch_for_stop(stop: &Arc<AtomicBool>) -> std::io::Result<()> {
    signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(stop))?;
    signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(stop))?;
    let flag = Arc::clone(stop);
    std::thread::Builder::new()
        .name("stdin-watch".into())
        .spawn(move || {
            let stdin = std::io::stdin();
            let mut lock = stdin.lock();
            let mut line = String::new();
            loop {
                line.clear();
                match lock.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            flag.store(true, Ordering::SeqCst);
        })?;
    Ok(())
}

/// Prints events as JSON lines or readable lines.
#[derive(Clone, Copy, Debug)]
struct Output {
    json: bool,
}

impl Output {
    fn emit(&self, mut v: Value, text: String) {
        let line = if self.json {
            if let Some(obj) = v.as_object_mut() {
                obj.insert("ts_ms".into(), json!(ts_ms()));
            }
            v.to_string()
        } else {
            text
        };
        let stdout = std::io::stdout();
        let mut lock = stdout.lock();
        // A closed stdout must not kill the member: ignore write errors.
        let _ = writeln!(lock, "{line}");
        let _ = lock.flush();
    }
}

fn ts_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn tp_list(tps: &[TopicPartition]) -> Value {
    Value::Array(
        tps.iter()
            .map(|tp| json!([tp.topic, tp.partition]))
            .collect(),
    )
}

fn tp_text(tps: &[TopicPartition]) -> String {
    let v: Vec<String> = tps.iter().map(ToString::to_string).collect();
    format!("[{}]", v.join(","))
}

/// One run of `kgroup join`.
struct Session {
    out: Output,
    stop: Arc<AtomicBool>,
    topics: Vec<String>,
    advance: Option<Duration>,
    /// Processed position per owned partition; `None` until its committed
    /// offset is known.
    positions: BTreeMap<TopicPartition, Option<i64>>,
    fetch_in_flight: Option<FetchId>,
}

impl Session {
    fn new(args: &JoinArgs, out: Output, stop: Arc<AtomicBool>) -> Self {
        Self {
            out,
            stop,
            topics: args
                .topics
                .iter()
                .filter(|t| !t.is_empty())
                .cloned()
                .collect(),
            advance: args.advance_offsets_ms.map(Duration::from_millis),
            positions: BTreeMap::new(),
            fetch_in_flight: None,
        }
    }

    fn run(&mut self, m: &mut dyn Member) -> i32 {
        m.apply(Command::Subscribe(self.topics.clone()));
        let mut next_tick = self.advance.map(|d| Instant::now() + d);
        let mut closing_since: Option<Instant> = None;
        loop {
            if closing_since.is_none() && self.stop.load(Ordering::SeqCst) {
                closing_since = Some(Instant::now());
                m.apply(Command::Close);
            }
            if let Some(since) = closing_since
                && since.elapsed() > CLOSE_WAIT
            {
                // The cluster did not answer in time: we are gone anyway.
                self.out.emit(json!({"event": "left"}), "left".to_owned());
                return EXIT_OK;
            }
            let now = Instant::now();
            let wait = next_tick
                .filter(|_| closing_since.is_none())
                .map_or(Duration::from_millis(100), |t| {
                    t.saturating_duration_since(now)
                })
                .min(Duration::from_millis(100));
            if let Some(event) = m.next_event(wait) {
                if let Some(code) = self.on_event(m, event) {
                    return code;
                }
                continue;
            }
            if closing_since.is_none()
                && let (Some(at), Some(every)) = (next_tick, self.advance)
                && Instant::now() >= at
            {
                next_tick = Some(at.max(Instant::now() - every) + every);
                self.advance_positions(m);
            }
        }
    }

    /// Print `event` and act on it; `Some(code)` ends the run.
    fn on_event(&mut self, m: &mut dyn Member, event: Event) -> Option<i32> {
        match event {
            Event::Joined {
                member_id,
                generation,
                leader,
                protocol,
            } => self.out.emit(
                json!({"event": "joined", "member_id": member_id, "generation": generation,
                       "leader": leader, "protocol": protocol}),
                format!(
                    "joined member_id={member_id} generation={generation} leader={leader} protocol={protocol}"
                ),
            ),
            Event::Assigned {
                generation,
                partitions,
                added,
                committed,
                ..
            } => {
                self.out.emit(
                    json!({"event": "assigned", "generation": generation,
                           "partitions": tp_list(&partitions), "added": tp_list(&added)}),
                    format!(
                        "assigned generation={generation} partitions={} added={}",
                        tp_text(&partitions),
                        tp_text(&added)
                    ),
                );
                self.positions.retain(|tp, _| partitions.contains(tp));
                for tp in partitions {
                    self.positions.entry(tp).or_insert(None);
                }
                // Start from the committed offsets `Assigned` carries; only
                // partitions without one (not fetched, errors) are fetched.
                for (tp, c) in committed {
                    let start = match c {
                        kgroup::event::Committed::Offset(o) => Some(o.offset.max(0)),
                        kgroup::event::Committed::None => Some(0),
                        _ => None,
                    };
                    if let (Some(slot), Some(start)) = (self.positions.get_mut(&tp), start) {
                        *slot = Some(start);
                    }
                }
                self.fetch_positions(m);
            }
            Event::Revoked { partitions } => {
                self.out.emit(
                    json!({"event": "revoked", "partitions": tp_list(&partitions)}),
                    format!("revoked partitions={}", tp_text(&partitions)),
                );
                for tp in &partitions {
                    self.positions.remove(tp);
                }
            }
            Event::Lost { partitions, reason } => {
                self.out.emit(
                    json!({"event": "lost", "partitions": tp_list(&partitions),
                           "reason": reason.to_string()}),
                    format!("lost partitions={} reason={reason}", tp_text(&partitions)),
                );
                for tp in &partitions {
                    self.positions.remove(tp);
                }
            }
            Event::Rejoining { reason } => self.out.emit(
                json!({"event": "rejoining", "reason": reason.to_string()}),
                format!("rejoining reason={reason}"),
            ),
            Event::HoldExpired { reason } => self.out.emit(
                json!({"event": "hold_expired", "reason": reason.to_string()}),
                format!("hold expired reason={reason}"),
            ),
            Event::Warning(e) => self.out.emit(
                json!({"event": "warning", "class": e.class().as_str(), "error": e.to_string()}),
                format!("warning class={} error={e}", e.class()),
            ),
            Event::Fatal(e) => {
                self.out.emit(
                    json!({"event": "error", "class": e.class().as_str(), "error": e.to_string()}),
                    format!("error class={} error={e}", e.class()),
                );
                return Some(EXIT_FATAL);
            }
            Event::Left => {
                self.out.emit(json!({"event": "left"}), "left".to_owned());
                return Some(EXIT_OK);
            }
            Event::Offsets(o) => self.on_offsets(o),
            other => self.out.emit(
                json!({"event": "other", "detail": format!("{other:?}")}),
                format!("{other:?}"),
            ),
        }
        None
    }

    fn on_offsets(&mut self, o: OffsetEvent) {
        match o {
            // The offsets come from the engine's own result: what the
            // broker accepted, as sent.
            OffsetEvent::CommitDone {
                committed,
                result: Ok(()),
                ..
            } => {
                let (list, text) = offsets_out(&committed);
                self.out.emit(
                    json!({"event": "committed", "offsets": list}),
                    format!("committed [{text}]"),
                );
            }
            OffsetEvent::CommitDone {
                committed,
                result: Err(e),
                ..
            } => {
                // A partly failed commit still wrote some partitions.
                let (list, text) = offsets_out(&committed);
                self.out.emit(
                    json!({"event": "commit_failed", "class": e.class().as_str(), "error": e.to_string(), "offsets": list}),
                    format!("commit failed class={} error={e} committed=[{text}]", e.class()),
                );
            }
            OffsetEvent::FetchDone { id, result, .. } => {
                if self.fetch_in_flight == Some(id) {
                    self.fetch_in_flight = None;
                }
                match result {
                    Ok(fetched) => {
                        for (tp, r) in fetched {
                            if let (Some(slot), Ok(o)) = (self.positions.get_mut(&tp), r) {
                                *slot = Some(o.map_or(0, |o| o.offset.max(0)));
                            }
                        }
                    }
                    Err(e) => self.out.emit(
                        json!({"event": "fetch_failed", "class": e.class().as_str(), "error": e.to_string()}),
                        format!("offset fetch failed class={} error={e}", e.class()),
                    ),
                }
            }
            _ => {}
        }
    }

    /// Read the committed offsets of owned partitions whose position is unknown.
    fn fetch_positions(&mut self, m: &mut dyn Member) {
        if self.advance.is_none() || self.fetch_in_flight.is_some() {
            return;
        }
        let unknown: Vec<TopicPartition> = self
            .positions
            .iter()
            .filter(|(_, p)| p.is_none())
            .map(|(tp, _)| tp.clone())
            .collect();
        if unknown.is_empty() {
            return;
        }
        if let Reply::Fetch(Ok(id)) = m.apply(Command::FetchCommitted(unknown)) {
            self.fetch_in_flight = Some(id);
        }
    }

    fn advance_positions(&mut self, m: &mut dyn Member) {
        self.fetch_positions(m);
        let known: Vec<(TopicPartition, i64)> = self
            .positions
            .iter_mut()
            .filter_map(|(tp, p)| {
                let pos = p.as_mut()?;
                *pos = pos.saturating_add(1);
                Some((tp.clone(), *pos))
            })
            .collect();
        for (tp, pos) in known {
            // Refused during an eager rebalance or after a loss: the next
            // tick marks a higher offset anyway.
            let _ = m.apply(Command::MarkProcessed(tp, pos));
        }
    }
}

/// `[["t",0,42],..]` and `t-0@42,..` for committed offsets.
fn offsets_out(offsets: &[(TopicPartition, i64)]) -> (Vec<Value>, String) {
    let list = offsets
        .iter()
        .map(|(tp, o)| json!([tp.topic, tp.partition, o]))
        .collect();
    let text: Vec<String> = offsets.iter().map(|(tp, o)| format!("{tp}@{o}")).collect();
    (list, text.join(","))
}
