//! Tokenization on top of the `tokenizers` crate with the contract's rules: single texts (`text.rs`) and
//! sentence pairs through the tokenizer's pair template with transformers' truncation strategies (`pair.rs`).

mod pair;
mod text;

pub use pair::{PairCut, PairEncodeError, PairSide, PairTruncation};
#[cfg(test)]
pub(crate) use text::tests;
pub use text::{EncodeError, TextTokenizer};
