//! One module per group of targets; each target is re-exported at the crate root.

pub(crate) mod embeddings;
pub(crate) mod infotext;
pub(crate) mod prompt;
pub(crate) mod tokenizer;
pub(crate) mod torch;
pub(crate) mod training;
