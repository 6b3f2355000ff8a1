//! The prompt language target.

use sd_prompt::{Ast, Node, Prompt, Steps, parse_attention, split_and};

use crate::selector;

/// Checks that every span of an [`Ast`] is a valid, in-bounds slice of `source`.
fn check_spans(source: &str, nodes: &[Node]) {
    for node in nodes {
        let span = node.span();
        assert!(
            span.start <= span.end && source.get(span.start..span.end).is_some(),
            "span {span:?} is not a slice of a {}-byte prompt",
            source.len()
        );
        match node {
            Node::Text(_) => {}
            Node::Group { body, weight, .. } => {
                check_spans(source, body);
                if let Some(w) = weight {
                    check_spans(source, w);
                }
            }
            Node::Edit { from, to, when, .. } => {
                if let Some(f) = from {
                    check_spans(source, f);
                }
                check_spans(source, to);
                assert!(source.get(when.span.start..when.span.end).is_some());
            }
            Node::Alternate { options, .. } => {
                for o in options {
                    check_spans(source, o);
                }
            }
        }
    }
}

/// The prompt language (`sd_prompt`): the input, read as UTF-8 (lossily), is parsed as a
/// positive prompt, a negative prompt and a bare subprompt, then evaluated for step settings
/// taken from the first byte (0–63 steps, hires fix and old timelines on or off).
///
/// Asserts: parsing never fails or panics (the parser promises unparseable text is literal);
/// every span is an in-bounds slice of the prompt; a prompt has at least one `AND` part;
/// every evaluated schedule is non-empty with its last entry ending at the final step
/// (`Steps::total`); emphasis never panics.
pub fn prompt(data: &[u8]) {
    let (sel, rest) = selector(data);
    let text = String::from_utf8_lossy(rest);
    let steps = Steps {
        steps: u32::from(sel & 0x3F),
        hires_steps: (sel & 0x40 != 0).then_some(u32::from(sel & 0x0F) + 1),
        old_scheduling: sel & 0x80 != 0,
    };

    for part in split_and(&text) {
        assert!(text.get(part.text.start..part.text.end).is_some());
    }
    let ast = Ast::parse(&text);
    check_spans(&text, &ast.nodes);

    for prompt in [Prompt::parse(&text), Prompt::parse_negative(&text)] {
        assert!(
            !prompt.subprompts().is_empty(),
            "a prompt has one part at least"
        );
        for sub in prompt.subprompts() {
            check_spans(&text, &sub.ast().nodes);
        }
        let cond = prompt.evaluate(&steps);
        assert_eq!(cond.subprompts.len(), prompt.subprompts().len());
        for sub in &cond.subprompts {
            let last = sub
                .schedule
                .last()
                .expect("a schedule has one entry at least");
            assert_eq!(
                last.end_at_step,
                steps.total(),
                "the last entry ends at the final step"
            );
            let _ = sub.at(0);
        }
    }
    let _ = parse_attention(&text);
}
