//! Fuzz targets for every parser of the workspace that sees user input.
//!
//! Each target is a `pub fn <target>(data: &[u8])` that feeds the bytes to one parser and
//! checks what the workspace promises of user input (see `docs/architecture.md`): the call
//! returns (`Ok` or a typed `Err`) and never panics, and nothing it allocates is sized by a
//! number in the input rather than by the input itself. Where it is cheap a target also checks a round trip ("what the writer writes, the
//! reader reads back equal"). A target panics only when such a check fails, which is how a
//! fuzzer reports a bug.
//!
//! The same functions serve two drivers:
//! - `fuzz/` at the repository root, a cargo-fuzz project (nightly, libFuzzer), one binary per
//!   target, for long runs (`cargo +nightly fuzz run <target>`); see `fuzz/README.md`;
//! - `tests/short_fuzz.rs` of this crate, the CI short mode on stable: every corpus and
//!   regression file of each target, then a fixed, deterministic mutation loop.
//!
//! Targets never write files. Labels in error messages use made-up paths (`fuzz.pt`, ...)
//! that are never opened.
//!
//! | target | parser |
//! |---|---|
//! | [`prompt`] | `sd_prompt`: `AND` split, subprompt parser, schedules, emphasis |
//! | [`pickle`] | `sd_torch_file::unpickle`, and the pickle writer |
//! | [`torch_zip`] | `sd_torch_file::TorchFile::from_bytes` (zip and legacy), tensors, `.pt` embeddings |
//! | [`safetensors_header`] | safetensors files as embeddings, and `TorchFile::to_safetensors` output |
//! | [`embedding_png_text`] | PNG embeddings: the `sd-ti-embedding` text chunk |
//! | [`embedding_png_pixels`] | PNG embeddings: A1111's pixel data blocks |
//! | [`infotext()`] | `sd_infotext`: the infotext parser and the PNG text chunks |
//! | [`lr_schedule`] | `sd_textual_inversion::dataset::learn_rate_schedule`: learning-rate and clip-grad schedules |
//! | [`preprocess_image`] | image decoding of `sd_textual_inversion::preprocess::load` |
//! | [`tokenizer`] | `sd_clip::normalize` (ftfy's `fix_text`, `html.unescape`, the A1111 front-ends) and `ClipTokenizer::encode` |

mod png_crc;
mod targets;

pub use targets::embeddings::{embedding_png_pixels, embedding_png_text, safetensors_header};
pub use targets::infotext::infotext;
pub use targets::prompt::prompt;
pub use targets::tokenizer::tokenizer;
pub use targets::torch::{pickle, torch_zip};
pub use targets::training::{lr_schedule, preprocess_image};

use png_crc::fix_png_crcs;

/// Splits the first byte off as a selector (0 for empty input).
pub(crate) fn selector(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((&first, rest)) => (first, rest),
        None => (0, data),
    }
}
