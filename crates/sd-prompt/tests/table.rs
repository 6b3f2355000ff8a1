//! Readable cases: A1111's doctests (`modules/prompt_parser.py`), and the answers we chose
//! where A1111 raises or has no single answer. The exhaustive comparison is
//! `a1111_reference.rs`.

use sd_prompt::{Ast, IssueKind, MAX_NESTING, Node, Prompt, Steps, parse_attention};

fn schedule(text: &str, steps: Steps) -> Vec<(u32, String)> {
    Ast::parse(text).prompt_schedule(text, &steps)
}

fn attention(text: &str) -> Vec<(String, f64)> {
    parse_attention(text)
        .into_iter()
        .map(|a| (a.text, a.weight))
        .collect()
}

fn owned(v: &[(u32, &str)]) -> Vec<(u32, String)> {
    v.iter().map(|&(s, t)| (s, t.to_string())).collect()
}

#[test]
fn a1111_schedule_doctests() {
    // >>> g = lambda p: get_learned_conditioning_prompt_schedules([p], 10)[0]
    let ten = Steps::new(10);
    let rows: &[(&str, &[(u32, &str)])] = &[
        ("test", &[(10, "test")]),
        ("a [b:3]", &[(3, "a "), (10, "a b")]),
        ("a [b: 3]", &[(3, "a "), (10, "a b")]),
        ("a [[[b]]:2]", &[(2, "a "), (10, "a [[b]]")]),
        ("[(a:2):3]", &[(3, ""), (10, "(a:2)")]),
        ("a [b : c : 1] d", &[(1, "a b  d"), (10, "a  c  d")]),
        ("a[b:[c:d:2]:1]e", &[(1, "abe"), (2, "ace"), (10, "ade")]),
        ("a [unbalanced", &[(10, "a [unbalanced")]),
        ("a [b:.5] c", &[(5, "a  c"), (10, "a b c")]),
        // The doctest says otherwise, but A1111 fails it too since `|` left `plain`.
        ("a [{b|d{:.5] c", &[(10, "a [{b|d{:.5] c")]),
        ("((a][:b:c [d:3]", &[(3, "((a][:b:c "), (10, "((a][:b:c d")]),
    ];
    for (text, expected) in rows {
        assert_eq!(schedule(text, ten), owned(expected), "{text}");
    }
    let alt = schedule("[a|(b:1.1)]", ten);
    assert_eq!(alt.len(), 10);
    assert_eq!(alt[0], (1, "a".into()));
    assert_eq!(alt[9], (10, "(b:1.1)".into()));
    let fe: Vec<String> = schedule("[fe|||]male", ten)
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    assert_eq!(fe[..5], ["female", "male", "male", "male", "female"]);
    // >>> g = lambda p: get_learned_conditioning_prompt_schedules([p], 10, 10)[0]
    let hires = Steps {
        steps: 10,
        hires_steps: Some(10),
        old_scheduling: false,
    };
    assert_eq!(schedule("a [b:.5] c", hires), owned(&[(10, "a b c")]));
    assert_eq!(
        schedule("a [b:1.5] c", hires),
        owned(&[(5, "a  c"), (10, "a b c")])
    );
}

#[test]
fn a1111_attention_doctests() {
    let rows: &[(&str, &[(&str, f64)])] = &[
        ("normal text", &[("normal text", 1.0)]),
        (
            "an (important) word",
            &[("an ", 1.0), ("important", 1.1), (" word", 1.0)],
        ),
        ("(unbalanced", &[("unbalanced", 1.1)]),
        ("\\(literal\\]", &[("(literal]", 1.0)]),
        ("(unnecessary)(parens)", &[("unnecessaryparens", 1.1)]),
        (
            "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
            &[
                ("a ", 1.0),
                ("house", 1.5730000000000004),
                (" ", 1.1),
                ("on", 1.0),
                (" a ", 1.1),
                ("hill", 0.55),
                (", sun, ", 1.1),
                ("sky", 1.4641000000000006),
                (".", 1.1),
            ],
        ),
    ];
    for (text, expected) in rows {
        let expected: Vec<(String, f64)> =
            expected.iter().map(|&(t, w)| (t.to_string(), w)).collect();
        assert_eq!(attention(text), expected, "{text}");
    }
}

#[test]
fn break_inside_brackets_is_no_break() {
    // A1111: parse_prompt_attention('(BREAK)') == [['', 1.1], ['BREAK', -1.1], ['', 1.1]].
    let pieces = parse_attention("(BREAK)");
    assert_eq!(pieces[1].weight, -1.1);
    assert!(!pieces[1].is_break());
    assert!(parse_attention("a BREAK b")[1].is_break());
}

#[test]
fn where_a1111_raises() {
    // A1111: ValueError from float('1.2.3'). Here the weight is text and `(` stays open.
    assert_eq!(attention("(a:1.2.3)"), [("a:1.2.3)".to_string(), 1.1)]);
    assert_eq!(attention("(a:.)"), [("a:.)".to_string(), 1.1)]);
    // A1111: OverflowError from int(inf). Here the edit never switches.
    assert_eq!(schedule("[a:b:1e400]", Steps::new(10)), owned(&[(10, "a")]));
    assert_eq!(
        schedule("[a:b:-1e400]", Steps::new(10)),
        owned(&[(10, "b")])
    );
}

#[test]
fn ambiguous_in_a1111_reads_the_edit() {
    // lark 1.1.2 answers either way depending on PYTHONHASHSEED.
    assert_eq!(
        schedule("[a:3]))", Steps::new(10)),
        owned(&[(3, "))"), (10, "a))")])
    );
}

#[test]
fn unparseable_is_literal_with_a_reason() {
    for (text, kind, at) in [
        ("a | b [c:3]", IssueKind::StrayPipe, 2),
        ("(a|b)", IssueKind::StrayPipe, 2),
        ("[c:3] a\\", IssueKind::DanglingEscape, 7),
        ("a\\\nb", IssueKind::DanglingEscape, 1),
    ] {
        let ast = Ast::parse(text);
        let issue = ast.issue.clone().expect(text);
        assert_eq!((issue.kind, issue.span.start), (kind, at), "{text}");
        assert_eq!(
            ast.prompt_schedule(text, &Steps::new(10)),
            owned(&[(10, text)])
        );
    }
}

#[test]
fn nesting_limit() {
    let ok = format!("{}a:3{}", "[".repeat(MAX_NESTING), "]".repeat(MAX_NESTING));
    assert!(Ast::parse(&ok).issue.is_none());
    assert_eq!(schedule(&ok, Steps::new(10)).len(), 2);
    let deep = format!(
        "{}a:3{}",
        "[".repeat(MAX_NESTING + 1),
        "]".repeat(MAX_NESTING + 1)
    );
    assert_eq!(
        Ast::parse(&deep).issue.map(|i| i.kind),
        Some(IssueKind::NestingLimit)
    );
    assert_eq!(
        schedule(&deep, Steps::new(10)),
        owned(&[(10, deep.as_str())])
    );
    // Deep unbalanced brackets are only text, at any depth.
    let open = format!("{}[a:3]", "(".repeat(100_000));
    assert_eq!(schedule(&open, Steps::new(10)).len(), 2);
}

#[test]
fn ast_shape_and_spans() {
    let text = "a [b:c:0.5] AND (d:1.2) [e|f]:0.5";
    let prompt = Prompt::parse(text);
    let [first, second] = prompt.subprompts() else {
        panic!("two subprompts")
    };
    match &first.ast().nodes[1] {
        Node::Edit {
            span,
            from,
            to,
            when,
        } => {
            assert_eq!(span.of(text), "[b:c:0.5]");
            assert_eq!(from.as_ref().map(|f| f[0].span().of(text)), Some("b"));
            assert_eq!(to[0].span().of(text), "c");
            assert_eq!(
                (when.span.of(text), when.value, when.is_fraction),
                ("0.5", 0.5, true)
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(second.weight(), 0.5);
    assert_eq!(second.weight_span().map(|s| s.of(text)), Some("0.5"));
    assert!(
        matches!(second.ast().nodes.last(), Some(Node::Alternate { options, .. }) if options.len() == 2)
    );
}

#[test]
fn seed_prompts() {
    let text = "half (realbenny-t1 | yoda) person, star war, art by artgerm and greg rutkowski and alphonse mucha";
    // `|` inside round brackets is not an alternation: A1111 takes the prompt literally.
    let out = Prompt::parse(text).evaluate(&Steps::new(20));
    assert_eq!(out.subprompts[0].schedule.len(), 1);
    assert_eq!(
        out.subprompts[0].schedule[0].attention[1],
        sd_prompt::Attention {
            text: "realbenny-t1 | yoda".into(),
            weight: 1.1
        }
    );
    let out =
        Prompt::parse("a photo of realbenny-t2 as a pixar character").evaluate(&Steps::new(20));
    assert_eq!(
        out.subprompts[0].schedule[0].text,
        "a photo of realbenny-t2 as a pixar character"
    );
    assert_eq!(
        schedule("[realbenny-t1:yoda:0.5]", Steps::new(20)),
        owned(&[(10, "realbenny-t1"), (20, "yoda")])
    );
}

#[test]
fn json_shape() {
    // A1111: parse_prompt_attention('a BREAK (b)') ==
    //     [['a', 1.0], ['BREAK', -1], ['', 1.0], ['b', 1.1]]
    let out = Prompt::parse("a BREAK (b)").evaluate(&Steps::new(2));
    let json = serde_json::to_string(&out).unwrap_or_default();
    assert_eq!(
        json,
        r#"{"subprompts":[{"weight":1.0,"schedule":[{"end_at_step":2,"text":"a BREAK (b)","attention":[["a",1.0],["BREAK",-1],["",1.0],["b",1.1]]}]}]}"#
    );
}
