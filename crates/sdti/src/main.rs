//! `sdti`: Stable Diffusion and textual inversion from the terminal (the crate's docs).

use std::ffi::OsString;

use clap::{Parser, Subcommand};
use sdti::commands::{
    bench, create, create_hypernetwork, embedding, img2img, model_info, png_info, preprocess,
    prompt, tokenize, train, train_hypernetwork, txt2img,
};

/// Stable Diffusion 1.x/2.x and textual inversion, as AUTOMATIC1111 runs them. Without
/// `--model`, every command uses the bundled tiny model (it draws coloured circles and
/// squares in a second).
#[derive(Parser)]
#[command(name = "sdti", version, propagate_version = true)]
struct Cli {
    /// More log output (-v information, -vv debugging); RUST_LOG overrides it.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Train(train::Args),
    TrainHypernetwork(train_hypernetwork::Args),
    Create(create::Args),
    CreateHypernetwork(create_hypernetwork::Args),
    Preprocess(preprocess::Args),
    Txt2img(txt2img::Args),
    Img2img(img2img::Args),
    Embedding(embedding::Args),
    PngInfo(png_info::Args),
    ModelInfo(model_info::Args),
    Prompt(prompt::Args),
    Tokenize(tokenize::Args),
    Bench(bench::Args),
}

fn main() -> anyhow::Result<()> {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let cli = Cli::parse_from(&argv);
    sdti::logging::init(cli.verbose);
    match cli.command {
        Command::Train(args) => train::run(args.with_config(after(&argv, "train"))?),
        Command::TrainHypernetwork(args) => {
            train_hypernetwork::run(args.with_config(after(&argv, "train-hypernetwork"))?)
        }
        Command::Create(args) => create::run(args),
        Command::CreateHypernetwork(args) => create_hypernetwork::run(args),
        Command::Preprocess(args) => preprocess::run(args),
        Command::Txt2img(args) => txt2img::run(args),
        Command::Img2img(args) => img2img::run(args),
        Command::Embedding(args) => embedding::run(args),
        Command::PngInfo(args) => png_info::run(args),
        Command::ModelInfo(args) => model_info::run(args),
        Command::Prompt(args) => prompt::run(args),
        Command::Tokenize(args) => tokenize::run(args),
        Command::Bench(args) => bench::run(args),
    }
}

/// The tokens after the subcommand `name` (global flags such as `-v` come before it).
fn after<'a>(argv: &'a [OsString], name: &str) -> &'a [OsString] {
    argv.iter()
        .position(|a| a == name)
        .map_or(&[], |i| &argv[i + 1..])
}
