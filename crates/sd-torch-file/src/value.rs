//! The data model of an unpickled torch file: plain values, tensor descriptions and opaque
//! objects. Nothing here can run code; objects are names plus their pickled arguments.

/// Element type of a torch storage, named after torch's dtypes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DType {
    /// `torch.float64` (`DoubleStorage`).
    F64,
    /// `torch.float32` (`FloatStorage`).
    F32,
    /// `torch.float16` (`HalfStorage`).
    F16,
    /// `torch.bfloat16` (`BFloat16Storage`).
    BF16,
    /// `torch.int64` (`LongStorage`).
    I64,
    /// `torch.int32` (`IntStorage`).
    I32,
    /// `torch.int16` (`ShortStorage`).
    I16,
    /// `torch.int8` (`CharStorage`).
    I8,
    /// `torch.uint8` (`ByteStorage`, and the bytes of an `UntypedStorage`).
    U8,
    /// `torch.bool` (`BoolStorage`), one byte per element.
    Bool,
}

impl DType {
    /// Every dtype, for tables and tests.
    pub const ALL: [DType; 10] = [
        DType::F64,
        DType::F32,
        DType::F16,
        DType::BF16,
        DType::I64,
        DType::I32,
        DType::I16,
        DType::I8,
        DType::U8,
        DType::Bool,
    ];

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 | DType::I16 => 2,
            DType::I8 | DType::U8 | DType::Bool => 1,
        }
    }

    /// The legacy storage class torch pickles for this dtype (`torch.<name>`).
    pub fn storage_name(self) -> &'static str {
        match self {
            DType::F64 => "DoubleStorage",
            DType::F32 => "FloatStorage",
            DType::F16 => "HalfStorage",
            DType::BF16 => "BFloat16Storage",
            DType::I64 => "LongStorage",
            DType::I32 => "IntStorage",
            DType::I16 => "ShortStorage",
            DType::I8 => "CharStorage",
            DType::U8 => "ByteStorage",
            DType::Bool => "BoolStorage",
        }
    }

    /// The dtype whose storage class is `torch.<name>`, if any.
    pub fn from_storage_name(name: &str) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.storage_name() == name)
    }

    /// torch's name without the `torch.` prefix (`"float16"`, `"bfloat16"`, ...).
    pub fn torch_name(self) -> &'static str {
        match self {
            DType::F64 => "float64",
            DType::F32 => "float32",
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            DType::I64 => "int64",
            DType::I32 => "int32",
            DType::I16 => "int16",
            DType::I8 => "int8",
            DType::U8 => "uint8",
            DType::Bool => "bool",
        }
    }

    /// The matching safetensors dtype.
    pub fn safetensors_dtype(self) -> safetensors::Dtype {
        match self {
            DType::F64 => safetensors::Dtype::F64,
            DType::F32 => safetensors::Dtype::F32,
            DType::F16 => safetensors::Dtype::F16,
            DType::BF16 => safetensors::Dtype::BF16,
            DType::I64 => safetensors::Dtype::I64,
            DType::I32 => safetensors::Dtype::I32,
            DType::I16 => safetensors::Dtype::I16,
            DType::I8 => safetensors::Dtype::I8,
            DType::U8 => safetensors::Dtype::U8,
            DType::Bool => safetensors::Dtype::BOOL,
        }
    }
}

/// A storage named by a pickle persistent id: `('storage', torch.<T>Storage, key, location,
/// numel)`. Its bytes are the zip record `<archive>/data/<key>` (or a section of a legacy
/// file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageRef {
    /// Record key, a decimal number as torch writes it.
    pub key: String,
    /// Element type.
    pub dtype: DType,
    /// Device it was saved from (`"cpu"`, `"cuda:0"`); we always read to the CPU.
    pub location: String,
    /// Number of elements the pickle declares (bytes for an `UntypedStorage`).
    pub numel: u64,
}

/// Where a tensor's elements live: a view (shape, strides, offset) into a storage. Reading
/// the numbers is [`super::TorchFile::tensor_f32`] / [`super::TorchFile::tensor_bytes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorRef {
    /// Element type (the storage's).
    pub dtype: DType,
    /// Size of each dimension; `[]` is a scalar.
    pub shape: Vec<usize>,
    /// Step, in elements, between neighbours along each dimension (torch's `stride()`).
    pub strides: Vec<usize>,
    /// Index of the first element inside the storage, in elements.
    pub storage_offset: usize,
    /// The storage the elements are read from.
    pub storage: StorageRef,
    /// torch's `requires_grad` flag as saved.
    pub requires_grad: bool,
    /// Whether it was pickled as a `torch.nn.Parameter`.
    pub is_parameter: bool,
}

impl TensorRef {
    /// Number of elements (the product of the shape; 1 for a scalar).
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Row-major strides for `shape`, as torch gives a contiguous tensor.
    pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
        let mut strides = vec![1; shape.len()];
        for i in (0..shape.len().saturating_sub(1)).rev() {
            strides[i] = strides[i + 1] * shape[i + 1].max(1);
        }
        strides
    }
}

/// One unpickled value. Containers keep Python's order; dict keys may be any value.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum PickleValue {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An `int` that fits 64 bits.
    Int(i64),
    /// A larger `int`: little-endian two's-complement bytes, as pickle's `LONG1` stores them.
    BigInt(Vec<u8>),
    /// A `float`.
    Float(f64),
    /// A `str`.
    String(String),
    /// `bytes` or `bytearray`.
    Bytes(Vec<u8>),
    /// A `list`.
    List(Vec<PickleValue>),
    /// A `tuple` (also `torch.Size`).
    Tuple(Vec<PickleValue>),
    /// A `set` or `frozenset`, in pickled order.
    Set(Vec<PickleValue>),
    /// A `dict` or `collections.OrderedDict`, as (key, value) pairs in insertion order.
    Dict(Vec<(PickleValue, PickleValue)>),
    /// A tensor (`torch._utils._rebuild_tensor_v2`, `_rebuild_parameter`, ...).
    Tensor(TensorRef),
    /// A bare storage object (pickled without a tensor around it).
    Storage(StorageRef),
    /// A reference to an allowed class or constant that was not called, e.g. `torch.float32`
    /// or the `ModelCheckpoint` class used as a dict key by PyTorch Lightning.
    Global {
        /// Module path, e.g. `torch`.
        module: String,
        /// Name inside the module, e.g. `float32`.
        name: String,
    },
    /// An instance of an allowed opaque class (`torch.nn.ParameterDict`, Lightning's
    /// `ModelCheckpoint`, numpy scalars and dtypes...), kept as data: its constructor
    /// arguments and the state `BUILD` gave it. Never instantiated.
    Object {
        /// `module.Name` of the class or reconstructor.
        class: String,
        /// Arguments of the constructor call.
        args: Vec<PickleValue>,
        /// The `__setstate__` argument (usually the instance `__dict__`), if any.
        state: Option<Box<PickleValue>>,
    },
}

impl PickleValue {
    /// How deeply containers nest: 0 for a scalar, 1 for a list of scalars. Iterative, so
    /// any depth is measured without recursion.
    pub fn depth(&self) -> usize {
        let mut deepest = 0;
        let mut todo = vec![(self, 0usize)];
        while let Some((v, d)) = todo.pop() {
            deepest = deepest.max(d);
            match v {
                PickleValue::List(xs) | PickleValue::Tuple(xs) | PickleValue::Set(xs) => {
                    todo.extend(xs.iter().map(|x| (x, d + 1)));
                }
                PickleValue::Dict(items) => {
                    for (k, x) in items {
                        todo.push((k, d + 1));
                        todo.push((x, d + 1));
                    }
                }
                PickleValue::Object { args, state, .. } => {
                    todo.extend(args.iter().map(|x| (x, d + 1)));
                    if let Some(s) = state {
                        todo.push((s, d + 1));
                    }
                }
                _ => {}
            }
        }
        deepest
    }

    /// The value under string key `key` of a dict, or of an object's state dict (so a
    /// `ParameterDict`'s `_parameters` can be reached like a dict entry).
    pub fn get(&self, key: &str) -> Option<&PickleValue> {
        match self {
            PickleValue::Dict(items) => items
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            PickleValue::Object {
                state: Some(state), ..
            } => state.get(key),
            _ => None,
        }
    }

    /// The text of a `str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            PickleValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The number of an `int` that fits 64 bits (a `bool` is not an int here).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            PickleValue::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The tensor description of a tensor.
    pub fn as_tensor(&self) -> Option<&TensorRef> {
        match self {
            PickleValue::Tensor(t) => Some(t),
            _ => None,
        }
    }

    /// The pairs of a dict.
    pub fn as_dict(&self) -> Option<&[(PickleValue, PickleValue)]> {
        match self {
            PickleValue::Dict(items) => Some(items),
            _ => None,
        }
    }

    /// The `(name, tensor)` entries of a string-keyed tensor mapping: a dict, an
    /// `OrderedDict`, or a `torch.nn.ParameterDict` (whose tensors sit in the `_parameters`
    /// of its state, as A1111's embedding loader reads them). Entries whose key is not a
    /// string or whose value is not a tensor are left out; `None` when `self` is no mapping.
    pub fn tensor_entries(&self) -> Option<Vec<(&str, &TensorRef)>> {
        let items = match self {
            PickleValue::Dict(items) => items,
            PickleValue::Object { class, .. } if class == PARAMETER_DICT => {
                self.get("_parameters")?.as_dict()?
            }
            _ => return None,
        };
        Some(
            items
                .iter()
                .filter_map(|(k, v)| Some((k.as_str()?, v.as_tensor()?)))
                .collect(),
        )
    }

    /// A short name of the variant, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            PickleValue::None => "None",
            PickleValue::Bool(_) => "bool",
            PickleValue::Int(_) | PickleValue::BigInt(_) => "int",
            PickleValue::Float(_) => "float",
            PickleValue::String(_) => "str",
            PickleValue::Bytes(_) => "bytes",
            PickleValue::List(_) => "list",
            PickleValue::Tuple(_) => "tuple",
            PickleValue::Set(_) => "set",
            PickleValue::Dict(_) => "dict",
            PickleValue::Tensor(_) => "tensor",
            PickleValue::Storage(_) => "storage",
            PickleValue::Global { .. } => "global",
            PickleValue::Object { .. } => "object",
        }
    }
}

/// Class name of `torch.nn.ParameterDict` as pickled.
pub const PARAMETER_DICT: &str = "torch.nn.modules.container.ParameterDict";
