//! A run's folder, as A1111 lays it out: `<log_dir>/<YYYY-MM-DD>/<name>/` with
//! `embeddings/`, `images/`, `image_embeddings/`, `textual_inversion_loss.csv` and the
//! settings. Every file is written whole to a temporary name and renamed.

use std::path::{Path, PathBuf};

use sd_core::fs::write_atomic;

use crate::error::{Result, TrainError};

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
    /// The CSV's text from earlier runs, read at the first write.
    earlier: Option<String>,
}

impl RunFolder {
    /// The run folder for `name` under `log_dir`, dated today in the local time zone (as
    /// A1111's `datetime.now()`).
    pub fn new(log_dir: &Path, name: &str) -> Self {
        Self {
            root: log_dir.join(today()).join(name),
            rows: Vec::new(),
            earlier: None,
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

    /// Appends a row to the CSV (`step,epoch,epoch_step,loss,learn_rate`, A1111's columns and
    /// its `{loss:.7f}`). As A1111's `write_loss` (`open(..., "a+")`, a header only when the
    /// file is new), the rows of earlier runs in this folder stay, a resumed run's rows
    /// included: the file is their history, in the order written. The whole file is written
    /// to a temporary and renamed, so a crash never leaves half a row.
    ///
    /// # Errors
    /// When the file cannot be read or written.
    pub fn write_loss(&mut self, row: LossRow) -> Result<()> {
        if self.earlier.is_none() {
            self.earlier = Some(self.read_earlier_rows()?);
        }
        self.rows.push(row);
        let mut text = self.earlier.clone().unwrap_or_default();
        if text.is_empty() {
            text.push_str("step,epoch,epoch_step,loss,learn_rate\n");
        }
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

    /// The CSV as earlier runs left it (empty when there is none), ending with a newline.
    fn read_earlier_rows(&self) -> Result<String> {
        let path = self.loss_csv();
        match std::fs::read_to_string(&path) {
            Ok(mut text) => {
                if !text.is_empty() && !text.ends_with('\n') {
                    text.push('\n');
                }
                Ok(text)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            Err(source) => Err(sd_core::CoreError::Io { path, source }.into()),
        }
    }

    /// The rows this run has written so far.
    pub fn rows(&self) -> &[LossRow] {
        &self.rows
    }

    /// Writes the run's settings as JSON (A1111 writes `settings-<date>.json`-like text; the
    /// content here is the [`TrainConfig`](super::TrainConfig) plus the embedding's name).
    ///
    /// # Errors
    /// [`TrainError::Json`] when `settings` cannot be serialised (a path that is not UTF-8),
    /// or when the file cannot be written.
    pub fn write_settings(&self, settings: &impl serde::Serialize) -> Result<PathBuf> {
        let path = self.root.join("settings.json");
        // Through a `Value`, as `serde_json::json!` builds it: the keys keep the order the
        // file has always had.
        let text = serde_json::to_value(settings)
            .and_then(|json| serde_json::to_string_pretty(&json))
            .map_err(|source| TrainError::Json {
                path: path.clone(),
                source,
            })?;
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

/// Today's date in the local time zone, `YYYY-MM-DD`: A1111's
/// `datetime.datetime.now().strftime("%Y-%m-%d")` for the run folder.
fn today() -> String {
    date_of(&chrono::Local::now())
}

/// The calendar date of `time` in its own time zone, `YYYY-MM-DD`.
fn date_of<Tz: chrono::TimeZone>(time: &chrono::DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    time.format("%Y-%m-%d").to_string()
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

    #[test]
    fn the_date_is_the_local_one_not_utc() {
        use chrono::{FixedOffset, TimeZone};
        // 23:30 UTC on 6 December is already the 7th two hours east, still the 6th west.
        let utc = chrono::Utc
            .with_ymd_and_hms(2026, 12, 6, 23, 30, 0)
            .single()
            .expect("valid");
        let east = FixedOffset::east_opt(2 * 3600).expect("offset");
        let west = FixedOffset::west_opt(5 * 3600).expect("offset");
        assert_eq!(date_of(&utc.with_timezone(&east)), "2026-12-07");
        assert_eq!(date_of(&utc.with_timezone(&west)), "2026-12-06");
        assert_eq!(date_of(&utc), "2026-12-06");
    }

    #[cfg(unix)]
    #[test]
    fn settings_that_cannot_be_serialised_are_an_error_and_no_file() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let folder = RunFolder::new(dir.path(), "x");
        // serde refuses a path that is not UTF-8 (`serde_json::json!` used to panic on it).
        let config = crate::train::TrainConfig {
            data_dir: std::ffi::OsStr::from_bytes(b"pictures-\xff").into(),
            ..Default::default()
        };
        let e = folder.write_settings(&config).expect_err("not UTF-8");
        assert!(
            matches!(&e, TrainError::Json { path, .. } if path.ends_with("settings.json")),
            "{e:?}"
        );
        assert!(!folder.root.join("settings.json").exists());
    }
}
