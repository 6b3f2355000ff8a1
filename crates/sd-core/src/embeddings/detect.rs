//! What every reader hands over (the decoded top-level dict of a file) and A1111's rules for
//! turning it into an [`Embedding`] (`EmbeddingDatabase.load_from_file`, A1111 v1.10):
//! 1. a `string_to_param` entry: its single tensor (a `ParameterDict`'s `_parameters` too);
//! 2. a dict with `clip_g` and `clip_l`: an SDXL embedding;
//! 3. a dict whose first value is a tensor and which has exactly one key: a diffusers /
//!    kohya concept, `[dim]` read as `[1, dim]`;
//!
//! otherwise "Couldn't identify ... as neither textual inversion embedding nor diffuser
//! concept". `step`, `sd_checkpoint`, `sd_checkpoint_name` come from the dict when present.

use std::path::Path;

use super::{
    embedding::{Embedding, EmbeddingFormat, Vectors},
    error::{EmbeddingError, Result},
};

/// Most values one embedding tensor may hold (A1111's largest real ones are 75 × 2048).
pub const MAX_EMBEDDING_VALUES: usize = 1 << 22;

/// One tensor of a decoded file, already converted to f32.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
    pub requires_grad: bool,
}

/// A top-level value of a decoded file, as much as the rules need.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RawValue {
    Tensor(RawTensor),
    /// A string-keyed mapping of tensors (`string_to_param`).
    Tensors(Vec<(String, RawTensor)>),
    Int(i64),
    Str(String),
    None,
    /// Anything else (kept so key counts and "first value" match the file).
    Other(&'static str),
}

/// The decoded top-level dict of an embedding file, in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RawData {
    pub entries: Vec<(String, RawValue)>,
}

impl RawData {
    pub fn get(&self, key: &str) -> Option<&RawValue> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn string(&self, key: &str) -> Option<String> {
        match self.get(key)? {
            RawValue::Str(s) => Some(s.clone()),
            RawValue::Int(i) => Some(i.to_string()),
            _ => None,
        }
    }
}

/// Checks a tensor's shape and values and makes it `[n, dim]` vectors.
pub(crate) fn to_vectors(path: &Path, key: &str, t: &RawTensor) -> Result<Vectors> {
    let shape_err = |reason: &str| EmbeddingError::Shape {
        path: path.to_path_buf(),
        key: key.to_string(),
        shape: t.shape.clone(),
        reason: reason.to_string(),
    };
    let (n, dim) = match t.shape.as_slice() {
        [dim] => (1, *dim),
        [n, dim] => (*n, *dim),
        _ => return Err(shape_err("an embedding is [dim] or [n, dim]")),
    };
    if n == 0 || dim == 0 {
        return Err(shape_err("it is empty"));
    }
    if n.checked_mul(dim) != Some(t.data.len()) {
        return Err(shape_err("its data does not fill the shape"));
    }
    if let Some((index, &value)) = t.data.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(EmbeddingError::NonFinite {
            path: path.to_path_buf(),
            key: key.to_string(),
            index,
            value,
        });
    }
    Vectors::new(n, dim, t.data.clone())
}

/// A1111's interpretation of a decoded file. `name` is the trigger word already chosen
/// (file stem, or an image's stored name); `container` says which family the file was
/// (for the reported format).
pub(crate) fn interpret(
    path: &Path,
    name: String,
    data: &RawData,
    container: Container,
) -> Result<(Embedding, EmbeddingFormat)> {
    let layout = |reason: String| EmbeddingError::Layout {
        path: path.to_path_buf(),
        reason,
    };
    let (vectors, clip_g, requires_grad, format) = if let Some(v) = data.get("string_to_param") {
        let RawValue::Tensors(params) = v else {
            return Err(layout(
                "`string_to_param` is not a mapping of tensors".to_string(),
            ));
        };
        let [(key, t)] = params.as_slice() else {
            // A1111: assert len(param_dict) == 1, 'embedding file has multiple terms in it'
            return Err(layout(format!(
                "embedding file has {} terms in `string_to_param`; A1111 reads exactly one",
                params.len()
            )));
        };
        let format = match container {
            Container::Image(f) => f,
            _ => EmbeddingFormat::A1111Torch,
        };
        (to_vectors(path, key, t)?, None, t.requires_grad, format)
    } else if let (Some(RawValue::Tensor(l)), Some(RawValue::Tensor(g))) =
        (data.get("clip_l"), data.get("clip_g"))
    {
        let l_vec = to_vectors(path, "clip_l", l)?;
        let g_vec = to_vectors(path, "clip_g", g)?;
        if l_vec.n != g_vec.n {
            return Err(layout(format!(
                "SDXL parts hold {} (clip_l) and {} (clip_g) vectors",
                l_vec.n, g_vec.n
            )));
        }
        (l_vec, Some(g_vec), l.requires_grad, EmbeddingFormat::Sdxl)
    } else if let Some((key, RawValue::Tensor(t))) = data.entries.first() {
        if data.entries.len() != 1 {
            return Err(layout(format!(
                "embedding file has multiple terms in it ({} keys)",
                data.entries.len()
            )));
        }
        let format = match (container, key.as_str()) {
            (Container::Safetensors, "emb_params") => EmbeddingFormat::KohyaSafetensors,
            (Container::Safetensors, _) => EmbeddingFormat::DiffusersSafetensors,
            (Container::Image(f), _) => f,
            (Container::Torch, _) => EmbeddingFormat::DiffusersTorch,
        };
        (to_vectors(path, key, t)?, None, t.requires_grad, format)
    } else {
        let keys: Vec<&str> = data.entries.iter().map(|(k, _)| k.as_str()).collect();
        return Err(layout(format!(
            "neither a textual inversion embedding nor a diffusers concept (keys {keys:?})"
        )));
    };
    let step = match data.get("step") {
        Some(RawValue::Int(i)) => Some(*i),
        _ => None,
    };
    let embedding = Embedding {
        name,
        vectors,
        clip_g,
        step,
        sd_checkpoint: data.string("sd_checkpoint"),
        sd_checkpoint_name: data.string("sd_checkpoint_name"),
        requires_grad,
    };
    Ok((embedding, format))
}

/// The file family a [`RawData`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Container {
    Torch,
    Safetensors,
    Image(EmbeddingFormat),
}
