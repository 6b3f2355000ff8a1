//! The subcommands of `sdti`, one file each: its flags (`Args`, a clap parser of its own, so
//! the example programs of the repository parse the same flags) and `run`.

pub mod bench;
pub mod create;
pub mod create_hypernetwork;
pub mod embedding;
pub mod img2img;
pub mod model_info;
pub mod png_info;
pub mod preprocess;
pub mod prompt;
pub mod tokenize;
pub mod train;
pub mod train_hypernetwork;
pub mod txt2img;
