//! The syntax tree of one subprompt: what lark's `schedule_parser` in A1111's
//! `modules/prompt_parser.py` builds, with byte spans into the original prompt.
//!
//! The tree says *what was written*; [`crate::Prompt::evaluate`] says *what it means* at a step
//! count (as regex-syntax separates its `Ast` from its `Hir`). Emphasis weights are not part of
//! it: A1111 computes them from each scheduled text after editing and alternation are
//! resolved (see [`crate::parse_attention`]), so `(a [b:c:3])` is weighed as `(a b)` or `(a c)`.

use serde::Serialize;

use crate::error::ParseIssue;

/// A byte range `start..end` into the prompt that was parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl Span {
    /// The span `start..end`.
    pub const fn new(start: usize, end: usize) -> Self {
        Self { start, end }
    }

    /// The text this span covers in `source` (empty if it does not fit `source`).
    pub fn of<'a>(&self, source: &'a str) -> &'a str {
        source.get(self.start..self.end).unwrap_or("")
    }
}

/// Which bracket a group uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Bracket {
    /// `( … )`
    Round,
    /// `[ … ]`
    Square,
}

/// The `when` of a prompt edit, as written.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct When {
    /// The number itself, without the whitespace around it.
    pub span: Span,
    /// Its value, as Python's `float()` reads it.
    pub value: f64,
    /// Whether it was written with a `.` (`0.5`, `5.`, `.5`): A1111 then reads it as a
    /// fraction of the steps; otherwise (`5`, `-1`, `1e3`) as a step number.
    pub is_fraction: bool,
}

/// One piece of a subprompt.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Node {
    /// Text taken as written: words, escapes such as `\(`, and brackets or colons that are not
    /// part of any construct.
    Text(Span),
    /// `(body)`, `(body:weight)` or `[body]`. Its text passes through unchanged (brackets
    /// included); the emphasis pass reads the weights later.
    Group {
        /// The whole group, brackets included.
        span: Span,
        /// Round or square.
        bracket: Bracket,
        /// What is inside (before the `:` if there is one).
        body: Vec<Node>,
        /// What follows the `:` of `(body:weight)`. The grammar allows any prompt here, so
        /// `(a:[1.1|1.3])` alternates the weight.
        weight: Option<Vec<Node>>,
    },
    /// Prompt editing: `[from:to:when]`, `[to:when]` (`from` absent) or `[from::when]`.
    Edit {
        /// The whole construct, brackets included.
        span: Span,
        /// Used up to and including step `when`; `None` for `[to:when]` (nothing).
        from: Option<Vec<Node>>,
        /// Used after step `when`.
        to: Vec<Node>,
        /// When to switch.
        when: When,
    },
    /// Alternation `[a|b|c]`: option `(step - 1) % n` at each step. Empty options are allowed.
    Alternate {
        /// The whole construct, brackets included.
        span: Span,
        /// The options, in order (at least two).
        options: Vec<Vec<Node>>,
    },
}

impl Node {
    /// The bytes this node covers.
    pub fn span(&self) -> Span {
        match self {
            Node::Text(span)
            | Node::Group { span, .. }
            | Node::Edit { span, .. }
            | Node::Alternate { span, .. } => *span,
        }
    }
}

/// The parsed form of one subprompt (one side of an `AND`, or a negative prompt).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ast {
    /// The subprompt's bytes within the prompt.
    pub span: Span,
    /// Its pieces in order. When [`Ast::issue`] is set this is a single [`Node::Text`].
    pub nodes: Vec<Node>,
    /// Why the subprompt is taken literally, if the grammar does not accept it. A1111 then
    /// uses the text unchanged at every step (no editing, no alternation), and so do we.
    pub issue: Option<ParseIssue>,
}
