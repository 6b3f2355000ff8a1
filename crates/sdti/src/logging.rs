//! Log output: the library crates report through `tracing` (skipped files, loaded
//! embeddings, the trainer's progress); this installs the subscriber that prints it.

use tracing_subscriber::EnvFilter;

/// Prints `tracing` events to standard error. `RUST_LOG` (e.g. `RUST_LOG=sd_core=debug`)
/// wins when set; otherwise `verbosity` picks the level: 0 warnings, 1 (`-v`) information,
/// 2 (`-vv`) debugging, 3 or more (`-vvv`) everything. Calling it twice keeps the first.
pub fn init(verbosity: u8) {
    let level = match verbosity {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    // Err: a subscriber is already installed (a test, or a second call): keep it.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
