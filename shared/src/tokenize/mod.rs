//! Tokenization on top of the `tokenizers` crate with the contract's rules: single texts (`text.rs`) and
//! sentence pairs through the tokenizer's pair template with transformers' truncation strategies (`pair.rs`) or an
//! LLM reranker's prompt (`prompt.rs`), and texts with the characters of each token for token classification
//! (`spans.rs`).

mod pair;
mod prompt;
mod spans;
mod text;

pub use pair::{PairCut, PairEncodeError, PairSide, PairTruncation};
pub use prompt::{RerankPrompt, YesNoTokens};
pub use spans::{Overflow, SpannedTokens};
#[cfg(test)]
pub(crate) use text::tests;
pub use text::{EncodeError, TextTokenizer};
