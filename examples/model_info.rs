//! `sdti model-info` under its example name: `cargo run --release --example model_info -- --help`.
//! The command itself is `crates/sdti/src/commands/model_info.rs`.

use clap::Parser;
use sdti::commands::model_info;

fn main() -> anyhow::Result<()> {
    sdti::logging::init(0);
    model_info::run(model_info::Args::parse())
}
