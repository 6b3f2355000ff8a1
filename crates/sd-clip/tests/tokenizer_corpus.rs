//! Token ids against the reference tokenizers on the committed corpora, written by
//! `tools/make_tokenizer_corpus.py`:
//!
//! - `fixtures/tokenizer/a1111.json`: what A1111 gives — transformers 4.30.2's slow
//!   `CLIPTokenizer` with ftfy 6.3.1 (SD 1.x, [`TextNormalization::A1111Sd1`]) and OpenCLIP
//!   2.20.0's `SimpleTokenizer` (SD 2.x, [`TextNormalization::OpenClip`]), with the bundled
//!   vocabulary and the tiny models' tokenizer folder, plus ftfy's `fix_text` output and
//!   OpenCLIP's cleaned text for the text-fixing sections;
//! - `fixtures/tokenizer/corpus.json`: transformers 5's `CLIPTokenizer`
//!   ([`TextNormalization::Transformers5`]);
//!
//! and the padded model inputs of the golden fixtures.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use burn::store::{ModuleStore, SafetensorsStore, bridge};
use sd_clip::{
    ClipTokenizer, TextNormalization,
    normalize::{self, TextNormalization as N},
};
use serde::Deserialize;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures");

#[derive(Deserialize)]
struct A1111Corpus {
    sections: BTreeMap<String, Vec<A1111Case>>,
    tiny: BTreeMap<String, Vec<A1111Case>>,
}

#[derive(Deserialize)]
struct A1111Case {
    text: String,
    sd1: Vec<u32>,
    /// OpenCLIP's ids where they differ from `sd1`, or the exception it raised.
    open_clip: Option<OpenClipIds>,
    ftfy: Option<String>,
    open_clip_clean: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OpenClipIds {
    Ids(Vec<u32>),
    Raised(String),
}

impl A1111Case {
    fn open_clip_ids(&self) -> Option<&[u32]> {
        match &self.open_clip {
            None => Some(&self.sd1),
            Some(OpenClipIds::Ids(ids)) => Some(ids),
            Some(OpenClipIds::Raised(_)) => None,
        }
    }
}

fn a1111_corpus() -> A1111Corpus {
    let path = Path::new(FIXTURES).join("tokenizer/a1111.json");
    let text = std::fs::read_to_string(&path).expect("a1111.json exists");
    serde_json::from_str(&text).expect("a1111.json parses")
}

/// Every mismatch of `tokenizer` against `expected` over all sections, so one failing run
/// shows them all.
fn a1111_mismatches(
    tokenizer: &ClipTokenizer,
    sections: &BTreeMap<String, Vec<A1111Case>>,
    expected: impl Fn(&A1111Case) -> Option<&[u32]>,
) -> (usize, Vec<String>) {
    let mut checked = 0;
    let mut bad = Vec::new();
    for (section, cases) in sections {
        for case in cases {
            let Some(want) = expected(case) else { continue };
            checked += 1;
            let ids = tokenizer.encode(&case.text).expect("encodes");
            if ids != want {
                bad.push(format!(
                    "[{section}] {:?}: ours {ids:?}, reference {want:?}",
                    case.text
                ));
            }
        }
    }
    (checked, bad)
}

fn assert_none_differ(what: &str, (checked, bad): (usize, Vec<String>)) {
    assert!(
        bad.is_empty(),
        "{what}: {} of {checked} differ:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn a1111_corpus_covers_every_section() {
    let corpus = a1111_corpus();
    let total: usize = corpus.sections.values().map(Vec::len).sum();
    assert!(total >= 2000, "{total} cases");
    for (name, cases) in &corpus.sections {
        assert!(!cases.is_empty(), "{name}");
        assert!(!corpus.tiny[name].is_empty(), "tiny {name}");
        // OpenCLIP raised on none of them (a case where it did would be skipped).
        for case in cases {
            if let Some(OpenClipIds::Raised(error)) = &case.open_clip {
                panic!("[{name}] OpenCLIP raised {error} on {:?}", case.text);
            }
        }
    }
}

#[test]
fn sd1_ids_match_transformers_slow_tokenizer_with_ftfy() {
    let tokenizer = ClipTokenizer::standard().expect("bundled vocabulary");
    assert_eq!(tokenizer.normalization(), TextNormalization::A1111Sd1);
    let corpus = a1111_corpus();
    assert_none_differ(
        "SD 1.x",
        a1111_mismatches(&tokenizer, &corpus.sections, |c| Some(&c.sd1)),
    );
    // The corpus tells the normalisations apart: without ftfy, hundreds of texts differ.
    let transformers5 = tokenizer.with_normalization(TextNormalization::Transformers5);
    let (_, differ) = a1111_mismatches(&transformers5, &corpus.sections, |c| Some(&c.sd1));
    assert!(
        differ.len() > 300,
        "only {} differ without ftfy",
        differ.len()
    );
}

#[test]
fn sd2_ids_match_open_clip() {
    let tokenizer = ClipTokenizer::standard()
        .expect("bundled vocabulary")
        .with_normalization(TextNormalization::OpenClip);
    assert_none_differ(
        "SD 2.x",
        a1111_mismatches(
            &tokenizer,
            &a1111_corpus().sections,
            A1111Case::open_clip_ids,
        ),
    );
}

#[test]
fn tiny_tokenizer_folder_matches_both_references() {
    let corpus = a1111_corpus();
    for tokenizer in [
        ClipTokenizer::from_pretrained(&Path::new(FIXTURES).join("tiny-sd1")).expect("folder"),
        ClipTokenizer::for_vocab_size(8192).expect("cut"),
    ] {
        assert_eq!(
            (
                tokenizer.bos_id(),
                tokenizer.eos_id(),
                tokenizer.vocab_size()
            ),
            (8190, 8191, 8192)
        );
        assert_none_differ(
            "tiny SD 1.x",
            a1111_mismatches(&tokenizer, &corpus.tiny, |c| Some(&c.sd1)),
        );
        let open_clip = tokenizer.with_normalization(TextNormalization::OpenClip);
        assert_none_differ(
            "tiny SD 2.x",
            a1111_mismatches(&open_clip, &corpus.tiny, A1111Case::open_clip_ids),
        );
    }
}

#[test]
fn normalised_text_matches_ftfy_and_open_clip() {
    let corpus = a1111_corpus();
    let mut bad = Vec::new();
    let mut checked = 0;
    for (section, case) in corpus
        .sections
        .iter()
        .flat_map(|(s, cases)| cases.iter().map(move |c| (s, c)))
    {
        if let Some(want) = &case.ftfy {
            checked += 1;
            let ours = normalize::fix_text(&case.text);
            if &ours != want {
                bad.push(format!(
                    "[{section}] fix_text({:?}) = {ours:?}, ftfy {want:?}",
                    case.text
                ));
            }
        }
        if let Some(want) = &case.open_clip_clean {
            let ours = N::OpenClip.clean(&case.text);
            if &ours != want {
                bad.push(format!(
                    "[{section}] OpenCLIP clean({:?}) = {ours:?}, reference {want:?}",
                    case.text
                ));
            }
        }
    }
    assert!(checked > 800, "{checked}");
    assert!(bad.is_empty(), "{} differ:\n{}", bad.len(), bad.join("\n"));
}

#[derive(Deserialize)]
struct Transformers5Corpus {
    cases: Vec<Case>,
    tiny_cut: TinyCut,
}

#[derive(Deserialize)]
struct TinyCut {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
}

fn transformers5_corpus() -> Transformers5Corpus {
    let path = Path::new(FIXTURES).join("tokenizer/corpus.json");
    let text = std::fs::read_to_string(&path).expect("corpus.json exists");
    serde_json::from_str(&text).expect("corpus.json parses")
}

fn mismatches(tokenizer: &ClipTokenizer, cases: &[Case]) -> Vec<String> {
    cases
        .iter()
        .filter_map(|case| {
            let ids = tokenizer.encode(&case.text).expect("encodes");
            (ids != case.ids)
                .then(|| format!("{:?}: ours {ids:?}, transformers {:?}", case.text, case.ids))
        })
        .collect()
}

#[test]
fn transformers5_mode_matches_transformers_5() {
    let corpus = transformers5_corpus();
    assert!(corpus.cases.len() >= 1000, "{} cases", corpus.cases.len());
    let tokenizer = ClipTokenizer::standard()
        .expect("bundled vocabulary")
        .with_normalization(TextNormalization::Transformers5);
    assert_eq!(tokenizer.vocab_size(), 49408);
    let bad = mismatches(&tokenizer, &corpus.cases);
    assert!(
        bad.is_empty(),
        "{} of {} differ:\n{}",
        bad.len(),
        corpus.cases.len(),
        bad.join("\n")
    );
    for tiny in [
        ClipTokenizer::from_pretrained(&Path::new(FIXTURES).join("tiny-sd1")).expect("folder"),
        ClipTokenizer::for_vocab_size(8192).expect("cut"),
    ] {
        let tiny = tiny.with_normalization(TextNormalization::Transformers5);
        let bad = mismatches(&tiny, &corpus.tiny_cut.cases);
        assert!(bad.is_empty(), "{} differ:\n{}", bad.len(), bad.join("\n"));
    }
    assert!(ClipTokenizer::for_vocab_size(513).is_err());
    assert!(ClipTokenizer::for_vocab_size(49409).is_err());
}

fn reference_input_ids(model: &str) -> Vec<Vec<u32>> {
    let path: PathBuf = [FIXTURES, "reference", model, "clip.safetensors"]
        .iter()
        .collect();
    let mut store = SafetensorsStore::from_file(path);
    let tensor = store
        .get_tensor("input_ids")
        .expect("readable")
        .expect("input_ids present");
    let shape = tensor.shape.clone();
    let data = bridge::to_data(tensor).expect("data");
    let ids: Vec<i64> = data.try_to_vec().expect("int64 ids");
    ids.chunks(shape[1])
        .map(|row| row.iter().map(|&i| i as u32).collect())
        .collect()
}

/// The prompts of `tools/make_fixtures.py` (PROMPTS), whose padded ids the reference holds.
fn fixture_prompts() -> Vec<String> {
    vec![
        String::new(),
        "a photo of a cat".into(),
        "half (realbenny-t1 | yoda) person, star war, art by artgerm and greg rutkowski and alphonse mucha".into(),
        "a portrait of realbenny-t2 as a pixar character, 8k, highly detailed, trending on artstation".into(),
        "Ünïcödé text, emoji 🎨🖌️, numbers 1234567890 and punctuation!?;: (weights:1.5) [brackets]".into(),
        ["a very long prompt that will certainly be truncated at seventy seven tokens"; 8].join(" "),
    ]
}

#[test]
fn padded_inputs_match_the_golden_fixtures() {
    for model in ["tiny-sd1", "tiny-sd2"] {
        // make_fixtures.py tokenized with diffusers on transformers 5.
        let tokenizer = ClipTokenizer::from_pretrained(&Path::new(FIXTURES).join(model))
            .expect("tokenizer")
            .with_normalization(TextNormalization::Transformers5);
        // tiny-sd2's tokenizer_config.json pads with "!" (id 0), as OpenCLIP does.
        let pad = if model == "tiny-sd2" { 0 } else { 8191 };
        assert_eq!(tokenizer.pad_id(), pad, "{model}");
        let expected = reference_input_ids(model);
        for (prompt, want) in fixture_prompts().iter().zip(&expected) {
            let ours = tokenizer.encode_padded(prompt, 77).expect("encodes");
            assert_eq!(&ours, want, "{model}: {prompt:?}");
        }
    }
}
