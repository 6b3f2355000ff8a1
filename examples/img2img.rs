//! `sdti img2img` under its example name: `cargo run --release --example img2img -- --help`.
//! The command itself is `crates/sdti/src/commands/img2img.rs`.

use clap::Parser;
use sdti::commands::img2img;

fn main() -> anyhow::Result<()> {
    sdti::logging::init(0);
    img2img::run(img2img::Args::parse())
}
