//! Prints what A1111 makes of prompts: the AND split, the schedule of each subprompt and the
//! emphasis of each scheduled text, one JSON object per prompt (the format: docs/prompt-syntax.md).
//!
//! ```text
//! sdti prompt --steps 20 --prompt "a [cat:dog:0.5]"
//! echo "a (cat) AND a dog:0.5" | sdti prompt --steps 20 --hires-steps 10
//! ```

use std::io::{BufRead, Write};

use anyhow::Context;
use clap::Parser;
use sd_prompt::{Prompt, Steps};
use sd_textual_inversion::sd_core::limits::Limits;

/// Evaluate A1111 prompts (emphasis, editing, alternation, AND, BREAK) for a step count.
#[derive(Parser)]
pub struct Args {
    /// Sampling steps (the first pass when --hires-steps is given).
    #[arg(long)]
    steps: u32,
    /// Steps of the hires-fix second pass: the schedule is then that pass's.
    #[arg(long)]
    hires_steps: Option<u32>,
    /// A1111's "use old prompt editing timelines".
    #[arg(long)]
    old_scheduling: bool,
    /// The prompt; without it, one prompt per line of standard input.
    #[arg(long)]
    prompt: Option<String>,
}

fn print(out: &mut impl Write, text: &str, steps: &Steps) -> anyhow::Result<()> {
    let evaluated = Prompt::parse(text).evaluate(steps);
    // Written by hand so the keys keep the documented order (serde_json's maps sort them).
    let prompt = serde_json::to_string(text)?;
    let subprompts = serde_json::to_string(&evaluated.subprompts)?;
    writeln!(out, "{{\"prompt\":{prompt},\"subprompts\":{subprompts}}}")
        .context("writing to stdout")
}

/// Runs the command.
///
/// # Errors
/// Whatever stops it: the message names the flag or file at fault.
pub fn run(args: Args) -> anyhow::Result<()> {
    // The schedule has an entry per step: a billion steps is a mistake, refused up front.
    let limits = Limits::default();
    limits
        .check_steps(u64::from(args.steps))
        .context("--steps")?;
    if let Some(hires) = args.hires_steps {
        limits
            .check_steps(u64::from(hires))
            .context("--hires-steps")?;
    }
    let steps = Steps {
        steps: args.steps,
        hires_steps: args.hires_steps,
        old_scheduling: args.old_scheduling,
    };
    let mut out = std::io::stdout().lock();
    match &args.prompt {
        Some(text) => print(&mut out, text, &steps)?,
        None => {
            for line in std::io::stdin().lock().lines() {
                print(&mut out, &line.context("reading standard input")?, &steps)?;
            }
        }
    }
    Ok(())
}
