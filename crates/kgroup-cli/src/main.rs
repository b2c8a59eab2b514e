//! The `kgroup` command.
use clap::{Parser, Subcommand};

mod assign;

#[derive(Debug, Parser)]
#[command(name = "kgroup", version, about = "Kafka consumer groups, Sans-IO")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a whole group on the embedded simulator.
    Demo,
    /// Run a built-in assignor on a JSON group description.
    Assign(assign::AssignArgs),
}

fn main() {
    let cli = Cli::parse();
    match cli.command {
        Command::Assign(args) => assign::run(args),
        Command::Demo => {
            eprintln!("demo: the simulator is not built yet");
            std::process::exit(1);
        }
    }
}
