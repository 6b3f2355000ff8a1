//! The part of `packaging.version` that A1111's `infotext_versions.backcompat` relies on:
//! parsing a `Version:` value (`v1.10.1`, `v1.6.0-2-g4afaaf8a`) and ordering it against the
//! versions where A1111 changed behaviour (PEP 440 ordering: dev < pre-release < release <
//! post-release).

use std::cmp::Ordering;

/// A PEP 440 version, as `packaging.version.Version` parses and orders it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PyVersion {
    epoch: u64,
    /// Release numbers without trailing zeros (`1.6.0` == `1.6`).
    release: Vec<u64>,
    /// `(a|b|rc, n)`, letters ordered as strings.
    pre: Option<(&'static str, u64)>,
    post: Option<u64>,
    dev: Option<u64>,
    local: Option<Vec<LocalPart>>,
}

/// packaging's comparison key: epoch, release, pre, post, dev, local (see `PyVersion::key`).
type CmpKey<'a> = (
    u64,
    &'a [u64],
    (u8, &'a str, u64),
    (u8, u64),
    (u8, u64),
    Option<&'a [LocalPart]>,
);

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum LocalPart {
    // packaging orders a string segment before a number.
    Text(String),
    Number(u64),
}

impl PyVersion {
    /// `infotext_versions.parse_version`: keeps `A-B` of an `A-B-rest` git description,
    /// then `version.parse`; `None` where it raises.
    pub(super) fn from_infotext(text: &str) -> Option<Self> {
        // re.match(r'([^-]+-[^-]+)-.*', text): two dash-free runs, and a third dash.
        let mut parts = text.splitn(3, '-');
        let text = match (parts.next(), parts.next(), parts.next()) {
            (Some(a), Some(b), Some(_)) if !a.is_empty() && !b.is_empty() => {
                &text[..a.len() + 1 + b.len()]
            }
            _ => text,
        };
        Self::parse(text)
    }

    /// `packaging.version.Version(text)` (case-insensitive, surrounding whitespace allowed).
    pub(super) fn parse(text: &str) -> Option<Self> {
        let lower = text.trim().to_ascii_lowercase();
        let mut p = Parser {
            s: lower.as_bytes(),
            i: 0,
        };
        p.eat(b"v");
        let first = p.number()?;
        let (epoch, mut release) = if p.eat(b"!") {
            (first, vec![p.number()?])
        } else {
            (0, vec![first])
        };
        while p.peek() == Some(b'.') && p.s.get(p.i + 1).is_some_and(u8::is_ascii_digit) {
            p.i += 1;
            release.push(p.number()?);
        }
        while release.len() > 1 && release.last() == Some(&0) {
            release.pop();
        }
        if release == [0] {
            release.clear();
        }
        let pre = p.attempt(|p| {
            p.separator();
            let kind = p.word(&[
                ("alpha", "a"),
                ("a", "a"),
                ("beta", "b"),
                ("b", "b"),
                ("preview", "rc"),
                ("pre", "rc"),
                ("c", "rc"),
                ("rc", "rc"),
            ])?;
            let n = p.attempt(|p| {
                p.separator();
                p.number()
            });
            Some((kind, n.unwrap_or(0)))
        });
        let post = p
            .attempt(|p| {
                p.eat(b"-").then_some(())?;
                p.number()
            })
            .or_else(|| {
                p.attempt(|p| {
                    p.separator();
                    p.word(&[("post", ""), ("rev", ""), ("r", "")])?;
                    let n = p.attempt(|p| {
                        p.separator();
                        p.number()
                    });
                    Some(n.unwrap_or(0))
                })
            });
        let dev = p.attempt(|p| {
            p.separator();
            p.word(&[("dev", "")])?;
            let n = p.attempt(|p| {
                p.separator();
                p.number()
            });
            Some(n.unwrap_or(0))
        });
        let local = p.attempt(|p| {
            p.eat(b"+").then_some(())?;
            let rest = std::str::from_utf8(&p.s[p.i..]).ok()?;
            let mut parts = Vec::new();
            for seg in rest.split(['-', '_', '.']) {
                if seg.is_empty() || !seg.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return None;
                }
                parts.push(match seg.parse() {
                    Ok(n) if seg.bytes().all(|b| b.is_ascii_digit()) => LocalPart::Number(n),
                    _ => LocalPart::Text(seg.to_owned()),
                });
            }
            p.i = p.s.len();
            Some(parts)
        });
        (p.i == p.s.len()).then_some(Self {
            epoch,
            release,
            pre,
            post,
            dev,
            local,
        })
    }

    /// packaging's `_cmpkey`: pre `None` sorts after any pre-release unless the version is a
    /// bare dev release; post `None` before any post; dev `None` after any dev; local `None`
    /// before any local.
    fn key(&self) -> CmpKey<'_> {
        let pre = match (self.pre, self.post, self.dev) {
            (None, None, Some(_)) => (0, "", 0),
            (None, _, _) => (2, "", 0),
            (Some((l, n)), _, _) => (1, l, n),
        };
        let post = self.post.map_or((0, 0), |n| (1, n));
        let dev = self.dev.map_or((1, 0), |n| (0, n));
        (
            self.epoch,
            &self.release,
            pre,
            post,
            dev,
            self.local.as_deref(),
        )
    }
}

impl PartialOrd for PyVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PyVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, lit: &[u8]) -> bool {
        let hit = self.s[self.i..].starts_with(lit);
        if hit {
            self.i += lit.len();
        }
        hit
    }

    fn separator(&mut self) {
        if matches!(self.peek(), Some(b'-' | b'_' | b'.')) {
            self.i += 1;
        }
    }

    fn number(&mut self) -> Option<u64> {
        let start = self.i;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.i += 1;
        }
        std::str::from_utf8(&self.s[start..self.i])
            .ok()?
            .parse()
            .ok()
    }

    /// The first spelling that matches (longest spellings are listed first), normalised.
    fn word(&mut self, words: &[(&str, &'static str)]) -> Option<&'static str> {
        words
            .iter()
            .find(|(w, _)| self.eat(w.as_bytes()))
            .map(|&(_, n)| n)
    }

    /// Runs `f`, rewinding when it fails, as an optional regex group does.
    fn attempt<T>(&mut self, f: impl FnOnce(&mut Self) -> Option<T>) -> Option<T> {
        let start = self.i;
        let r = f(self);
        if r.is_none() {
            self.i = start;
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> PyVersion {
        PyVersion::parse(s).unwrap_or_else(|| panic!("{s} should parse"))
    }

    #[test]
    fn pep440_order() {
        // Checked with packaging 26.4: sorted(map(Version, [...])).
        let sorted = [
            "1.6.0.dev1",
            "1.6.0a1",
            "1.6.0rc0",
            "1.6.0",
            "1.6.0.post2",
            "1.7.0",
            "1.7.0-224",
            "v1.7.0-225",
            "1.8.0",
            "1.10.1",
        ];
        for w in sorted.windows(2) {
            assert!(v(w[0]) < v(w[1]), "{} < {}", w[0], w[1]);
        }
        assert_eq!(v("1.6"), v("1.6.0"));
        assert!(PyVersion::parse("banana").is_none());
        assert_eq!(v("1.6.0-rc-28"), v("1.6.0rc28"));
        assert_eq!(
            PyVersion::from_infotext("v1.6.0-RC-28-gabc"),
            Some(v("1.6.0rc0"))
        );
        assert!(PyVersion::from_infotext("f2.0.1v1.10.1-previous-519-g44eb4ea8").is_none());
    }
}
