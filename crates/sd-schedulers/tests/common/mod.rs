//! Shared helpers of the golden tests: fixture loading and the analytic denoiser.
#![allow(dead_code, missing_docs)]

use burn::tensor::{Device, Tensor, TensorData};
use safetensors::SafeTensors;

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/samplers");

pub fn device() -> Device {
    Device::flex()
}

pub struct Fixture {
    bytes: Vec<u8>,
}

impl Fixture {
    pub fn open(name: &str) -> Self {
        let path = format!("{FIXTURES}/{name}");
        let bytes = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{path}: {e}; run tools/sampler_reference.py"));
        Self { bytes }
    }

    pub fn st(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.bytes).expect("valid safetensors")
    }

    /// (shape, f32 values) of a tensor.
    pub fn get(&self, key: &str) -> (Vec<usize>, Vec<f32>) {
        let st = self.st();
        let t = st.tensor(key).unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_eq!(t.dtype(), safetensors::Dtype::F32, "{key}");
        let v = t
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        (t.shape().to_vec(), v)
    }

    pub fn vec(&self, key: &str) -> Vec<f32> {
        self.get(key).1
    }

    /// A stacked tensor [k, 1, 4, 4, 4] as k tensors [1, 4, 4, 4].
    pub fn stack(&self, key: &str, device: &Device) -> Vec<Tensor<4>> {
        let (shape, v) = self.get(key);
        let k = shape[0];
        let inner: [usize; 4] = [shape[1], shape[2], shape[3], shape[4]];
        let n: usize = inner.iter().product();
        (0..k)
            .map(|i| {
                Tensor::from_data(
                    TensorData::new(v[i * n..(i + 1) * n].to_vec(), inner),
                    device,
                )
            })
            .collect()
    }

    pub fn tensor4(&self, key: &str, device: &Device) -> Tensor<4> {
        let (shape, v) = self.get(key);
        let s: [usize; 4] = [shape[0], shape[1], shape[2], shape[3]];
        Tensor::from_data(TensorData::new(v, s), device)
    }
}

pub fn values(t: &Tensor<4>) -> Vec<f32> {
    t.to_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("f32 data")
}

/// max |a − b| / max |b|: the error relative to the tensor's scale (elementwise relative
/// error is meaningless for entries that cross zero).
pub fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f64, |m, v| m.max(v.abs() as f64)).max(1e-30);
    let diff = a
        .iter()
        .zip(b)
        .fold(0f64, |m, (x, y)| m.max((*x as f64 - *y as f64).abs()));
    diff / scale
}

/// The analytic denoiser of tools/sampler_reference.py: D(x, σ) = x / √(1+σ²) + 0.1·tanh(x).
pub fn analytic(x: Tensor<4>, sigma: f32) -> Tensor<4> {
    x.clone().div_scalar((1.0 + sigma * sigma).sqrt()) + x.tanh().mul_scalar(0.1)
}
