//! What the end-to-end pipeline tests share: their fixtures in `fixtures/pipeline/` (and
//! `fixtures/noise/`) and how they compare latents.

#![allow(dead_code)] // Each test binary uses its own part.

use burn::store::{ModuleStore, SafetensorsStore, bridge};
use burn::tensor::{Device, Tensor, TensorData};

/// The repository's root.
pub const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// The cases of `fixtures/pipeline/<file>` (a JSON list).
pub fn pipeline_cases<T: serde::de::DeserializeOwned>(file: &str) -> T {
    let path = format!("{ROOT}/fixtures/pipeline/{file}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Tensor `key` of `fixtures/pipeline/<file>` (safetensors).
pub fn pipeline_fixture(file: &str, key: &str) -> TensorData {
    fixture_tensor(&format!("pipeline/{file}"), key)
}

/// Tensor `key` of `fixtures/<file>` (safetensors).
pub fn fixture_tensor(file: &str, key: &str) -> TensorData {
    let mut store = SafetensorsStore::from_file(format!("{ROOT}/fixtures/{file}"));
    let tensor = store
        .get_tensor(key)
        .expect("readable fixture")
        .unwrap_or_else(|| panic!("{file} lacks {key}"));
    bridge::to_data(tensor).expect("data")
}

/// [`pipeline_fixture`] as a 4-d tensor on the default device.
pub fn pipeline_tensor4(file: &str, key: &str) -> Tensor<4> {
    Tensor::from_data(pipeline_fixture(file, key), &Device::default())
}

/// Worst |ours − reference| over the reference's largest |value|.
pub fn relative_error(ours: Tensor<4>, reference: Tensor<4>) -> f32 {
    assert_eq!(ours.dims(), reference.dims());
    let scale: f32 = reference.clone().abs().max().into_scalar();
    let err: f32 = (ours - reference).abs().max().into_scalar();
    err / scale.max(1e-12)
}
