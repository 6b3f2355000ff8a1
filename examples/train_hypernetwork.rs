//! `sdti train-hypernetwork` under its example name:
//! `cargo run --release --example train_hypernetwork -- --help`.
//! The command itself is `crates/sdti/src/commands/train_hypernetwork.rs`.

use clap::Parser;
use sdti::commands::train_hypernetwork;

fn main() -> anyhow::Result<()> {
    sdti::logging::init(0);
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let args = train_hypernetwork::Args::parse_from(&argv)
        .with_config(argv.get(1..).unwrap_or_default())?;
    train_hypernetwork::run(args)
}
