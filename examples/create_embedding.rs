//! `sdti create` under its example name: `cargo run --release --example create_embedding -- --help`.
//! The command itself is `crates/sdti/src/commands/create.rs`.

use clap::Parser;
use sdti::commands::create;

fn main() -> anyhow::Result<()> {
    sdti::logging::init(0);
    create::run(create::Args::parse())
}
