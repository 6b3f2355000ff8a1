//! A read-only burn [`ModuleStore`] over a safetensors file (or an in-memory image of one)
//! that hands every float tensor out as f32, read and converted in one parallel pass.
//!
//! burn-store's `SafetensorsStore` copies each tensor out of its memory map, and the network
//! loaders' `FloatCastAdapter` then casts the copy element by element into a second buffer.
//! For a 2 GB fp16 checkpoint that is 2 GB of buffers written only to be thrown away, plus a
//! re-parse of the JSON header for every tensor. Here each tensor is read in cache-sized
//! chunks straight into its final f32 buffer, the chunks spread over rayon's threads, and the
//! header is parsed once. The network loaders' cast adapters then find f32 and do nothing.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::store::{ApplyResult, ModuleSnapshot, ModuleStore, bridge, burn_pack};
use burn::tensor::{BoolStore, DType as BurnDType, Shape, TensorData};
use half::{bf16, f16, slice::HalfFloatSliceExt};
use rayon::prelude::*;

use crate::checkpoint::{DType, SafetensorsHeader, TensorInfo};
use crate::error::{CoreError, Result};

/// Elements converted per task: 128–512 KiB of source, small enough to stay in a core's L2.
const CHUNK_ELEMENTS: usize = 1 << 16;

/// A safetensors file or image whose float tensors (f16, bf16, f32, f64, f8) load as f32.
///
/// Integer and bool tensors keep their dtype. Nothing is read until a tensor's data is drawn
/// (by `apply`, or [`bridge::into_data`]); then it is read once, in parallel, into the buffer
/// the model keeps.
///
/// ```no_run
/// use sd_core::model::F32WeightStore;
/// use sd_unet::{UNet2DConditionModel, UNetConfig, WeightFormat};
///
/// let device = burn::tensor::Device::default();
/// let mut store = F32WeightStore::open("v1-5-pruned-emaonly.safetensors")?;
/// let unet = UNet2DConditionModel::load(&UNetConfig::sd15(), &mut store, WeightFormat::Ldm, &device)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct F32WeightStore {
    path: PathBuf,
    tensors: BTreeMap<String, burn_pack::Tensor>,
}

/// Where the bytes are.
#[derive(Debug)]
enum Source {
    File(File),
    Image(Vec<u8>),
}

impl Source {
    /// Fills `buf` with the bytes at `offset` (from the start of the file or image).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        match self {
            Self::File(file) => read_exact_at(file, buf, offset),
            Self::Image(image) => {
                let start = usize::try_from(offset).ok();
                let bytes = start.and_then(|s| image.get(s..s.checked_add(buf.len())?));
                let bytes = bytes.ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "past the image's end")
                })?;
                buf.copy_from_slice(bytes);
                Ok(())
            }
        }
    }
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    while !buf.is_empty() {
        match std::os::windows::fs::FileExt::seek_read(file, buf, offset) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(not(any(unix, windows)))]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    // No positional reads here: a cloned handle shares the cursor, so serialise on it.
    static CURSOR: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = CURSOR
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut file = file;
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(buf)
}

impl F32WeightStore {
    /// Opens the safetensors file at `path`, reading only its header.
    ///
    /// # Errors
    /// As [`SafetensorsHeader::read`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_header(&SafetensorsHeader::read(path)?)
    }

    /// The store of a file whose header has been read (and checked against any limits).
    ///
    /// # Errors
    /// [`CoreError::Io`] when the file cannot be opened.
    pub fn from_header(header: &SafetensorsHeader) -> Result<Self> {
        let file = File::open(&header.path).map_err(|e| CoreError::io(&header.path, e))?;
        Ok(Self::new(header, Source::File(file)))
    }

    /// The store of a safetensors image in memory; `path` names it in errors.
    ///
    /// # Errors
    /// As [`SafetensorsHeader::from_image`].
    pub fn from_image(path: impl AsRef<Path>, image: Vec<u8>) -> Result<Self> {
        let header = SafetensorsHeader::from_image(path, &image)?;
        Ok(Self::new(&header, Source::Image(image)))
    }

    /// The file (or the name the image was given).
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn new(header: &SafetensorsHeader, source: Source) -> Self {
        let source = Arc::new(source);
        let tensors = header
            .tensors
            .iter()
            .map(|(name, info)| {
                let tensor =
                    deferred_tensor(name, info, header.data_start, &header.path, source.clone());
                (name.clone(), tensor)
            })
            .collect();
        Self {
            path: header.path.clone(),
            tensors,
        }
    }
}

/// The dtype a tensor stored as `dtype` is handed out as.
fn loaded_dtype(dtype: DType) -> BurnDType {
    match dtype {
        DType::F64 | DType::F32 | DType::F16 | DType::BF16 | DType::F8E4M3 | DType::F8E5M2 => {
            BurnDType::F32
        }
        DType::I64 => BurnDType::I64,
        DType::I32 => BurnDType::I32,
        DType::I16 => BurnDType::I16,
        DType::I8 => BurnDType::I8,
        DType::U8 => BurnDType::U8,
        DType::Bool => BurnDType::Bool(BoolStore::Native),
    }
}

fn deferred_tensor(
    name: &str,
    info: &TensorInfo,
    data_start: u64,
    path: &Path,
    source: Arc<Source>,
) -> burn_pack::Tensor {
    let dtype = loaded_dtype(info.dtype);
    let shape = Shape::from(info.shape.clone());
    let offset = data_start + info.data_offsets.0;
    let (stored, dims) = (info.dtype, info.shape.clone());
    let what = format!("{}: tensor `{name}`", path.display());
    bridge::deferred(name.to_owned(), dtype, shape, None, move || {
        let read = if dtype == BurnDType::F32 {
            read_as_f32(&source, stored, offset, &dims)
                .map(|values| TensorData::new(values, dims.clone()))
        } else {
            read_native(&source, stored, offset, &dims, dtype)
        };
        // burn's deferred-tensor callback must return `burn_pack::Error`, whose variants hold
        // only text (even its `IoError`): the io::Error cannot travel typed past burn, so its
        // message goes in with the file and tensor it concerns.
        read.map_err(|e| burn_pack::Error::ValidationError(format!("{what}: {e}")))
    })
}

/// Reads a tensor of another dtype as it is stored.
fn read_native(
    source: &Source,
    stored: DType,
    offset: u64,
    dims: &[usize],
    dtype: BurnDType,
) -> std::io::Result<TensorData> {
    let len = dims.iter().product::<usize>() * stored.size() as usize;
    let mut bytes = vec![0u8; len];
    source.read_at(&mut bytes, offset)?;
    if cfg!(target_endian = "big") {
        let width = stored.size() as usize;
        bytes.chunks_exact_mut(width).for_each(<[u8]>::reverse);
    }
    Ok(TensorData::from_bytes_vec(bytes, dims.to_vec(), dtype))
}

/// Reads a float tensor into a new f32 buffer, chunk by chunk on rayon's threads.
fn read_as_f32(
    source: &Source,
    stored: DType,
    offset: u64,
    dims: &[usize],
) -> std::io::Result<Vec<f32>> {
    let numel = dims.iter().product::<usize>();
    let width = stored.size();
    // `vec!` of zeros is calloc: the pages are first touched by the conversion below.
    let mut values = vec![0f32; numel];
    values
        .par_chunks_mut(CHUNK_ELEMENTS)
        .enumerate()
        .try_for_each(|(i, out)| {
            let at = offset + (i * CHUNK_ELEMENTS) as u64 * width;
            convert_chunk(source, stored, at, out)
        })?;
    Ok(values)
}

thread_local! {
    /// Each thread's staging buffer for one chunk of stored bytes (u64s, so any element
    /// type can be viewed in it aligned).
    static STAGING: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// Reads `out.len()` elements of `stored` at `at` and writes them to `out` as f32.
fn convert_chunk(source: &Source, stored: DType, at: u64, out: &mut [f32]) -> std::io::Result<()> {
    if stored == DType::F32 {
        source.read_at(bytemuck::cast_slice_mut(out), at)?;
        if cfg!(target_endian = "big") {
            out.iter_mut()
                .for_each(|v| *v = f32::from_bits(u32::from_le(v.to_bits())));
        }
        return Ok(());
    }
    STAGING.with_borrow_mut(|staging| {
        let bytes = out.len() * stored.size() as usize;
        staging.resize(bytes.div_ceil(8), 0);
        let raw = &mut bytemuck::cast_slice_mut::<u64, u8>(staging)[..bytes];
        source.read_at(raw, at)?;
        match stored {
            DType::F16 => {
                let halves: &mut [f16] = bytemuck::cast_slice_mut(raw);
                from_le_bits(halves, f16::to_bits, f16::from_bits);
                halves.convert_to_f32_slice(out);
            }
            DType::BF16 => {
                let halves: &mut [bf16] = bytemuck::cast_slice_mut(raw);
                from_le_bits(halves, bf16::to_bits, bf16::from_bits);
                halves.convert_to_f32_slice(out);
            }
            DType::F64 => {
                for (o, b) in out.iter_mut().zip(raw.chunks_exact(8)) {
                    let b: [u8; 8] = b.try_into().unwrap_or_default();
                    *o = f64::from_le_bytes(b) as f32;
                }
            }
            DType::F8E4M3 => {
                for (o, &b) in out.iter_mut().zip(raw.iter()) {
                    *o = f8_e4m3_to_f32(b);
                }
            }
            DType::F8E5M2 => {
                for (o, &b) in out.iter_mut().zip(raw.iter()) {
                    // e5m2 is the top byte of an f16.
                    *o = f16::from_bits(u16::from(b) << 8).to_f32();
                }
            }
            other => {
                return Err(std::io::Error::other(format!(
                    "{other:?} is not a float type"
                )));
            }
        }
        Ok(())
    })
}

/// Turns little-endian stored 16-bit values into native ones (nothing on little-endian hosts).
fn from_le_bits<T: Copy>(values: &mut [T], to_bits: fn(T) -> u16, from_bits: fn(u16) -> T) {
    if cfg!(target_endian = "big") {
        values
            .iter_mut()
            .for_each(|v| *v = from_bits(u16::from_le(to_bits(*v))));
    }
}

/// Decodes an OCP 8-bit float e4m3fn (bias 7, no infinities, `S.1111.111` is NaN).
fn f8_e4m3_to_f32(byte: u8) -> f32 {
    let sign = if byte & 0x80 != 0 { -1.0 } else { 1.0 };
    let exponent = i32::from((byte >> 3) & 0x0f);
    let mantissa = f32::from(byte & 0x07);
    let magnitude = match (exponent, byte & 0x7f) {
        (_, 0x7f) => f32::NAN,
        (0, _) => mantissa / 8.0 * 2f32.powi(-6),
        _ => (1.0 + mantissa / 8.0) * 2f32.powi(exponent - 7),
    };
    sign * magnitude
}

impl ModuleStore for F32WeightStore {
    type Error = CoreError;

    /// This store only reads: saving into it is an error.
    fn collect_from<M: ModuleSnapshot>(&mut self, _module: &M) -> Result<()> {
        Err(CoreError::InvalidRequest {
            name: "store",
            reason: format!("{} is opened read-only", self.path.display()),
        })
    }

    /// Applies every tensor under its stored name, with no adapter; the network loaders
    /// (`UNet2DConditionModel::load` and the like) are the usual way in.
    fn apply_to<M: ModuleSnapshot>(&mut self, module: &mut M) -> Result<ApplyResult> {
        let tensors = self.tensors.values().cloned().collect();
        Ok(module.apply(tensors, None, None, false))
    }

    fn get_tensor(&mut self, name: &str) -> Result<Option<&burn_pack::Tensor>> {
        Ok(self.tensors.get(name))
    }

    fn get_all_tensors(&mut self) -> Result<&BTreeMap<String, burn_pack::Tensor>> {
        Ok(&self.tensors)
    }

    fn keys(&mut self) -> Result<Vec<String>> {
        Ok(self.tensors.keys().cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::tensor::{Dtype, TensorView};

    /// A safetensors image of `(name, dtype, shape, little-endian bytes)`.
    fn image(tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
        let views: Vec<(String, TensorView<'_>)> = tensors
            .iter()
            .map(|(name, dtype, shape, bytes)| {
                let view = TensorView::new(*dtype, shape.clone(), bytes).expect("valid view");
                (name.to_string(), view)
            })
            .collect();
        safetensors::serialize(views, None).expect("serialize")
    }

    fn f32_values(store: &mut F32WeightStore, name: &str) -> Vec<f32> {
        let tensor = store
            .get_tensor(name)
            .expect("store")
            .expect("tensor")
            .clone();
        assert_eq!(tensor.dtype, BurnDType::F32, "{name}");
        bridge::into_data(tensor)
            .expect("data")
            .try_to_vec::<f32>()
            .expect("f32")
    }

    #[test]
    fn every_float_dtype_loads_as_f32() {
        // Longer than one chunk, so the parallel split and its offsets are exercised.
        let n = CHUNK_ELEMENTS * 2 + 3;
        let wanted: Vec<f32> = (0..n).map(|i| (i % 251) as f32 * 0.25 - 31.0).collect();
        let le = |bytes: Vec<[u8; 8]>, width: usize| -> Vec<u8> {
            bytes.iter().flat_map(|b| b[..width].to_vec()).collect()
        };
        let f16s = le(
            wanted
                .iter()
                .map(|v| pad(f16::from_f32(*v).to_le_bytes()))
                .collect(),
            2,
        );
        let bf16s = le(
            wanted
                .iter()
                .map(|v| pad(bf16::from_f32(*v).to_le_bytes()))
                .collect(),
            2,
        );
        let f32s = le(wanted.iter().map(|v| pad(v.to_le_bytes())).collect(), 4);
        let f64s = le(
            wanted.iter().map(|v| f64::from(*v).to_le_bytes()).collect(),
            8,
        );
        let bytes = image(&[
            ("half", Dtype::F16, vec![n], f16s),
            ("brain", Dtype::BF16, vec![1, n], bf16s),
            ("single", Dtype::F32, vec![n, 1], f32s),
            ("double", Dtype::F64, vec![n], f64s),
            (
                "ids",
                Dtype::I64,
                vec![2],
                [7i64, -1].iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
        ]);
        let mut store = F32WeightStore::from_image("test.ckpt", bytes).expect("store");
        for name in ["half", "brain", "single", "double"] {
            assert_eq!(f32_values(&mut store, name), wanted, "{name}");
        }
        let ids = store
            .get_tensor("ids")
            .expect("store")
            .expect("ids")
            .clone();
        assert_eq!(ids.dtype, BurnDType::I64);
        let ids = bridge::into_data(ids).expect("data");
        assert_eq!(ids.try_to_vec::<i64>().expect("i64"), vec![7, -1]);
    }

    fn pad<const N: usize>(bytes: [u8; N]) -> [u8; 8] {
        let mut out = [0u8; 8];
        out[..N].copy_from_slice(&bytes);
        out
    }

    #[test]
    fn a_file_reads_like_its_image() {
        let values: Vec<f32> = (0..1000).map(|i| i as f32 / 7.0).collect();
        let halves: Vec<u8> = values
            .iter()
            .flat_map(|v| f16::from_f32(*v).to_le_bytes())
            .collect();
        let bytes = image(&[("w", Dtype::F16, vec![10, 100], halves)]);
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        std::io::Write::write_all(&mut file, &bytes).expect("write");
        let mut from_file = F32WeightStore::open(file.path()).expect("open");
        let mut from_image = F32WeightStore::from_image("w.ckpt", bytes).expect("image");
        assert_eq!(
            f32_values(&mut from_file, "w"),
            f32_values(&mut from_image, "w")
        );
        assert_eq!(from_file.keys().expect("keys"), vec!["w".to_string()]);
    }

    #[test]
    fn a_file_cut_short_after_opening_is_an_error_naming_the_tensor() {
        let bytes = image(&[("w", Dtype::F32, vec![64], vec![0u8; 256])]);
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        std::io::Write::write_all(&mut file, &bytes).expect("write");
        let mut store = F32WeightStore::open(file.path()).expect("open");
        file.as_file()
            .set_len(bytes.len() as u64 - 100)
            .expect("truncate");
        let tensor = store.get_tensor("w").expect("store").expect("w").clone();
        let error = bridge::into_data(tensor)
            .expect_err("truncated")
            .to_string();
        assert!(error.contains("tensor `w`"), "{error}");
    }

    #[test]
    fn eight_bit_floats_decode_to_their_values() {
        // e4m3fn: 1.0, -2.0, the largest normal 448, the smallest subnormal 2^-9, NaN.
        assert_eq!(f8_e4m3_to_f32(0x38), 1.0);
        assert_eq!(f8_e4m3_to_f32(0xc0), -2.0);
        assert_eq!(f8_e4m3_to_f32(0x7e), 448.0);
        assert_eq!(f8_e4m3_to_f32(0x01), 2f32.powi(-9));
        assert!(f8_e4m3_to_f32(0x7f).is_nan());
        // e5m2 through a stored tensor: 1.0 (0x3c), -0.5 (0xb8), 57344 (0x7b).
        let bytes = image(&[("w", Dtype::F8_E5M2, vec![3], vec![0x3c, 0xb8, 0x7b])]);
        let mut store = F32WeightStore::from_image("w.safetensors", bytes).expect("store");
        assert_eq!(f32_values(&mut store, "w"), vec![1.0, -0.5, 57344.0]);
    }

    #[test]
    fn the_store_is_read_only() {
        let bytes = image(&[("w", Dtype::F32, vec![1], vec![0u8; 4])]);
        let mut store = F32WeightStore::from_image("w.safetensors", bytes).expect("store");
        let module = burn::nn::LinearConfig::new(1, 1).init(&burn::tensor::Device::default());
        let error = store
            .collect_from(&module)
            .expect_err("read-only")
            .to_string();
        assert!(error.contains("read-only"), "{error}");
    }
}
