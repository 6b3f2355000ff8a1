//! Everything a run's settings can be checked for before the model loads or any long work
//! starts: the numbers and their caps, the schedules, the template, the output folders, the
//! file a run would replace, the captions, and whether the embedding occurs in every training
//! prompt. Plus the lock that keeps two runs of one embedding apart.
//!
//! A1111 checks a little of this up front (`validate_train_inputs`: "Max steps is empty or 0",
//! "Batch size must be positive", ...) and finds the rest out during the run: a prompt without
//! the embedding trains nothing, an unwritable embeddings folder throws the run away at the
//! end. Here each is a typed error before the first step.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use sd_core::conditioning::{Chunker, EmbeddingId, EmbeddingLookup, TextualInversionVectors};
use sd_core::sd_clip::ClipTokenizer;

use super::config::{MAX_BATCH_SIZE, MAX_GRADIENT_ACCUMULATION, MAX_SIDE, MAX_STEPS, TrainConfig};
use super::kind::TrainedKind;
use super::log::RunFolder;
use super::save::optimizer_path;
use crate::dataset::caption::{caption_for_limited, caption_source};
use crate::dataset::learn_rate_schedule::{ClipGrad, ClipGradMode, LearnRateSchedule};
use crate::dataset::listing::list_candidates;
use crate::dataset::template::Template;
use crate::error::{PromptSite, Result, TrainError};

/// What the checks parsed, for the run to use.
#[derive(Debug)]
pub(crate) struct Checked {
    pub learn_rate: LearnRateSchedule,
    pub clip: Option<(ClipGradMode, LearnRateSchedule)>,
    pub template: Template,
}

/// Refuses an embedding name that cannot name its files: empty, only dots and spaces (`.` and
/// `..` are folders: the run folder `<log_dir>/<date>/..` would be the log folder itself), or
/// with a path separator or NUL (a name stored in a PNG embedding can hold anything).
///
/// ```
/// use sd_textual_inversion::train::check_embedding_name;
/// assert!(check_embedding_name("realbenny-t1").is_ok());
/// assert!(check_embedding_name("..").is_err());
/// assert!(check_embedding_name("../x").is_err());
/// ```
///
/// # Errors
/// [`TrainError::InvalidEmbeddingName`].
pub fn check_embedding_name(name: &str) -> Result<()> {
    let refuse = |reason| {
        Err(TrainError::InvalidEmbeddingName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.trim().is_empty() {
        return refuse("it is empty");
    }
    if name.chars().all(|c| c == '.' || c.is_whitespace()) {
        return refuse("dots alone name a folder (`.`, `..`), not a file");
    }
    if name.contains(['/', '\\', '\0']) {
        return refuse("it contains a path separator");
    }
    Ok(())
}

impl TrainConfig {
    /// The numbers: steps, size, batch size, gradient accumulation and tag drop-out, each
    /// positive where it must be and under its cap ([`MAX_STEPS`], [`MAX_SIDE`] and
    /// `limits.max_image_pixels`, [`MAX_BATCH_SIZE`], [`MAX_GRADIENT_ACCUMULATION`]). No file
    /// is touched.
    ///
    /// ```
    /// use sd_textual_inversion::train::TrainConfig;
    /// assert!(TrainConfig::default().validate().is_ok());
    /// let huge = TrainConfig { width: 100_000, ..TrainConfig::default() };
    /// assert!(huge.validate().is_err());
    /// ```
    ///
    /// # Errors
    /// [`TrainError::InvalidConfig`] for a zero or malformed value, [`TrainError::OverLimit`]
    /// over a cap.
    pub fn validate(&self) -> Result<()> {
        let invalid = |name, reason: &str| {
            Err(TrainError::InvalidConfig {
                name,
                reason: reason.to_owned(),
            })
        };
        let over = |setting, value: u64, limit: u64, why| {
            if value > limit {
                Err(TrainError::OverLimit {
                    setting,
                    value,
                    limit,
                    why,
                })
            } else {
                Ok(())
            }
        };
        if self.steps == 0 {
            // A1111's validate_train_inputs: "Max steps is empty or 0".
            return invalid("steps", "0: max steps must be positive");
        }
        over(
            "steps",
            self.steps as u64,
            MAX_STEPS as u64,
            "100 × A1111's default of 100000 steps, 11 days at 10 steps a second",
        )?;
        for (name, side) in [("width", self.width), ("height", self.height)] {
            if side == 0 || side % 8 != 0 {
                return invalid(
                    name,
                    &format!("{side}: each side must be a positive multiple of 8"),
                );
            }
            over(
                name,
                u64::from(side),
                u64::from(MAX_SIDE),
                "A1111's training size sliders stop at 2048",
            )?;
        }
        if let Err(e) = self.limits.check_image_pixels(self.width, self.height) {
            return Err(TrainError::OverLimit {
                setting: "width",
                value: e.value,
                limit: e.limit,
                why: "width × height over `Limits::max_image_pixels`",
            });
        }
        if self.batch_size == 0 {
            return invalid("batch_size", "0: batch size must be positive");
        }
        over(
            "batch_size",
            self.batch_size as u64,
            MAX_BATCH_SIZE as u64,
            "a training batch keeps every picture's UNet activations for the backward pass",
        )?;
        if self.gradient_accumulation == 0 {
            return invalid(
                "gradient_accumulation",
                "0: gradient accumulation must be positive",
            );
        }
        over(
            "gradient_accumulation",
            self.gradient_accumulation as u64,
            MAX_GRADIENT_ACCUMULATION as u64,
            "more batches per step than any textual-inversion set has pictures",
        )?;
        if !(0.0..=1.0).contains(&self.tag_dropout) {
            return invalid(
                "tag_dropout",
                &format!("{}: a probability from 0 to 1", self.tag_dropout),
            );
        }
        if let Some(validation) = &self.validation {
            check_validation(validation)?;
        }
        Ok(())
    }

    /// Every check a run makes before the model is needed, for embedding `name` whose step is
    /// `initial_step` (0 for a new one): [`validate`](Self::validate), the name
    /// ([`check_embedding_name`]), the learning-rate and clipping schedules (finite values of
    /// 0 or more, also entries that apply only later), the template, the output folders
    /// (writable, created), a trained `<name>.pt` that the run would replace
    /// ([`TrainConfig::overwrite`]), the captions (their length), that the embedding occurs in
    /// every training prompt as `tokenizer` reads it, and that no other run holds the run's
    /// locks. [`Trainer::run`](super::Trainer::run) makes the same checks with the model's own
    /// tokenizer; calling this first only fails sooner (before a checkpoint of gigabytes
    /// loads).
    ///
    /// # Errors
    /// The error of the first check that fails: [`TrainError::InvalidConfig`],
    /// [`TrainError::OverLimit`], [`TrainError::InvalidEmbeddingName`],
    /// [`TrainError::Dataset`] (schedule, template, data folder, caption),
    /// [`TrainError::OutputDir`], [`TrainError::WouldOverwrite`],
    /// [`TrainError::EmbeddingNotInPrompt`], [`TrainError::PromptTooLong`],
    /// [`TrainError::UnusablePrompt`], [`TrainError::Locked`].
    pub fn preflight(
        &self,
        name: &str,
        initial_step: usize,
        tokenizer: &ClipTokenizer,
    ) -> Result<()> {
        self.preflight_for(TrainedKind::Embedding, name, initial_step, tokenizer)
    }

    /// [`preflight`](Self::preflight) for a run training a `kind` of thing called `name`. A
    /// hypernetwork's prompts need not name it (A1111 fills `[name]` with the hypernetwork's
    /// name, as words), its file goes to [`hypernetwork_dir`](Self::hypernetwork_dir), and
    /// [`validation`](Self::validation) is for embeddings only.
    ///
    /// # Errors
    /// As [`preflight`](Self::preflight).
    pub fn preflight_for(
        &self,
        kind: TrainedKind,
        name: &str,
        initial_step: usize,
        tokenizer: &ClipTokenizer,
    ) -> Result<()> {
        self.check(kind, name, initial_step, tokenizer)?;
        // Only whether the locks are free: the run takes them itself.
        drop(RunLock::acquire_for(kind, self, name)?);
        Ok(())
    }

    /// [`preflight_for`](Self::preflight_for) without the locks.
    pub(crate) fn check(
        &self,
        kind: TrainedKind,
        name: &str,
        initial_step: usize,
        tokenizer: &ClipTokenizer,
    ) -> Result<Checked> {
        check_embedding_name(name)?;
        self.validate()?;
        if kind == TrainedKind::Hypernetwork && self.validation.is_some() {
            return Err(TrainError::InvalidConfig {
                name: "validation",
                reason: "the validation loss is computed for embeddings only".into(),
            });
        }
        let (steps, initial) = (self.steps as u64, initial_step as u64);
        let setting = |name| move |source| TrainError::InvalidSetting { name, source };
        let schedule = LearnRateSchedule::parse(&self.learn_rate, steps, initial)
            .map_err(setting("learn_rate"))?;
        // A1111 parses these too, then torch's AdamW refuses them ("Invalid learning rate").
        check_rates("learn_rate", &schedule, &self.learn_rate)?;
        let clip = match &self.clip_grad {
            Some(text) => {
                let clip: ClipGrad = text.parse().map_err(setting("clip_grad"))?;
                let s = LearnRateSchedule::parse(&clip.value_schedule, steps, initial)
                    .map_err(setting("clip_grad"))?;
                // torch's clip_grad_value_ clamps with -v..v (a negative v is an error),
                // clip_grad_norm_ with NaN would silently mean no clipping.
                check_rates("clip_grad", &s, text)?;
                Some((clip.mode, s))
            }
            None => None,
        };
        let template = Template::load(&self.template).map_err(setting("template"))?;
        let captions = self.captions()?;
        let mut lookup = EmbeddingLookup::new();
        let id = match kind {
            TrainedKind::Embedding => Some(lookup.register(
                TextualInversionVectors::new(name, vec![0.0], 1, 1)?,
                tokenizer,
            )?),
            TrainedKind::Hypernetwork => None,
        };
        let prompts = PromptCheck {
            tokenizer,
            lookup: &lookup,
            id,
            name,
            template: &template,
            max_chars: self.limits.max_prompt_chars,
        };
        for (index, line) in template.lines().iter().enumerate() {
            if line.contains("[filewords]") {
                for (source, caption) in &captions {
                    let text = Template::fill(line, name, caption);
                    prompts.check(index, Some(source), &text)?;
                }
            } else {
                prompts.check(index, None, &Template::fill(line, name, ""))?;
            }
        }
        self.check_overwrite(kind, name)?;
        // Last, as it creates the folders: a run refused for another reason leaves nothing.
        ensure_writable_dir(kind.output_setting(), kind.output_dir(self))?;
        ensure_writable_dir(
            "log_dir",
            &RunFolder::of_kind(&self.log_dir, name, kind).root,
        )?;
        Ok(Checked {
            learn_rate: schedule,
            clip,
            template,
        })
    }

    /// A trained `<embeddings_dir>/<name>.pt` (`<hypernetwork_dir>/<name>.pt`) exists and
    /// this run may not replace it. Trained means: it has an optimizer state beside it, or its
    /// step is above 0, or it cannot be read (then nobody can tell). A file of step 0, as
    /// "Create embedding" and "Create hypernetwork" write it, is replaced, as A1111's
    /// create-then-train does.
    fn check_overwrite(&self, kind: TrainedKind, name: &str) -> Result<()> {
        if self.overwrite || self.resume_from.is_some() {
            return Ok(());
        }
        let path = kind.output_file(self, name);
        let optim = optimizer_path(&path);
        if optim.exists() {
            return Err(TrainError::WouldOverwrite { path: optim });
        }
        if path.exists() {
            let untrained = match kind {
                TrainedKind::Embedding => sd_core::embeddings::read_file(&path)
                    .is_ok_and(|(e, _)| e.step.unwrap_or(0) <= 0),
                TrainedKind::Hypernetwork => sd_core::hypernetwork::HypernetworkFile::read(&path)
                    .is_ok_and(|h| h.step.unwrap_or(0) <= 0),
            };
            if !untrained {
                return Err(TrainError::WouldOverwrite { path });
            }
        }
        Ok(())
    }

    /// The caption of every file of the data folder that looks like a picture (its first bytes
    /// are a known image format), with the file it came from.
    fn captions(&self) -> Result<Vec<(PathBuf, String)>> {
        let mut captions = Vec::new();
        for path in list_candidates(&self.data_dir)? {
            if path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("txt"))
                || !looks_like_picture(&path)
            {
                continue;
            }
            let caption = caption_for_limited(&path, self.limits.max_prompt_chars)?;
            captions.push((caption_source(&path), caption));
        }
        Ok(captions)
    }
}

/// Whether the file starts like a picture the `image` crate knows (a cheap look at its magic
/// bytes; decoding may still fail, and the run then skips it).
fn looks_like_picture(path: &Path) -> bool {
    image::ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .is_ok_and(|r| r.format().is_some())
}

/// The validation settings: a positive interval and patience, timesteps inside SD's 1000
/// training timesteps, a held-out folder that is a folder.
fn check_validation(validation: &super::Validation) -> Result<()> {
    let invalid = |name, reason: &str| {
        Err(TrainError::InvalidConfig {
            name,
            reason: reason.to_owned(),
        })
    };
    if validation.every == 0 {
        return invalid("validate_every", "0: evaluate every 1 or more steps");
    }
    if validation.patience == Some(0) {
        return invalid("validation_patience", "0: stop after 1 or more evaluations");
    }
    if validation.timesteps.is_empty() {
        return invalid("validation_timesteps", "no timestep to evaluate at");
    }
    if let Some(t) = validation.timesteps.iter().find(|&&t| t >= 1000) {
        return invalid(
            "validation_timesteps",
            &format!("{t}: a timestep from 0 to 999"),
        );
    }
    if validation.timesteps.len() > 1000 {
        return invalid("validation_timesteps", "more than 1000 timesteps");
    }
    if let Some(dir) = &validation.data_dir
        && !dir.is_dir()
    {
        return invalid(
            "validation_data",
            &format!("{}: not a folder", dir.display()),
        );
    }
    Ok(())
}

/// Every entry of `schedule` (the text given as `setting`) is a finite value of 0 or more.
fn check_rates(setting: &'static str, schedule: &LearnRateSchedule, text: &str) -> Result<()> {
    match schedule
        .entries()
        .iter()
        .find(|e| !e.rate.is_finite() || e.rate < 0.0)
    {
        Some(bad) => Err(TrainError::InvalidConfig {
            name: setting,
            reason: format!(
                "{} in `{text}` is not a finite value of 0 or more",
                bad.rate
            ),
        }),
        None => Ok(()),
    }
}

/// Creates `dir` (and its parents) and proves that a file can be written in it.
fn ensure_writable_dir(setting: &'static str, dir: &Path) -> Result<()> {
    let fail = |path: &Path, action: &'static str, source: std::io::Error| TrainError::OutputDir {
        setting,
        path: path.to_path_buf(),
        action,
        source,
    };
    // The nearest part of the path that exists must be a folder ("File exists" otherwise).
    for ancestor in dir.ancestors() {
        if ancestor.as_os_str().is_empty() {
            break;
        }
        if let Ok(meta) = std::fs::metadata(ancestor) {
            if !meta.is_dir() {
                let source = std::io::Error::from(std::io::ErrorKind::NotADirectory);
                return Err(fail(ancestor, "a file is in the way", source));
            }
            break;
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| fail(dir, "cannot create it", e))?;
    // `.<name>.<pid>.tmp`: the stale-temporary sweep's pattern, should a kill leave it.
    let probe = dir.join(format!(".write-test.{}.tmp", std::process::id()));
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&probe)
        .map_err(|e| fail(dir, "cannot create a file in it", e))?;
    std::fs::remove_file(&probe)
        .map_err(|e| fail(&probe, "cannot remove the test file written in it", e))?;
    Ok(())
}

/// Checks training prompts: their length, that they tokenize, and (when `id` is set) that the
/// embedding `id` (called `name`) of `lookup` fires in each.
pub(crate) struct PromptCheck<'a> {
    pub tokenizer: &'a ClipTokenizer,
    pub lookup: &'a EmbeddingLookup,
    pub id: Option<EmbeddingId>,
    pub name: &'a str,
    pub template: &'a Template,
    pub max_chars: usize,
}

impl PromptCheck<'_> {
    /// Checks `text`, built from template line `index` (0-based) and, for a line with
    /// `[filewords]`, the caption of `caption`.
    pub fn check(&self, index: usize, caption: Option<&Path>, text: &str) -> Result<()> {
        let line_text = self
            .template
            .lines()
            .get(index)
            .cloned()
            .unwrap_or_default();
        let site = || {
            Box::new(PromptSite {
                template: self.template.name().to_owned(),
                line: index + 1,
                caption: caption
                    .filter(|_| line_text.contains("[filewords]"))
                    .map(Path::to_path_buf),
                line_text: line_text.clone(),
            })
        };
        let chars = text.chars().count();
        if chars > self.max_chars {
            return Err(TrainError::PromptTooLong {
                site: site(),
                chars: chars as u64,
                limit: self.max_chars as u64,
            });
        }
        // The conditioning's own chunker: the embedding "fires" where it would be spliced in.
        let tokenized = Chunker::new(self.tokenizer, self.lookup)
            .tokenize_line(text)
            .map_err(|source| TrainError::UnusablePrompt {
                site: site(),
                source,
            })?;
        let Some(id) = self.id else {
            return Ok(());
        };
        let fires = tokenized
            .chunks
            .iter()
            .any(|c| c.fixes.iter().any(|f| f.embedding == id));
        if !fires {
            return Err(TrainError::EmbeddingNotInPrompt {
                name: self.name.to_owned(),
                site: site(),
                prompt: text.chars().take(200).collect(),
            });
        }
        Ok(())
    }
}

/// The advisory locks of a run, held while it lives: `<embeddings_dir>/.<name>.pt.lock`
/// (`<hypernetwork_dir>/...` for a hypernetwork; two runs writing one file) and `.lock` in the run folder (two runs writing one loss
/// CSV, one set of copies). The operating system drops them when the process ends, however it
/// ends; the empty lock files stay (the embedding loaders pass over `.lock` files).
#[derive(Debug)]
pub struct RunLock {
    _files: Vec<File>,
}

impl RunLock {
    /// Takes both locks of a run of `name` under `config`, creating the folders.
    ///
    /// # Errors
    /// [`TrainError::Locked`] naming the lock file another run holds;
    /// [`TrainError::OutputDir`] when a folder cannot be created or written.
    pub fn acquire(config: &TrainConfig, name: &str) -> Result<Self> {
        Self::acquire_for(TrainedKind::Embedding, config, name)
    }

    /// [`acquire`](Self::acquire) for a run training a `kind` of thing.
    ///
    /// # Errors
    /// As [`acquire`](Self::acquire).
    pub fn acquire_for(kind: TrainedKind, config: &TrainConfig, name: &str) -> Result<Self> {
        check_embedding_name(name)?;
        let run_root = RunFolder::of_kind(&config.log_dir, name, kind).root;
        let locks = [
            (
                kind.output_setting(),
                kind.output_dir(config).to_path_buf(),
                format!(".{name}.pt.lock"),
            ),
            ("log_dir", run_root, ".lock".to_owned()),
        ];
        let mut files = Vec::new();
        for (setting, dir, file) in locks {
            ensure_writable_dir(setting, &dir)?;
            let path = dir.join(file);
            let handle = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|source| TrainError::OutputDir {
                    setting,
                    path: path.clone(),
                    action: "cannot open the lock file",
                    source,
                })?;
            match handle.try_lock() {
                Ok(()) => files.push(handle),
                Err(TryLockError::WouldBlock) => return Err(TrainError::Locked { path }),
                Err(TryLockError::Error(source)) => {
                    return Err(TrainError::OutputDir {
                        setting,
                        path,
                        action: "cannot lock the lock file",
                        source,
                    });
                }
            }
        }
        Ok(Self { _files: files })
    }
}
