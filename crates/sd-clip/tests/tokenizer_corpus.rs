//! Token ids against transformers' `CLIPTokenizer` on the committed corpus
//! (`fixtures/tokenizer/corpus.json`, written by `tools/make_tokenizer_corpus.py`), and the
//! padded model inputs of the golden fixtures.

use std::path::{Path, PathBuf};

use burn::store::{ModuleStore, SafetensorsStore, bridge};
use sd_clip::ClipTokenizer;
use serde::Deserialize;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures");

#[derive(Deserialize)]
struct Corpus {
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

fn corpus() -> Corpus {
    let path = Path::new(FIXTURES).join("tokenizer/corpus.json");
    let text = std::fs::read_to_string(&path).expect("corpus.json exists");
    serde_json::from_str(&text).expect("corpus.json parses")
}

/// Every mismatch, so one failing run shows them all.
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
fn bundled_vocabulary_matches_transformers_on_the_corpus() {
    let corpus = corpus();
    assert!(
        corpus.cases.len() >= 1000,
        "corpus has {} cases",
        corpus.cases.len()
    );
    let tokenizer = ClipTokenizer::standard().expect("bundled vocabulary");
    assert_eq!(tokenizer.vocab_size(), 49408);
    let bad = mismatches(&tokenizer, &corpus.cases);
    assert!(
        bad.is_empty(),
        "{} of {} differ:\n{}",
        bad.len(),
        corpus.cases.len(),
        bad.join("\n")
    );
}

#[test]
fn tiny_fixture_tokenizer_folder_matches_transformers() {
    let corpus = corpus();
    let tokenizer = ClipTokenizer::from_pretrained(&Path::new(FIXTURES).join("tiny-sd1"))
        .expect("tokenizer folder");
    assert_eq!(
        (
            tokenizer.bos_id(),
            tokenizer.eos_id(),
            tokenizer.vocab_size()
        ),
        (8190, 8191, 8192)
    );
    let bad = mismatches(&tokenizer, &corpus.tiny_cut.cases);
    assert!(bad.is_empty(), "{} differ:\n{}", bad.len(), bad.join("\n"));
}

#[test]
fn bundled_cut_equals_the_tiny_fixture_vocabulary() {
    // The documented rule: an embedding table of V rows takes the bundled vocabulary cut to
    // V - 514 merges; the tiny models have 8192 rows, i.e. 7678 merges.
    let corpus = corpus();
    let cut = ClipTokenizer::for_vocab_size(8192).expect("cut");
    assert_eq!(
        (cut.bos_id(), cut.eos_id(), cut.vocab_size()),
        (8190, 8191, 8192)
    );
    let bad = mismatches(&cut, &corpus.tiny_cut.cases);
    assert!(bad.is_empty(), "{} differ:\n{}", bad.len(), bad.join("\n"));
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
        let tokenizer =
            ClipTokenizer::from_pretrained(&Path::new(FIXTURES).join(model)).expect("tokenizer");
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
