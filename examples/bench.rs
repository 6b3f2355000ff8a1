//! `sdti bench` under its example name: `cargo run --release --example bench -- --help`.
//! The command itself is `crates/sdti/src/commands/bench.rs`.

use clap::Parser;
use sdti::commands::bench;

fn main() -> anyhow::Result<()> {
    sdti::logging::init(0);
    bench::run(bench::Args::parse())
}
