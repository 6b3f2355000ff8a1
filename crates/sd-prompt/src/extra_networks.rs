//! A1111's extra-network tags (`modules/extra_networks.py`): `<lora:name:0.8>`,
//! `<hypernet:name:1>`, any `<kind:args>`. Every tag of the prompt is removed from its text
//! (the rest is left as it was, commas and spaces included) and returned with its arguments;
//! which kinds exist is the caller's business (A1111 skips unknown kinds, still removing
//! them).
//!
//! A1111's pattern is `<(\w+):([^>]+)>`: a kind of word characters (Unicode letters, digits,
//! `_`), a colon, then at least one character up to the first `>`. Its arguments are split
//! on `:`; an argument of the form `key=value` (one `=`) is named, anything else positional.

use std::collections::BTreeMap;

use crate::unicode::is_word;

/// One `<kind:args>` tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraNetworkTag {
    /// `lora`, `hypernet`, ... as written.
    pub kind: String,
    /// Every `:`-separated argument, as written (the first is the network's name).
    pub items: Vec<String>,
    /// The arguments that are not `key=value`, in order.
    pub positional: Vec<String>,
    /// The `key=value` arguments (a later key replaces an earlier one).
    pub named: BTreeMap<String, String>,
}

impl ExtraNetworkTag {
    fn new(kind: &str, args: &str) -> Self {
        let items: Vec<String> = args.split(':').map(str::to_owned).collect();
        let mut positional = Vec::new();
        let mut named = BTreeMap::new();
        for item in &items {
            // Python's `item.split('=', 2)`: named when that gives exactly two parts.
            let parts: Vec<&str> = item.splitn(3, '=').collect();
            match parts[..] {
                [key, value] => {
                    named.insert(key.to_owned(), value.to_owned());
                }
                _ => positional.push(item.clone()),
            }
        }
        Self {
            kind: kind.to_owned(),
            items,
            positional,
            named,
        }
    }
}

/// A prompt without its extra-network tags, and the tags in the order they appear.
///
/// ```
/// let (prompt, tags) = sd_prompt::parse_extra_networks("a cat, <lora:pixar:0.8>, smiling");
/// assert_eq!(prompt, "a cat, , smiling");
/// assert_eq!(tags[0].kind, "lora");
/// assert_eq!(tags[0].positional, ["pixar", "0.8"]);
/// ```
pub fn parse_extra_networks(prompt: &str) -> (String, Vec<ExtraNetworkTag>) {
    let mut text = String::with_capacity(prompt.len());
    let mut tags = Vec::new();
    let mut rest = prompt;
    while let Some(open) = rest.find('<') {
        text.push_str(&rest[..open]);
        let candidate = &rest[open + 1..];
        match tag_at(candidate) {
            Some((kind, args, len)) => {
                tags.push(ExtraNetworkTag::new(kind, args));
                rest = &candidate[len..];
            }
            None => {
                text.push('<');
                rest = candidate;
            }
        }
    }
    text.push_str(rest);
    (text, tags)
}

/// `kind`, `args` and the length through the closing `>` of a tag starting just after a `<`.
fn tag_at(s: &str) -> Option<(&str, &str, usize)> {
    let kind_len = s
        .char_indices()
        .find(|&(_, c)| !is_word(c))
        .map_or(s.len(), |(i, _)| i);
    if kind_len == 0 || !s[kind_len..].starts_with(':') {
        return None;
    }
    let args_start = kind_len + 1;
    let close = args_start + s[args_start..].find('>')?;
    if close == args_start {
        return None;
    }
    Some((&s[..kind_len], &s[args_start..close], close + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(prompt: &str) -> (String, Vec<(String, Vec<String>)>) {
        let (text, tags) = parse_extra_networks(prompt);
        (text, tags.into_iter().map(|t| (t.kind, t.items)).collect())
    }

    fn items(kind: &str, items: &[&str]) -> (String, Vec<String>) {
        (
            kind.to_owned(),
            items.iter().map(|s| s.to_string()).collect(),
        )
    }

    /// Each case worked through A1111's `re.sub(r"<(\w+):([^>]+)>", found, prompt)`.
    #[test]
    fn tags_are_found_and_removed_as_a1111s_pattern_does() {
        assert_eq!(
            parse("a <lora:x:1>"),
            ("a ".into(), vec![items("lora", &["x", "1"])])
        );
        assert_eq!(
            parse("<lora:a:0.5><hypernet:b:1> c"),
            (
                " c".into(),
                vec![items("lora", &["a", "0.5"]), items("hypernet", &["b", "1"])]
            )
        );
        // `[^>]+` takes `<` and newlines; the kind stops at the first non-word character.
        assert_eq!(
            parse("<a:<b:c>"),
            ("".into(), vec![items("a", &["<b", "c"])])
        );
        assert_eq!(
            parse("<lora:x\ny>"),
            ("".into(), vec![items("lora", &["x\ny"])])
        );
        assert_eq!(
            parse("<lö_ra2:x>"),
            ("".into(), vec![items("lö_ra2", &["x"])])
        );
        // Not tags: no kind, no colon, nothing after the colon, no closing `>`.
        for literal in [
            "<:x>",
            "<lora>",
            "<lora:>",
            "<lora:x",
            "a < b",
            "<lo ra:x>",
            "<-a:x>",
        ] {
            assert_eq!(parse(literal), (literal.into(), vec![]), "{literal}");
        }
        // A failed `<` is kept and the search goes on from the next character.
        assert_eq!(
            parse("<<lora:x>"),
            ("<".into(), vec![items("lora", &["x"])])
        );
        assert_eq!(
            parse("(<lora:x:1.2>:1.1)"),
            ("(:1.1)".into(), vec![items("lora", &["x", "1.2"])])
        );
        // Empty arguments are kept, as Python's split.
        assert_eq!(
            parse("<lora:x::0.5>"),
            ("".into(), vec![items("lora", &["x", "", "0.5"])])
        );
    }

    #[test]
    fn named_arguments_are_the_ones_with_exactly_one_equals_sign() {
        let (_, tags) = parse_extra_networks("<lora:x:0.5:unet=0.2:te=0.1:a=b=c:dyn=8>");
        let tag = &tags[0];
        assert_eq!(tag.positional, ["x", "0.5", "a=b=c"]);
        assert_eq!(tag.named["unet"], "0.2");
        assert_eq!(tag.named["te"], "0.1");
        assert_eq!(tag.named["dyn"], "8");
    }
}
