//! `sdti create-hypernetwork` under its example name:
//! `cargo run --release --example create_hypernetwork -- --help`.
//! The command itself is `crates/sdti/src/commands/create_hypernetwork.rs`.

use clap::Parser;
use sdti::commands::create_hypernetwork;

fn main() -> anyhow::Result<()> {
    sdti::logging::init(0);
    create_hypernetwork::run(create_hypernetwork::Args::parse())
}
