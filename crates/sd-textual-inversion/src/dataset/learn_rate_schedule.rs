//! Learning-rate schedules, `"0.005:100, 1e-3:1000, 1e-5"`, with A1111's exact semantics.
//!
//! Mirrors `modules/textual_inversion/learn_schedule.py` (`LearnRateScheduleIterator`,
//! `LearnRateScheduler`):
//! - The string is split on `,`; blank pieces are skipped.
//! - `RATE:STEP` means "RATE until STEP". An entry whose STEP is not above the starting step
//!   (`cur_step`, the embedding's step when resuming) is skipped, *without parsing its RATE*;
//!   `STEP = -1` means "until `max_steps`" and ends the list.
//! - A piece without `:` (or with more than one) means RATE until `max_steps` and ends the list:
//!   anything after it is never parsed (`"0.1, garbage"` is valid).
//! - STEP is clamped to `max_steps`; a STEP beyond `max_steps` ends the list.
//! - STEP is Python's `int()` (so `1e3` and `10.0` are errors, `+20`, ` 20 `, `1_000` are not),
//!   RATE is Python's `float()` (`inf`, `nan`, negative rates are accepted, as in A1111).
//! - No usable entry at all is an error.
//!
//! Training stops when the scheduler runs past its last entry (A1111's `scheduler.finished`):
//! with `"0.1:10"` and 1000 max steps, A1111 trains 10 steps. Ends are not checked to
//! increase; the stateful [`LearnRateScheduler`] advances one entry per call, exactly as A1111.
//! The same parser serves the gradient-clipping schedule ([`ClipGrad`]).

use sd_core::sd_prompt::python_number::{python_float, python_int, python_strip};

use super::DatasetError;

/// One `RATE:STEP` pair after parsing: `rate` applies until the step count reaches `end_step`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LearnRateScheduleEntry {
    /// The learning rate (or clipping value).
    pub rate: f64,
    /// The step at which the next entry takes over, clamped to `max_steps`.
    pub end_step: u64,
}

/// A parsed schedule: A1111's `LearnRateScheduleIterator.rates`.
///
/// ```
/// use sd_textual_inversion::dataset::learn_rate_schedule::LearnRateSchedule;
/// // A1111's UI example: 0.005 until step 100, 1e-3 until 1000, then 1e-5 until max steps.
/// let s = LearnRateSchedule::parse("0.005:100, 1e-3:1000, 1e-5", 3000, 0)?;
/// assert_eq!(s.rate_at(0), Some(0.005));
/// assert_eq!(s.rate_at(99), Some(0.005));
/// assert_eq!(s.rate_at(100), Some(1e-3));
/// assert_eq!(s.rate_at(2999), Some(1e-5));
/// assert_eq!(s.rate_at(3000), None); // finished
/// // Resuming at step 500 skips the first entry.
/// let s = LearnRateSchedule::parse("0.005:100, 1e-3:1000, 1e-5", 3000, 500)?;
/// assert_eq!(s.entries()[0].rate, 1e-3);
/// assert!(LearnRateSchedule::parse("0.1:1e3", 3000, 0).is_err());
/// # Ok::<(), sd_textual_inversion::dataset::DatasetError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LearnRateSchedule {
    entries: Vec<LearnRateScheduleEntry>,
}

impl LearnRateSchedule {
    /// Parses `schedule` for a run of `max_steps` steps resumed at `cur_step` (0 for a fresh
    /// embedding), exactly as A1111's `LearnRateScheduleIterator(learn_rate, max_steps, cur_step)`.
    ///
    /// # Errors
    /// [`DatasetError::InvalidLearnRateSchedule`] where A1111 raises "Invalid learning rate schedule":
    /// a STEP that is not an integer, a RATE that is not a float (only for entries A1111
    /// parses), or no entry at all.
    pub fn parse(schedule: &str, max_steps: u64, cur_step: u64) -> Result<Self, DatasetError> {
        let err = |entry: &str, reason: &str| DatasetError::InvalidLearnRateSchedule {
            schedule: schedule.to_string(),
            entry: entry.to_string(),
            reason: reason.to_string(),
        };
        let max = i128::from(max_steps);
        let cur = i128::from(cur_step);
        let mut entries = Vec::new();
        for pair in schedule.split(',') {
            if python_strip(pair).is_empty() {
                continue;
            }
            let parts: Vec<&str> = pair.split(':').collect();
            if parts.len() == 2 {
                // A1111 evaluates int(step) first, float(rate) only for entries it keeps.
                let step =
                    python_int(parts[1]).ok_or_else(|| err(pair, "the step is not an integer"))?;
                if step > cur {
                    let rate = python_float(parts[0])
                        .ok_or_else(|| err(pair, "the rate is not a number"))?;
                    entries.push(LearnRateScheduleEntry {
                        rate,
                        end_step: step.min(max) as u64,
                    });
                    if step > max {
                        return Ok(Self { entries });
                    }
                } else if step == -1 {
                    let rate = python_float(parts[0])
                        .ok_or_else(|| err(pair, "the rate is not a number"))?;
                    entries.push(LearnRateScheduleEntry {
                        rate,
                        end_step: max_steps,
                    });
                    return Ok(Self { entries });
                }
            } else {
                let rate =
                    python_float(parts[0]).ok_or_else(|| err(pair, "the rate is not a number"))?;
                entries.push(LearnRateScheduleEntry {
                    rate,
                    end_step: max_steps,
                });
                return Ok(Self { entries });
            }
        }
        if entries.is_empty() {
            return Err(err("", "no entry applies"));
        }
        Ok(Self { entries })
    }

    /// The entries, in order (never empty).
    pub fn entries(&self) -> &[LearnRateScheduleEntry] {
        &self.entries
    }

    /// The rate the optimizer step taken at embedding step `step` uses, or `None` once the
    /// schedule is finished (training stops there). This is the first entry whose `end_step`
    /// is above `step`: what [`LearnRateScheduler`] yields when the ends increase; for
    /// non-increasing ends (`"0.1:50, 0.2:20, 0.3"`) use the scheduler itself.
    ///
    /// ```
    /// use sd_textual_inversion::dataset::learn_rate_schedule::LearnRateSchedule;
    /// let s = LearnRateSchedule::parse("1e-3:25", 100, 0)?;
    /// assert_eq!((s.rate_at(24), s.rate_at(25)), (Some(1e-3), None));
    /// # Ok::<(), sd_textual_inversion::dataset::DatasetError>(())
    /// ```
    pub fn rate_at(&self, step: u64) -> Option<f64> {
        self.entries
            .iter()
            .find(|e| e.end_step > step)
            .map(|e| e.rate)
    }

    /// The stateful scheduler that walks this schedule.
    pub fn scheduler(&self) -> LearnRateScheduler {
        LearnRateScheduler {
            entries: self.entries.clone(),
            index: 0,
            finished: false,
        }
    }
}

/// A1111's `LearnRateScheduler`: the current rate and end step, advanced by [`step`].
///
/// A1111's training loop calls `scheduler.apply(optimizer, embedding.step)` before every
/// micro-batch and stops as soon as `scheduler.finished`; the trainer does the same with
/// [`step`] (which returns `true` when the rate changed, i.e. when `apply` would set the
/// optimizer's rate) and [`finished`].
///
/// ```
/// use sd_textual_inversion::dataset::learn_rate_schedule::LearnRateScheduler;
/// let mut s = LearnRateScheduler::new("0.1:2, 0.01", 4, 0)?;
/// let mut used = vec![];
/// let mut step = 0;
/// loop {
///     s.step(step);
///     if s.finished() { break; }
///     used.push(s.learn_rate());
///     step += 1; // one optimizer step
/// }
/// assert_eq!(used, [0.1, 0.1, 0.01, 0.01]);
/// # Ok::<(), sd_textual_inversion::dataset::DatasetError>(())
/// ```
///
/// [`step`]: LearnRateScheduler::step
/// [`finished`]: LearnRateScheduler::finished
#[derive(Debug, Clone, PartialEq)]
pub struct LearnRateScheduler {
    entries: Vec<LearnRateScheduleEntry>,
    index: usize,
    finished: bool,
}

impl LearnRateScheduler {
    /// Parses `schedule` (see [`LearnRateSchedule::parse`]) and starts at its first entry.
    ///
    /// # Errors
    /// As [`LearnRateSchedule::parse`].
    pub fn new(schedule: &str, max_steps: u64, cur_step: u64) -> Result<Self, DatasetError> {
        Ok(LearnRateSchedule::parse(schedule, max_steps, cur_step)?.scheduler())
    }

    fn current(&self) -> LearnRateScheduleEntry {
        // `entries` is never empty (parse refuses that) and `index` never passes its end.
        self.entries[self.index]
    }

    /// The current rate.
    pub fn learn_rate(&self) -> f64 {
        self.current().rate
    }

    /// The step at which the current rate ends.
    pub fn end_step(&self) -> u64 {
        self.current().end_step
    }

    /// Whether the schedule ran past its last entry: training stops.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// A1111's `step(step_number)`: below the current end nothing happens (`false`); otherwise
    /// move to the next entry (`true`), or, past the last one, mark the schedule finished
    /// (`false`; the rate stays the last one).
    pub fn step(&mut self, step_number: u64) -> bool {
        if step_number < self.end_step() {
            return false;
        }
        if self.index + 1 < self.entries.len() {
            self.index += 1;
            true
        } else {
            self.finished = true;
            false
        }
    }
}

/// Which gradient clipping A1111 applies (`clip_grad_mode`): `torch.nn.utils.clip_grad_value_`
/// or `clip_grad_norm_` (max L2 norm over the embedding's gradient).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClipGradMode {
    /// Clamp every gradient element to `[-v, v]`.
    Value,
    /// Scale the gradient so its total L2 norm is at most `v`.
    Norm,
}

/// Gradient clipping: a mode and a schedule of clipping values, `--clip-grad value|norm:SCHEDULE`
/// (A1111's `clip_grad_mode` + `clip_grad_value`, the latter parsed as a learning-rate schedule
/// and advanced with `clip_grad_sched.step(embedding.step)` each micro-batch; its `finished`
/// flag is ignored, the last value stays).
///
/// ```
/// use sd_textual_inversion::dataset::learn_rate_schedule::{ClipGrad, ClipGradMode};
/// let c: ClipGrad = "norm:1.0:100, 0.5".parse()?;
/// assert_eq!(c.mode, ClipGradMode::Norm);
/// let mut s = c.value_scheduler(1000, 0)?;
/// assert_eq!(s.learn_rate(), 1.0);
/// s.step(100);
/// assert_eq!(s.learn_rate(), 0.5);
/// # Ok::<(), sd_textual_inversion::dataset::DatasetError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClipGrad {
    /// Value or norm clipping.
    pub mode: ClipGradMode,
    /// The schedule string of clipping values.
    pub value_schedule: String,
}

impl ClipGrad {
    /// The schedule of clipping values for a run (see [`LearnRateScheduler::new`]).
    ///
    /// # Errors
    /// [`DatasetError::InvalidLearnRateSchedule`] as for learning rates.
    pub fn value_scheduler(
        &self,
        max_steps: u64,
        cur_step: u64,
    ) -> Result<LearnRateScheduler, DatasetError> {
        LearnRateScheduler::new(&self.value_schedule, max_steps, cur_step)
    }
}

impl std::str::FromStr for ClipGrad {
    type Err = DatasetError;

    /// `value:SCHEDULE` or `norm:SCHEDULE` (mode case-insensitive). The schedule itself is
    /// checked when the scheduler is built, because A1111's parse depends on the run's steps.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (mode, schedule) = s
            .split_once(':')
            .ok_or_else(|| DatasetError::InvalidClipGrad(s.to_string()))?;
        let mode = match mode.trim().to_ascii_lowercase().as_str() {
            "value" => ClipGradMode::Value,
            "norm" => ClipGradMode::Norm,
            _ => return Err(DatasetError::InvalidClipGrad(s.to_string())),
        };
        Ok(Self {
            mode,
            value_schedule: schedule.to_string(),
        })
    }
}
