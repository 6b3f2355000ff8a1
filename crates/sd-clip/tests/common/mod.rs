//! Shared helpers of the golden tests: fixture paths, reference tensors, model loading.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use burn::{
    store::{ModuleStore, SafetensorsStore, bridge},
    tensor::{Device, Int, Tensor, TensorData},
};
use sd_clip::{
    ClipTextConfig, ClipTextModel,
    loader::{self, LoadReport, WeightFormat},
};

pub const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

pub fn repo(path: &str) -> PathBuf {
    Path::new(REPO).join(path)
}

/// A reference tensor: its values (as f32 or i64) and shape.
pub struct Reference {
    store: SafetensorsStore,
}

impl Reference {
    pub fn open(model: &str) -> Self {
        Self {
            store: SafetensorsStore::from_file(repo(&format!(
                "fixtures/reference/{model}/clip.safetensors"
            ))),
        }
    }

    pub fn data(&mut self, key: &str) -> TensorData {
        let tensor = self
            .store
            .get_tensor(key)
            .expect("readable")
            .unwrap_or_else(|| panic!("{key} present"));
        bridge::to_data(tensor).expect("data")
    }

    pub fn input_ids(&mut self, device: &Device) -> Tensor<2, Int> {
        let data = self.data("input_ids");
        Tensor::from_data(data, device)
    }
}

/// Where a tiny model's text encoder is: the diffusers folder, or the single file with its
/// config.
pub fn load_diffusers(model: &str, device: &Device) -> (ClipTextModel, LoadReport) {
    let config =
        ClipTextConfig::from_file(&repo(&format!("fixtures/{model}/text_encoder/config.json")))
            .expect("config");
    let mut store = SafetensorsStore::from_file(repo(&format!(
        "fixtures/{model}/text_encoder/model.safetensors"
    )));
    loader::load(&config, &mut store, WeightFormat::Diffusers, device).expect("loads")
}

pub fn single_file_paths(model: &str) -> (PathBuf, PathBuf) {
    match model {
        "tiny-sd1" => (
            repo("crates/sd-core/assets/tiny-sd1.safetensors"),
            repo("crates/sd-core/assets/tiny-sd1/text_encoder/config.json"),
        ),
        "tiny-sd2" => (
            repo("fixtures/tiny-sd2.safetensors"),
            repo("fixtures/tiny-sd2/text_encoder/config.json"),
        ),
        other => panic!("no single file for {other}"),
    }
}

pub fn load_single_file(model: &str, device: &Device) -> (ClipTextModel, LoadReport) {
    let (weights, config) = single_file_paths(model);
    let config = ClipTextConfig::from_file(&config).expect("config");
    let mut store = SafetensorsStore::from_file(weights);
    loader::load(&config, &mut store, WeightFormat::Ldm, device).expect("loads")
}

/// `max |ours - reference| / max |reference|`, the error measure every tolerance here uses.
pub fn relative_error(ours: TensorData, reference: TensorData) -> f64 {
    assert_eq!(ours.shape(), reference.shape(), "shapes differ");
    let a: Vec<f32> = ours.iter::<f32>().collect();
    let b: Vec<f32> = reference.iter::<f32>().collect();
    let max_ref = b.iter().fold(0f64, |m, &x| m.max(f64::from(x).abs()));
    let max_err = a.iter().zip(&b).fold(0f64, |m, (&x, &y)| {
        m.max((f64::from(x) - f64::from(y)).abs())
    });
    max_err / max_ref.max(f64::MIN_POSITIVE)
}
