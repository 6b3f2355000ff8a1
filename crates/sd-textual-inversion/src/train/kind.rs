//! The two things A1111's Train tab trains, and the names each one's files take.

use std::path::Path;

use super::config::TrainConfig;

/// What a run trains: an embedding's vectors or a hypernetwork's weights. The loop, the
/// dataset, the schedules and the events are the same; the folders and file names differ as
/// A1111's do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrainedKind {
    /// A textual-inversion embedding (A1111's `train_embedding`).
    #[default]
    Embedding,
    /// A hypernetwork (A1111's `train_hypernetwork`).
    Hypernetwork,
}

impl TrainedKind {
    /// The run folder's subfolder of copies saved every N steps: `embeddings` or
    /// `hypernetworks`.
    pub fn copies_folder(self) -> &'static str {
        match self {
            Self::Embedding => "embeddings",
            Self::Hypernetwork => "hypernetworks",
        }
    }

    /// The loss CSV's file name stem: `textual_inversion_loss` or `hypernetwork_loss`.
    pub fn loss_stem(self) -> &'static str {
        match self {
            Self::Embedding => "textual_inversion_loss",
            Self::Hypernetwork => "hypernetwork_loss",
        }
    }

    /// The setting naming the folder the final file goes to.
    pub fn output_setting(self) -> &'static str {
        match self {
            Self::Embedding => "embeddings_dir",
            Self::Hypernetwork => "hypernetwork_dir",
        }
    }

    /// The folder the final file goes to under `config`.
    pub fn output_dir(self, config: &TrainConfig) -> &Path {
        match self {
            Self::Embedding => &config.embeddings_dir,
            Self::Hypernetwork => &config.hypernetwork_dir,
        }
    }

    /// The final file of `name`: `<output dir>/<name>.pt`.
    pub fn output_file(self, config: &TrainConfig, name: &str) -> std::path::PathBuf {
        self.output_dir(config).join(format!("{name}.pt"))
    }
}
