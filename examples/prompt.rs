//! `sdti prompt` under its example name: `cargo run --release --example prompt -- --help`.
//! The command itself is `crates/sdti/src/commands/prompt.rs`.

use clap::Parser;
use sdti::commands::prompt;

fn main() -> anyhow::Result<()> {
    sdti::logging::init(0);
    prompt::run(prompt::Args::parse())
}
