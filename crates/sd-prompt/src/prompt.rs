//! A whole prompt, parsed once: its `AND` parts, each a weight and an [`Ast`]; and what it
//! evaluates to for a step count.

use serde::Serialize;

use crate::and::split_and;
use crate::ast::{Ast, Span};
use crate::emphasis::{Attention, parse_attention};
use crate::parse::parse_subprompt;
use crate::prompt_schedule::Steps;

/// One `AND` part of a prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct Subprompt {
    weight: f64,
    weight_span: Option<Span>,
    ast: Ast,
}

impl Subprompt {
    /// Its weight in the composable-diffusion sum (1.0 unless written as `text :w`).
    pub fn weight(&self) -> f64 {
        self.weight
    }

    /// Where the weight is written, if it is.
    pub fn weight_span(&self) -> Option<Span> {
        self.weight_span
    }

    /// Its syntax tree (spans are into the whole prompt).
    pub fn ast(&self) -> &Ast {
        &self.ast
    }
}

/// A prompt parsed once, to be evaluated for any step settings.
///
/// ```
/// use sd_prompt::{Prompt, Steps};
/// let prompt = Prompt::parse("a [cat:dog:0.5] AND a hat:0.5");
/// let out = prompt.evaluate(&Steps::new(20));
/// assert_eq!(out.subprompts[0].schedule[0].end_at_step, 10);
/// assert_eq!(out.subprompts[0].schedule[0].text, "a cat");
/// assert_eq!(out.subprompts[1].weight, 0.5);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    source: String,
    subprompts: Vec<Subprompt>,
}

impl Prompt {
    /// Parses a (positive) prompt: split on `AND`, then each part. Never fails.
    pub fn parse(text: &str) -> Self {
        let subprompts = split_and(text)
            .into_iter()
            .map(|part| Subprompt {
                weight: part.weight,
                weight_span: part.weight_span,
                ast: parse_subprompt(part.text.of(text), part.text.start),
            })
            .collect();
        Self {
            source: text.to_string(),
            subprompts,
        }
    }

    /// Parses a negative prompt, which A1111 never splits on `AND` and never reads a
    /// `:weight` from: one subprompt of weight 1.0 holding the whole text.
    pub fn parse_negative(text: &str) -> Self {
        let subprompt = Subprompt {
            weight: 1.0,
            weight_span: None,
            ast: parse_subprompt(text, 0),
        };
        Self {
            source: text.to_string(),
            subprompts: vec![subprompt],
        }
    }

    /// [`parse`](Self::parse), refusing text of more than `max_chars` characters (see
    /// [`crate::DEFAULT_MAX_PROMPT_CHARS`]).
    ///
    /// # Errors
    /// [`PromptTooLong`](crate::PromptTooLong) when the text is longer.
    pub fn parse_limited(text: &str, max_chars: usize) -> Result<Self, crate::PromptTooLong> {
        crate::check_prompt_length(text, max_chars)?;
        Ok(Self::parse(text))
    }

    /// [`parse_negative`](Self::parse_negative) with the cap of
    /// [`parse_limited`](Self::parse_limited).
    ///
    /// # Errors
    /// [`PromptTooLong`](crate::PromptTooLong) when the text is longer.
    pub fn parse_negative_limited(
        text: &str,
        max_chars: usize,
    ) -> Result<Self, crate::PromptTooLong> {
        crate::check_prompt_length(text, max_chars)?;
        Ok(Self::parse_negative(text))
    }

    /// The text that was parsed.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The `AND` parts, in order (at least one).
    pub fn subprompts(&self) -> &[Subprompt] {
        &self.subprompts
    }

    /// What the prompt means for these step settings: for each subprompt its weight and its
    /// schedule, with the emphasis of each scheduled text.
    pub fn evaluate(&self, steps: &Steps) -> Conditioning {
        let subprompts = self
            .subprompts
            .iter()
            .map(|sub| WeightedPromptSchedule {
                weight: sub.weight,
                schedule: sub
                    .ast
                    .prompt_schedule(&self.source, steps)
                    .into_iter()
                    .map(|(end_at_step, text)| PromptScheduleEntry {
                        end_at_step,
                        attention: parse_attention(&text),
                        text,
                    })
                    .collect(),
            })
            .collect();
        Conditioning { subprompts }
    }
}

/// A prompt evaluated for given [`Steps`]. Serialises as `{"subprompts": [...]}` in the shape
/// of the `prompt` example's output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Conditioning {
    /// One entry per `AND` part, in order.
    pub subprompts: Vec<WeightedPromptSchedule>,
}

/// One `AND` part, evaluated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WeightedPromptSchedule {
    /// Its weight.
    pub weight: f64,
    /// Its texts over the steps, in order of `end_at_step`; the last ends at the final step.
    pub schedule: Vec<PromptScheduleEntry>,
}

impl WeightedPromptSchedule {
    /// The entry in force at sampling step `step` (A1111's `reconstruct_cond_batch`: the first
    /// entry with `step <= end_at_step`, else the first entry).
    pub fn at(&self, step: u32) -> Option<&PromptScheduleEntry> {
        self.schedule
            .iter()
            .find(|s| step <= s.end_at_step)
            .or(self.schedule.first())
    }
}

/// The text of a subprompt up to and including one step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PromptScheduleEntry {
    /// The last step this text is used for.
    pub end_at_step: u32,
    /// The text, with editing and alternation resolved and emphasis syntax still in it.
    pub text: String,
    /// The text read for emphasis: the runs the CLIP encoder weighs.
    pub attention: Vec<Attention>,
}
