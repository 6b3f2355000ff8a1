//! A run's folder, as A1111 lays it out: `<log_dir>/<YYYY-MM-DD>/<name>/` with
//! `embeddings/`, `images/`, `image_embeddings/`, `textual_inversion_loss.csv` and the
//! settings (a hypernetwork's run: `hypernetworks/`, `images/`, `hypernetwork_loss.csv`);
//! and, beside the CSV, `textual_inversion_loss.png`, the CSV drawn as a plot
//! ([`super::loss_plot`], redrawn at each write; A1111 has no such file). Every file is
//! written whole to a temporary name and renamed.

use std::path::{Path, PathBuf};

use sd_core::fs::write_atomic;

use super::kind::TrainedKind;
use super::loss_plot::{DEFAULT_WINDOW, loss_plot_png};
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
    /// The validation loss evaluated after this step (only with validation on; A1111 has
    /// no such column).
    pub validation_loss: Option<f32>,
    /// The mean loss of the steps before it, as A1111's progress bar shows it (the last
    /// 3 × pictures steps, all of them, not only those with a row): the plot's mean line.
    /// Not written to the CSV; `None` for rows read back from it.
    pub mean_loss: Option<f32>,
}

/// The folders and files of one run.
#[derive(Debug, Clone)]
pub struct RunFolder {
    /// `<log_dir>/<date>/<name>`.
    pub root: PathBuf,
    rows: Vec<LossRow>,
    /// The CSV's text from earlier runs, read at the first write.
    earlier: Option<String>,
    /// The rows of `earlier` that parse, for the plot.
    earlier_rows: Vec<LossRow>,
    /// The plot's running-mean window, in steps.
    plot_window: usize,
    /// Whether the CSV has the `validation_loss` column.
    validation_column: bool,
    /// What the run trains (the names of the copies' folder and the CSV).
    kind: TrainedKind,
}

impl RunFolder {
    /// The run folder for `name` under `log_dir`, dated today in the local time zone (as
    /// A1111's `datetime.now()`).
    pub fn new(log_dir: &Path, name: &str) -> Self {
        Self::of_kind(log_dir, name, TrainedKind::Embedding)
    }

    /// [`new`](Self::new) for a run training a `kind` of thing.
    pub fn of_kind(log_dir: &Path, name: &str, kind: TrainedKind) -> Self {
        Self {
            root: log_dir.join(today()).join(name),
            rows: Vec::new(),
            earlier: None,
            earlier_rows: Vec::new(),
            plot_window: DEFAULT_WINDOW,
            validation_column: false,
            kind,
        }
    }

    /// Adds the `validation_loss` column to a CSV this run starts (empty on the rows where
    /// it was not evaluated). Off by default: the file is then A1111's.
    pub fn set_validation_column(&mut self, on: bool) {
        self.validation_column = on;
    }

    /// The copies saved every N steps: `embeddings/` (`hypernetworks/` for a hypernetwork).
    pub fn copies(&self) -> PathBuf {
        self.root.join(self.kind.copies_folder())
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
    /// copies, `images/` and `image_embeddings/` (see
    /// [`sd_core::fs::remove_stale_temporaries`]). Returns how many were removed.
    ///
    /// # Errors
    /// When a folder cannot be read or a file removed.
    pub fn remove_stale_temporaries(&self) -> Result<usize> {
        let mut removed = 0;
        for dir in [
            self.root.clone(),
            self.copies(),
            self.images(),
            self.image_embeddings(),
        ] {
            removed += sd_core::fs::remove_stale_temporaries(&dir)?;
        }
        Ok(removed)
    }

    /// The loss CSV: `textual_inversion_loss.csv` (`hypernetwork_loss.csv`).
    pub fn loss_csv(&self) -> PathBuf {
        self.root.join(format!("{}.csv", self.kind.loss_stem()))
    }

    /// The loss plot, the CSV drawn ([`super::loss_plot::draw_loss_plot`]), beside it with
    /// the extension `.png`.
    pub fn loss_plot(&self) -> PathBuf {
        self.root.join(format!("{}.png", self.kind.loss_stem()))
    }

    /// Sets the window of the plot's running mean, in steps (default
    /// [`DEFAULT_WINDOW`]; the trainer passes A1111's `3 × ` the number of pictures).
    pub fn set_plot_window(&mut self, steps: usize) {
        self.plot_window = steps;
    }

    /// Appends a row to the CSV (`step,epoch,epoch_step,loss,learn_rate`, A1111's columns and
    /// its `{loss:.7f}`). As A1111's `write_loss` (`open(..., "a+")`, a header only when the
    /// file is new), the rows of earlier runs in this folder stay, a resumed run's rows
    /// included: the file is their history, in the order written. The whole file is written
    /// to a temporary and renamed, so a crash never leaves half a row.
    ///
    /// Then redraws [`Self::loss_plot`] from every row of the file (the earlier runs' rows
    /// that parse, then this run's), written the same way.
    ///
    /// # Errors
    /// When a file cannot be read or written.
    pub fn write_loss(&mut self, row: LossRow) -> Result<()> {
        if self.earlier.is_none() {
            let text = self.read_earlier_rows()?;
            self.earlier_rows = parse_rows(&text);
            self.earlier = Some(text);
        }
        self.rows.push(row);
        let mut text = self.earlier.clone().unwrap_or_default();
        if text.is_empty() {
            text.push_str("step,epoch,epoch_step,loss,learn_rate");
            text.push_str(if self.validation_column {
                ",validation_loss\n"
            } else {
                "\n"
            });
        }
        for r in &self.rows {
            text.push_str(&format!(
                "{},{},{},{:.7},{}",
                r.step,
                r.epoch,
                r.epoch_step,
                r.loss,
                python_float(r.learn_rate)
            ));
            match (self.validation_column, r.validation_loss) {
                (true, Some(v)) => text.push_str(&format!(",{v:.7}\n")),
                (true, None) => text.push_str(",\n"),
                (false, _) => text.push('\n'),
            }
        }
        write_atomic(&self.loss_csv(), text.as_bytes())?;
        let all: Vec<LossRow> = self
            .earlier_rows
            .iter()
            .chain(&self.rows)
            .copied()
            .collect();
        write_atomic(&self.loss_plot(), &loss_plot_png(&all, self.plot_window)?)?;
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

/// The rows of a loss CSV's text; the header, blank lines and lines that do not parse are
/// left out.
fn parse_rows(text: &str) -> Vec<LossRow> {
    let row = |line: &str| {
        let mut fields = line.trim_end_matches('\r').split(',');
        let mut next = || fields.next().map(str::trim);
        let row = LossRow {
            step: next()?.parse().ok()?,
            epoch: next()?.parse().ok()?,
            epoch_step: next()?.parse().ok()?,
            loss: next()?.parse().ok()?,
            learn_rate: next()?.parse().ok()?,
            validation_loss: None,
            mean_loss: None,
        };
        // A sixth column: the validation loss, empty where it was not evaluated.
        let validation_loss = match next() {
            None | Some("") => None,
            Some(v) => Some(v.parse().ok()?),
        };
        next().is_none().then_some(LossRow {
            validation_loss,
            ..row
        })
    };
    text.lines().filter_map(row).collect()
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
    fn earlier_rows_parse_and_garbage_is_left_out() {
        let text = "step,epoch,epoch_step,loss,learn_rate\n1,0,0,0.5000000,0.005\r\n\
                    2,0,1,nan,1e-05\n\ngarbage\n3,0,2,0.25\n4,0,3,0.1,0.1,extra\n5,1,0,inf,0.0\n";
        let rows = parse_rows(text);
        let steps: Vec<usize> = rows.iter().map(|r| r.step).collect();
        assert_eq!(steps, [1, 2, 5]);
        assert_eq!(rows[0].loss, 0.5);
        assert_eq!(rows[0].learn_rate, 0.005);
        assert!(rows[1].loss.is_nan());
        assert_eq!(rows[1].learn_rate, 1e-5);
        assert_eq!(rows[2].loss, f32::INFINITY);
    }

    #[test]
    fn each_csv_write_redraws_the_plot_with_the_earlier_runs() {
        use super::super::loss_plot::{HEIGHT, WIDTH};
        let dir = tempfile::tempdir().expect("tempdir");
        let mut folder = RunFolder::new(dir.path(), "x");
        std::fs::create_dir_all(&folder.root).expect("mkdir");
        // An earlier run's file, with a line that does not parse.
        std::fs::write(
            folder.loss_csv(),
            "step,epoch,epoch_step,loss,learn_rate\n1,0,0,0.9,0.005\nnot a row\n",
        )
        .expect("csv");
        folder.set_plot_window(3);
        let row = |step, loss| LossRow {
            step,
            epoch: 0,
            epoch_step: step - 1,
            loss,
            learn_rate: 0.005,
            validation_loss: None,
            mean_loss: None,
        };
        folder.write_loss(row(1, 0.2)).expect("write");
        let first = std::fs::read(folder.loss_plot()).expect("the plot is written");
        let plot = image::load_from_memory(&first).expect("a PNG").to_rgb8();
        assert_eq!(plot.dimensions(), (WIDTH, HEIGHT));
        // The earlier run is drawn: the plot is the one drawn from both rows.
        let both = [row(1, 0.9), row(1, 0.2)];
        assert_eq!(plot, super::super::loss_plot::draw_loss_plot(&both, 3));
        assert_ne!(plot, super::super::loss_plot::draw_loss_plot(&both[1..], 3));
        // A NaN row is written and drawn without failing, and the plot changes.
        folder.write_loss(row(2, f32::NAN)).expect("write");
        let second = std::fs::read(folder.loss_plot()).expect("the plot");
        assert_ne!(first, second);
        let names: Vec<_> = std::fs::read_dir(&folder.root)
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names.len(), 2, "no temporaries left: {names:?}");
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
