//! Why a subprompt is taken literally. The parser never fails: like A1111, text the grammar
//! does not accept is used as written. These values say why, with a span and a caret, in the
//! manner of regex-syntax's errors.

use std::fmt;

use serde::Serialize;

use crate::ast::Span;

/// What made the grammar reject a subprompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum IssueKind {
    /// A `|` that is not inside an alternation `[a|b]` (for example `a | b` or `(a|b)`).
    StrayPipe,
    /// A `\` at the end of the text or before a line break: it escapes nothing.
    DanglingEscape,
    /// Constructs nested deeper than [`crate::MAX_NESTING`]. A1111 itself fails on such input
    /// (Python's recursion limit); we take the text literally instead.
    NestingLimit,
}

impl fmt::Display for IssueKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IssueKind::StrayPipe => "`|` outside an alternation `[a|b]`",
            IssueKind::DanglingEscape => "`\\` escapes nothing",
            IssueKind::NestingLimit => "brackets nested too deeply",
        })
    }
}

/// Why a subprompt is taken literally, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{kind} at bytes {}..{}", span.start, span.end)]
pub struct ParseIssue {
    /// What went wrong.
    pub kind: IssueKind,
    /// Where, in bytes of the whole prompt.
    pub span: Span,
}

/// Refusal of a prompt longer than the caller's cap ([`crate::Prompt::parse_limited`]). The
/// parser itself accepts any text (A1111 has no length limit); the cap bounds the work a
/// pasted or generated megabyte-long prompt causes downstream (one text-encoder pass per 75
/// tokens), and is the caller's choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("prompt of {chars} characters is over the limit of {limit} characters")]
#[non_exhaustive]
pub struct PromptTooLong {
    /// Characters (Unicode scalar values) in the prompt.
    pub chars: usize,
    /// The cap.
    pub limit: usize,
}

/// The default cap of [`crate::Prompt::parse_limited`] callers: one million characters.
/// Real prompts are at most a few thousand characters; the parser is linear (about 2 s for a
/// million characters in a release build, worst case nested schedules about 16 µs per
/// character), so the cap keeps a hostile prompt to seconds without ever refusing a real one.
pub const DEFAULT_MAX_PROMPT_CHARS: usize = 1_000_000;

/// Checks that `text` has at most `limit` characters (cheap: byte length first).
///
/// # Errors
/// [`PromptTooLong`] when it has more.
pub fn check_prompt_length(text: &str, limit: usize) -> Result<(), PromptTooLong> {
    if text.len() <= limit {
        return Ok(());
    }
    let chars = text.chars().count();
    if chars <= limit {
        Ok(())
    } else {
        Err(PromptTooLong { chars, limit })
    }
}

impl ParseIssue {
    /// The prompt's line that holds the issue with a caret line under it, for messages:
    ///
    /// ```
    /// let prompt = sd_prompt::Prompt::parse("a | b");
    /// let issue = prompt.subprompts()[0].ast().issue.clone().unwrap();
    /// assert_eq!(issue.caret(prompt.source()), "a | b\n  ^");
    /// ```
    pub fn caret(&self, source: &str) -> String {
        let start = self.span.start.min(source.len());
        let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = source[start..]
            .find('\n')
            .map_or(source.len(), |i| start + i);
        let column = source[line_start..start].chars().count();
        let width = Span::new(start, self.span.end.min(line_end))
            .of(source)
            .chars()
            .count()
            .max(1);
        format!(
            "{}\n{}{}",
            &source[line_start..line_end],
            " ".repeat(column),
            "^".repeat(width)
        )
    }
}
