//! A run's folder, as A1111 lays it out: `<log_dir>/<YYYY-MM-DD>/<name>/` with
//! `embeddings/`, `images/`, `image_embeddings/`, `textual_inversion_loss.csv` and the
//! settings. Every file is written whole to a temporary name and renamed.

use std::path::{Path, PathBuf};

use sd_core::fs::write_atomic;

use crate::error::Result;

/// One row of `textual_inversion_loss.csv`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossRow {
    /// The embedding's step after the update.
    pub step: usize,
    /// `(step − 1) / steps_per_epoch`.
    pub epoch: usize,
    /// `(step − 1) % steps_per_epoch`.
    pub epoch_step: usize,
    /// The step's loss (summed over accumulated batches).
    pub loss: f32,
    /// The learning rate used.
    pub learn_rate: f64,
}

/// The folders and files of one run.
#[derive(Debug, Clone)]
pub struct RunFolder {
    /// `<log_dir>/<date>/<name>`.
    pub root: PathBuf,
    rows: Vec<LossRow>,
}

impl RunFolder {
    /// The run folder for `name` under `log_dir`, dated today (UTC).
    pub fn new(log_dir: &Path, name: &str) -> Self {
        Self {
            root: log_dir.join(today()).join(name),
            rows: Vec::new(),
        }
    }

    /// `embeddings/`: the copies saved every N steps.
    pub fn embeddings(&self) -> PathBuf {
        self.root.join("embeddings")
    }

    /// `images/`: the previews.
    pub fn images(&self) -> PathBuf {
        self.root.join("images")
    }

    /// `image_embeddings/`: previews carrying the embedding.
    pub fn image_embeddings(&self) -> PathBuf {
        self.root.join("image_embeddings")
    }

    /// Removes the temporary files a killed earlier run left in this folder and its
    /// `embeddings/`, `images/` and `image_embeddings/` (see
    /// [`sd_core::fs::remove_stale_temporaries`]). Returns how many were removed.
    ///
    /// # Errors
    /// When a folder cannot be read or a file removed.
    pub fn remove_stale_temporaries(&self) -> Result<usize> {
        let mut removed = 0;
        for dir in [
            self.root.clone(),
            self.embeddings(),
            self.images(),
            self.image_embeddings(),
        ] {
            removed += sd_core::fs::remove_stale_temporaries(&dir)?;
        }
        Ok(removed)
    }

    /// The loss CSV.
    pub fn loss_csv(&self) -> PathBuf {
        self.root.join("textual_inversion_loss.csv")
    }

    /// Appends a row and rewrites the CSV (`step,epoch,epoch_step,loss,learn_rate`, A1111's
    /// columns and its `{loss:.7f}`).
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn write_loss(&mut self, row: LossRow) -> Result<()> {
        if let Some(existing) = self.load_existing_rows()? {
            self.rows = existing;
        }
        self.rows.retain(|r| r.step < row.step);
        self.rows.push(row);
        let mut text = String::from("step,epoch,epoch_step,loss,learn_rate\n");
        for r in &self.rows {
            text.push_str(&format!(
                "{},{},{},{:.7},{}\n",
                r.step,
                r.epoch,
                r.epoch_step,
                r.loss,
                python_float(r.learn_rate)
            ));
        }
        write_atomic(&self.loss_csv(), text.as_bytes())?;
        Ok(())
    }

    /// Rows already in the CSV of a resumed run (only on the first write).
    fn load_existing_rows(&self) -> Result<Option<Vec<LossRow>>> {
        if !self.rows.is_empty() {
            return Ok(None);
        }
        let Ok(text) = std::fs::read_to_string(self.loss_csv()) else {
            return Ok(None);
        };
        let rows = text
            .lines()
            .skip(1)
            .filter_map(|line| {
                let f: Vec<&str> = line.split(',').collect();
                Some(LossRow {
                    step: f.first()?.parse().ok()?,
                    epoch: f.get(1)?.parse().ok()?,
                    epoch_step: f.get(2)?.parse().ok()?,
                    loss: f.get(3)?.parse().ok()?,
                    learn_rate: f.get(4)?.parse().ok()?,
                })
            })
            .collect();
        Ok(Some(rows))
    }

    /// The rows written so far.
    pub fn rows(&self) -> &[LossRow] {
        &self.rows
    }

    /// Writes the run's settings as JSON (A1111 writes `settings-<date>.json`-like text; the
    /// content here is the [`TrainConfig`](super::TrainConfig) plus the embedding's name).
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn write_settings(&self, json: &serde_json::Value) -> Result<PathBuf> {
        let path = self.root.join("settings.json");
        let text = serde_json::to_string_pretty(json).unwrap_or_else(|_| "{}".into());
        write_atomic(&path, text.as_bytes())?;
        Ok(path)
    }
}

/// How Python prints a float (`0.005`, `1e-05`, `0.1`), for the CSV's learn_rate column.
fn python_float(x: f64) -> String {
    if x != 0.0 && (x.abs() < 1e-4 || x.abs() >= 1e16) {
        let s = format!("{x:e}");
        // Rust: 1e-5; Python: 1e-05.
        match s.split_once('e') {
            Some((m, e)) => {
                let (sign, digits) = e.strip_prefix('-').map_or(("+", e), |d| ("-", d));
                format!("{m}e{sign}{digits:0>2}")
            }
            None => s,
        }
    } else if x.fract() == 0.0 {
        format!("{x:.1}")
    } else {
        format!("{x}")
    }
}

/// Today's date, `YYYY-MM-DD` (UTC), without a date library: days since 1970 to a civil
/// date (Howard Hinnant's algorithm).
fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_python_prints_them() {
        assert_eq!(python_float(0.005), "0.005");
        assert_eq!(python_float(1e-5), "1e-05");
        assert_eq!(python_float(1.0), "1.0");
        assert_eq!(python_float(0.0001), "0.0001");
    }

    #[test]
    fn today_is_a_plausible_date() {
        let d = today();
        assert_eq!(d.len(), 10);
        assert!(d.starts_with("20"), "{d}");
    }
}
