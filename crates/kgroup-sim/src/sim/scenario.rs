//! Fault schedules: the random ones (`--faults none|light|heavy`) and the
//! five named scenarios taken from the field reports in `shared/seeds/`.
//!
//! A schedule is a list of timed [`Action`]s drawn from the seed before the
//! run starts, so it is part of what the seed names.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::clock::SimTime;
use crate::rng::SimRng;

/// How much goes wrong in a random schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultLevel {
    /// Only the scenario's own actions.
    None,
    /// A fault every ~15 s: connection resets, member bounces, coordinator moves.
    Light,
    /// A fault every ~4 s, adding broker crashes, network partitions, process kills and latency spikes.
    Heavy,
}

impl FaultLevel {
    /// CLI spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultLevel::None => "none",
            FaultLevel::Light => "light",
            FaultLevel::Heavy => "heavy",
        }
    }
}

impl fmt::Display for FaultLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FaultLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(FaultLevel::None),
            "light" => Ok(FaultLevel::Light),
            "heavy" => Ok(FaultLevel::Heavy),
            other => Err(format!(
                "unknown fault level {other:?}: use none, light or heavy"
            )),
        }
    }
}

/// The named scenarios (one per field report) and the random mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scenario {
    /// Members come and go at random (the default).
    Random,
    /// Seed 000: eager-to-cooperative rolling upgrade in two bounces
    /// (`[range]` → `[cooperative-sticky, range]` → `[cooperative-sticky]`).
    DoubleBounce,
    /// Seed 001: long batches hold rebalances; revocations are acknowledged late.
    GatedRebalance,
    /// Seed 002: static members restart within the session timeout.
    StaticRestart,
    /// Seed 003: the group grows from 2 members while everyone commits often.
    CommitDuringRebalance,
    /// Seed 004: the coordinator's broker crashes and restarts mid-generation.
    CoordinatorRestart,
    /// `kgroup demo`: a rolling upgrade from eager to cooperative, a static
    /// member restart and a coordinator crash, one after the other.
    Demo,
}

impl Scenario {
    /// Every scenario, in CLI order.
    pub const ALL: [Scenario; 6] = [
        Scenario::Random,
        Scenario::DoubleBounce,
        Scenario::GatedRebalance,
        Scenario::StaticRestart,
        Scenario::CommitDuringRebalance,
        Scenario::CoordinatorRestart,
    ];

    /// CLI spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::Random => "random",
            Scenario::DoubleBounce => "double-bounce",
            Scenario::GatedRebalance => "gated-rebalance",
            Scenario::StaticRestart => "static-restart",
            Scenario::CommitDuringRebalance => "commit-during-rebalance",
            Scenario::CoordinatorRestart => "coordinator-restart",
            Scenario::Demo => "demo",
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scenario {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scenario::ALL
            .iter()
            .copied()
            .chain([Scenario::Demo])
            .find(|x| x.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Scenario::ALL.iter().map(|x| x.as_str()).collect();
                format!("unknown scenario {s:?}: use one of {}", names.join(", "))
            })
    }
}

/// One scheduled action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Start (or restart) member `member` with these assignors.
    Start {
        /// Member index.
        member: usize,
        /// Assignor names in preference order.
        assignors: Vec<&'static str>,
    },
    /// Close member `member` cleanly (LeaveGroup for dynamic members).
    Close {
        /// Member index.
        member: usize,
    },
    /// The member's process dies: no LeaveGroup, no commit.
    Kill {
        /// Member index.
        member: usize,
    },
    /// Every connection of the member is reset.
    ResetConnections {
        /// Member index.
        member: usize,
    },
    /// The member cannot reach any broker for `duration` (packets dropped);
    /// its connections are reset when the partition heals.
    Partition {
        /// Member index.
        member: usize,
        /// How long.
        duration: Duration,
    },
    /// Latency spikes on every link for `duration`.
    SlowNetwork {
        /// How long.
        duration: Duration,
    },
    /// Broker crash (its connections die; the coordinator moves if it led).
    CrashBroker(i32),
    /// Broker restart.
    RestartBroker(i32),
    /// The coordinator partition moves to a broker.
    MoveCoordinator(i32),
    /// The coordinator's current broker crashes.
    CrashCoordinator,
    /// Marks the end of the fault window: everything after is recovery.
    FaultsEnd,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Start { member, assignors } => {
                write!(f, "start m{member} [{}]", assignors.join(", "))
            }
            Action::Close { member } => write!(f, "close m{member}"),
            Action::Kill { member } => write!(f, "kill m{member}"),
            Action::ResetConnections { member } => write!(f, "reset connections of m{member}"),
            Action::Partition { member, duration } => {
                write!(
                    f,
                    "partition m{member} from the cluster for {}ms",
                    duration.as_millis()
                )
            }
            Action::SlowNetwork { duration } => {
                write!(f, "latency spike for {}ms", duration.as_millis())
            }
            Action::CrashBroker(b) => write!(f, "crash broker {b}"),
            Action::RestartBroker(b) if *b < 0 => write!(f, "restart crashed brokers"),
            Action::RestartBroker(b) => write!(f, "restart broker {b}"),
            Action::MoveCoordinator(b) => write!(f, "move coordinator to broker {b}"),
            Action::CrashCoordinator => write!(f, "crash the coordinator's broker"),
            Action::FaultsEnd => write!(f, "faults end"),
        }
    }
}

/// A schedule: actions sorted by time, the end of the fault window and the
/// run's length.
#[derive(Clone, Debug)]
pub struct Schedule {
    /// Timed actions.
    pub actions: Vec<(SimTime, Action)>,
    /// When faults stop.
    pub faults_end: SimTime,
    /// When the run ends.
    pub end: SimTime,
    /// Members that are static (instance id `inst-<n>`).
    pub static_members: Vec<usize>,
    /// Per-member probability of holding rebalances during a batch.
    pub hold_chance: f64,
    /// Probability of a very late revocation ack.
    pub late_ack_chance: f64,
    /// Commit period of the applications.
    pub commit_every: Duration,
}

const EAGER: &[&str] = &["range"];
const MIXED: &[&str] = &["cooperative-sticky", "range"];
const COOPERATIVE: &[&str] = &["cooperative-sticky"];

fn secs(s: u64) -> SimTime {
    Duration::from_secs(s)
}

fn ms(m: u64) -> SimTime {
    Duration::from_millis(m)
}

/// Build the schedule for `scenario` with `members` members, `brokers`
/// brokers and random faults at `level`.
pub fn build(
    scenario: Scenario,
    level: FaultLevel,
    members: usize,
    brokers: i32,
    rng: &mut SimRng,
) -> Schedule {
    let mut s = Schedule {
        actions: Vec::new(),
        faults_end: secs(120),
        end: secs(240),
        static_members: Vec::new(),
        hold_chance: 0.1,
        late_ack_chance: 0.0,
        commit_every: ms(2000),
    };
    let members = members.max(1);
    let assignors_for = |rng: &mut SimRng| -> Vec<&'static str> {
        match rng.range(0, 2) {
            0 => EAGER.to_vec(),
            1 => MIXED.to_vec(),
            _ => COOPERATIVE.to_vec(),
        }
    };
    match scenario {
        Scenario::Random => {
            // One protocol family per run (mixing [range] with
            // [cooperative-sticky] is refused by the broker, rightly).
            let family = assignors_for(rng);
            if rng.chance(0.3) {
                s.static_members = (0..members).collect();
            }
            for m in 0..members {
                s.actions.push((
                    ms(rng.range(0, 3000)),
                    Action::Start {
                        member: m,
                        assignors: family.clone(),
                    },
                ));
            }
            // Membership churn inside the fault window.
            let churn = rng.range(1, 4);
            for _ in 0..churn {
                let m = rng.index(members);
                let t = ms(rng.range(10_000, 90_000));
                s.actions.push((t, Action::Close { member: m }));
                s.actions.push((
                    t + ms(rng.range(500, 8000)),
                    Action::Start {
                        member: m,
                        assignors: family.clone(),
                    },
                ));
            }
        }
        Scenario::DoubleBounce => {
            for m in 0..members {
                s.actions.push((
                    ms(rng.range(0, 2000)),
                    Action::Start {
                        member: m,
                        assignors: EAGER.to_vec(),
                    },
                ));
            }
            // Two rolling bounces, one member at a time (KIP-429 upgrade path).
            let mut t = secs(20);
            for step in [MIXED, COOPERATIVE] {
                for m in 0..members {
                    s.actions.push((t, Action::Close { member: m }));
                    s.actions.push((
                        t + ms(rng.range(300, 1500)),
                        Action::Start {
                            member: m,
                            assignors: step.to_vec(),
                        },
                    ));
                    t += ms(rng.range(6000, 12000));
                }
                t += secs(10);
            }
            s.faults_end = t;
            s.end = t + secs(120);
        }
        Scenario::GatedRebalance => {
            s.hold_chance = 0.6;
            s.late_ack_chance = 0.05;
            let family = assignors_for(rng);
            for m in 0..members {
                s.actions.push((
                    ms(rng.range(0, 4000)),
                    Action::Start {
                        member: m,
                        assignors: family.clone(),
                    },
                ));
            }
            for i in 0..4u64 {
                let m = rng.index(members);
                let t = secs(20 + i * 20);
                s.actions.push((t, Action::Close { member: m }));
                s.actions.push((
                    t + secs(5),
                    Action::Start {
                        member: m,
                        assignors: family.clone(),
                    },
                ));
            }
        }
        Scenario::StaticRestart => {
            s.static_members = (0..members).collect();
            let family = assignors_for(rng);
            for m in 0..members {
                s.actions.push((
                    ms(rng.range(0, 2000)),
                    Action::Start {
                        member: m,
                        assignors: family.clone(),
                    },
                ));
            }
            // Restarts within the session timeout (10 s): kill, back 1–6 s later.
            for i in 0..6u64 {
                let m = rng.index(members);
                let t = secs(20 + i * 15);
                s.actions.push((t, Action::Kill { member: m }));
                s.actions.push((
                    t + ms(rng.range(1000, 6000)),
                    Action::Start {
                        member: m,
                        assignors: family.clone(),
                    },
                ));
            }
        }
        Scenario::CommitDuringRebalance => {
            s.commit_every = ms(150);
            let family = assignors_for(rng);
            let first = members.min(2);
            for m in 0..first {
                s.actions.push((
                    ms(rng.range(0, 1000)),
                    Action::Start {
                        member: m,
                        assignors: family.clone(),
                    },
                ));
            }
            // Scale out one member at a time, as the 2 → 30 report.
            let mut t = secs(10);
            for m in first..members {
                s.actions.push((
                    t,
                    Action::Start {
                        member: m,
                        assignors: family.clone(),
                    },
                ));
                t += ms(rng.range(500, 4000));
            }
            s.faults_end = t.max(secs(60));
            s.end = s.faults_end + secs(120);
        }
        Scenario::CoordinatorRestart => {
            let family = assignors_for(rng);
            for m in 0..members {
                s.actions.push((
                    ms(rng.range(0, 2000)),
                    Action::Start {
                        member: m,
                        assignors: family.clone(),
                    },
                ));
            }
            for i in 0..3u64 {
                let t = secs(20 + i * 30) + ms(rng.range(0, 5000));
                s.actions.push((t, Action::CrashCoordinator));
                // Restart the crashed broker later (the action resolves which one).
                s.actions
                    .push((t + ms(rng.range(2000, 15000)), Action::RestartBroker(-1)));
            }
        }
        Scenario::Demo => {
            // The last member is static; everyone starts eager.
            s.static_members = vec![members - 1];
            for m in 0..members {
                s.actions.push((
                    ms(500 * m as u64),
                    Action::Start {
                        member: m,
                        assignors: EAGER.to_vec(),
                    },
                ));
            }
            let mut t = secs(15);
            for step in [MIXED, COOPERATIVE] {
                for m in 0..members {
                    s.actions.push((t, Action::Close { member: m }));
                    s.actions.push((
                        t + ms(800),
                        Action::Start {
                            member: m,
                            assignors: step.to_vec(),
                        },
                    ));
                    t += secs(8);
                }
                t += secs(4);
            }
            // A static restart within the session timeout: no rebalance.
            s.actions.push((
                t,
                Action::Kill {
                    member: members - 1,
                },
            ));
            s.actions.push((
                t + secs(3),
                Action::Start {
                    member: members - 1,
                    assignors: Vec::new(),
                },
            ));
            t += secs(15);
            // The coordinator's broker crashes; it comes back later.
            s.actions.push((t, Action::CrashCoordinator));
            s.actions.push((t + secs(12), Action::RestartBroker(-1)));
            s.faults_end = t + secs(20);
            s.end = s.faults_end + secs(40);
            s.hold_chance = 0.05;
        }
    }
    add_random_faults(&mut s, level, members, brokers, rng);
    s.actions.push((s.faults_end, Action::FaultsEnd));
    // Stable sort: actions at the same instant keep their insertion order.
    s.actions.sort_by_key(|(t, _)| *t);
    s
}

fn add_random_faults(
    s: &mut Schedule,
    level: FaultLevel,
    members: usize,
    brokers: i32,
    rng: &mut SimRng,
) {
    let mean_gap = match level {
        FaultLevel::None => return,
        FaultLevel::Light => 15_000,
        FaultLevel::Heavy => 4_000,
    };
    let heavy = level == FaultLevel::Heavy;
    let end = s.faults_end.as_millis() as u64;
    let mut t = 5_000u64;
    loop {
        t += rng.range(mean_gap / 2, mean_gap * 3 / 2);
        if t >= end {
            break;
        }
        let at = ms(t);
        let m = rng.index(members);
        let kinds = if heavy { 8 } else { 4 };
        match rng.range(0, kinds - 1) {
            0 => s.actions.push((at, Action::ResetConnections { member: m })),
            1 => s.actions.push((
                at,
                Action::MoveCoordinator(
                    i32::try_from(rng.range(0, brokers.max(1) as u64 - 1)).unwrap_or(0),
                ),
            )),
            2 => {
                // A bounce: clean close and restart with the member's current assignors.
                s.actions.push((at, Action::Close { member: m }));
                s.actions.push((
                    at + ms(rng.range(200, 5000)),
                    Action::Start {
                        member: m,
                        assignors: Vec::new(),
                    },
                ));
            }
            3 => s.actions.push((
                at,
                Action::SlowNetwork {
                    duration: ms(rng.range(500, 5000)),
                },
            )),
            4 => {
                let b = i32::try_from(rng.range(0, brokers.max(1) as u64 - 1)).unwrap_or(0);
                s.actions.push((at, Action::CrashBroker(b)));
                s.actions
                    .push((at + ms(rng.range(1000, 20_000)), Action::RestartBroker(b)));
            }
            5 => s.actions.push((
                at,
                Action::Partition {
                    member: m,
                    duration: ms(rng.range(1000, 25_000)),
                },
            )),
            6 => {
                s.actions.push((at, Action::Kill { member: m }));
                s.actions.push((
                    at + ms(rng.range(500, 15_000)),
                    Action::Start {
                        member: m,
                        assignors: Vec::new(),
                    },
                ));
            }
            _ => s.actions.push((at, Action::CrashCoordinator)),
        }
    }
}
