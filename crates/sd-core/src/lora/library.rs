//! A folder of LoRA files (A1111's `models/Lora`) and the `<lora:…>` tags of a prompt turned
//! into a model that carries them, as A1111's `extra_networks_lora` does.

use std::path::{Path, PathBuf};

use sd_prompt::python_number::python_float;
use sha2::{Digest, Sha256};

use super::apply::{ActiveLora, LoraReport};
use super::error::{LoraError, Result};
use super::file::LoraFile;
use crate::model::StableDiffusion;

/// How deep [`LoraLibrary::scan`] looks into subfolders.
const MAX_DEPTH: usize = 8;

/// One LoRA file of a library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoraEntry {
    /// The name prompts use: the file name without its extension.
    pub name: String,
    /// The name kohya's trainer wrote into the file (`ss_output_name`), which A1111 accepts
    /// too.
    pub alias: Option<String>,
    /// The file.
    pub path: PathBuf,
}

/// The LoRA files of a folder and its subfolders (`.safetensors`), by name.
#[derive(Debug, Clone, Default)]
pub struct LoraLibrary {
    entries: Vec<LoraEntry>,
}

impl LoraLibrary {
    /// Every `.safetensors` file under `dir`, sorted by path. A missing folder is an empty
    /// library.
    ///
    /// # Errors
    /// [`LoraError::Io`] when `dir` exists but cannot be listed.
    pub fn scan(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let mut entries = Vec::new();
        if dir.exists() {
            collect(dir, &mut entries)?;
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(Self { entries })
    }

    /// The files found.
    pub fn entries(&self) -> &[LoraEntry] {
        &self.entries
    }

    /// The file a prompt's `name` means: a file name first, then an alias (as A1111's
    /// `available_networks` and `available_network_aliases`).
    pub fn find(&self, name: &str) -> Option<&LoraEntry> {
        self.entries.iter().find(|e| e.name == name).or_else(|| {
            self.entries
                .iter()
                .find(|e| e.alias.as_deref() == Some(name))
        })
    }
}

fn collect(dir: &Path, out: &mut Vec<LoraEntry>) -> Result<()> {
    let files =
        crate::fs::files_with_extensions(dir, &["safetensors"], MAX_DEPTH).map_err(|e| {
            LoraError::Io {
                path: e.path,
                source: e.source,
            }
        })?;
    for path in files {
        let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        out.push(LoraEntry {
            name: name.to_owned(),
            alias: metadata(&path, "ss_output_name"),
            path,
        });
    }
    Ok(())
}

/// A string of a safetensors file's `__metadata__`, reading the header only.
fn metadata(path: &Path, key: &str) -> Option<String> {
    use std::io::Read;

    let mut file = std::fs::File::open(path).ok()?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len).ok()?;
    let len = u64::from_le_bytes(len);
    if len > crate::checkpoint::MAX_HEADER_BYTES {
        return None;
    }
    let mut header = vec![0u8; usize::try_from(len).ok()?];
    file.read_exact(&mut header).ok()?;
    let header: serde_json::Value = serde_json::from_slice(&header).ok()?;
    header
        .get("__metadata__")?
        .get(key)?
        .as_str()
        .map(str::to_owned)
}

/// A `<lora:…>` tag that was not applied, and why (the picture is still made, as in A1111).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedLora {
    /// The name in the tag.
    pub name: String,
    /// Why: not found, a multiplier that is not a number, a file that cannot be read or does
    /// not fit the model.
    pub reason: String,
}

/// The prompt's LoRAs applied: the model to generate with, and what A1111's infotext records.
#[derive(Debug, Clone)]
pub struct PromptLoras {
    /// The model with the LoRAs (the caller's own model, cloned, when there were none).
    pub model: StableDiffusion,
    /// A1111's `Lora hashes` value (`name: shorthash, …`), `None` without LoRAs.
    pub hashes: Option<String>,
    /// Tags that were not applied.
    pub skipped: Vec<SkippedLora>,
    /// Modules of the applied files that name no layer of the model (A1111 logs them).
    pub report: LoraReport,
}

/// A tag's multipliers, as A1111's `extra_networks_lora.activate`: the second positional
/// argument (default 1) for the text encoder, `te=` over it; the third (default: the text
/// encoder's) for the UNet, `unet=` over it.
fn multipliers(tag: &sd_prompt::ExtraNetworkTag) -> std::result::Result<(f32, f32), String> {
    let number = |text: &str| {
        python_float(text)
            .map(|v| v as f32)
            .ok_or_else(|| format!("multiplier `{text}` is not a number"))
    };
    let mut te = match tag.positional.get(1) {
        Some(text) => number(text)?,
        None => 1.0,
    };
    if let Some(text) = tag.named.get("te") {
        te = number(text)?;
    }
    let mut unet = match tag.positional.get(2) {
        Some(text) => number(text)?,
        None => te,
    };
    if let Some(text) = tag.named.get("unet") {
        unet = number(text)?;
    }
    Ok((te, unet))
}

/// A1111's short LoRA hash: the file's `sshs_model_hash` metadata, else the sha256 of what
/// follows the safetensors header (kohya's "addnet" hash), its first 12 hex digits.
fn short_hash(path: &Path) -> Result<String> {
    if let Some(hash) = metadata(path, "sshs_model_hash") {
        return Ok(hash.chars().take(12).collect());
    }
    let bytes = std::fs::read(path).map_err(|source| LoraError::Io {
        path: path.to_owned(),
        source,
    })?;
    let header = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
        .and_then(|n| usize::try_from(n).ok())
        .and_then(|n| n.checked_add(8))
        .filter(|&start| start <= bytes.len())
        .ok_or_else(|| LoraError::Format {
            path: path.to_owned(),
            reason: "truncated header".into(),
        })?;
    let digest = Sha256::digest(&bytes[header..]);
    Ok(digest.iter().take(6).map(|b| format!("{b:02x}")).collect())
}

impl LoraLibrary {
    /// The `<lora:name:multipliers>` tags of `prompt` (`<lyco:…>` too) applied to a copy of
    /// `model`. Tags that name no file, carry a multiplier that is not a number, or whose
    /// file cannot be read or does not fit the model are skipped with the reason, as A1111
    /// skips them; the picture is made without them. Every tag counts, in order: two tags of
    /// one file add up.
    ///
    /// The prompt is not changed here: generation removes every `<kind:…>` tag from the
    /// prompt before encoding it, as A1111 does.
    ///
    /// # Errors
    /// None for the tags themselves; [`LoraError::Io`] or [`LoraError::Format`] when an
    /// applied file cannot be read again for its hash.
    pub fn activate(&self, model: &StableDiffusion, prompt: &str) -> Result<PromptLoras> {
        let (_, tags) = sd_prompt::parse_extra_networks(prompt);
        let mut skipped = Vec::new();
        let mut hashes: Vec<(String, String)> = Vec::new();
        let mut styled = model.clone();
        let mut report = LoraReport::default();
        for tag in tags.iter().filter(|t| t.kind == "lora" || t.kind == "lyco") {
            let name = tag.positional.first().cloned().unwrap_or_default();
            let skip = |reason: String| SkippedLora {
                name: name.clone(),
                reason,
            };
            let (te, unet) = match multipliers(tag) {
                Ok(m) => m,
                Err(reason) => {
                    skipped.push(skip(reason));
                    continue;
                }
            };
            let Some(entry) = self.find(&name) else {
                skipped.push(skip("not found".into()));
                continue;
            };
            let file = match LoraFile::read(&entry.path) {
                Ok(file) if file.modules().is_empty() => {
                    let first = file.unsupported().first().map_or("", String::as_str);
                    skipped.push(skip(format!(
                        "{}: no LoRA/LoCon module this reader applies ({} keys of other kinds, first `{first}`)",
                        entry.path.display(),
                        file.unsupported().len()
                    )));
                    continue;
                }
                Ok(file) => file,
                Err(e) => {
                    skipped.push(skip(e.to_string()));
                    continue;
                }
            };
            // Each file on top of the ones before it; one that does not fit is skipped.
            let active = [ActiveLora {
                file: &file,
                text_encoder: te,
                unet,
            }];
            match styled.with_loras(&active) {
                Ok((next, next_report)) => {
                    styled = next;
                    report.unmatched.extend(next_report.unmatched);
                    report.failed.extend(next_report.failed);
                }
                Err(e) => {
                    skipped.push(skip(e.to_string()));
                    continue;
                }
            }
            if !hashes.iter().any(|(n, _)| *n == name) {
                hashes.push((name.clone(), short_hash(&entry.path)?));
            }
        }
        // A1111 drops `:` and `,` from the names, which would break the list.
        let hashes = (!hashes.is_empty()).then(|| {
            hashes
                .iter()
                .map(|(name, hash)| format!("{}: {hash}", name.replace([':', ','], "")))
                .collect::<Vec<_>>()
                .join(", ")
        });
        Ok(PromptLoras {
            model: styled,
            hashes,
            skipped,
            report,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(text: &str) -> sd_prompt::ExtraNetworkTag {
        sd_prompt::parse_extra_networks(text).1.remove(0)
    }

    #[test]
    fn multipliers_follow_a1111s_activate() {
        assert_eq!(multipliers(&tag("<lora:x>")), Ok((1.0, 1.0)));
        assert_eq!(multipliers(&tag("<lora:x:0.5>")), Ok((0.5, 0.5)));
        assert_eq!(multipliers(&tag("<lora:x:0.5:0.25>")), Ok((0.5, 0.25)));
        // The UNet's default is the text encoder's after `te=`.
        assert_eq!(multipliers(&tag("<lora:x:te=0.3>")), Ok((0.3, 0.3)));
        assert_eq!(multipliers(&tag("<lora:x:0.5:unet=0.2>")), Ok((0.5, 0.2)));
        assert_eq!(multipliers(&tag("<lora:x: 1_0 >")), Ok((10.0, 10.0)));
        assert!(multipliers(&tag("<lora:x:strong>")).is_err());
    }
}
