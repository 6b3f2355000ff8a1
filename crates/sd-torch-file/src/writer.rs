//! Writing torch zip archives that `torch.load(path, weights_only=True)` and A1111 read: a
//! protocol-2 pickle spelled as `torch.save` spells it (`torch._utils._rebuild_tensor_v2`,
//! persistent ids `('storage', torch.FloatStorage, key, 'cpu', numel)`, an empty
//! `collections.OrderedDict` for the backward hooks), storages as `data/<key>` records
//! aligned to 64 bytes, and a `version` record. Reference: `torch/serialization.py`
//! (`_save`) and CPython `Lib/pickle.py` (`_Pickler`).

use super::{
    error::{Result, TorchFileError},
    pickle::MAX_DEPTH,
    value::{DType, PickleValue, StorageRef, TensorRef},
    zip::ZipWriter,
};

/// torch's record alignment (`torch.serialization.config.save.storage_alignment`).
const ALIGN: usize = 64;
/// Items per `SETITEMS`/`APPENDS` batch, as CPython's pickler.
const BATCH: usize = 1000;

/// Options of [`TorchWriter::finish`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WriteOptions {
    /// Folder name inside the archive (torch uses the file stem; A1111 accepts any name
    /// without `/`). Default `"archive"`.
    pub archive_name: String,
    /// Also write the `byteorder` record of torch >= 2.1. Off by default: A1111's
    /// `modules/safe.py` accepts only `data.pkl`, `data/<n>` and `version` records and
    /// refuses files with any other, and torch reads files without it as little-endian.
    pub byteorder_record: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            archive_name: "archive".into(),
            byteorder_record: false,
        }
    }
}

impl WriteOptions {
    /// Default options with `archive_name` (e.g. the output file's stem).
    pub fn named(archive_name: impl Into<String>) -> Self {
        WriteOptions {
            archive_name: archive_name.into(),
            ..WriteOptions::default()
        }
    }
}

/// Builds a torch file: register tensor data with [`TorchWriter::add_tensor`], place the
/// returned [`TensorRef`]s in a [`PickleValue`], then [`TorchWriter::finish`].
///
/// ```
/// use sd_torch_file::{PickleValue, TorchFile, TorchWriter, WriteOptions};
/// # fn main() -> Result<(), sd_torch_file::TorchFileError> {
/// let mut w = TorchWriter::new();
/// let vec = w.add_f32(&[1, 4], &[0.5, -1.0, 2.0, 0.0])?;
/// let root = PickleValue::Dict(vec![
///     (PickleValue::String("string_to_param".into()), PickleValue::Dict(vec![
///         (PickleValue::String("*".into()), PickleValue::Tensor(vec)),
///     ])),
///     (PickleValue::String("name".into()), PickleValue::String("my-emb".into())),
/// ]);
/// let bytes = w.finish(&root, &WriteOptions::named("my-emb"))?;
/// let back = TorchFile::from_bytes("my-emb.pt", bytes)?;
/// let t = back.root().get("string_to_param").and_then(|d| d.get("*")).and_then(|t| t.as_tensor());
/// assert_eq!(back.tensor_f32(t.expect("tensor"))?, [0.5, -1.0, 2.0, 0.0]);
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct TorchWriter {
    /// Storage data by key (`"0"`, `"1"`, ...), little-endian.
    storages: Vec<(DType, Vec<u8>)>,
}

impl TorchWriter {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a contiguous tensor of `shape` whose elements are `data` (little-endian,
    /// `dtype.size()` bytes each) and returns its description, to be placed in the value.
    ///
    /// # Errors
    /// [`TorchFileError::Write`] when `data` does not hold exactly `shape`'s elements.
    pub fn add_tensor(
        &mut self,
        dtype: DType,
        shape: &[usize],
        data: Vec<u8>,
    ) -> Result<TensorRef> {
        let numel = shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .ok_or_else(|| TorchFileError::Write {
                reason: format!("shape {shape:?} overflows"),
            })?;
        if numel.checked_mul(dtype.size()) != Some(data.len()) {
            return Err(TorchFileError::Write {
                reason: format!(
                    "shape {shape:?} of {} needs {numel} elements, data has {} bytes",
                    dtype.torch_name(),
                    data.len()
                ),
            });
        }
        let key = self.storages.len().to_string();
        self.storages.push((dtype, data));
        Ok(TensorRef {
            dtype,
            shape: shape.to_vec(),
            strides: TensorRef::contiguous_strides(shape),
            storage_offset: 0,
            storage: StorageRef {
                key,
                dtype,
                location: "cpu".into(),
                numel: numel as u64,
            },
            requires_grad: false,
            is_parameter: false,
        })
    }

    /// [`TorchWriter::add_tensor`] for `f32` values.
    ///
    /// # Errors
    /// As [`TorchWriter::add_tensor`].
    pub fn add_f32(&mut self, shape: &[usize], values: &[f32]) -> Result<TensorRef> {
        let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.add_tensor(DType::F32, shape, data)
    }

    /// Pickles `root` and returns the whole archive (write it with a temp file + rename).
    ///
    /// # Errors
    /// [`TorchFileError::Write`] for values torch's `weights_only` loader would refuse
    /// (objects, globals, bare storages), tensors not registered with this writer or whose
    /// view exceeds their data, nesting deeper than [`MAX_DEPTH`], a bad archive name, or an
    /// archive past 4 GiB.
    pub fn finish(self, root: &PickleValue, options: &WriteOptions) -> Result<Vec<u8>> {
        let name = &options.archive_name;
        if name.is_empty() || name.contains(['/', '\\']) || name == "." || name == ".." {
            return Err(TorchFileError::Write {
                reason: format!("archive name `{name}` must be one non-empty path component"),
            });
        }
        let mut p = Pickler {
            out: vec![0x80, 2], // PROTO 2
            storages: &self.storages,
        };
        p.value(root, 0)?;
        p.out.push(b'.');

        let mut zip = ZipWriter::new(ALIGN);
        zip.add(&format!("{name}/data.pkl"), &p.out)?;
        if options.byteorder_record {
            zip.add(&format!("{name}/byteorder"), b"little")?;
        }
        for (key, (_, data)) in self.storages.iter().enumerate() {
            zip.add(&format!("{name}/data/{key}"), data)?;
        }
        // torch writes "3\n" (its PyTorchStreamWriter file-format version).
        zip.add(&format!("{name}/version"), b"3\n")?;
        zip.finish()
    }
}

struct Pickler<'a> {
    out: Vec<u8>,
    storages: &'a [(DType, Vec<u8>)],
}

fn write_err(reason: String) -> TorchFileError {
    TorchFileError::Write { reason }
}

impl Pickler<'_> {
    fn global(&mut self, module: &str, name: &str) {
        self.out.push(b'c');
        self.out.extend_from_slice(module.as_bytes());
        self.out.push(b'\n');
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(b'\n');
    }

    fn str(&mut self, s: &str) -> Result<()> {
        let n = u32::try_from(s.len()).map_err(|_| write_err("string over 4 GiB".into()))?;
        self.out.push(b'X');
        self.out.extend_from_slice(&n.to_le_bytes());
        self.out.extend_from_slice(s.as_bytes());
        Ok(())
    }

    fn int(&mut self, i: i64) {
        if let Ok(b) = u8::try_from(i) {
            self.out.extend_from_slice(&[b'K', b]);
        } else if let Ok(w) = u16::try_from(i) {
            self.out.push(b'M');
            self.out.extend_from_slice(&w.to_le_bytes());
        } else if let Ok(d) = i32::try_from(i) {
            self.out.push(b'J');
            self.out.extend_from_slice(&d.to_le_bytes());
        } else {
            // LONG1 with the shortest two's-complement form, as CPython's encode_long.
            let bytes = i.to_le_bytes();
            let mut n = 8;
            while n > 1 {
                let top = bytes[n - 1];
                let next_sign = bytes[n - 2] & 0x80;
                if (top == 0 && next_sign == 0) || (top == 0xFF && next_sign != 0) {
                    n -= 1;
                } else {
                    break;
                }
            }
            self.out.extend_from_slice(&[0x8a, n as u8]);
            self.out.extend_from_slice(&bytes[..n]);
        }
    }

    fn items(&mut self, items: &[PickleValue], depth: usize) -> Result<()> {
        for v in items {
            self.value(v, depth + 1)?;
        }
        Ok(())
    }

    fn tuple(&mut self, items: &[PickleValue], depth: usize) -> Result<()> {
        match items.len() {
            0 => self.out.push(b')'),
            n @ 1..=3 => {
                self.items(items, depth)?;
                self.out.push(0x84 + n as u8); // TUPLE1..TUPLE3
            }
            _ => {
                self.out.push(b'(');
                self.items(items, depth)?;
                self.out.push(b't');
            }
        }
        Ok(())
    }

    fn value(&mut self, v: &PickleValue, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(write_err(format!(
                "value nested deeper than {MAX_DEPTH} levels"
            )));
        }
        match v {
            PickleValue::None => self.out.push(b'N'),
            PickleValue::Bool(b) => self.out.push(if *b { 0x88 } else { 0x89 }),
            PickleValue::Int(i) => self.int(*i),
            PickleValue::BigInt(b) => {
                let n =
                    u8::try_from(b.len()).map_err(|_| write_err("int over 255 bytes".into()))?;
                self.out.extend_from_slice(&[0x8a, n]);
                self.out.extend_from_slice(b);
            }
            PickleValue::Float(f) => {
                self.out.push(b'G');
                self.out.extend_from_slice(&f.to_be_bytes());
            }
            PickleValue::String(s) => self.str(s)?,
            PickleValue::Bytes(b) => {
                // Protocol 2 has no bytes opcode for Python 3: `_codecs.encode(latin1 text)`.
                self.global("_codecs", "encode");
                let text: String = b.iter().map(|&c| char::from(c)).collect();
                self.str(&text)?;
                self.str("latin1")?;
                self.out.push(0x86); // TUPLE2
                self.out.push(b'R');
            }
            PickleValue::List(items) => {
                self.out.push(b']');
                for chunk in items.chunks(BATCH) {
                    self.out.push(b'(');
                    self.items(chunk, depth)?;
                    self.out.push(b'e');
                }
            }
            PickleValue::Tuple(items) => self.tuple(items, depth)?,
            PickleValue::Set(items) => {
                self.global("__builtin__", "set");
                self.out.push(b']');
                for chunk in items.chunks(BATCH) {
                    self.out.push(b'(');
                    self.items(chunk, depth)?;
                    self.out.push(b'e');
                }
                self.out.push(0x85); // TUPLE1
                self.out.push(b'R');
            }
            PickleValue::Dict(items) => {
                self.out.push(b'}');
                for chunk in items.chunks(BATCH) {
                    self.out.push(b'(');
                    for (k, v) in chunk {
                        self.value(k, depth + 1)?;
                        self.value(v, depth + 1)?;
                    }
                    self.out.push(b'u');
                }
            }
            PickleValue::Tensor(t) => self.tensor(t)?,
            other => {
                return Err(write_err(format!(
                    "a {} cannot be written (torch's weights_only loader refuses it)",
                    other.kind()
                )));
            }
        }
        Ok(())
    }

    fn tensor(&mut self, t: &TensorRef) -> Result<()> {
        let key: usize = t.storage.key.parse().map_err(|_| {
            write_err(format!(
                "storage `{}` was not added to this writer",
                t.storage.key
            ))
        })?;
        let (dtype, data) = self
            .storages
            .get(key)
            .ok_or_else(|| write_err(format!("storage `{key}` was not added to this writer")))?;
        if *dtype != t.dtype || t.shape.len() != t.strides.len() {
            return Err(write_err(format!(
                "tensor in storage `{key}` does not match its data"
            )));
        }
        let numel = data.len() / dtype.size();
        let numel_view: usize = t.shape.iter().product();
        if numel_view > 0 {
            let last = t
                .shape
                .iter()
                .zip(&t.strides)
                .try_fold(t.storage_offset, |acc, (&d, &s)| {
                    (d - 1).checked_mul(s).and_then(|x| acc.checked_add(x))
                });
            if last.is_none_or(|l| l >= numel) {
                return Err(write_err(format!("tensor view exceeds storage `{key}`")));
            }
        }
        if t.is_parameter {
            self.global("torch._utils", "_rebuild_parameter");
        }
        self.global("torch._utils", "_rebuild_tensor_v2");
        self.out.push(b'(');
        // Persistent id: ('storage', torch.<T>Storage, key, 'cpu', numel).
        self.out.push(b'(');
        self.str("storage")?;
        self.global("torch", dtype.storage_name());
        self.str(&key.to_string())?;
        self.str("cpu")?;
        self.int(numel as i64);
        self.out.push(b't');
        self.out.push(b'Q'); // BINPERSID
        self.int(t.storage_offset as i64);
        let dims = |xs: &[usize]| {
            xs.iter()
                .map(|&x| PickleValue::Int(x as i64))
                .collect::<Vec<_>>()
        };
        self.tuple(&dims(&t.shape), 0)?;
        self.tuple(&dims(&t.strides), 0)?;
        let requires_grad = t.requires_grad && !t.is_parameter;
        self.out.push(if requires_grad { 0x88 } else { 0x89 });
        self.ordered_dict();
        self.out.push(b't');
        self.out.push(b'R');
        if t.is_parameter {
            // _rebuild_parameter(data, requires_grad, backward_hooks)
            self.out.push(if t.requires_grad { 0x88 } else { 0x89 });
            self.ordered_dict();
            self.out.push(0x87); // TUPLE3
            self.out.push(b'R');
        }
        Ok(())
    }

    /// `collections.OrderedDict()`: the empty backward-hooks dict torch pickles.
    fn ordered_dict(&mut self) {
        self.global("collections", "OrderedDict");
        self.out.push(b')');
        self.out.push(b'R');
    }
}
