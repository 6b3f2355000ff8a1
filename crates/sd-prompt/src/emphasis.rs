//! Emphasis: A1111's `parse_prompt_attention` (`modules/prompt_parser.py`), applied to each
//! scheduled text. It reads the text with `re_attention`, multiplies weights in the same
//! order with the same f64 operations (so results are bit-identical), and splits on `BREAK`
//! with `re_break` (`\s*\bBREAK\b\s*`).

use serde::ser::{Serialize, SerializeTuple, Serializer};

use crate::number::{is_dot_or_decimal, parse_python_decimal};
use crate::unicode::{is_space, is_word_boundary};

/// The multiplier of `(text)`.
pub const ROUND_MULTIPLIER: f64 = 1.1;
/// The multiplier of `[text]`: `1 / 1.1` as Python computes it.
pub const SQUARE_MULTIPLIER: f64 = 1.0 / 1.1;

/// A run of text and its attention weight. A chunk break (`BREAK`) is text `"BREAK"` with
/// weight exactly `-1.0`; see [`Attention::is_break`].
///
/// Serialises as A1111's pair `[text, weight]`, a break as `["BREAK", -1]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Attention {
    /// The text, escapes resolved (`\(` is `(`).
    pub text: String,
    /// Its weight.
    pub weight: f64,
}

impl Attention {
    /// Whether this is a chunk break, as A1111's `sd_hijack_clip` tests it (`text ==
    /// "BREAK" and weight == -1`). A `BREAK` inside brackets has its weight multiplied too
    /// (`(BREAK)` gives −1.1), and then, as in A1111, it is no break.
    pub fn is_break(&self) -> bool {
        self.text == "BREAK" && self.weight == -1.0
    }
}

impl Serialize for Attention {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut pair = serializer.serialize_tuple(2)?;
        pair.serialize_element(&self.text)?;
        if self.is_break() {
            // Python writes the integer -1 it put there.
            pair.serialize_element(&-1i64)?;
        } else {
            pair.serialize_element(&self.weight)?;
        }
        pair.end()
    }
}

struct State {
    res: Vec<Attention>,
    round: Vec<usize>,
    square: Vec<usize>,
}

impl State {
    fn push(&mut self, text: &str, weight: f64) {
        self.res.push(Attention {
            text: text.to_string(),
            weight,
        });
    }

    fn multiply_range(&mut self, start: usize, multiplier: f64) {
        for entry in &mut self.res[start..] {
            entry.weight *= multiplier;
        }
    }

    /// The `else` branch: text, split on `BREAK`.
    fn push_text(&mut self, text: &str) {
        let mut from = 0;
        for (start, end) in break_matches(text) {
            self.push(&text[from..start], 1.0);
            self.push("BREAK", -1.0);
            from = end;
        }
        self.push(&text[from..], 1.0);
    }
}

/// The matches of `\s*\bBREAK\b\s*` in `text`, left to right, not overlapping.
fn break_matches(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut search = 0;
    while let Some(found) = text[search..].find("BREAK") {
        let at = search + found;
        let after = at + "BREAK".len();
        if is_word_boundary(text, at) && is_word_boundary(text, after) {
            let start =
                at - (text[search..at].len() - text[search..at].trim_end_matches(is_space).len());
            let end = text.len() - text[after..].trim_start_matches(is_space).len();
            out.push((start, end));
            search = end;
        } else {
            search = at + 1;
        }
    }
    out
}

/// `re_attention`'s `:\s*([+-]?[.\d]+)\s*\)` at the start of `s` (which starts with `:`):
/// the match length and the weight text.
fn weight_token(s: &str) -> Option<(usize, &str)> {
    let rest = &s[1..];
    let num_start = 1 + rest.len() - rest.trim_start_matches(is_space).len();
    let mut num_end = num_start;
    if s[num_end..].starts_with(['+', '-']) {
        num_end += 1;
    }
    let digits = s[num_end..].len() - s[num_end..].trim_start_matches(is_dot_or_decimal).len();
    if digits == 0 {
        return None;
    }
    num_end += digits;
    let after = num_end + s[num_end..].len() - s[num_end..].trim_start_matches(is_space).len();
    s[after..]
        .starts_with(')')
        .then(|| (after + 1, &s[num_start..num_end]))
}

/// Splits text into runs with attention weights, exactly as A1111's `parse_prompt_attention`.
///
/// `(x)` multiplies by 1.1, `[x]` by 1/1.1, `(x:w)` by `w`; nesting multiplies; an unclosed
/// bracket applies to the rest of the text; an unmatched closing bracket is text; `\(`, `\)`,
/// `\[`, `\]` and `\\` are the characters themselves and any other `\` is dropped; runs of
/// equal weight merge; `BREAK` becomes a break (see [`Attention::is_break`]).
///
/// One case A1111 does not handle: a weight that Python's `float()` rejects, such as
/// `(a:1.2.3)`, raises an exception there; here `:1.2.3)` is text and the `(` stays open.
///
/// ```
/// use sd_prompt::parse_attention;
/// let pairs: Vec<(String, f64)> =
///     parse_attention("an (important) word").into_iter().map(|a| (a.text, a.weight)).collect();
/// assert_eq!(pairs, [("an ".into(), 1.0), ("important".into(), 1.1), (" word".into(), 1.0)]);
/// ```
pub fn parse_attention(text: &str) -> Vec<Attention> {
    let mut st = State {
        res: Vec::new(),
        round: Vec::new(),
        square: Vec::new(),
    };
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        let c = rest.chars().next().unwrap_or('\0');
        match c {
            '\\' => {
                // `\(`, `\)`, `\[`, `\]`, `\\` give the character; a lone `\` gives "".
                let next = rest[1..].chars().next();
                match next {
                    Some(n @ ('(' | ')' | '[' | ']' | '\\')) => {
                        st.push(&rest[1..1 + n.len_utf8()], 1.0);
                        i += 2;
                    }
                    _ => {
                        st.push("", 1.0);
                        i += 1;
                    }
                }
            }
            '(' => {
                st.round.push(st.res.len());
                i += 1;
            }
            '[' => {
                st.square.push(st.res.len());
                i += 1;
            }
            ':' => match weight_token(rest) {
                Some((len, weight)) => {
                    let parsed = parse_python_decimal(weight);
                    match (st.round.last().copied(), parsed) {
                        (Some(start), Some(w)) => {
                            st.round.pop();
                            st.multiply_range(start, w);
                        }
                        _ => st.push_text(&rest[..len]),
                    }
                    i += len;
                }
                None => {
                    st.push_text(":");
                    i += 1;
                }
            },
            ')' | ']' => {
                let (stack, multiplier) = if c == ')' {
                    (&mut st.round, ROUND_MULTIPLIER)
                } else {
                    (&mut st.square, SQUARE_MULTIPLIER)
                };
                match stack.pop() {
                    Some(start) => st.multiply_range(start, multiplier),
                    None => st.push_text(&rest[..1]),
                }
                i += 1;
            }
            _ => {
                let len = rest
                    .find(['\\', '(', ')', '[', ']', ':'])
                    .unwrap_or(rest.len());
                st.push_text(&rest[..len]);
                i += len;
            }
        }
    }
    for start in std::mem::take(&mut st.round) {
        st.multiply_range(start, ROUND_MULTIPLIER);
    }
    for start in std::mem::take(&mut st.square) {
        st.multiply_range(start, SQUARE_MULTIPLIER);
    }
    if st.res.is_empty() {
        st.push("", 1.0);
    }
    merge_equal_runs(st.res)
}

fn merge_equal_runs(res: Vec<Attention>) -> Vec<Attention> {
    let mut out: Vec<Attention> = Vec::with_capacity(res.len());
    for entry in res {
        match out.last_mut() {
            Some(last) if last.weight == entry.weight => last.text.push_str(&entry.text),
            _ => out.push(entry),
        }
    }
    out
}
