//! New hypernetworks with A1111's settings and initialisations (`Hypernetwork.__init__`,
//! `HypernetworkModule.__init__`), and writing them as A1111's `Hypernetwork.save` does.

use std::collections::BTreeMap;
use std::path::Path;

use sd_noise::{Mt19937, TorchCpuGenerator};
use sd_torch_file::{PickleValue, TorchWriter, WriteOptions};
use sd_unet::hypernetwork::HypernetworkActivation;

use super::error::{HypernetworkError, Result};
use super::file::{HypernetworkFile, LayerWeights, LinearWeights, sequential_indices};

/// How new weights are drawn: the choices of A1111's "Select Layer weights initialization".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum WeightInit {
    /// `normal_(w, 0, 0.01)`, zero biases. A1111's default.
    #[default]
    Normal,
    /// `xavier_uniform_`, zero biases.
    XavierUniform,
    /// `xavier_normal_`, zero biases.
    XavierNormal,
    /// `kaiming_uniform_` (ReLU gain, leaky-ReLU for `leakyrelu`), zero biases.
    KaimingUniform,
    /// `kaiming_normal_`, zero biases.
    KaimingNormal,
}

impl WeightInit {
    /// Every name A1111 uses, which [`parse`](Self::parse) takes.
    pub const NAMES: [&'static str; 5] = [
        "Normal",
        "XavierUniform",
        "XavierNormal",
        "KaimingUniform",
        "KaimingNormal",
    ];

    /// The initialisation A1111 names `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "Normal" => Self::Normal,
            "XavierUniform" => Self::XavierUniform,
            "XavierNormal" => Self::XavierNormal,
            "KaimingUniform" => Self::KaimingUniform,
            "KaimingNormal" => Self::KaimingNormal,
            _ => return None,
        })
    }

    /// A1111's name.
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// The settings of A1111's "Create hypernetwork" panel.
#[derive(Debug, Clone, PartialEq)]
pub struct HypernetworkSettings {
    /// The context widths to make modules for ("Modules": 768, 320, 640, 1280 for SD 1.x;
    /// 1024 is SD 2.x's text width).
    pub sizes: Vec<usize>,
    /// "Hypernetwork layer structure": widths relative to the context's, from 1 to 1.
    pub layer_structure: Vec<f64>,
    /// "Select activation function" (`linear`: none).
    pub activation_func: String,
    /// "Select Layer weights initialization".
    pub weight_init: WeightInit,
    /// "Add layer normalization".
    pub layer_norm: bool,
    /// "Use dropout".
    pub use_dropout: bool,
    /// "Enter hypernetwork Dropout structure": a probability per layer, first and last 0;
    /// used only with `use_dropout` (A1111 writes zeros otherwise).
    pub dropout_structure: Vec<f64>,
}

impl Default for HypernetworkSettings {
    /// A1111's defaults.
    fn default() -> Self {
        Self {
            sizes: vec![768, 320, 640, 1280],
            layer_structure: vec![1.0, 2.0, 1.0],
            activation_func: "linear".into(),
            weight_init: WeightInit::Normal,
            layer_norm: false,
            use_dropout: false,
            dropout_structure: vec![0.0, 0.0, 0.0],
        }
    }
}

impl HypernetworkSettings {
    /// A1111's checks: widths from 1 to 1, a known activation, a dropout probability per
    /// layer in [0, 1), none after the last; at least one size.
    ///
    /// # Errors
    /// A message naming the setting.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let layers = &self.layer_structure;
        if layers.len() < 2 || layers.first() != Some(&1.0) || layers.last() != Some(&1.0) {
            return Err(format!(
                "layer structure {layers:?} must start and end with 1"
            ));
        }
        if layers.iter().any(|w| !(w.is_finite() && *w > 0.0)) {
            return Err(format!(
                "layer structure {layers:?} must hold positive widths"
            ));
        }
        HypernetworkActivation::parse(Some(&self.activation_func)).map_err(|name| {
            format!(
                "activation `{name}` is not one of {}",
                HypernetworkActivation::NAMES.join(", ")
            )
        })?;
        if self.sizes.is_empty() || self.sizes.iter().any(|&s| s == 0 || s > 65536) {
            return Err(format!(
                "module sizes {:?} must be 1 to 65536, at least one",
                self.sizes
            ));
        }
        // Every layer at least one wide, and all of it within what a file can sensibly hold
        // (2^28 weights, 1 GiB, over every module), before anything is allocated.
        if self.sizes.len() > 64 || layers.len() > 64 {
            return Err(format!(
                "{} sizes and {} layers: 64 of each at most",
                self.sizes.len(),
                layers.len()
            ));
        }
        let total: f64 = self
            .sizes
            .iter()
            .map(|&size| {
                let widths: Vec<f64> = layers.iter().map(|w| (size as f64 * w).floor()).collect();
                2.0 * widths.windows(2).map(|p| p[0] * p[1]).sum::<f64>()
            })
            .sum();
        if total > f64::from(1u32 << 28) {
            return Err(format!(
                "sizes {:?} with layer structure {layers:?} make more than 2^28 weights",
                self.sizes
            ));
        }
        for &size in &self.sizes {
            let widths: Vec<f64> = layers.iter().map(|w| (size as f64 * w).floor()).collect();
            if widths.iter().any(|&w| w < 1.0) {
                return Err(format!(
                    "layer structure {layers:?} makes a layer of no width for size {size}"
                ));
            }
            if widths
                .windows(2)
                .any(|pair| pair[0] * pair[1] > f64::from(1u32 << 28))
            {
                return Err(format!(
                    "layer structure {layers:?} makes a layer of more than 2^28 weights for size {size}"
                ));
            }
        }
        if self.use_dropout {
            let d = &self.dropout_structure;
            if d.len() != layers.len() {
                return Err(format!(
                    "dropout structure {d:?} needs one value per layer of {layers:?}"
                ));
            }
            if d.iter().any(|p| !(0.0..1.0).contains(p)) || d.last() != Some(&0.0) {
                return Err(format!(
                    "dropout structure {d:?}: each in [0, 1), the last 0"
                ));
            }
        }
        Ok(())
    }

    /// The dropout structure A1111 saves: the given one with dropout, zeros without.
    fn saved_dropout(&self) -> Vec<f64> {
        if self.use_dropout {
            self.dropout_structure.clone()
        } else {
            vec![0.0; self.layer_structure.len()]
        }
    }
}

impl HypernetworkFile {
    /// A new hypernetwork named `name` with `settings` (checked) and weights drawn as A1111
    /// draws them, from `seed`. Step 0; A1111's create does not set "activate output".
    ///
    /// # Errors
    /// [`HypernetworkError::Layout`] for settings A1111 refuses.
    pub fn new_random(name: &str, settings: &HypernetworkSettings, seed: u64) -> Result<Self> {
        let path = Path::new(name).with_extension("pt");
        settings
            .validate()
            .map_err(|reason| HypernetworkError::Layout {
                path: path.clone(),
                reason,
            })?;
        let activation = HypernetworkActivation::parse(Some(&settings.activation_func))
            .ok()
            .flatten();
        let mut normal = TorchCpuGenerator::new(seed);
        let mut uniform = Mt19937::new(seed ^ 0x9e37_79b9_7f4a_7c15);
        let mut modules = BTreeMap::new();
        let last = settings.layer_structure.len() - 2;
        for &size in &settings.sizes {
            let mut module = || -> Vec<LayerWeights> {
                (0..=last)
                    .map(|i| {
                        let inputs = (size as f64 * settings.layer_structure[i]) as usize;
                        let outputs = (size as f64 * settings.layer_structure[i + 1]) as usize;
                        let weight = init(settings, inputs, outputs, &mut normal, &mut uniform);
                        let norm = settings.layer_norm.then(|| {
                            let w = normal.randn(outputs).iter().map(|v| v * 0.01).collect();
                            (w, vec![0.0; outputs])
                        });
                        LayerWeights {
                            linear: LinearWeights {
                                weight,
                                bias: vec![0.0; outputs],
                                inputs,
                                outputs,
                            },
                            // A1111's create leaves "activate output" off.
                            activation: activation.filter(|_| i < last),
                            norm,
                        }
                    })
                    .collect()
            };
            let key = module();
            let value = module();
            modules.insert(size, [key, value]);
        }
        Ok(Self {
            path,
            name: name.to_owned(),
            step: Some(0),
            layer_structure: settings.layer_structure.clone(),
            activation_func: Some(settings.activation_func.clone()),
            layer_norm: settings.layer_norm,
            activate_output: false,
            dropout_structure: settings.saved_dropout(),
            weight_init: Some(settings.weight_init.name().to_owned()),
            use_dropout: settings.use_dropout,
            modules,
            sd_checkpoint: None,
            sd_checkpoint_name: None,
        })
    }

    /// The file as A1111's `Hypernetwork.save` writes it (`torch.save` of a dict: each width
    /// a tuple of two state dicts, then `step`, `name`, `layer_structure`, ...), readable by
    /// `torch.load(weights_only=True)` and A1111.
    ///
    /// # Errors
    /// [`HypernetworkError::TorchFile`] if the pickle cannot be built.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut writer = TorchWriter::new();
        let mut root = Vec::new();
        for (&width, pair) in &self.modules {
            let mut dicts = Vec::new();
            for layers in pair {
                dicts.push(self.state_dict(layers, &mut writer)?);
            }
            root.push((PickleValue::Int(width as i64), PickleValue::Tuple(dicts)));
        }
        let text = |s: &str| PickleValue::String(s.to_owned());
        let floats = |v: &[f64]| PickleValue::List(v.iter().map(|&x| number(x)).collect());
        let last_layer_dropout = self.dropout_structure.len() >= 2
            && self.dropout_structure[self.dropout_structure.len() - 2] != 0.0;
        let entries = [
            ("step", PickleValue::Int(self.step.unwrap_or(0))),
            ("name", text(&self.name)),
            ("layer_structure", floats(&self.layer_structure)),
            (
                "activation_func",
                self.activation_func
                    .as_deref()
                    .map_or(PickleValue::None, text),
            ),
            ("is_layer_norm", PickleValue::Bool(self.layer_norm)),
            (
                "weight_initialization",
                self.weight_init.as_deref().map_or(PickleValue::None, text),
            ),
            (
                "sd_checkpoint",
                self.sd_checkpoint
                    .as_deref()
                    .map_or(PickleValue::None, text),
            ),
            (
                "sd_checkpoint_name",
                self.sd_checkpoint_name
                    .as_deref()
                    .map_or(PickleValue::None, text),
            ),
            ("activate_output", PickleValue::Bool(self.activate_output)),
            ("use_dropout", PickleValue::Bool(self.use_dropout)),
            ("dropout_structure", floats(&self.dropout_structure)),
            ("last_layer_dropout", PickleValue::Bool(last_layer_dropout)),
            ("optional_info", PickleValue::None),
        ];
        root.extend(entries.into_iter().map(|(k, v)| (text(k), v)));
        let archive = self.name.replace(['/', '\\'], "_");
        Ok(writer.finish(&PickleValue::Dict(root), &WriteOptions::named(archive))?)
    }

    /// One module's state dict, with A1111's `Sequential` indices.
    fn state_dict(&self, layers: &[LayerWeights], writer: &mut TorchWriter) -> Result<PickleValue> {
        let mut entries = Vec::new();
        let shape: Vec<(bool, bool)> = layers
            .iter()
            .map(|l| (l.activation.is_some(), l.norm.is_some()))
            .collect();
        for (layer, (linear, norm)) in layers
            .iter()
            .zip(sequential_indices(&shape, &self.dropout_structure))
        {
            let l = &layer.linear;
            let mut put = |name: String, shape: &[usize], values: &[f32]| -> Result<()> {
                let tensor = writer.add_f32(shape, values)?;
                entries.push((PickleValue::String(name), PickleValue::Tensor(tensor)));
                Ok(())
            };
            put(
                format!("linear.{linear}.weight"),
                &[l.outputs, l.inputs],
                &l.weight,
            )?;
            put(format!("linear.{linear}.bias"), &[l.outputs], &l.bias)?;
            if let (Some(norm), Some((weight, bias))) = (norm, &layer.norm) {
                put(format!("linear.{norm}.weight"), &[l.outputs], weight)?;
                put(format!("linear.{norm}.bias"), &[l.outputs], bias)?;
            }
        }
        Ok(PickleValue::Dict(entries))
    }

    /// Writes [`to_bytes`](Self::to_bytes) (or, for a `.safetensors` path,
    /// [`to_safetensors_bytes`](Self::to_safetensors_bytes)) to `path` through a temporary
    /// file and a rename.
    ///
    /// # Errors
    /// [`HypernetworkError::Io`] when it cannot be written.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let bytes = if super::file::is_safetensors(path) {
            self.to_safetensors_bytes()?
        } else {
            self.to_bytes()?
        };
        crate::fs::write_atomic(path, &bytes).map_err(|e| HypernetworkError::Io {
            path: path.to_owned(),
            source: std::io::Error::other(e.to_string()),
        })
    }
}

/// A Python number as A1111 would have it: an int when whole (`[1, 2, 1]`), else a float.
fn number(x: f64) -> PickleValue {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        PickleValue::Int(x as i64)
    } else {
        PickleValue::Float(x)
    }
}

/// A new `[out, in]` weight as `HypernetworkModule.__init__` draws it.
fn init(
    s: &HypernetworkSettings,
    fan_in: usize,
    fan_out: usize,
    normal: &mut TorchCpuGenerator,
    uniform: &mut Mt19937,
) -> Vec<f32> {
    let n = fan_in * fan_out;
    let (fan_in_f, fan_out_f) = (fan_in as f64, fan_out as f64);
    // `kaiming_*_(w, nonlinearity=...)` with torch's default `a = 0`: the gain is √2 for
    // ReLU and for leaky ReLU alike.
    let gain = 2f64.sqrt();
    let mut draw_uniform = |bound: f64| -> Vec<f32> {
        (0..n)
            .map(|_| {
                let u = f64::from(uniform.next_u32() >> 8) / f64::from(1u32 << 24);
                ((2.0 * u - 1.0) * bound) as f32
            })
            .collect()
    };
    let mut draw_normal = |std: f64| -> Vec<f32> {
        normal
            .randn(n)
            .into_iter()
            .map(|v| (f64::from(v) * std) as f32)
            .collect()
    };
    match s.weight_init {
        WeightInit::Normal => draw_normal(0.01),
        WeightInit::XavierUniform => draw_uniform((6.0 / (fan_in_f + fan_out_f)).sqrt()),
        WeightInit::XavierNormal => draw_normal((2.0 / (fan_in_f + fan_out_f)).sqrt()),
        WeightInit::KaimingUniform => draw_uniform(gain * (3.0 / fan_in_f).sqrt()),
        WeightInit::KaimingNormal => draw_normal(gain / fan_in_f.sqrt()),
    }
}
