#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod and;
mod ast;
mod emphasis;
mod error;
mod extra_networks;
mod number;
mod parse;
mod prompt;
mod prompt_schedule;
pub mod python_number;
pub mod unicode;
mod unicode_tables;

pub use and::{AndPart, split_and};
pub use ast::{Ast, Bracket, Node, Span, When};
pub use emphasis::{Attention, ROUND_MULTIPLIER, SQUARE_MULTIPLIER, parse_attention};
pub use error::{
    DEFAULT_MAX_PROMPT_CHARS, IssueKind, ParseIssue, PromptTooLong, check_prompt_length,
};
pub use extra_networks::{ExtraNetworkTag, parse_extra_networks};
pub use parse::MAX_NESTING;
pub use prompt::{Conditioning, Prompt, PromptScheduleEntry, Subprompt, WeightedPromptSchedule};
pub use prompt_schedule::Steps;
