//! The whole pipeline against AUTOMATIC1111's own `modules/prompt_parser.py`.
//!
//! `fixtures/prompt/expected.json` is written by `tools/prompt_reference.py`, which imports
//! A1111's parser (commit 28bd8e142d5f77b71ae8d7d7140b5da1b3a49906, lark 1.3.1) and records,
//! for every case of `fixtures/prompt/cases.json` and every step count: the AND split
//! (`get_multicond_prompt_list`), each subprompt's schedule
//! (`get_learned_conditioning_prompt_schedules(steps, hires_steps, use_old_scheduling)`) and
//! `parse_prompt_attention` of each scheduled text.
//!
//! Tolerance: none. Weights are compared as exact f64 (`==`), because the crate performs the
//! same f64 operations in the same order as Python (products of 1.1, 1/1.1 and parsed weights
//! by repeated multiplication; `float()` and Rust's parser are both correctly rounded).
//!
//! The fixtures live outside the crate, so this test runs in the workspace only; the crate's
//! `Cargo.toml` excludes it from the published package. `SD_PROMPT_REFERENCE=path` points it
//! at another expected.json (for example a large random differential run).

use std::path::PathBuf;

use sd_prompt::{Conditioning, Prompt, Steps};
use serde_json::Value;

fn fixture() -> PathBuf {
    match std::env::var_os("SD_PROMPT_REFERENCE") {
        Some(path) => PathBuf::from(path),
        None => {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/prompt/expected.json")
        }
    }
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// Whether our evaluation equals one answer of A1111 (`{"subprompts": [...]}`).
fn same(prompt: &Prompt, ours: &Conditioning, result: &Value) -> bool {
    let source = prompt.source();
    let Some(expected) = result["subprompts"].as_array() else {
        return false;
    };
    let mut ok = ours.subprompts.len() == expected.len();
    for ((sub, exp), part) in ours
        .subprompts
        .iter()
        .zip(expected)
        .zip(prompt.subprompts())
    {
        ok &= part.ast().span.of(source) == exp["text"].as_str().unwrap_or("\u{0}");
        ok &= sub.weight == f(&exp["weight"]);
        let Some(sched) = exp["schedule"].as_array() else {
            return false;
        };
        ok &= sub.schedule.len() == sched.len();
        for (s, e) in sub.schedule.iter().zip(sched) {
            ok &= u64::from(s.end_at_step) == e["end_at_step"].as_u64().unwrap_or(u64::MAX);
            ok &= s.text == e["text"].as_str().unwrap_or("\u{0}");
            let Some(att) = e["attention"].as_array() else {
                return false;
            };
            ok &= s.attention.len() == att.len();
            for (a, pair) in s.attention.iter().zip(att) {
                ok &= a.text == pair[0].as_str().unwrap_or("\u{0}");
                // Exact, bit for bit (the fixtures hold no NaN).
                ok &= a.weight == f(&pair[1]);
            }
        }
    }
    ok
}

#[test]
fn matches_a1111() {
    let path = fixture();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let cases: Vec<Value> = serde_json::from_str(&text).expect("expected.json is JSON");
    let (mut checked, mut a1111_errors, mut ambiguous, mut failures) = (0, 0, 0, Vec::new());
    for case in &cases {
        let source = case["prompt"].as_str().expect("prompt");
        let prompt = Prompt::parse(source);
        for result in case["results"].as_array().expect("results") {
            if result.get("error").is_some() {
                // A1111 raises here (e.g. `(a:1.2.3)`); our answer is tested in tests/table.rs.
                a1111_errors += 1;
                continue;
            }
            let steps = Steps {
                steps: result["steps"]
                    .as_u64()
                    .and_then(|s| u32::try_from(s).ok())
                    .expect("steps"),
                hires_steps: case["hires_steps"]
                    .as_u64()
                    .and_then(|s| u32::try_from(s).ok()),
                old_scheduling: case["old_scheduling"].as_bool().unwrap_or(false),
            };
            let ours = prompt.evaluate(&steps);
            let ok = match result.get("variants").and_then(Value::as_array) {
                // A1111 answers differently from one launch to the next here (lark 1.1.2
                // breaks the tie by set order, which follows PYTHONHASHSEED): any of its
                // answers is A1111's behaviour. We always take the construct.
                Some(variants) => {
                    ambiguous += 1;
                    variants.iter().any(|v| same(&prompt, &ours, v))
                }
                None => same(&prompt, &ours, result),
            };
            checked += 1;
            if !ok {
                failures.push(format!(
                    "prompt {source:?} {steps:?}\n  ours:     {}\n  expected: {}",
                    serde_json::to_string(&ours).unwrap_or_default(),
                    serde_json::to_string(result).unwrap_or_default()
                ));
            }
        }
    }
    println!(
        "{checked} evaluations match A1111 ({ambiguous} of them where A1111's answer depends on the hash seed; \
         {a1111_errors} where A1111 raises skipped)"
    );
    assert!(
        failures.is_empty(),
        "{} of {checked} differ:\n{}",
        failures.len(),
        failures[..failures.len().min(15)].join("\n")
    );
    assert!(
        checked > 1000,
        "only {checked} evaluations in {}",
        path.display()
    );
}
