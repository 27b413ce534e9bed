//! Sentence pairs through the tokenizer's own pair template, cut by transformers' truncation strategies.

use tokenizers::utils::truncation::{TruncationParams, TruncationStrategy, truncate_encodings};

use super::text::TextTokenizer;
use crate::engine::TokenSequence;

/// How a sentence pair is cut to `max_tokens` in total: `truncate_prompt_tokens` and `truncation` of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairCut {
    pub max_tokens: usize,
    pub strategy: PairTruncation,
}

/// transformers' truncation strategies for a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairTruncation {
    /// Take tokens from the longer side first (the default).
    LongestFirst,
    /// Cut only the first text (the zero-shot pipeline's choice: the hypothesis stays whole).
    OnlyFirst,
    /// Cut only the second text (keeps a query whole).
    OnlySecond,
}

impl PairTruncation {
    /// The strategy named as transformers names it.
    pub fn from_name(name: &str) -> Option<PairTruncation> {
        match name {
            "longest_first" => Some(PairTruncation::LongestFirst),
            "only_first" => Some(PairTruncation::OnlyFirst),
            "only_second" => Some(PairTruncation::OnlySecond),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairSide {
    First,
    Second,
}

/// Why a pair could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PairEncodeError {
    Tokenizer(String),
    /// The cut asks for fewer tokens than the template's special tokens.
    BelowSpecialTokens {
        max_tokens: usize,
        specials: usize,
    },
    /// The side that must stay whole does not fit in `max_tokens` with the special tokens.
    KeptSideTooLong {
        side: PairSide,
        max_tokens: usize,
    },
    /// As [`EncodeError::TooLong`], for the pair.
    TooLong {
        count: usize,
        exact: bool,
    },
    /// `only_first` asked of an LLM reranker's prompt, which can only lose tokens at its end (the document's).
    PromptCutsTheEnd,
}

impl PairEncodeError {
    /// The error as the client sees it when the model appends `appended` tokens after the pair: budgets and
    /// counts include them.
    pub fn counting(self, appended: usize) -> PairEncodeError {
        match self {
            PairEncodeError::Tokenizer(e) => PairEncodeError::Tokenizer(e),
            PairEncodeError::BelowSpecialTokens {
                max_tokens,
                specials,
            } => PairEncodeError::BelowSpecialTokens {
                max_tokens: max_tokens + appended,
                specials,
            },
            PairEncodeError::KeptSideTooLong { side, max_tokens } => {
                PairEncodeError::KeptSideTooLong {
                    side,
                    max_tokens: max_tokens + appended,
                }
            }
            PairEncodeError::TooLong { count, exact } => PairEncodeError::TooLong {
                count: count + appended,
                exact,
            },
            PairEncodeError::PromptCutsTheEnd => PairEncodeError::PromptCutsTheEnd,
        }
    }
}

impl TextTokenizer {
    pub fn num_pair_special_tokens(&self) -> usize {
        self.num_pair_special_tokens
    }

    /// The tokens of the pair (`first`, `second`) through the tokenizer's own pair template, with its token type
    /// ids. With `cut`, the pair is cut to that many tokens in total (special tokens included) by the strategy;
    /// without, it must fit `limit`. Only as much of a long text is tokenized as that needs (each side is cut as
    /// in [`Self::encode`], which keeps the answer exact: every strategy looks at no more than `budget` tokens of
    /// either side).
    pub fn encode_pair(
        &self,
        first: &str,
        second: &str,
        cut: Option<PairCut>,
        limit: usize,
    ) -> Result<TokenSequence, PairEncodeError> {
        // An empty second text is no pair to transformers (`tokenizer(a, "")` encodes `a` alone), which is what a
        // document cut to nothing by `max_tokens_per_doc` becomes.
        let single = second.is_empty();
        let specials = match single {
            true => self.num_special_tokens(),
            false => self.num_pair_special_tokens,
        };
        let tokenizer_error = |e: String| PairEncodeError::Tokenizer(e);
        let (first, second) = match cut {
            Some(PairCut {
                max_tokens,
                strategy,
            }) => {
                let budget = max_tokens.checked_sub(specials).ok_or(
                    PairEncodeError::BelowSpecialTokens {
                        max_tokens,
                        specials,
                    },
                )?;
                let (first, _) = self.plain_tokens(first, budget).map_err(tokenizer_error)?;
                let (second, _) = self.plain_tokens(second, budget).map_err(tokenizer_error)?;
                let kept_whole = match strategy {
                    PairTruncation::OnlyFirst => Some((&second, PairSide::Second)),
                    PairTruncation::OnlySecond => Some((&first, PairSide::First)),
                    PairTruncation::LongestFirst => None,
                };
                if let Some((kept, side)) = kept_whole {
                    // The tokenizer refuses this too; say which side and by how much.
                    if first.len() + second.len() > budget && kept.len() >= budget {
                        return Err(PairEncodeError::KeptSideTooLong { side, max_tokens });
                    }
                }
                let params = TruncationParams {
                    direction: self.truncation_side,
                    max_length: budget,
                    strategy: match strategy {
                        PairTruncation::LongestFirst => TruncationStrategy::LongestFirst,
                        PairTruncation::OnlyFirst => TruncationStrategy::OnlyFirst,
                        PairTruncation::OnlySecond => TruncationStrategy::OnlySecond,
                    },
                    stride: 0,
                };
                let (first, second) = truncate_encodings(first, Some(second), &params)
                    .map_err(|e| tokenizer_error(e.to_string()))?;
                (first, second.unwrap_or_default())
            }
            None => {
                let wanted = (limit + 1).saturating_sub(specials);
                let (first, first_whole) =
                    self.plain_tokens(first, wanted).map_err(tokenizer_error)?;
                let (second, second_whole) =
                    self.plain_tokens(second, wanted).map_err(tokenizer_error)?;
                let count = first.len() + second.len() + specials;
                if count > limit {
                    let exact = first_whole && second_whole;
                    return Err(PairEncodeError::TooLong {
                        count: if exact { count } else { limit + 1 },
                        exact,
                    });
                }
                (first, second)
            }
        };
        let pair = self
            .inner
            .post_process(first, (!single).then_some(second), true)
            .map_err(|e| tokenizer_error(e.to_string()))?;
        let type_ids = pair.get_type_ids();
        Ok(TokenSequence {
            ids: pair.get_ids().to_vec(),
            type_ids: type_ids.iter().any(|&t| t != 0).then(|| type_ids.to_vec()),
        })
    }

    /// `text` up to where its `max_tokens`-th token ends (the text tokenized alone, without special tokens), as
    /// vLLM's `max_tokens_per_doc` cuts a document: whole characters of the original, not decoded tokens. A cut
    /// that still has more tokens (a word split differently once its end is gone) is cut again.
    pub fn cut_after_tokens<'t>(
        &self,
        text: &'t str,
        max_tokens: usize,
    ) -> Result<&'t str, String> {
        let mut kept = text;
        while !kept.is_empty() {
            let encoding = self
                .inner
                .encode_char_offsets(kept, false)
                .map_err(|e| e.to_string())?;
            let offsets = encoding.get_offsets();
            if offsets.len() <= max_tokens {
                break;
            }
            let chars = kept.chars().count();
            let end = match max_tokens.checked_sub(1) {
                None => 0,
                Some(last) => offsets[last].1.min(offsets[max_tokens].0),
            };
            // Where the cut would keep everything (offsets past the text), drop a character so each pass shortens.
            let end = end.min(chars - 1);
            let byte_end = kept
                .char_indices()
                .nth(end)
                .map_or(kept.len(), |(at, _)| at);
            kept = &kept[..byte_end];
        }
        Ok(kept)
    }
}

#[cfg(test)]
mod tests {
    use tokenizers::TruncationDirection;

    use super::*;
    use crate::tokenize::tests::BERT_TOKENIZER;

    /// The test tokenizer with BERT's pair template `[CLS] A [SEP] B:1 [SEP]:1`.
    fn bert_pairs() -> TextTokenizer {
        let json = BERT_TOKENIZER.replace(
            r#""pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}]"#,
            r#""pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                        {"SpecialToken": {"id": "[SEP]", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}},
                        {"SpecialToken": {"id": "[SEP]", "type_id": 1}}]"#,
        );
        TextTokenizer::from_json(json.as_bytes(), None).unwrap()
    }

    #[test]
    fn documents_are_cut_after_their_kth_token_at_its_end() {
        let tokenizer = bert_pairs();
        // BERT's normalizer lowercases; the cut keeps the original characters.
        assert_eq!(tokenizer.cut_after_tokens("A  b c", 2), Ok("A  b"));
        assert_eq!(tokenizer.cut_after_tokens("a b c", 3), Ok("a b c"));
        assert_eq!(tokenizer.cut_after_tokens("a b c", 1), Ok("a"));
        assert_eq!(tokenizer.cut_after_tokens("é a b", 1), Ok("é"));
        assert_eq!(tokenizer.cut_after_tokens("a b", 0), Ok(""));
        // A document cut to nothing leaves the query alone, in the single-text template, as transformers does.
        let alone = tokenizer.encode_pair("a b", "", None, 64).unwrap();
        assert_eq!(alone.ids, tokenizer.encode("a b", true, None).unwrap());
        assert_eq!(alone.type_ids, None);
    }

    fn cut(max_tokens: usize, strategy: PairTruncation) -> Option<PairCut> {
        Some(PairCut {
            max_tokens,
            strategy,
        })
    }

    #[test]
    fn pairs_use_the_pair_template_and_its_type_ids() {
        let tokenizer = bert_pairs();
        assert_eq!(tokenizer.num_pair_special_tokens(), 3);
        let pair = tokenizer.encode_pair("a b", "c", None, 64).unwrap();
        assert_eq!(pair.ids, [2, 4, 5, 3, 6, 3]);
        assert_eq!(pair.type_ids.as_deref(), Some(&[0, 0, 0, 0, 1, 1][..]));
    }

    #[test]
    fn pairs_are_cut_by_the_strategy() {
        let tokenizer = bert_pairs();
        let ids = |first, second, c| tokenizer.encode_pair(first, second, c, 64).map(|p| p.ids);
        // longest_first takes from the longer side: 4 + 1 plain tokens into a budget of 3.
        assert_eq!(
            ids("a b c d", "e", cut(6, PairTruncation::LongestFirst)).unwrap(),
            [2, 4, 5, 3, 8, 3]
        );
        assert_eq!(
            ids("a", "b c d e", cut(6, PairTruncation::OnlySecond)).unwrap(),
            [2, 4, 3, 5, 6, 3]
        );
        assert_eq!(
            ids("a b c d", "e", cut(6, PairTruncation::OnlyFirst)).unwrap(),
            [2, 4, 5, 3, 8, 3]
        );
        assert_eq!(
            tokenizer.encode_pair("a b c", "d", cut(2, PairTruncation::LongestFirst), 64),
            Err(PairEncodeError::BelowSpecialTokens {
                max_tokens: 2,
                specials: 3
            })
        );
        assert_eq!(
            tokenizer.encode_pair("a b c", "d", cut(5, PairTruncation::OnlySecond), 64),
            Err(PairEncodeError::KeptSideTooLong {
                side: PairSide::First,
                max_tokens: 5
            })
        );
        assert_eq!(
            tokenizer.encode_pair("a b c", "d e", None, 7),
            Err(PairEncodeError::TooLong {
                count: 8,
                exact: true
            })
        );
        assert!(tokenizer.encode_pair("a b c", "d e", None, 8).is_ok());
    }

    #[test]
    fn a_huge_pair_is_cut_exactly() {
        let tokenizer = bert_pairs();
        let query = "a b ".repeat(5);
        let document = "c d e ".repeat(100_000);
        for strategy in [PairTruncation::LongestFirst, PairTruncation::OnlySecond] {
            let ours = tokenizer
                .encode_pair(&query, &document, cut(16, strategy), 64)
                .unwrap();
            let params = TruncationParams {
                direction: TruncationDirection::Right,
                max_length: 13,
                strategy: match strategy {
                    PairTruncation::LongestFirst => TruncationStrategy::LongestFirst,
                    _ => TruncationStrategy::OnlySecond,
                },
                stride: 0,
            };
            let first = tokenizer.inner.encode(query.as_str(), false).unwrap();
            let second = tokenizer.inner.encode(document.as_str(), false).unwrap();
            let (first, second) = truncate_encodings(first, Some(second), &params).unwrap();
            let whole = tokenizer.inner.post_process(first, second, true).unwrap();
            assert_eq!(ours.ids, whole.get_ids(), "{strategy:?}");
        }
        let refused = tokenizer
            .encode_pair(&query, &document, None, 512)
            .unwrap_err();
        assert_eq!(
            refused,
            PairEncodeError::TooLong {
                count: 513,
                exact: false
            }
        );
    }
}
