//! CLIP token ids of each line of stdin.
//!
//! ```text
//! echo "a photo of a cat" | cargo run --release --example tokenize
//! [320,1125,539,320,2368]
//! cargo run --release --example tokenize -- --model path/to/diffusers-folder < prompts.txt
//! ```
//!
//! Prints one JSON array per input line: the ids without BOS/EOS, untruncated. Without
//! `--model`, the bundled standard CLIP vocabulary (what every SD 1.x/2.x checkpoint uses).

use std::{
    io::{BufRead, Write},
    path::PathBuf,
};

use clap::Parser;
use sd_clip::ClipTokenizer;

#[derive(Parser)]
#[command(
    about = "Print the CLIP token ids of each stdin line as a JSON array (no BOS/EOS, no truncation)"
)]
struct Args {
    /// A model's own tokenizer: a diffusers folder, a folder containing `tokenizer/`, or a
    /// tokenizer folder (`vocab.json` + `merges.txt`, or `tokenizer.json`). A single-file
    /// checkpoint uses the config folder of the same stem beside it, else the bundled
    /// vocabulary cut to its embedding table. Default: the bundled CLIP vocabulary.
    #[arg(long)]
    model: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let tokenizer = match &args.model {
        Some(path) => ClipTokenizer::for_model(path)?,
        None => ClipTokenizer::standard()?,
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for line in std::io::stdin().lock().lines() {
        let ids = tokenizer.encode(&line?)?;
        writeln!(out, "{}", serde_json::to_string(&ids)?)?;
    }
    Ok(())
}
