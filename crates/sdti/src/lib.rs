//! The `sdti` command: Stable Diffusion 1.x/2.x and textual inversion from the terminal, as
//! AUTOMATIC1111's txt2img, img2img and Train tabs run them (the library crates underneath:
//! [`sd_textual_inversion`] and its `sd-*` dependencies).
//!
//! ```text
//! cargo install --locked --path crates/sdti
//! sdti train --name red-disc --init-text disc --steps 150 --learn-rate 0.01 \
//!     --generate "a photo of red-disc" --output red-disc.png
//! sdti txt2img --model v1-5-pruned-emaonly.safetensors --prompt "a red fox" --output fox.png
//! sdti --help
//! ```
//!
//! Each subcommand is a module of [`commands`] with its flags (`Args`) and its `run`; the
//! repository's example programs (`cargo run --example train_embedding`, ...) are the same
//! parsers under their older names. Without `--model` every subcommand uses the bundled tiny
//! concept model ([`sd_textual_inversion::sd_core::bundled::TINY_SD1_CONCEPT`]).

pub mod cli;
pub mod commands;
pub mod logging;
pub mod run_config;
