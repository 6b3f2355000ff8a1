//! `sdti tokenize` under its example name: `cargo run --release --example tokenize -- --help`.
//! The command itself is `crates/sdti/src/commands/tokenize.rs`.

use clap::Parser;
use sdti::commands::tokenize;

fn main() -> anyhow::Result<()> {
    sdti::logging::init(0);
    tokenize::run(tokenize::Args::parse())
}
