//! Which embeddings a generation's prompts used, and A1111's `TI hashes` infotext entry.
//!
//! A1111 (`sd_hijack_clip.FrozenCLIPEmbedderWithCustomWords.forward`) collects, in each pass
//! of texts through the text model, the embeddings spliced into its chunks — chunk by chunk,
//! text by text, in order, each name once — and then *prepends* that pass's `name: shorthash`
//! list to the `TI hashes` value built so far. A generation makes one pass per distinct
//! negative prompt, then one per distinct `AND` part of the prompt, so an embedding used in
//! both is listed twice, the positive prompt's first. [`EmbeddingUsage`] records the passes
//! of a [`PromptEncoder`](super::PromptEncoder) and rebuilds that value.

use std::cell::RefCell;

use super::chunk::PromptChunk;
use super::embedding::{EmbeddingId, EmbeddingLookup};

/// The embeddings each text-model pass of a [`PromptEncoder`](super::PromptEncoder) used.
/// Attach it with [`PromptEncoder::with_usage`](super::PromptEncoder::with_usage).
///
/// ```
/// use sd_core::conditioning::{EmbeddingLookup, EmbeddingUsage};
/// let usage = EmbeddingUsage::new();
/// assert_eq!(usage.ti_hashes(&EmbeddingLookup::new()), None);
/// ```
#[derive(Debug, Default)]
pub struct EmbeddingUsage {
    passes: RefCell<Vec<Vec<EmbeddingId>>>,
}

impl EmbeddingUsage {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    /// The embeddings of each pass so far, in A1111's order (chunk index, then text, then
    /// position), each once per pass.
    pub fn passes(&self) -> Vec<Vec<EmbeddingId>> {
        self.passes.borrow().clone()
    }

    /// Records one pass over `lines` (each text's chunks), `chunk_count` chunks deep.
    pub(crate) fn record(&self, lines: &[&[PromptChunk]], chunk_count: usize) {
        let mut used: Vec<EmbeddingId> = Vec::new();
        for i in 0..chunk_count {
            for chunks in lines {
                for fix in chunks.get(i).map_or(&[][..], |c| c.fixes.as_slice()) {
                    if !used.contains(&fix.embedding) {
                        used.push(fix.embedding);
                    }
                }
            }
        }
        self.passes.borrow_mut().push(used);
    }

    /// A1111's `TI hashes` value: for each pass, `name: shorthash` of its embeddings that have
    /// a shorthash (`:` and `,` removed from the name), each pass's list put before the value
    /// so far, joined by `, `. `None` when no used embedding has a shorthash.
    pub fn ti_hashes(&self, lookup: &EmbeddingLookup) -> Option<String> {
        let mut value: Option<String> = None;
        for pass in self.passes.borrow().iter() {
            let mut parts: Vec<String> = pass
                .iter()
                .filter_map(|&id| lookup.get(id))
                .filter_map(|e| {
                    let hash = e.shorthash.as_deref()?;
                    Some(format!("{}: {hash}", e.name.replace([':', ','], "")))
                })
                .collect();
            if parts.is_empty() {
                continue;
            }
            parts.extend(value.take());
            value = Some(parts.join(", "));
        }
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conditioning::{CHUNK_TOKENS, ChunkFix, TextualInversionVectors};

    fn chunk(ids: &[usize]) -> PromptChunk {
        PromptChunk {
            tokens: [0; CHUNK_TOKENS],
            weights: [1.0; CHUNK_TOKENS],
            fixes: ids
                .iter()
                .enumerate()
                .map(|(offset, &id)| ChunkFix {
                    offset,
                    embedding: EmbeddingId(id),
                })
                .collect(),
        }
    }

    #[test]
    fn passes_are_chunk_major_and_prepended_as_a1111() {
        let tokenizer = sd_clip::ClipTokenizer::standard().expect("vocabulary");
        let mut lookup = EmbeddingLookup::new();
        for (name, hash) in [("cat", Some("aaa")), ("do:g,", Some("bbb")), ("x", None)] {
            let mut v = TextualInversionVectors::new(name, vec![0.0; 4], 1, 4).expect("shape");
            if let Some(h) = hash {
                v = v.with_shorthash(h);
            }
            lookup.register(v, &tokenizer).expect("registers");
        }
        let usage = EmbeddingUsage::new();
        // Pass 1 (a negative prompt): text 0 has chunks [dog] [cat], text 1 has [cat, x].
        let (a, b) = (vec![chunk(&[1]), chunk(&[0])], vec![chunk(&[0, 2])]);
        usage.record(&[&a, &b], 2);
        assert_eq!(
            usage.passes(),
            [vec![EmbeddingId(1), EmbeddingId(0), EmbeddingId(2)]]
        );
        assert_eq!(
            usage.ti_hashes(&lookup).as_deref(),
            Some("dog: bbb, cat: aaa")
        );
        // Pass 2 (the prompt) uses cat again: listed first, the earlier value after it.
        let c = vec![chunk(&[0])];
        usage.record(&[&c], 1);
        assert_eq!(
            usage.ti_hashes(&lookup).as_deref(),
            Some("cat: aaa, dog: bbb, cat: aaa")
        );
        // A pass whose embeddings have no hash changes nothing.
        let d = vec![chunk(&[2])];
        usage.record(&[&d], 1);
        assert_eq!(
            usage.ti_hashes(&lookup).as_deref(),
            Some("cat: aaa, dog: bbb, cat: aaa")
        );
    }
}
