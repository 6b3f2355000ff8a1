//! Prompts over the sampling steps: A1111's `get_learned_conditioning`,
//! `get_multicond_learned_conditioning`, `reconstruct_cond_batch` and
//! `reconstruct_multicond_batch` (`modules/prompt_parser.py`).
//!
//! A prompt is split on `AND` (positive prompts only), each part scheduled over the steps by
//! [`sd_prompt`]; the scheduled texts of one part are encoded together (one batch, see
//! [`PromptEncoder::encode_batch`]), so they all have the same chunk count. At each step the
//! sampler asks for the tensors in force.

use std::collections::HashMap;

use burn::tensor::Tensor;
use sd_prompt::{Prompt, PromptScheduleEntry, Steps};

use super::{
    encoder::PromptEncoder,
    error::{ConditioningError, Result},
};

/// A text's conditioning and the last step it is used for. A1111's
/// `ScheduledPromptConditioning`.
#[derive(Debug, Clone)]
pub struct CondPromptScheduleEntry {
    /// The last sampling step this entry is used for.
    pub end_at_step: u32,
    /// `[77 · chunks, hidden_size]`.
    pub cond: Tensor<2>,
}

/// One prompt (or one `AND` part) over the steps: entries in order of `end_at_step`.
#[derive(Debug, Clone)]
pub struct CondPromptSchedule {
    /// The entries, at least one; the last ends at the final step.
    pub entries: Vec<CondPromptScheduleEntry>,
}

impl CondPromptSchedule {
    /// The tensor in force at `step`: the first entry with `step <= end_at_step`, else the
    /// first entry (A1111's `target_index = 0` default).
    ///
    /// # Shapes
    /// - output: `[77 · chunks, hidden_size]`
    pub fn at(&self, step: u32) -> &Tensor<2> {
        let entry = self
            .entries
            .iter()
            .find(|e| step <= e.end_at_step)
            .unwrap_or(&self.entries[0]);
        &entry.cond
    }
}

/// An `AND` part: its schedule and its weight in the composable-diffusion sum. A1111's
/// `ComposableScheduledPromptConditioning`.
#[derive(Debug, Clone)]
pub struct ComposableCond {
    /// The part's weight (`text :0.5`), 1.0 if none.
    pub weight: f64,
    /// The part's conditioning over the steps.
    pub schedule: CondPromptSchedule,
}

/// The conditioning of a batch of positive prompts, each a list of `AND` parts. A1111's
/// `MulticondLearnedConditioning`.
#[derive(Debug, Clone)]
pub struct MultiCond {
    /// Per prompt, its parts.
    pub batch: Vec<Vec<ComposableCond>>,
}

/// What the sampler uses at one step: A1111's `(conds_list, tensor)`.
#[derive(Debug, Clone)]
pub struct StepConds {
    /// Per prompt, `(row of tensor, weight)` for each of its parts.
    pub conds_list: Vec<Vec<(usize, f64)>>,
    /// Every part's conditioning, stacked; shorter ones padded by repeating their last vector.
    pub tensor: Tensor<3>,
}

impl MultiCond {
    /// The conditioning in force at `step` (A1111's `reconstruct_multicond_batch`).
    ///
    /// # Shapes
    /// - `tensor`: `[total parts, 77 · max chunks, hidden_size]`
    pub fn reconstruct(&self, step: u32) -> StepConds {
        let mut tensors = Vec::new();
        let conds_list = self
            .batch
            .iter()
            .map(|parts| {
                parts
                    .iter()
                    .map(|part| {
                        tensors.push(part.schedule.at(step).clone());
                        (tensors.len() - 1, part.weight)
                    })
                    .collect()
            })
            .collect();
        StepConds {
            conds_list,
            tensor: stack_conds(tensors),
        }
    }
}

/// Stacks `[tokens_i, hidden]` tensors into `[n, max tokens, hidden]`, repeating each shorter
/// one's last vector (A1111's `stack_conds`).
///
/// # Shapes
/// - `tensors[i]`: `[tokens_i, hidden_size]`
/// - output: `[tensors.len(), max tokens_i, hidden_size]`
pub fn stack_conds(tensors: Vec<Tensor<2>>) -> Tensor<3> {
    let tokens = tensors.iter().map(|t| t.dims()[0]).max().unwrap_or(0);
    let padded = tensors
        .into_iter()
        .map(|t| {
            let [n, hidden] = t.dims();
            if n == tokens || n == 0 {
                return t;
            }
            let last = t
                .clone()
                .slice([n - 1..n, 0..hidden])
                .repeat_dim(0, tokens - n);
            Tensor::cat(vec![t, last], 0)
        })
        .collect();
    Tensor::stack(padded, 0)
}

/// The conditioning of a batch of single-part prompts at `step` (A1111's
/// `reconstruct_cond_batch`; what negative prompts go through).
///
/// # Shapes
/// - output: `[c.len(), 77 · chunks, hidden_size]`
///
/// # Errors
/// [`ConditioningError::ShapeMismatch`] when the prompts' chunk counts differ (A1111 fails
/// there too); [`ConditioningError::NoTexts`] for an empty batch.
pub fn reconstruct_cond_batch(c: &[CondPromptSchedule], step: u32) -> Result<Tensor<3>> {
    let tensors: Vec<Tensor<2>> = c.iter().map(|s| s.at(step).clone()).collect();
    let first = tensors.first().ok_or(ConditioningError::NoTexts)?.dims();
    if let Some(other) = tensors.iter().find(|t| t.dims() != first) {
        return Err(ConditioningError::ShapeMismatch {
            what: format!(
                "negative prompts of {:?} and {:?} in one batch",
                first,
                other.dims()
            ),
        });
    }
    Ok(Tensor::stack(tensors, 0))
}

impl PromptEncoder<'_> {
    /// The conditioning of one scheduled text list (the texts encoded as one batch).
    ///
    /// # Errors
    /// As [`PromptEncoder::encode_batch`].
    pub fn encode_prompt_schedule(
        &self,
        schedule: &[PromptScheduleEntry],
    ) -> Result<CondPromptSchedule> {
        let texts: Vec<&str> = schedule.iter().map(|s| s.text.as_str()).collect();
        let conds = self.encode_batch(&texts)?;
        let [_, tokens, hidden] = conds.dims();
        let entries = schedule
            .iter()
            .enumerate()
            .map(|(i, s)| CondPromptScheduleEntry {
                end_at_step: s.end_at_step,
                cond: conds
                    .clone()
                    .slice([i..i + 1, 0..tokens, 0..hidden])
                    .reshape([tokens, hidden]),
            })
            .collect();
        Ok(CondPromptSchedule { entries })
    }

    /// Schedules of whole prompts, without `AND` splitting: A1111's `get_learned_conditioning`,
    /// what negative prompts go through. Equal prompts are encoded once.
    ///
    /// # Errors
    /// As [`PromptEncoder::encode_batch`].
    pub fn learned_conditioning(
        &self,
        prompts: &[&str],
        steps: &Steps,
    ) -> Result<Vec<CondPromptSchedule>> {
        let mut cache: HashMap<&str, CondPromptSchedule> = HashMap::new();
        prompts
            .iter()
            .map(|&p| {
                if let Some(s) = cache.get(p) {
                    return Ok(s.clone());
                }
                let evaluated = Prompt::parse_negative(p).evaluate(steps);
                let schedule = evaluated
                    .subprompts
                    .first()
                    .map(|s| s.schedule.as_slice())
                    .unwrap_or_default();
                let s = self.encode_prompt_schedule(schedule)?;
                cache.insert(p, s.clone());
                Ok(s)
            })
            .collect()
    }

    /// Positive prompts split on `AND`, each part scheduled and encoded: A1111's
    /// `get_multicond_learned_conditioning`. Parts with the same schedule are encoded once.
    ///
    /// ```no_run
    /// # fn demo(encoder: &sd_core::conditioning::PromptEncoder)
    /// #     -> Result<(), sd_core::conditioning::ConditioningError> {
    /// use sd_prompt::Steps;
    /// let c = encoder.multicond_learned_conditioning(&["a [cat:dog:0.5] AND a hat:0.5"], &Steps::new(20))?;
    /// let at_step_3 = c.reconstruct(3); // tensor [2, 77, dim]; conds_list [[(0, 1.0), (1, 0.5)]]
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`PromptEncoder::encode_batch`].
    pub fn multicond_learned_conditioning(
        &self,
        prompts: &[&str],
        steps: &Steps,
    ) -> Result<MultiCond> {
        let mut cache: HashMap<Vec<(u32, String)>, CondPromptSchedule> = HashMap::new();
        let batch = prompts
            .iter()
            .map(|p| {
                Prompt::parse(p)
                    .evaluate(steps)
                    .subprompts
                    .into_iter()
                    .map(|part| {
                        let key: Vec<(u32, String)> = part
                            .schedule
                            .iter()
                            .map(|s| (s.end_at_step, s.text.clone()))
                            .collect();
                        let schedule = match cache.get(&key) {
                            Some(s) => s.clone(),
                            None => {
                                let s = self.encode_prompt_schedule(&part.schedule)?;
                                cache.insert(key, s.clone());
                                s
                            }
                        };
                        Ok(ComposableCond {
                            weight: part.weight,
                            schedule,
                        })
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(MultiCond { batch })
    }
}
