//! The torch-file targets: the pickle machine and whole `.pt` / `.ckpt` files.

use std::path::Path;

use sd_core::embeddings;
use sd_torch_file::{PickleValue, TorchFile, TorchWriter, WriteOptions};

/// Largest tensor (bytes) whose data a target reads back. Reading is bounded by the input's
/// own size anyway (except expanded views, which the reader caps at 256 MiB); the cap keeps
/// each execution fast.
const MAX_TENSOR_BYTES: usize = 1 << 20;

/// The pickle machine (`sd_torch_file::unpickle`): the input is one pickle stream.
///
/// Asserts: it returns `Ok` or a typed error, never panics (hostile opcodes, memo indices,
/// lengths claiming gigabytes, deep nesting are all errors). Round trip: when the value is
/// plain data (no tensor, storage, global or object) and the writer ([`TorchWriter`]) accepts
/// it, the archive it writes reads back to the same value.
pub fn pickle(data: &[u8]) {
    let label = Path::new("fuzz.pkl");
    let Ok(value) = sd_torch_file::unpickle(data, label) else {
        return;
    };
    if !is_plain(&value) {
        return;
    }
    let Ok(bytes) = TorchWriter::new().finish(&value, &WriteOptions::default()) else {
        return;
    };
    let back = TorchFile::from_bytes("fuzz.pt", bytes).expect("the writer's archive reads back");
    // Debug text compares floats bit for bit in effect (NaN equals NaN there).
    assert_eq!(
        format!("{:?}", back.root()),
        format!("{value:?}"),
        "pickle round trip"
    );
}

/// Data the pickle writer may write without a registered tensor.
fn is_plain(v: &PickleValue) -> bool {
    match v {
        PickleValue::None
        | PickleValue::Bool(_)
        | PickleValue::Int(_)
        | PickleValue::BigInt(_)
        | PickleValue::Float(_)
        | PickleValue::String(_)
        | PickleValue::Bytes(_) => true,
        PickleValue::List(items) | PickleValue::Tuple(items) | PickleValue::Set(items) => {
            items.iter().all(is_plain)
        }
        PickleValue::Dict(items) => items.iter().all(|(k, v)| is_plain(k) && is_plain(v)),
        _ => false,
    }
}

/// Torch files (`TorchFile::from_bytes`: the zip archive of torch >= 1.6 and the legacy
/// pickle stream), the same bytes as an A1111 `.pt` / diffusers `.bin` embedding
/// (`embeddings::read_bytes`), and the file's conversion to safetensors.
///
/// Asserts: opening, `state_dict`, reading tensors and converting them return `Ok` or a
/// typed error, never panic; a tensor read has all its elements and is no larger than the
/// input (views that expand past it are skipped when between 1 and 256 MiB: allowed, but slow);
/// when the conversion succeeds, the bytes of `TorchFile::to_safetensors` are a valid
/// safetensors file (the `safetensors` crate reads it) holding each tensor's `tensor_bytes`,
/// and read back as an embedding file without panicking.
pub fn torch_zip(data: &[u8]) {
    let _ = embeddings::read_bytes(Path::new("fuzz.pt"), data.to_vec());
    let _ = embeddings::read_bytes(Path::new("fuzz.bin"), data.to_vec());
    let Ok(file) = TorchFile::from_bytes("fuzz.ckpt", data.to_vec()) else {
        return;
    };
    let Ok(tensors) = file.state_dict() else {
        return;
    };
    // Tensors cheap to read: small ones, and ones past the reader's cap on expanded views
    // (refused before any allocation, or backed by the input's own bytes). In between, a
    // stride-0 view may legitimately expand to 256 MiB: correct, but slow to fuzz.
    let cheap: Vec<_> = tensors
        .iter()
        .filter(|(_, t)| {
            let bytes = t
                .shape
                .iter()
                .try_fold(t.dtype.size(), |n, &d| n.checked_mul(d));
            bytes.is_none_or(|n| n <= MAX_TENSOR_BYTES || n > EXPANDED_CAP)
        })
        .cloned()
        .collect();
    for (_, t) in &cheap {
        if let Ok(b) = file.tensor_bytes(t) {
            assert!(b.len() <= data.len().max(MAX_TENSOR_BYTES));
            let n: usize = t.shape.iter().product();
            assert_eq!(
                b.len(),
                n * t.dtype.size(),
                "tensor_bytes returns every element"
            );
            let f = file
                .tensor_f32(t)
                .expect("tensor_f32 reads what tensor_bytes read");
            assert_eq!(f.len(), n);
        }
    }
    let Ok(st) = file.to_safetensors(&cheap) else {
        return;
    };
    let parsed = safetensors::SafeTensors::deserialize(&st).expect("valid safetensors");
    for (name, t) in &cheap {
        let view = parsed.tensor(name).expect("every tensor is written");
        assert_eq!(view.shape(), t.shape.as_slice());
        let expected = file.tensor_bytes(t).expect("read above");
        assert!(view.data() == expected.as_slice(), "tensor `{name}` data");
    }
    let _ = embeddings::read_bytes(Path::new("fuzz.safetensors"), st);
}

/// The torch reader's cap on the bytes of an expanded (stride-0) view.
const EXPANDED_CAP: usize = 256 << 20;
