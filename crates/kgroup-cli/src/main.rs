//! The `kgroup` command.
use clap::{Parser, Subcommand};

/// `println!` for the reports on stdout: a reader that went away
/// (`kgroup sim --seeds 100 | head -1`) ends the process quietly, with the
/// status a shell gives a writer killed by SIGPIPE, instead of a panic.
macro_rules! out {
    () => {
        $crate::write_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::write_line(format_args!($($arg)*))
    };
}

/// Exit status for a closed stdout: 128 + SIGPIPE.
const BROKEN_PIPE_STATUS: i32 = 141;

fn write_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    if let Err(e) = lock.write_fmt(args).and_then(|()| lock.write_all(b"\n")) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(BROKEN_PIPE_STATUS);
        }
        eprintln!("kgroup: writing to stdout: {e}");
        std::process::exit(1);
    }
}

mod assign;
mod demo;
mod join;
mod join_async;
mod sim;

#[derive(Debug, Parser)]
#[command(name = "kgroup", version, about = "Kafka consumer groups, Sans-IO")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a whole group on the embedded simulator.
    Demo(demo::DemoArgs),
    /// Run seeded fault schedules with invariant checks.
    Sim(sim::SimArgs),
    /// Run a built-in assignor on a JSON group description.
    Assign(assign::AssignArgs),
    /// Join a consumer group on a real cluster and report its events.
    Join(join::JoinArgs),
}

fn main() {
    let cli = Cli::parse();
    match cli.command {
        Command::Assign(args) => assign::run(args),
        Command::Demo(args) => std::process::exit(demo::run_demo(args)),
        Command::Sim(args) => std::process::exit(sim::run_sim(args)),
        Command::Join(args) => std::process::exit(join::run(args)),
    }
}
