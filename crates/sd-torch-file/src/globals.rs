//! The allow-list of pickle globals. A pickle can name any Python callable (`GLOBAL module
//! name`) and call it (`REDUCE`); Python's unpickler imports and runs it, which is how a
//! malicious `.ckpt` runs code. We resolve only the names below, each to a data-only meaning,
//! and refuse every other name at the `GLOBAL` opcode, before anything after it is read.
//!
//! The list follows A1111's `modules/safe.py` (`RestrictedUnpickler.find_class`) and torch's
//! own `weights_only` unpickler, restricted to what SD checkpoints and embeddings contain.

use super::value::DType;

/// What an allowed global means when read as data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum GlobalKind {
    /// `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, meta])`.
    RebuildTensorV2,
    /// `torch._utils._rebuild_tensor(storage, offset, size, stride)` (torch < 1.0 files).
    RebuildTensor,
    /// `torch._utils._rebuild_parameter(data, requires_grad, hooks)`.
    RebuildParameter,
    /// `torch._utils._rebuild_parameter_with_state(data, requires_grad, hooks, state)`.
    RebuildParameterWithState,
    /// `torch._tensor._rebuild_from_type_v2(func, new_type, args, state)`: calls `func(*args)`.
    RebuildFromType,
    /// A storage class, used in persistent ids.
    Storage(DType),
    /// `collections.OrderedDict`: builds a dict.
    OrderedDict,
    /// `builtins.set` / `frozenset`: builds a set from a list.
    Set,
    /// `_codecs.encode(str, 'latin1')`: how protocol 2 pickles `bytes`.
    CodecsEncode,
    /// `builtins.bytearray`.
    ByteArray,
    /// `torch.Size(list)`: a tuple.
    TorchSize,
    /// A class kept as an opaque [`super::PickleValue::Object`] when called.
    Opaque,
    /// A constant or class that may appear as a value but is never called.
    ValueOnly,
}

/// Classes read as opaque objects (constructor arguments and state kept as data).
const OPAQUE: &[(&str, &str)] = &[
    // Old A1111 / textual_inversion embeddings keep `string_to_param` in a ParameterDict.
    ("torch.nn.modules.container", "ParameterDict"),
    // PyTorch Lightning callback state found in the original SD checkpoints.
    (
        "pytorch_lightning.callbacks.model_checkpoint",
        "ModelCheckpoint",
    ),
    // numpy scalars and arrays in training metadata (A1111's safe.py allows these).
    ("numpy.core.multiarray", "scalar"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "dtype"),
    ("numpy", "ndarray"),
    ("torch", "device"),
];

/// Names that are only ever values (never called).
const VALUE_ONLY: &[(&str, &str)] = &[
    ("pytorch_lightning.callbacks", "model_checkpoint"),
    ("torch._tensor", "Tensor"),
    ("torch", "Tensor"),
    ("torch.nn.parameter", "Parameter"),
];

/// torch dtype constants (`torch.float32` ...) that may appear as values.
const TORCH_DTYPES: &[&str] = &[
    "float64", "float32", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool",
];

/// The data meaning of `module.name`, or `None` when the global is not allowed.
pub(super) fn classify(module: &str, name: &str) -> Option<GlobalKind> {
    let kind = match (module, name) {
        ("torch._utils", "_rebuild_tensor_v2") => GlobalKind::RebuildTensorV2,
        ("torch._utils", "_rebuild_tensor") => GlobalKind::RebuildTensor,
        ("torch._utils", "_rebuild_parameter") => GlobalKind::RebuildParameter,
        ("torch._utils", "_rebuild_parameter_with_state") => GlobalKind::RebuildParameterWithState,
        ("torch._tensor", "_rebuild_from_type_v2") => GlobalKind::RebuildFromType,
        ("torch" | "torch.storage", "UntypedStorage") => GlobalKind::Storage(DType::U8),
        ("torch", storage) if DType::from_storage_name(storage).is_some() => {
            GlobalKind::Storage(DType::from_storage_name(storage)?)
        }
        ("collections", "OrderedDict") => GlobalKind::OrderedDict,
        ("builtins" | "__builtin__", "set" | "frozenset") => GlobalKind::Set,
        ("builtins" | "__builtin__", "bytearray") => GlobalKind::ByteArray,
        ("_codecs", "encode") => GlobalKind::CodecsEncode,
        ("torch", "Size") => GlobalKind::TorchSize,
        ("torch", dtype) if TORCH_DTYPES.contains(&dtype) => GlobalKind::ValueOnly,
        _ if OPAQUE.contains(&(module, name)) => GlobalKind::Opaque,
        _ if VALUE_ONLY.contains(&(module, name)) => GlobalKind::ValueOnly,
        _ => return None,
    };
    Some(kind)
}

/// Whether the reader accepts the pickle global `module.name` (see the module docs for the
/// list). Everything else makes [`super::TorchFile::open`] fail with
/// [`super::TorchFileError::ForbiddenGlobal`].
pub fn is_allowed_global(module: &str, name: &str) -> bool {
    classify(module, name).is_some()
}
