//! `sdti embedding` under its example name: `cargo run --release --example embedding -- --help`.
//! The command itself is `crates/sdti/src/commands/embedding.rs`.

use clap::Parser;
use sdti::commands::embedding;

fn main() -> anyhow::Result<()> {
    sdti::logging::init(0);
    embedding::run(embedding::Args::parse())
}
