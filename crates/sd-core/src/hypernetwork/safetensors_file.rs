//! Hypernetworks as safetensors: A1111's `.pt` dict laid flat. A1111 itself reads only
//! `.pt`; this layout keeps every part of one so that a file converts both ways without
//! loss, and loads without a pickle.
//!
//! - Tensors: `"{width}.{module}.{key}"`, the state dicts of the `.pt`'s `width: (key module,
//!   value module)` entries with the module's index (0: key, 1: value) and A1111's
//!   `Sequential` key (`768.0.linear.0.weight`, `768.1.linear.2.bias`), `[out, in]` weights,
//!   F32 (F16, BF16 and F64 are read too).
//! - `__metadata__`: the `.pt`'s other entries, each as text: `name`,
//!   `activation_func`, `weight_initialization`, `sd_checkpoint`, `sd_checkpoint_name` as
//!   they are; `step`, `layer_structure`, `is_layer_norm`, `activate_output`, `use_dropout`,
//!   `dropout_structure`, `last_layer_dropout` as JSON (`12`, `[1, 2, 1]`, `true`); and
//!   `format: hypernetwork`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use sd_torch_file::PickleValue;

use super::error::{HypernetworkError, Result};
use super::file::{Header, HypernetworkFile, LayerWeights, module, sequential_indices};
use crate::checkpoint::floats_of;

/// The metadata entries kept as text (a name such as `12` is not a number).
const TEXT_KEYS: [&str; 5] = [
    "name",
    "activation_func",
    "weight_initialization",
    "sd_checkpoint",
    "sd_checkpoint_name",
];

/// A module's tensor keys and shapes.
type Shapes = Vec<(String, Vec<usize>)>;

/// Reads a hypernetwork safetensors file.
///
/// # Errors
/// [`HypernetworkError::Io`] when unreadable, [`HypernetworkError::Layout`] when it is not
/// safetensors or not a hypernetwork, or its tensors do not fit its settings.
pub(super) fn read(path: &Path) -> Result<HypernetworkFile> {
    let bytes = std::fs::read(path).map_err(|source| HypernetworkError::Io {
        path: path.to_owned(),
        source,
    })?;
    let layout = |reason: String| HypernetworkError::Layout {
        path: path.to_owned(),
        reason,
    };
    let (_, metadata) =
        SafeTensors::read_metadata(&bytes).map_err(|e| layout(format!("not safetensors: {e}")))?;
    let st =
        SafeTensors::deserialize(&bytes).map_err(|e| layout(format!("not safetensors: {e}")))?;
    let root = settings_root(metadata.metadata().as_ref());
    let header = Header::parse(&root).map_err(layout)?;
    // `{width}.{module}.{key}` → the module's keys and shapes.
    let mut grouped: BTreeMap<usize, [Shapes; 2]> = BTreeMap::new();
    for name in st.names() {
        let parsed = name.split_once('.').and_then(|(width, rest)| {
            let (module, key) = rest.split_once('.')?;
            let width = width
                .parse::<usize>()
                .ok()
                .filter(|w| (1..=65536).contains(w))?;
            let module = match module {
                "0" => 0,
                "1" => 1,
                _ => return None,
            };
            Some((width, module, key))
        });
        let Some((width, module, key)) = parsed else {
            return Err(layout(format!(
                "tensor `{name}` is not `{{width}}.{{0 or 1}}.{{key}}`"
            )));
        };
        let view = st.tensor(name).map_err(|e| layout(e.to_string()))?;
        grouped.entry(width).or_default()[module].push((key.to_owned(), view.shape().to_vec()));
    }
    let mut modules = BTreeMap::new();
    for (width, sides) in grouped {
        let read_side = |index: usize, side: &str| -> Result<Vec<LayerWeights>> {
            let shapes: Vec<(&str, &[usize])> = sides[index]
                .iter()
                .map(|(k, s)| (k.as_str(), s.as_slice()))
                .collect();
            let load = |key: &str| {
                let view = st
                    .tensor(&format!("{width}.{index}.{key}"))
                    .map_err(|e| e.to_string())?;
                floats_of(&view).ok_or_else(|| format!("`{key}` is {:?}, not floats", view.dtype()))
            };
            module(&shapes, &load, &header.settings(width))
                .map_err(|r| layout(format!("width {width}, {side} module: {r}")))
        };
        let key = read_side(0, "key")?;
        let value = read_side(1, "value")?;
        modules.insert(width, [key, value]);
    }
    header.into_file(path, modules).map_err(layout)
}

/// The settings of `metadata` as the `.pt` dict would hold them.
fn settings_root(metadata: Option<&HashMap<String, String>>) -> PickleValue {
    let mut entries = Vec::new();
    for (key, text) in metadata.into_iter().flatten() {
        let value = if TEXT_KEYS.contains(&key.as_str()) {
            PickleValue::String(text.clone())
        } else {
            serde_json::from_str::<serde_json::Value>(text)
                .ok()
                .and_then(|v| json_value(&v))
                .unwrap_or_else(|| PickleValue::String(text.clone()))
        };
        entries.push((PickleValue::String(key.clone()), value));
    }
    PickleValue::Dict(entries)
}

/// A JSON number, boolean, null or list of them as the pickle value Python would hold.
fn json_value(v: &serde_json::Value) -> Option<PickleValue> {
    Some(match v {
        serde_json::Value::Null => PickleValue::None,
        serde_json::Value::Bool(b) => PickleValue::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => PickleValue::Int(i),
            None => PickleValue::Float(n.as_f64()?),
        },
        serde_json::Value::Array(items) => {
            PickleValue::List(items.iter().map(json_value).collect::<Option<_>>()?)
        }
        _ => return None,
    })
}

impl HypernetworkFile {
    /// The file as safetensors bytes, in the layout of this module's documentation.
    ///
    /// # Errors
    /// [`HypernetworkError::Layout`] if the tensors cannot be serialised.
    pub fn to_safetensors_bytes(&self) -> Result<Vec<u8>> {
        let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        for (&width, pair) in &self.modules {
            for (index, layers) in pair.iter().enumerate() {
                let shape: Vec<(bool, bool)> = layers
                    .iter()
                    .map(|l| (l.activation.is_some(), l.norm.is_some()))
                    .collect();
                let indices = sequential_indices(&shape, &self.dropout_structure);
                for (layer, (linear, norm)) in layers.iter().zip(indices) {
                    let l = &layer.linear;
                    let mut put = |key: String, shape: Vec<usize>, values: &[f32]| {
                        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                        tensors.push((format!("{width}.{index}.{key}"), shape, bytes));
                    };
                    put(
                        format!("linear.{linear}.weight"),
                        vec![l.outputs, l.inputs],
                        &l.weight,
                    );
                    put(format!("linear.{linear}.bias"), vec![l.outputs], &l.bias);
                    if let (Some(norm), Some((weight, bias))) = (norm, &layer.norm) {
                        put(format!("linear.{norm}.weight"), vec![l.outputs], weight);
                        put(format!("linear.{norm}.bias"), vec![l.outputs], bias);
                    }
                }
            }
        }
        let layout = |reason: String| HypernetworkError::Layout {
            path: self.path.clone(),
            reason,
        };
        let views = tensors
            .iter()
            .map(|(key, shape, bytes)| {
                TensorView::new(Dtype::F32, shape.clone(), bytes)
                    .map(|view| (key.clone(), view))
                    .map_err(|e| layout(format!("tensor `{key}`: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let json = |v: serde_json::Value| v.to_string();
        let last_layer_dropout = self.dropout_structure.len() >= 2
            && self.dropout_structure[self.dropout_structure.len() - 2] != 0.0;
        let mut metadata = HashMap::from([
            ("format".to_owned(), "hypernetwork".to_owned()),
            ("name".to_owned(), self.name.clone()),
            ("step".to_owned(), self.step.unwrap_or(0).to_string()),
            (
                "layer_structure".to_owned(),
                json(python_numbers(&self.layer_structure)),
            ),
            ("is_layer_norm".to_owned(), self.layer_norm.to_string()),
            (
                "activate_output".to_owned(),
                self.activate_output.to_string(),
            ),
            ("use_dropout".to_owned(), self.use_dropout.to_string()),
            (
                "dropout_structure".to_owned(),
                json(python_numbers(&self.dropout_structure)),
            ),
            (
                "last_layer_dropout".to_owned(),
                last_layer_dropout.to_string(),
            ),
        ]);
        let optional = [
            ("activation_func", &self.activation_func),
            ("weight_initialization", &self.weight_init),
            ("sd_checkpoint", &self.sd_checkpoint),
            ("sd_checkpoint_name", &self.sd_checkpoint_name),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                metadata.insert(key.to_owned(), value.clone());
            }
        }
        safetensors::serialize(views, Some(metadata)).map_err(|e| layout(e.to_string()))
    }
}

/// Numbers as JSON, whole ones as integers (as the `.pt` writer stores them).
fn python_numbers(values: &[f64]) -> serde_json::Value {
    serde_json::Value::Array(
        values
            .iter()
            .map(|&x| {
                if x.fract() == 0.0 && x.abs() < 1e15 {
                    serde_json::Value::from(x as i64)
                } else {
                    serde_json::Value::from(x)
                }
            })
            .collect(),
    )
}
