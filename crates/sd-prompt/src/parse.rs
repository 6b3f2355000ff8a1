//! Text → [`Ast`]: the grammar of lark's `schedule_parser` in A1111's
//! `modules/prompt_parser.py`, and the choice lark's Earley parser makes among its parses.
//!
//! The grammar (v1.6+):
//!
//! ```text
//! start: (prompt | /[][():]/+)*
//! prompt: (emphasized | scheduled | alternate | plain | WHITESPACE)*
//! emphasized: "(" prompt ")" | "(" prompt ":" prompt ")" | "[" prompt "]"
//! scheduled: "[" [prompt ":"] prompt ":" [WHITESPACE] NUMBER [WHITESPACE] "]"
//! alternate: "[" prompt ("|" [prompt])+ "]"
//! plain: /([^\\\[\]():|]|\\.)+/
//! ```
//!
//! Inside a construct every bracket must itself be a construct, so a bracket pair can be one
//! only if its content is well nested, and these candidate pairs never partly overlap. At the
//! top level a bracket or colon may also stand for itself; of the many parses lark then
//! chooses the one that makes every outermost candidate a construct (checked against lark on
//! random prompts, see `tests/`). A `|` outside an alternation or a `\` that escapes nothing
//! makes the whole subprompt unparseable, which A1111 answers by using it literally.
//!
//! The scan is linear and iterative; only building the tree recurses, at most
//! [`MAX_NESTING`] deep.

use crate::ast::{Ast, Bracket, Node, Span, When};
use crate::error::{IssueKind, ParseIssue};
use crate::number::parse_when;

/// The deepest nesting of constructs that is parsed; deeper input is taken literally.
///
/// A1111 (lark, then Python's default recursion limit) fails somewhere between 200 and 300
/// nested brackets, so every prompt A1111 accepts is within this limit.
pub const MAX_NESTING: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Open(Bracket),
    Close(Bracket),
    Colon,
    Pipe,
}

#[derive(Debug, Clone, Copy)]
struct Token {
    kind: Kind,
    start: usize,
    end: usize,
}

/// Splits `text` (starting at byte `base` of the prompt) into structural characters and runs
/// of plain text. An escape `\x` belongs to the text run, as in lark's `plain`.
fn lex(text: &str, base: usize) -> Result<Vec<Token>, ParseIssue> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    let mut run_start = None;
    while i < bytes.len() {
        let kind = match bytes[i] {
            b'(' => Kind::Open(Bracket::Round),
            b'[' => Kind::Open(Bracket::Square),
            b')' => Kind::Close(Bracket::Round),
            b']' => Kind::Close(Bracket::Square),
            b':' => Kind::Colon,
            b'|' => Kind::Pipe,
            b'\\' => {
                // `\\.`: `.` is any character but a line feed.
                match text[i + 1..].chars().next() {
                    Some(c) if c != '\n' => {
                        run_start.get_or_insert(i);
                        i += 1 + c.len_utf8();
                        continue;
                    }
                    _ => {
                        return Err(ParseIssue {
                            kind: IssueKind::DanglingEscape,
                            span: Span::new(base + i, base + i + 1),
                        });
                    }
                }
            }
            _ => {
                run_start.get_or_insert(i);
                i += 1;
                continue;
            }
        };
        if let Some(start) = run_start.take() {
            tokens.push(Token {
                kind: Kind::Text,
                start,
                end: i,
            });
        }
        tokens.push(Token {
            kind,
            start: i,
            end: i + 1,
        });
        i += 1;
    }
    if let Some(start) = run_start {
        tokens.push(Token {
            kind: Kind::Text,
            start,
            end: bytes.len(),
        });
    }
    Ok(tokens)
}

/// An open bracket during the scan.
struct Frame {
    open: usize,
    bracket: Bracket,
    colons: usize,
    last_colon: usize,
    pipes: usize,
    valid: bool,
}

/// For each opening token, the index of its closing token if the pair is a construct.
fn find_constructs(text: &str, tokens: &[Token]) -> Vec<Option<usize>> {
    let mut close_of = vec![None; tokens.len()];
    let mut frames: Vec<Frame> = Vec::new();
    // Frames below this stack depth hold a stray closing bracket, so none of them can be a
    // construct (kept as a depth so that marking them is O(1)).
    let mut barrier = 0;
    for (i, token) in tokens.iter().enumerate() {
        match token.kind {
            Kind::Text => {}
            Kind::Open(bracket) => frames.push(Frame {
                open: i,
                bracket,
                colons: 0,
                last_colon: 0,
                pipes: 0,
                valid: true,
            }),
            Kind::Colon => {
                if let Some(f) = frames.last_mut() {
                    f.colons += 1;
                    f.last_colon = i;
                }
            }
            Kind::Pipe => {
                if let Some(f) = frames.last_mut() {
                    f.pipes += 1;
                }
            }
            Kind::Close(bracket) => match frames.last() {
                None => {}
                Some(f) if f.bracket == bracket => {
                    let depth = frames.len() - 1;
                    let Some(f) = frames.pop() else { break };
                    let ok = f.valid && depth >= barrier && shape_ok(text, tokens, &f, i);
                    barrier = barrier.min(frames.len());
                    if ok {
                        close_of[f.open] = Some(i);
                    } else if let Some(parent) = frames.last_mut() {
                        parent.valid = false;
                    }
                }
                Some(_) => barrier = frames.len(),
            },
        }
    }
    close_of
}

/// Whether a well-nested bracket pair has the shape of `emphasized`, `scheduled` or
/// `alternate` (its colons and pipes at depth 0, and a NUMBER as the last part of an edit).
fn shape_ok(text: &str, tokens: &[Token], f: &Frame, close: usize) -> bool {
    match f.bracket {
        Bracket::Round => f.pipes == 0 && f.colons <= 1,
        Bracket::Square if f.colons == 0 => true,
        Bracket::Square => {
            f.pipes == 0
                && f.colons <= 2
                && close == f.last_colon + 2
                && tokens[f.last_colon + 1].kind == Kind::Text
                && parse_when(&text[tokens[f.last_colon + 1].start..tokens[close - 1].end])
                    .is_some()
        }
    }
}

struct Builder<'a> {
    text: &'a str,
    base: usize,
    tokens: &'a [Token],
    close_of: &'a [Option<usize>],
}

impl Builder<'_> {
    fn span(&self, first: usize, last: usize) -> Span {
        Span::new(
            self.base + self.tokens[first].start,
            self.base + self.tokens[last].end,
        )
    }

    /// Tokens `lo..hi` inside a construct: text and constructs only.
    fn sequence(&self, lo: usize, hi: usize, depth: usize) -> Result<Vec<Node>, ParseIssue> {
        let mut nodes = Vec::new();
        let mut i = lo;
        while i < hi {
            match (self.tokens[i].kind, self.close_of[i]) {
                (Kind::Open(_), Some(close)) => {
                    nodes.push(self.construct(i, close, depth + 1)?);
                    i = close + 1;
                }
                _ => {
                    push_text(&mut nodes, self.span(i, i));
                    i += 1;
                }
            }
        }
        Ok(nodes)
    }

    /// The construct from opening token `open` to closing token `close`.
    fn construct(&self, open: usize, close: usize, depth: usize) -> Result<Node, ParseIssue> {
        let span = self.span(open, close);
        if depth > MAX_NESTING {
            return Err(ParseIssue {
                kind: IssueKind::NestingLimit,
                span,
            });
        }
        let Kind::Open(bracket) = self.tokens[open].kind else {
            return Err(ParseIssue {
                kind: IssueKind::NestingLimit,
                span,
            });
        };
        // Separators at depth 0 of the construct.
        let mut colons = Vec::new();
        let mut pipes = Vec::new();
        let mut i = open + 1;
        while i < close {
            match (self.tokens[i].kind, self.close_of[i]) {
                (Kind::Open(_), Some(c)) => i = c,
                (Kind::Colon, _) => colons.push(i),
                (Kind::Pipe, _) => pipes.push(i),
                _ => {}
            }
            i += 1;
        }
        // The parts between the separators `seps`, the last one ending at token `end`.
        let parts = |seps: &[usize], end: usize| -> Result<Vec<Vec<Node>>, ParseIssue> {
            let mut from = open + 1;
            let mut parts = Vec::with_capacity(seps.len() + 1);
            for &sep in seps.iter().chain(std::iter::once(&end)) {
                parts.push(self.sequence(from, sep, depth)?);
                from = sep + 1;
            }
            Ok(parts)
        };
        Ok(match (bracket, colons.len(), pipes.len()) {
            (Bracket::Square, 0, n) if n > 0 => Node::Alternate {
                span,
                options: parts(&pipes, close)?,
            },
            (_, 0, _) => Node::Group {
                span,
                bracket,
                body: self.sequence(open + 1, close, depth)?,
                weight: None,
            },
            (Bracket::Round, _, _) => {
                let mut p = parts(&colons, close)?.into_iter();
                let body = p.next().unwrap_or_default();
                Node::Group {
                    span,
                    bracket,
                    body,
                    weight: p.next(),
                }
            }
            (Bracket::Square, n, _) => {
                let seg = self.tokens[close - 1];
                let (s, e, value, is_fraction) =
                    parse_when(&self.text[seg.start..seg.end]).unwrap_or((0, 0, f64::NAN, false));
                let when = When {
                    span: Span::new(self.base + seg.start + s, self.base + seg.start + e),
                    value,
                    is_fraction,
                };
                let mut p = parts(&colons[..n - 1], colons[n - 1])?.into_iter();
                let first = p.next().unwrap_or_default();
                match p.next() {
                    Some(to) => Node::Edit {
                        span,
                        from: Some(first),
                        to,
                        when,
                    },
                    None => Node::Edit {
                        span,
                        from: None,
                        to: first,
                        when,
                    },
                }
            }
        })
    }

    /// The whole subprompt: constructs where possible, everything else literal.
    fn top(&self) -> Result<Vec<Node>, ParseIssue> {
        let mut nodes = Vec::new();
        let mut i = 0;
        while i < self.tokens.len() {
            match (self.tokens[i].kind, self.close_of[i]) {
                (Kind::Open(_), Some(close)) => {
                    nodes.push(self.construct(i, close, 1)?);
                    i = close + 1;
                }
                (Kind::Pipe, _) => {
                    return Err(ParseIssue {
                        kind: IssueKind::StrayPipe,
                        span: self.span(i, i),
                    });
                }
                _ => {
                    push_text(&mut nodes, self.span(i, i));
                    i += 1;
                }
            }
        }
        Ok(nodes)
    }
}

/// Appends text, merging it with text right before it.
fn push_text(nodes: &mut Vec<Node>, span: Span) {
    if let Some(Node::Text(last)) = nodes.last_mut()
        && last.end == span.start
    {
        last.end = span.end;
        return;
    }
    nodes.push(Node::Text(span));
}

/// Parses one subprompt, `text`, found at byte `base` of the whole prompt.
pub(crate) fn parse_subprompt(text: &str, base: usize) -> Ast {
    let span = Span::new(base, base + text.len());
    let result = lex(text, base).and_then(|tokens| {
        let close_of = find_constructs(text, &tokens);
        Builder {
            text,
            base,
            tokens: &tokens,
            close_of: &close_of,
        }
        .top()
    });
    match result {
        Ok(nodes) => Ast {
            span,
            nodes,
            issue: None,
        },
        Err(issue) => {
            let nodes = if text.is_empty() {
                Vec::new()
            } else {
                vec![Node::Text(span)]
            };
            Ast {
                span,
                nodes,
                issue: Some(issue),
            }
        }
    }
}

impl Ast {
    /// Parses `text` as one subprompt (no `AND` split), spans counted from 0.
    ///
    /// ```
    /// use sd_prompt::{Ast, Node};
    /// let ast = Ast::parse("a [b:c:3]");
    /// assert!(matches!(ast.nodes[1], Node::Edit { .. }));
    /// ```
    pub fn parse(text: &str) -> Ast {
        parse_subprompt(text, 0)
    }
}
