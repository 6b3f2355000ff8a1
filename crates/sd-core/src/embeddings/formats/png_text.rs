//! The embedding JSON A1111 stores in images (`modules/textual_inversion/image_embedding.py`):
//! `json.dumps(torch.load(pt), cls=EmbeddingEncoder)` with every tensor as
//! `{"TORCHTENSOR": nested lists}`, base64-encoded in the `sd-ti-embedding` tEXt chunk, or
//! zlib-compressed in the pixels ([`super::png_pixels`]).

use std::path::Path;

use base64::Engine as _;
use serde_json::Value;

use crate::embeddings::{
    detect::{MAX_EMBEDDING_VALUES, RawData, RawTensor, RawValue},
    embedding::Embedding,
    error::{EmbeddingError, Result},
    formats::a1111_pt::A1111_STAR_TOKEN,
};
use sd_infotext::py_float_repr;

/// The PNG text chunk keyword A1111 stores the embedding under.
pub const TEXT_CHUNK_KEY: &str = "sd-ti-embedding";

/// Nested JSON lists → shape and row-major values.
fn tensor_from_json(path: &Path, key: &str, v: &Value) -> Result<RawTensor> {
    fn walk(v: &Value, depth: usize, shape: &mut Vec<usize>, out: &mut Vec<f32>) -> bool {
        match v {
            Value::Array(items) => {
                if shape.len() == depth {
                    shape.push(items.len());
                } else if shape.get(depth) != Some(&items.len()) {
                    return false; // ragged
                }
                if out.len() + items.len() > MAX_EMBEDDING_VALUES {
                    return false;
                }
                items.iter().all(|i| walk(i, depth + 1, shape, out))
            }
            Value::Number(n) => {
                if shape.len() != depth {
                    return false; // a number where a list was
                }
                out.push(n.as_f64().unwrap_or(f64::NAN) as f32);
                true
            }
            _ => false,
        }
    }
    let mut shape = Vec::new();
    let mut data = Vec::new();
    if !walk(v, 0, &mut shape, &mut data) || shape.iter().product::<usize>() != data.len() {
        return Err(EmbeddingError::image(
            path,
            format!("`{key}`: TORCHTENSOR is not a rectangular list of numbers"),
        ));
    }
    Ok(RawTensor {
        shape,
        data,
        requires_grad: false,
    })
}

fn value_from_json(path: &Path, key: &str, v: &Value) -> Result<RawValue> {
    Ok(match v {
        Value::Object(map) => match map.get("TORCHTENSOR") {
            Some(t) => RawValue::Tensor(tensor_from_json(path, key, t)?),
            None if key == "string_to_param" => RawValue::Tensors(
                map.iter()
                    .filter_map(|(k, v)| match v {
                        Value::Object(inner) => inner.get("TORCHTENSOR").map(|t| (k, t)),
                        _ => None,
                    })
                    .map(|(k, t)| Ok((k.clone(), tensor_from_json(path, k, t)?)))
                    .collect::<Result<_>>()?,
            ),
            None => RawValue::Other("dict"),
        },
        Value::Number(n) => n.as_i64().map_or(RawValue::Other("float"), RawValue::Int),
        Value::String(s) => RawValue::Str(s.clone()),
        Value::Null => RawValue::None,
        Value::Bool(_) => RawValue::Other("bool"),
        Value::Array(_) => RawValue::Other("list"),
    })
}

/// Parses the embedding JSON; returns the decoded dict and its `name` entry.
pub(crate) fn from_json(path: &Path, json: &[u8]) -> Result<(RawData, Option<String>)> {
    let root: Value = serde_json::from_slice(json)
        .map_err(|e| EmbeddingError::image_caused(path, "embedding data is not valid JSON", e))?;
    let Value::Object(map) = root else {
        return Err(EmbeddingError::image(
            path,
            "embedding data is not a JSON object",
        ));
    };
    let name = map.get("name").and_then(Value::as_str).map(str::to_string);
    let entries = map
        .iter()
        .map(|(k, v)| Ok((k.clone(), value_from_json(path, k, v)?)))
        .collect::<Result<_>>()?;
    Ok((RawData { entries }, name))
}

/// Decodes the base64 text of an `sd-ti-embedding` chunk.
pub(crate) fn from_base64(path: &Path, text: &str) -> Result<(RawData, Option<String>)> {
    let json = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| {
            EmbeddingError::image_caused(path, format!("`{TEXT_CHUNK_KEY}` is not base64"), e)
        })?;
    from_json(path, &json)
}

/// A string as Python's `json.dumps` writes it (`ensure_ascii=True`).
fn py_json_str(s: &str, out: &mut String) {
    out.push_str(&sd_infotext::json_dumps(s, true));
}

/// A float as Python's `json.dumps` writes it (`float.__repr__`, `NaN`, `Infinity`).
fn py_json_float(x: f32, out: &mut String) {
    let x = f64::from(x);
    if x.is_nan() {
        out.push_str("NaN");
    } else if x.is_infinite() {
        out.push_str(if x > 0.0 { "Infinity" } else { "-Infinity" });
    } else {
        out.push_str(&py_repr(x));
    }
}

/// Python's `repr(float)`. Where the shortest round-trip form needs all 17 digits, two
/// 17-digit strings can lie equally close to the value (f32 values are short dyadic
/// fractions, so this is common); Python then rounds half to even, while Rust's shortest
/// formatter rounds half up, so those digits come from Rust's exact `{:.16e}` (half to even).
fn py_repr(x: f64) -> String {
    let shortest = format!("{x:e}");
    let digits = shortest
        .split('e')
        .next()
        .unwrap_or("")
        .chars()
        .filter(char::is_ascii_digit)
        .count();
    if digits < 17 {
        return py_float_repr(x);
    }
    let exact = format!("{x:.16e}");
    let (mantissa, exp) = exact.split_once('e').unwrap_or((exact.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_end_matches('0');
    let sign = if negative { "-" } else { "" };
    if (-4..16).contains(&exp) {
        // Positional, as repr() writes exponents -4..=15.
        let point = exp + 1; // digits before the decimal point
        if point <= 0 {
            format!(
                "{sign}0.{}{digits}",
                "0".repeat(point.unsigned_abs() as usize)
            )
        } else {
            let point = point as usize;
            if digits.len() > point {
                format!("{sign}{}.{}", &digits[..point], &digits[point..])
            } else {
                format!("{sign}{digits}{}.0", "0".repeat(point - digits.len()))
            }
        }
    } else {
        let (head, tail) = digits.split_at(1);
        let dot = if tail.is_empty() {
            String::new()
        } else {
            format!(".{tail}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{head}{dot}e{esign}{:02}", exp.unsigned_abs())
    }
}

fn py_json_opt_str(s: &Option<String>, out: &mut String) {
    match s {
        Some(s) => py_json_str(s, out),
        None => out.push_str("null"),
    }
}

/// The JSON A1111 embeds: `json.dumps(torch.load(pt), cls=EmbeddingEncoder)` of the `.pt`
/// dict [`super::a1111_pt::write_a1111`] writes, byte for byte (same key order, separators,
/// float spelling and string escapes).
///
/// # Errors
/// [`EmbeddingError::Write`] for SDXL embeddings (A1111 embeds only `string_to_param`).
pub fn to_json(path: &Path, e: &Embedding) -> Result<String> {
    e.validate()?;
    if e.clip_g.is_some() {
        return Err(EmbeddingError::Write {
            path: path.to_path_buf(),
            reason: "A1111's image embeddings hold `string_to_param`; an SDXL embedding has none"
                .into(),
            source: None,
        });
    }
    let v = &e.vectors;
    let mut out = String::with_capacity(v.data.len() * 22 + 256);
    out.push_str(&format!(
        "{{\"string_to_token\": {{\"*\": {A1111_STAR_TOKEN}}}, \"string_to_param\": {{\"*\": {{\"TORCHTENSOR\": ["
    ));
    for i in 0..v.n {
        if i > 0 {
            out.push_str(", ");
        }
        out.push('[');
        for (j, &x) in v.row(i).iter().enumerate() {
            if j > 0 {
                out.push_str(", ");
            }
            py_json_float(x, &mut out);
        }
        out.push(']');
    }
    out.push_str("]}}, \"name\": ");
    py_json_str(&e.name, &mut out);
    out.push_str(", \"step\": ");
    match e.step {
        Some(s) => out.push_str(&s.to_string()),
        None => out.push_str("null"),
    }
    out.push_str(", \"sd_checkpoint\": ");
    py_json_opt_str(&e.sd_checkpoint, &mut out);
    out.push_str(", \"sd_checkpoint_name\": ");
    py_json_opt_str(&e.sd_checkpoint_name, &mut out);
    out.push('}');
    Ok(out)
}

/// A1111's `embedding_to_b64`: the base64 of [`to_json`].
///
/// # Errors
/// As [`to_json`].
pub fn to_base64(path: &Path, e: &Embedding) -> Result<String> {
    Ok(base64::engine::general_purpose::STANDARD.encode(to_json(path, e)?))
}

#[cfg(test)]
mod tests {
    use super::py_repr;

    #[test]
    fn repr_matches_python_on_ties_and_layouts() {
        // Python: repr(0.0234546661376953125) == '0.023454666137695312' (half to even).
        // The value is exactly f32 0.023454666 (an exact dyadic fraction): 0x3cc0_2400.
        assert_eq!(
            py_repr(f64::from(f32::from_bits(0x3cc0_2400))),
            "0.023454666137695312"
        );
        assert_eq!(py_repr(0.1), "0.1");
        assert_eq!(py_repr(f64::from(0.1f32)), "0.10000000149011612");
        assert_eq!(py_repr(f64::from(-1.0e-5f32)), "-9.999999747378752e-06");
        assert_eq!(py_repr(123.0), "123.0");
    }
}
