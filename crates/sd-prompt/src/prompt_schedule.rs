//! Prompt editing and alternation over the steps: A1111's
//! `get_learned_conditioning_prompt_schedules` (`modules/prompt_parser.py`, v1.6+).

use serde::Serialize;

use crate::ast::{Ast, Node, Span, When};

/// The step settings a prompt is evaluated for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Steps {
    /// Sampling steps (A1111's `steps`; the first pass when hires fix is on).
    pub steps: u32,
    /// Steps of the hires-fix second pass. When set (and `old_scheduling` is off) the schedule
    /// is for the second pass: it has `hires_steps` steps, a fraction `f` in `when` means
    /// `(f - 1.0) · hires_steps` and an integer `n` means `n - steps`, so `[a:b:1.5]` switches
    /// halfway through the second pass and `[a:b:25]` after step 25 of both passes together.
    pub hires_steps: Option<u32>,
    /// A1111's "Use old prompt editing timelines" setting: a `when` below 1 is a fraction of
    /// the steps and anything else a step number, whether or not it has a `.`; hires steps
    /// are then ignored.
    pub old_scheduling: bool,
}

impl Steps {
    /// `steps` sampling steps, no hires fix, current timelines.
    pub const fn new(steps: u32) -> Self {
        Self {
            steps,
            hires_steps: None,
            old_scheduling: false,
        }
    }

    /// The number of steps the schedule spans.
    pub fn total(&self) -> u32 {
        match self.hires_steps {
            Some(hires) if !self.old_scheduling => hires,
            _ => self.steps,
        }
    }

    /// The step after which an edit switches, before clamping to `[.., total]`:
    /// `int(v)` of A1111's `CollectSteps.scheduled`, with the same f64 operations.
    fn resolve(&self, when: &When) -> i64 {
        let total = f64::from(self.total());
        let v = when.value;
        let v = if self.old_scheduling {
            if v < 1.0 { v * total } else { v }
        } else {
            match self.hires_steps {
                Some(_) if when.is_fraction => (v - 1.0) * total,
                Some(_) => v - f64::from(self.steps),
                None if when.is_fraction => v * total,
                None => v,
            }
        };
        // Python's int() truncates; it raises on ±inf where we saturate (`as` does).
        let step = v.trunc() as i64;
        step.min(i64::from(self.total()))
    }
}

fn collect(nodes: &[Node], steps: &Steps, ends: &mut Vec<i64>, alternates: &mut bool) {
    for node in nodes {
        match node {
            Node::Text(_) => {}
            Node::Group { body, weight, .. } => {
                collect(body, steps, ends, alternates);
                if let Some(weight) = weight {
                    collect(weight, steps, ends, alternates);
                }
            }
            Node::Edit { from, to, when, .. } => {
                if let Some(from) = from {
                    collect(from, steps, ends, alternates);
                }
                collect(to, steps, ends, alternates);
                let end = steps.resolve(when);
                // Only boundaries at step 1 or later count.
                if end >= 1 {
                    ends.push(end);
                }
            }
            Node::Alternate { options, .. } => {
                *alternates = true;
                for option in options {
                    collect(option, steps, ends, alternates);
                }
            }
        }
    }
}

fn render(nodes: &[Node], source: &str, steps: &Steps, step: i64, out: &mut String) {
    for node in nodes {
        match node {
            Node::Text(span) => out.push_str(span.of(source)),
            Node::Group {
                span, body, weight, ..
            } => {
                // The brackets (and the colon) are kept: emphasis is read later.
                out.push_str(Span::new(span.start, span.start + 1).of(source));
                render(body, source, steps, step, out);
                if let Some(weight) = weight {
                    out.push(':');
                    render(weight, source, steps, step, out);
                }
                out.push_str(Span::new(span.end.saturating_sub(1), span.end).of(source));
            }
            Node::Edit { from, to, when, .. } => {
                if step <= steps.resolve(when) {
                    if let Some(from) = from {
                        render(from, source, steps, step, out);
                    }
                } else {
                    render(to, source, steps, step, out);
                }
            }
            Node::Alternate { options, .. } => {
                let n = options.len() as i64;
                // Python's `%` is floored, so step 0 picks the last option.
                let index = usize::try_from((step - 1).rem_euclid(n.max(1))).unwrap_or(0);
                if let Some(option) = options.get(index) {
                    render(option, source, steps, step, out);
                }
            }
        }
    }
}

impl Ast {
    /// The schedule of this subprompt: `(end_at_step, text)` pairs, each text used up to and
    /// including its step. `source` is the prompt the tree was parsed from (another string
    /// gives meaningless text, never a panic).
    ///
    /// ```
    /// use sd_prompt::{Ast, Steps};
    /// let ast = Ast::parse("a [b:c:0.5] d");
    /// let schedule = ast.prompt_schedule("a [b:c:0.5] d", &Steps::new(10));
    /// assert_eq!(schedule, [(5, "a b d".to_string()), (10, "a c d".to_string())]);
    /// ```
    pub fn prompt_schedule(&self, source: &str, steps: &Steps) -> Vec<(u32, String)> {
        let total = steps.total();
        if self.issue.is_some() {
            return vec![(total, self.span.of(source).to_string())];
        }
        let mut ends = vec![i64::from(total)];
        let mut alternates = false;
        collect(&self.nodes, steps, &mut ends, &mut alternates);
        if alternates {
            ends.extend(1..=i64::from(total));
        }
        ends.sort_unstable();
        ends.dedup();
        ends.into_iter()
            .map(|end| {
                let mut text = String::new();
                render(&self.nodes, source, steps, end, &mut text);
                // Every end lies in 0..=total, so it fits.
                (u32::try_from(end).unwrap_or(total), text)
            })
            .collect()
    }
}
