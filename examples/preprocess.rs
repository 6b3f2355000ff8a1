//! `sdti preprocess` under its example name: `cargo run --release --example preprocess -- --help`.
//! The command itself is `crates/sdti/src/commands/preprocess.rs`.

use clap::Parser;
use sdti::commands::preprocess;

fn main() -> anyhow::Result<()> {
    sdti::logging::init(0);
    preprocess::run(preprocess::Args::parse())
}
