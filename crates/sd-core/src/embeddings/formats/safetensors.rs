//! `.safetensors` embeddings: diffusers' `learned_embeds.safetensors` (`{token: [n, dim]}` or
//! `[dim]`, saved by its textual-inversion script with metadata `{"format": "pt"}`), kohya's
//! `{emb_params: [n, dim]}` and SDXL's `{clip_l, clip_g}`.

use std::{collections::HashMap, path::Path};

use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use crate::checkpoint::floats_of;

use crate::embeddings::{
    detect::{MAX_EMBEDDING_VALUES, RawData, RawTensor, RawValue},
    embedding::{Embedding, Vectors},
    error::{EmbeddingError, Result},
};

/// Decodes every tensor of a safetensors file (they are the top-level dict of
/// `safetensors.torch.load_file`, in its sorted key order).
pub(crate) fn read(path: &Path, bytes: &[u8]) -> Result<RawData> {
    let st = SafeTensors::deserialize(bytes).map_err(|source| EmbeddingError::Safetensors {
        path: path.to_path_buf(),
        source,
    })?;
    let mut names = st.names();
    names.sort();
    let mut entries = Vec::with_capacity(names.len());
    for name in names {
        let view = st
            .tensor(name)
            .map_err(|source| EmbeddingError::Safetensors {
                path: path.to_path_buf(),
                source,
            })?;
        let shape = view.shape().to_vec();
        let shape_err = |reason: String| EmbeddingError::Shape {
            path: path.to_path_buf(),
            key: name.to_string(),
            shape: shape.clone(),
            reason,
        };
        let numel: usize = shape.iter().product();
        if numel > MAX_EMBEDDING_VALUES {
            return Err(shape_err(format!(
                "more than {MAX_EMBEDDING_VALUES} values"
            )));
        }
        let data = floats_of(&view)
            .ok_or_else(|| shape_err(format!("{:?} is not a float dtype", view.dtype())))?;
        entries.push((
            name.to_string(),
            RawValue::Tensor(RawTensor {
                shape,
                data,
                requires_grad: false,
            }),
        ));
    }
    Ok(RawData { entries })
}

/// Which key layout to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SafetensorsLayout {
    /// diffusers: `{name: [n, dim]}` (SDXL: `{clip_l, clip_g}`).
    #[default]
    Diffusers,
    /// kohya / A1111 extensions: `{emb_params: [n, dim]}`.
    Kohya,
}

fn le_bytes(v: &Vectors) -> Vec<u8> {
    v.data.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The bytes of an f32 safetensors embedding in `layout`, with diffusers' metadata
/// `{"format": "pt"}`.
///
/// # Errors
/// [`EmbeddingError::Write`] when the serializer refuses (e.g. an empty name).
pub fn write(path: &Path, e: &Embedding, layout: SafetensorsLayout) -> Result<Vec<u8>> {
    e.validate()?;
    let write_err = |reason: String| EmbeddingError::Write {
        path: path.to_path_buf(),
        reason,
        source: None,
    };
    let refused = |reason: String, e: safetensors::SafeTensorError| EmbeddingError::Write {
        path: path.to_path_buf(),
        reason,
        source: Some(Box::new(e.into())),
    };
    let parts: Vec<(String, &Vectors)> = match (&e.clip_g, layout) {
        (Some(g), _) => vec![("clip_l".into(), &e.vectors), ("clip_g".into(), g)],
        (None, SafetensorsLayout::Kohya) => vec![("emb_params".into(), &e.vectors)],
        (None, SafetensorsLayout::Diffusers) => vec![(e.name.clone(), &e.vectors)],
    };
    if parts.iter().any(|(k, _)| k.is_empty()) {
        return Err(write_err(
            "the tensor key (the embedding's name) is empty".into(),
        ));
    }
    let bytes: Vec<(String, Vec<u8>, [usize; 2])> = parts
        .iter()
        .map(|(k, v)| (k.clone(), le_bytes(v), [v.n, v.dim]))
        .collect();
    let views = bytes
        .iter()
        .map(|(k, b, shape)| {
            TensorView::new(Dtype::F32, shape.to_vec(), b)
                .map(|v| (k.clone(), v))
                .map_err(|e| refused(format!("tensor `{k}`"), e))
        })
        .collect::<Result<Vec<_>>>()?;
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize(views, Some(metadata))
        .map_err(|e| refused("serialising safetensors".into(), e))
}
