//! No input makes the crate panic: random strings over the prompt language's alphabet
//! (`()[]:|\` , spaces, `AND`, `BREAK`, letters, digits, dots, signs, non-ASCII), parsed and
//! evaluated for random step settings, and some invariants of the answer.
//!
//! CI runs proptest's default number of cases (raise with `PROPTEST_CASES=1000000`).

use proptest::prelude::*;
use sd_prompt::{Node, Prompt, Steps, parse_attention};

fn prompt_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("("),
        Just(")"),
        Just("["),
        Just("]"),
        Just(":"),
        Just("|"),
        Just("\\"),
        Just(" "),
        Just("AND"),
        Just("BREAK"),
        Just("a"),
        Just("b"),
        Just("1"),
        Just("0"),
        Just("."),
        Just("-"),
        Just("+"),
        Just("e"),
        Just("\n"),
        Just("\t"),
        Just("é"),
        Just("🐱"),
        Just("٣"),
        Just("_"),
    ];
    prop::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}

fn check_spans(nodes: &[Node], source: &str) {
    for node in nodes {
        let span = node.span();
        assert!(span.start <= span.end && source.get(span.start..span.end).is_some());
        match node {
            Node::Text(_) => {}
            Node::Group { body, weight, .. } => {
                check_spans(body, source);
                if let Some(w) = weight {
                    check_spans(w, source);
                }
            }
            Node::Edit { from, to, .. } => {
                if let Some(f) = from {
                    check_spans(f, source);
                }
                check_spans(to, source);
            }
            Node::Alternate { options, .. } => options.iter().for_each(|o| check_spans(o, source)),
        }
    }
}

proptest! {
    // 4096 cases unless PROPTEST_CASES says otherwise.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(4096),
        ..ProptestConfig::default()
    })]

    #[test]
    fn never_panics(
        text in prompt_text(),
        steps in 0u32..40,
        hires in prop::option::of(0u32..40),
        old in any::<bool>(),
    ) {
        let steps = Steps { steps, hires_steps: hires, old_scheduling: old };
        for prompt in [Prompt::parse(&text), Prompt::parse_negative(&text)] {
            for sub in prompt.subprompts() {
                check_spans(&sub.ast().nodes, &text);
            }
            let out = prompt.evaluate(&steps);
            prop_assert_eq!(out.subprompts.len(), prompt.subprompts().len());
            for sub in &out.subprompts {
                // Ends strictly increase and the last is the final step.
                prop_assert!(sub.schedule.windows(2).all(|w| w[0].end_at_step < w[1].end_at_step));
                prop_assert_eq!(sub.schedule.last().map(|s| s.end_at_step), Some(steps.total()));
                for s in &sub.schedule {
                    prop_assert!(!s.attention.is_empty());
                    // Adjacent runs never share a weight (they would have merged).
                    prop_assert!(s.attention.windows(2).all(|w| w[0].weight != w[1].weight || w[0].weight.is_nan()));
                }
            }
        }
    }

    #[test]
    fn arbitrary_unicode_never_panics(text in any::<String>(), steps in 0u32..12) {
        let _ = Prompt::parse(&text).evaluate(&Steps::new(steps));
        let _ = parse_attention(&text);
    }
}
