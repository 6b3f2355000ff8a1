//! The pre-1.6 torch format (`torch.save(..., _use_new_zipfile_serialization=False)`): five
//! pickles (magic number, protocol version, system info, the object, the sorted storage keys)
//! followed by each storage as an 8-byte element count and its raw bytes. Reference:
//! `torch/serialization.py`, `_legacy_save` and `_legacy_load`.

use std::{collections::HashMap, path::PathBuf};

use super::{
    Format, Record, TorchFile,
    error::{Result, TorchFileError},
    pickle::{Unpickled, unpickle_from},
    source::Source,
    value::{DType, PickleValue},
};

/// `torch.serialization.MAGIC_NUMBER`, as pickle's LONG1 stores it.
const MAGIC: u128 = 0x1950_a86a_20f9_469c_fc6c;
/// `torch.serialization.PROTOCOL_VERSION`.
const PROTOCOL_VERSION: i64 = 1001;

/// Reads a legacy file.
pub(super) fn open(path: PathBuf, source: Source, len: u64) -> Result<TorchFile> {
    let (pickles, consumed) = source.with_reader(&path, |reader| {
        let mut consumed = 0u64;
        let mut out: Vec<Unpickled> = Vec::with_capacity(5);
        for _ in 0..5 {
            let u = unpickle_from(reader, len - consumed, &path)?;
            consumed += u.consumed;
            out.push(u);
            // Files that are a single plain pickle stop after the first: check it now.
            if out.len() == 1 && !is_magic(&out[0].value) {
                return Err(TorchFileError::NotTorchFile {
                    path: path.clone(),
                    reason: "a pickle without torch's magic number (not a torch.save file)".into(),
                });
            }
        }
        Ok((out, consumed))
    })?;
    let [_magic, version, sys_info, object, keys] =
        <[Unpickled; 5]>::try_from(pickles).map_err(|_| TorchFileError::NotTorchFile {
            path: path.clone(),
            reason: "legacy stream without five pickles".into(),
        })?;
    if version.value.as_int() != Some(PROTOCOL_VERSION) {
        return Err(TorchFileError::Unsupported {
            path,
            what: format!("legacy protocol version {:?}", version.value),
        });
    }
    let little = !matches!(
        sys_info.value.get("little_endian"),
        Some(PickleValue::Bool(false))
    );
    let dtypes: HashMap<&str, DType> = object
        .storages
        .iter()
        .map(|s| (s.key.as_str(), s.dtype))
        .collect();
    let PickleValue::List(keys) = &keys.value else {
        return Err(TorchFileError::NotTorchFile {
            path,
            reason: "legacy stream without its storage key list".into(),
        });
    };

    // Storages follow in key-list order; each one's size tells where the next starts.
    let mut records = HashMap::new();
    let mut at = consumed;
    for key in keys {
        let key = key.as_str().ok_or_else(|| TorchFileError::NotTorchFile {
            path: path.clone(),
            reason: "storage key is not a string".into(),
        })?;
        let dtype = *dtypes.get(key).ok_or_else(|| TorchFileError::Unsupported {
            path: path.clone(),
            what: format!(
                "legacy storage `{key}` that no tensor names (its element size is unknown)"
            ),
        })?;
        if at.checked_add(8).is_none_or(|e| e > len) {
            return Err(TorchFileError::Truncated {
                path,
                what: format!("size of legacy storage `{key}`"),
            });
        }
        let head: [u8; 8] =
            source
                .read_range(at, 8, &path)?
                .try_into()
                .map_err(|_| TorchFileError::Truncated {
                    path: path.clone(),
                    what: format!("size of legacy storage `{key}`"),
                })?;
        let numel = if little {
            u64::from_le_bytes(head)
        } else {
            u64::from_be_bytes(head)
        };
        let bytes = numel.checked_mul(dtype.size() as u64);
        let end = bytes.and_then(|b| (at + 8).checked_add(b));
        let (Some(bytes), Some(end)) = (bytes, end) else {
            return Err(TorchFileError::Truncated {
                path,
                what: format!("legacy storage `{key}`"),
            });
        };
        if end > len {
            return Err(TorchFileError::Truncated {
                path,
                what: format!("legacy storage `{key}` ({bytes} bytes)"),
            });
        }
        records.insert(
            key.to_string(),
            Record {
                offset: at + 8,
                len: bytes,
            },
        );
        at = end;
    }

    let file = TorchFile {
        path,
        source,
        format: Format::Legacy,
        root: object.value,
        records,
        big_endian: !little,
    };
    file.check_storages(&object.storages)?;
    Ok(file)
}

fn is_magic(v: &PickleValue) -> bool {
    match v {
        PickleValue::BigInt(b) if b.len() <= 16 => {
            let mut x = [0u8; 16];
            x[..b.len()].copy_from_slice(b);
            u128::from_le_bytes(x) == MAGIC
        }
        _ => false,
    }
}
