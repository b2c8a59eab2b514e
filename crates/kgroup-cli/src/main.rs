//! The `kgroup` command.
use clap::{Parser, Subcommand};

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
