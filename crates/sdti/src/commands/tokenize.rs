//! CLIP token ids of each line of stdin.
//!
//! ```text
//! echo "a photo of a cat" | sdti tokenize
//! [320,1125,539,320,2368]
//! sdti tokenize --model path/to/diffusers-folder < prompts.txt
//! ```
//!
//! Prints one JSON array per input line: the ids without BOS/EOS, untruncated. Without
//! `--model`, the bundled standard CLIP vocabulary (what every SD 1.x/2.x checkpoint uses).
//! The text is cleaned as A1111 cleans it before tokenizing (`--normalization sd1`, the
//! default: transformers' slow CLIPTokenizer with ftfy; `sd2`: OpenCLIP's tokenizer), or as
//! transformers 5 / diffusers do (`transformers5`).

use std::{
    io::{BufRead, Write},
    path::PathBuf,
};

use clap::Parser;
use sd_clip::{ClipTokenizer, TextNormalization};

/// Print the CLIP token ids of each stdin line as a JSON array (no BOS/EOS, no truncation).
#[derive(Parser)]
pub struct Args {
    /// A model's own tokenizer: a diffusers folder, a folder containing `tokenizer/`, or a
    /// tokenizer folder (`vocab.json` + `merges.txt`, or `tokenizer.json`). A single-file
    /// checkpoint uses the config folder of the same stem beside it, else the bundled
    /// vocabulary cut to its embedding table. Default: the bundled CLIP vocabulary.
    #[arg(long)]
    model: Option<PathBuf>,
    /// The text clean-up before tokenizing: A1111's for SD 1.x models, A1111's (OpenCLIP's)
    /// for SD 2.x models, or transformers 5's.
    #[arg(long, value_enum, default_value_t = Normalization::Sd1)]
    normalization: Normalization,
}

/// `--normalization` values.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Normalization {
    /// A1111 on SD 1.x: transformers 4.30's slow CLIPTokenizer with ftfy.
    Sd1,
    /// A1111 on SD 2.x: OpenCLIP's SimpleTokenizer (ftfy, HTML unescaping).
    Sd2,
    /// transformers 5's CLIPTokenizer, as diffusers uses it (no ftfy).
    Transformers5,
}

impl From<Normalization> for TextNormalization {
    fn from(n: Normalization) -> Self {
        match n {
            Normalization::Sd1 => Self::A1111Sd1,
            Normalization::Sd2 => Self::OpenClip,
            Normalization::Transformers5 => Self::Transformers5,
        }
    }
}

/// Runs the command.
///
/// # Errors
/// Whatever stops it: the message names the flag or file at fault.
pub fn run(args: Args) -> anyhow::Result<()> {
    let tokenizer = match &args.model {
        Some(path) => ClipTokenizer::for_model(path)?,
        None => ClipTokenizer::standard()?,
    }
    .with_normalization(args.normalization.into());
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for line in std::io::stdin().lock().lines() {
        let ids = tokenizer.encode(&line?)?;
        writeln!(out, "{}", serde_json::to_string(&ids)?)?;
    }
    Ok(())
}
