//! `sdti png-info` under its example name: `cargo run --release --example png_info -- --help`.
//! The command itself is `crates/sdti/src/commands/png_info.rs`.

use clap::Parser;
use sdti::commands::png_info;

fn main() -> anyhow::Result<()> {
    sdti::logging::init(0);
    png_info::run(png_info::Args::parse())
}
