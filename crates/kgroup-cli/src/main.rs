//! The `kgroup` command.
use clap::{Parser, Subcommand};

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
}

fn main() {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo => {
            eprintln!("demo: the simulator is not built yet");
            std::process::exit(1);
        }
    }
}
