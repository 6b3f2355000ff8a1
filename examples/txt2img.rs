//! `sdti txt2img` under its example name: `cargo run --release --example txt2img -- --help`.
//! The command itself is `crates/sdti/src/commands/txt2img.rs`.

use clap::Parser;
use sdti::commands::txt2img;

fn main() -> anyhow::Result<()> {
    sdti::logging::init(0);
    txt2img::run(txt2img::Args::parse())
}
