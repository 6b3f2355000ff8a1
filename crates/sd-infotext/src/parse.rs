//! Reading an infotext the way A1111's `parse_generation_parameters`
//! (`modules/infotext_utils.py`) does: its `re_param` regex, its prompt / negative prompt line
//! rules, the defaults it adds and its `restore_old_hires_fix_params` and `backcompat` steps.

use serde::{Deserialize, Serialize};

use super::quote::unquote;
use super::unicode::{decimal_value, is_space, is_word, py_int_digits, py_strip};
use super::version::PyVersion;

/// A value in the map that [`parse_generation_parameters`] returns: A1111's dict holds
/// strings for what it read from the text and a few ints and booleans among its defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum InfotextValue {
    /// A string, as read from the text (unquoted) or a string default.
    Text(String),
    /// An integer default (`"Hires resize-1": 0`, `"Masked area padding": 32`) or a size that
    /// the old hires-fix restoration computed.
    Int(i64),
    /// A boolean the backwards-compatibility step sets (`"Downcast alphas_cumprod": true`).
    Bool(bool),
}

impl InfotextValue {
    /// The value as text, as Python's `str()` would print it.
    pub fn to_text(&self) -> String {
        match self {
            Self::Text(s) => s.clone(),
            Self::Int(i) => i.to_string(),
            Self::Bool(true) => "True".into(),
            Self::Bool(false) => "False".into(),
        }
    }
}

impl From<&str> for InfotextValue {
    fn from(s: &str) -> Self {
        Self::Text(s.to_owned())
    }
}

impl From<String> for InfotextValue {
    fn from(s: String) -> Self {
        Self::Text(s)
    }
}

/// `re_param.findall(line)`:
/// `\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)`, each key with its raw value (still
/// quoted), in order.
///
/// The pattern has a single way to match at each start (the key run is maximal because the
/// next character must be `:`, which the run cannot hold; a quoted value either closes at its
/// one unescaped quote followed by `,` or the end, or falls back to `[^,]*`), so a direct scan
/// gives exactly what Python's backtracking engine does.
pub(super) fn find_params(line: &str) -> Vec<(String, String)> {
    let cs: Vec<char> = line.chars().collect();
    let n = cs.len();
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < n {
        match match_at(&cs, pos) {
            Ok((key, value, end)) => {
                out.push((key, value));
                pos = end;
            }
            // Every start before `resume` fails the same way (see `match_at`): skipping them
            // keeps a long line without colons linear instead of quadratic.
            Err(resume) => pos = resume.max(pos + 1),
        }
    }
    out
}

/// One match of `re_param` starting exactly at `pos`: `(key, raw value, end)`, or the first
/// position a new attempt could succeed from.
fn match_at(cs: &[char], pos: usize) -> Result<(String, String, usize), usize> {
    let n = cs.len();
    let mut i = pos;
    while i < n && is_space(cs[i]) {
        i += 1;
    }
    if i >= n || !is_word(cs[i]) {
        return Err(i + 1);
    }
    let key_start = i;
    let mut j = i + 1;
    while j < n && (is_word(cs[j]) || matches!(cs[j], ' ' | '-' | '/')) {
        j += 1;
    }
    // `[\w \-/]+` needs one character after the first `\w`, then `:`. A later start inside
    // this run ends at the same `j`, so it fails too.
    if j == key_start + 1 || j >= n || cs[j] != ':' {
        return Err(j);
    }
    let key: String = cs[key_start..j].iter().collect();
    let mut v = j + 1;
    while v < n && is_space(cs[v]) {
        v += 1;
    }
    if let Some(close) = quoted_end(cs, v)
        && (close + 1 == n || cs[close + 1] == ',')
    {
        let value = cs[v..=close].iter().collect();
        return Ok((key, value, (close + 2).min(n)));
    }
    let mut e = v;
    while e < n && cs[e] != ',' {
        e += 1;
    }
    let value = cs[v..e].iter().collect();
    Ok((key, value, if e < n { e + 1 } else { e }))
}

/// `"(?:\\.|[^\\"])+"` at `start`: the index of the closing quote.
fn quoted_end(cs: &[char], start: usize) -> Option<usize> {
    if cs.get(start) != Some(&'"') {
        return None;
    }
    let mut k = start + 1;
    loop {
        match *cs.get(k)? {
            // `.` matches anything but a newline.
            '\\' => match cs.get(k + 1) {
                Some(&c) if c != '\n' => k += 2,
                _ => return None,
            },
            '"' => return (k > start + 1).then_some(k),
            _ => k += 1,
        }
    }
}

/// The three parts of an infotext, split as A1111 splits them.
pub(super) struct Sections {
    /// The prompt lines, each stripped, joined with `\n`.
    pub prompt: String,
    /// The lines from `Negative prompt:` on, each stripped.
    pub negative_prompt: String,
    /// The last line's `(key, raw value)` pairs, or none where it holds fewer than three.
    pub params: Vec<(String, String)>,
}

/// The first half of `parse_generation_parameters`: strip, split on `\n`, take the last line
/// as parameters when `re_param` finds three or more in it, and collect the prompt and the
/// negative prompt (everything from the first line starting `Negative prompt:`).
pub(super) fn sections(text: &str) -> Sections {
    let mut lines: Vec<&str> = py_strip(text).split('\n').collect();
    let last = lines.pop().unwrap_or("");
    let mut params = find_params(last);
    if params.len() < 3 {
        lines.push(last);
        params.clear();
    }
    let (mut prompt, mut negative_prompt) = (String::new(), String::new());
    let mut done_with_prompt = false;
    for line in lines {
        let mut line = py_strip(line);
        if let Some(rest) = line.strip_prefix("Negative prompt:") {
            done_with_prompt = true;
            line = py_strip(rest);
        }
        let target = if done_with_prompt {
            &mut negative_prompt
        } else {
            &mut prompt
        };
        if !target.is_empty() {
            target.push('\n');
        }
        target.push_str(line);
    }
    Sections {
        prompt,
        negative_prompt,
        params,
    }
}

/// The last line's pairs as `parse_generation_parameters` stores them, before it splits sizes:
/// quoted values unquoted, an empty value dropped (Python's `v[0]` raises there and the pair is
/// skipped), a repeated key keeping its first place and its last value, as a dict does.
pub(super) fn unquoted_pairs(raw: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::with_capacity(raw.len());
    for (key, value) in raw {
        if value.is_empty() {
            continue;
        }
        let value = unquote(&value).into_owned();
        set(&mut out, key, value);
    }
    out
}

fn set<V>(map: &mut Vec<(String, V)>, key: String, value: V) {
    match map.iter_mut().find(|(k, _)| *k == key) {
        Some(slot) => slot.1 = value,
        None => map.push((key, value)),
    }
}

fn get<'a>(map: &'a [(String, InfotextValue)], key: &str) -> Option<&'a InfotextValue> {
    map.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// `re_imagesize` (`^(\d+)x(\d+)$`, where `$` also matches before a final `\n`).
fn image_size(v: &str) -> Option<(&str, &str)> {
    let body = v.strip_suffix('\n').unwrap_or(v);
    let (w, h) = body.split_once('x')?;
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| decimal_value(c).is_some());
    (digits(w) && digits(h)).then_some((w, h))
}

/// A1111's `parse_generation_parameters`, key for key: the map it returns, in its order,
/// with every default it adds (`"Clip skip": "1"`, `"RNG": "GPU"`, `"Schedule type":
/// "Automatic"`, the hires and inpainting defaults, ...), sizes split into `"Size-1"` /
/// `"Size-2"`, old hires-fix sizes restored and the `Version`-based compatibility flags set.
///
/// Options are A1111's defaults, except that no styles are extracted from the prompt (this
/// crate has no styles database; with none, A1111's default gives the same result).
///
/// Never fails: like A1111, text it cannot read becomes the prompt. Where A1111 itself would
/// raise (an explicit `Size-1: abc` key beside `First pass size`, a `0x0` first pass with a
/// zero size) the step is skipped instead.
pub fn parse_generation_parameters(text: &str) -> Vec<(String, InfotextValue)> {
    let sections = sections(text);
    let mut res: Vec<(String, InfotextValue)> = Vec::new();
    res.push(("Prompt".into(), sections.prompt.into()));
    res.push(("Negative prompt".into(), sections.negative_prompt.into()));
    for (key, raw) in sections.params {
        if raw.is_empty() {
            continue; // Python: `v[0]` raises IndexError, the pair is skipped.
        }
        let v = unquote(&raw).into_owned();
        match image_size(&v) {
            Some((w, h)) => {
                set(&mut res, format!("{key}-1"), w.into());
                set(&mut res, format!("{key}-2"), h.into());
            }
            None => set(&mut res, key, InfotextValue::Text(v)),
        }
    }

    let default = |res: &mut Vec<(String, InfotextValue)>, key: &str, value: InfotextValue| {
        if get(res, key).is_none() {
            res.push((key.into(), value));
        }
    };
    default(&mut res, "Clip skip", "1".into());
    if let Some(hypernet) = get(&res, "Hypernet").map(InfotextValue::to_text) {
        let strength =
            get(&res, "Hypernet strength").map_or_else(|| "1.0".into(), InfotextValue::to_text);
        if let Some((_, InfotextValue::Text(prompt))) = res.iter_mut().find(|(k, _)| k == "Prompt")
        {
            prompt.push_str(&format!("<hypernet:{hypernet}:{strength}>"));
        }
    }
    if get(&res, "Hires resize-1").is_none() {
        res.push(("Hires resize-1".into(), InfotextValue::Int(0)));
        res.push(("Hires resize-2".into(), InfotextValue::Int(0)));
    }
    default(&mut res, "Hires sampler", "Use same sampler".into());
    default(&mut res, "Hires checkpoint", "Use same checkpoint".into());
    default(&mut res, "Hires prompt", "".into());
    default(&mut res, "Hires negative prompt", "".into());
    default(&mut res, "Mask mode", "Inpaint masked".into());
    default(&mut res, "Masked content", "original".into());
    default(&mut res, "Inpaint area", "Whole picture".into());
    default(&mut res, "Masked area padding", InfotextValue::Int(32));
    restore_old_hires_fix_params(&mut res);
    default(&mut res, "RNG", "GPU".into());
    default(&mut res, "Schedule type", "Automatic".into());
    default(&mut res, "Schedule max sigma", InfotextValue::Int(0));
    default(&mut res, "Schedule min sigma", InfotextValue::Int(0));
    default(&mut res, "Schedule rho", InfotextValue::Int(0));
    default(&mut res, "VAE Encoder", "Full".into());
    default(&mut res, "VAE Decoder", "Full".into());
    default(&mut res, "FP8 weight", "Disable".into());
    if get(&res, "Cache FP16 weight for LoRA").is_none()
        && get(&res, "FP8 weight") != Some(&"Disable".into())
    {
        res.push((
            "Cache FP16 weight for LoRA".into(),
            InfotextValue::Bool(false),
        ));
    }
    backcompat(&mut res);
    res
}

/// Python `int(value)` for the values `restore_old_hires_fix_params` converts.
fn py_int(v: &InfotextValue) -> Option<i64> {
    match v {
        InfotextValue::Int(i) => Some(*i),
        InfotextValue::Bool(b) => Some(i64::from(*b)),
        InfotextValue::Text(s) => py_int_digits(s),
    }
}

/// `restore_old_hires_fix_params` with `use_old_hires_fix_width_height` off (the default):
/// an old `First pass size` becomes the size, and the size becomes the hires resize.
fn restore_old_hires_fix_params(res: &mut Vec<(String, InfotextValue)>) {
    let (Some(fw), Some(fh)) = (get(res, "First pass size-1"), get(res, "First pass size-2"))
    else {
        return;
    };
    let (Some(mut fw), Some(mut fh)) = (py_int(fw), py_int(fh)) else {
        return;
    };
    let size = |key: &str| get(res, key).map_or(Some(512), py_int);
    let (Some(width), Some(height)) = (size("Size-1"), size("Size-2")) else {
        return;
    };
    if fw == 0 || fh == 0 {
        let Some(dims) = old_hires_fix_first_pass_dimensions(width, height) else {
            return;
        };
        (fw, fh) = dims;
    }
    set(res, "Size-1".into(), InfotextValue::Int(fw));
    set(res, "Size-2".into(), InfotextValue::Int(fh));
    set(res, "Hires resize-1".into(), InfotextValue::Int(width));
    set(res, "Hires resize-2".into(), InfotextValue::Int(height));
}

/// `processing.old_hires_fix_first_pass_dimensions`: the size with about 512×512 pixels and
/// the same aspect, rounded up to multiples of 64. `None` where Python divides by zero.
fn old_hires_fix_first_pass_dimensions(width: i64, height: i64) -> Option<(i64, i64)> {
    let actual = width.checked_mul(height).filter(|&a| a != 0)?;
    // Python's int / int and float * int are correctly rounded, as these f64 operations are.
    let scale = ((512.0 * 512.0) / actual as f64).sqrt();
    let round = |v: i64| (scale * v as f64 / 64.0).ceil() as i64 * 64;
    Some((round(width), round(height)))
}

/// `infotext_versions.backcompat` with `auto_backcompat` on (the default).
fn backcompat(res: &mut Vec<(String, InfotextValue)>) {
    let Some(InfotextValue::Text(text)) = get(res, "Version") else {
        return;
    };
    let Some(ver) = PyVersion::from_infotext(text) else {
        return;
    };
    let v160 = PyVersion::parse("1.6.0");
    let v170_tsnr = PyVersion::parse("v1.7.0-225");
    let v180 = PyVersion::parse("1.8.0");
    let text_of = |res: &[(String, InfotextValue)], key: &str| match get(res, key) {
        Some(InfotextValue::Text(s)) => Some(s.clone()),
        _ => None,
    };
    let before = |v: &Option<PyVersion>| v.as_ref().is_some_and(|v| ver < *v);
    if before(&v160) && text_of(res, "Prompt").is_some_and(|p| p.contains('[')) {
        set(
            res,
            "Old prompt editing timelines".into(),
            InfotextValue::Bool(true),
        );
    }
    if before(&v160) && text_of(res, "Sampler").is_some_and(|s| s == "DDIM" || s == "PLMS") {
        set(res, "Pad conds v0".into(), InfotextValue::Bool(true));
    }
    if before(&v170_tsnr) {
        set(
            res,
            "Downcast alphas_cumprod".into(),
            InfotextValue::Bool(true),
        );
    }
    // `d.get('Refiner')` is truthy: present and not empty.
    let refiner = get(res, "Refiner").is_some_and(|v| v != &InfotextValue::Text(String::new()));
    if before(&v180) && refiner {
        set(
            res,
            "Refiner switch by sampling steps".into(),
            InfotextValue::Bool(true),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(line: &str) -> Vec<(String, String)> {
        find_params(line)
    }

    #[test]
    fn re_param_corners() {
        let p = pairs("Steps: 20, A: 1, BB: \"x, y\", C-d/e f: , GG: \"a\"b, HH: \"\"");
        let keys: Vec<_> = p.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            keys,
            [
                "Steps=20",
                "BB=\"x, y\"",
                "C-d/e f=",
                "GG=\"a\"b",
                "HH=\"\""
            ]
        );
        assert!(pairs(&"word ".repeat(100_000)).is_empty());
    }
}
