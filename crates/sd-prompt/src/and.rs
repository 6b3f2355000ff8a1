//! `AND`: A1111's `get_multicond_prompt_list` (`modules/prompt_parser.py`). The prompt is split
//! on `re_AND` (`\bAND\b`) and each part may end in `:weight` (`re_weight`).

use crate::ast::Span;
use crate::number::parse_python_decimal;
use crate::unicode::{decimal_value, is_word_boundary, trim_end_space};

/// One side of an `AND`: where its text is and its weight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AndPart {
    /// The subprompt text, without its `:weight` and trailing whitespace.
    pub text: Span,
    /// Its weight (1.0 when none is written).
    pub weight: f64,
    /// The written weight, sign included, if there is one.
    pub weight_span: Option<Span>,
}

/// Splits a prompt on `AND` (the whole word, upper case) and reads each part's weight.
///
/// ```
/// use sd_prompt::split_and;
/// let prompt = "a cat :1.2 AND a dog";
/// let parts = split_and(prompt);
/// assert_eq!(parts[0].text.of(prompt), "a cat");
/// assert_eq!(parts[0].weight, 1.2);
/// assert_eq!(parts[1].text.of(prompt), " a dog");
/// ```
pub fn split_and(prompt: &str) -> Vec<AndPart> {
    let mut parts = Vec::new();
    let mut from = 0;
    let mut search = 0;
    while let Some(found) = prompt[search..].find("AND") {
        let at = search + found;
        let end = at + "AND".len();
        if is_word_boundary(prompt, at) && is_word_boundary(prompt, end) {
            parts.push(read_weight(prompt, Span::new(from, at)));
            from = end;
            search = end;
        } else {
            search = at + 1;
        }
    }
    parts.push(read_weight(prompt, Span::new(from, prompt.len())));
    parts
}

/// `re_weight`, `^((?:\s|.)*?)(?:\s*:\s*([-+]?(?:\d+\.?|\d*\.\d+)))?\s*$`: the shortest text
/// such that the rest is whitespace, or `:` and a number between whitespace.
fn read_weight(prompt: &str, part: Span) -> AndPart {
    let s = part.of(prompt);
    let t = trim_end_space(s);
    let plain = AndPart {
        text: Span::new(part.start, part.start + t.len()),
        weight: 1.0,
        weight_span: None,
    };
    // The number: a run of digits and dots at the very end, with an optional sign before it.
    let body_start = t
        .trim_end_matches(|c: char| c == '.' || decimal_value(c).is_some())
        .len();
    let body = &t[body_start..];
    if !number_shape(body) {
        return plain;
    }
    let num_start = if t[..body_start].ends_with(['+', '-']) {
        body_start - 1
    } else {
        body_start
    };
    let before = trim_end_space(&t[..num_start]);
    let Some(before_colon) = before.strip_suffix(':') else {
        return plain;
    };
    let Some(weight) = parse_python_decimal(&t[num_start..]) else {
        return plain;
    };
    AndPart {
        text: Span::new(part.start, part.start + trim_end_space(before_colon).len()),
        weight,
        weight_span: Some(Span::new(part.start + num_start, part.start + t.len())),
    }
}

/// `\d+\.?|\d*\.\d+`.
fn number_shape(body: &str) -> bool {
    let digits = |s: &str| s.chars().filter(|&c| c != '.').count();
    match body.split_once('.') {
        None => !body.is_empty(),
        Some((int, frac)) => !frac.contains('.') && (digits(frac) > 0 || digits(int) > 0),
    }
}
