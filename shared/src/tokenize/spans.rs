//! A text's tokens with the characters each came from, for token classification: offsets in Unicode code points
//! into the original text (what transformers' fast tokenizers report; the `tokenizers` crate counts bytes unless
//! asked), which tokens the template added, the vocabulary pieces, and decoding pieces back to text.

use tokenizers::{Decoder, Encoding, ModelWrapper};

use super::text::{EncodeError, TextTokenizer};

/// One window of a text's tokens, special tokens included.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SpannedTokens {
    pub ids: Vec<u32>,
    /// `[start, end)` in code points of the text; `(0, 0)` for special tokens.
    pub offsets: Vec<(usize, usize)>,
    /// Whether the tokenizer's template added the token (`[CLS]`, `[SEP]`, `<s>`, `</s>`).
    pub special: Vec<bool>,
}

impl SpannedTokens {
    /// The tokens of `encoding`, the offsets of its plain (not special) tokens taken from `plain` in order.
    fn new(encoding: &Encoding, plain: &[(usize, usize)]) -> SpannedTokens {
        let special: Vec<bool> = encoding
            .get_special_tokens_mask()
            .iter()
            .map(|&mask| mask != 0)
            .collect();
        let mut plain = plain.iter();
        let offsets = special
            .iter()
            .zip(encoding.get_offsets())
            .map(|(&special, &own)| match special {
                true => own,
                false => plain.next().copied().unwrap_or(own),
            })
            .collect();
        SpannedTokens {
            ids: encoding.get_ids().to_vec(),
            offsets,
            special,
        }
    }
}

/// What to do with a text that has more tokens than the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Refuse it ([`EncodeError::TooLong`]).
    Refuse,
    /// Keep `limit` tokens, cut on the tokenizer's truncation side.
    Truncate,
    /// Windows of at most `limit` tokens whose plain tokens overlap by `stride`, as the tokenizer gives them with
    /// `return_overflowing_tokens` (what transformers' token-classification pipeline runs with `stride`).
    Windows { stride: usize },
}

impl TextTokenizer {
    /// `text` as one window of at most `limit` tokens (special tokens included), or several with
    /// [`Overflow::Windows`]. `stride` must be below `limit` less the special tokens.
    pub fn encode_spans(
        &self,
        text: &str,
        add_special_tokens: bool,
        limit: usize,
        overflow: Overflow,
    ) -> Result<Vec<SpannedTokens>, EncodeError> {
        let specials = if add_special_tokens {
            self.num_special_tokens()
        } else {
            0
        };
        let room = limit.saturating_sub(specials);
        if room == 0 {
            return Err(EncodeError::Tokenizer(format!(
                "cannot keep {limit} tokens: the tokenizer adds {specials} special tokens"
            )));
        }
        if overflow == Overflow::Refuse {
            // A long text is refused from a prefix, before all of it is tokenized.
            self.encode_within(text, add_special_tokens, limit)?;
        }
        let tokenizer_error = |e: tokenizers::Error| EncodeError::Tokenizer(e.to_string());
        let mut plain = self
            .inner
            .encode_char_offsets(text, false)
            .map_err(tokenizer_error)?;
        match overflow {
            Overflow::Refuse => {}
            Overflow::Truncate => {
                plain.truncate(room, 0, self.truncation_side);
                plain.take_overflowing();
            }
            Overflow::Windows { stride } => {
                if stride >= room {
                    return Err(EncodeError::Tokenizer(format!(
                        "a stride of {stride} tokens leaves no new tokens in windows of {room}"
                    )));
                }
                plain.truncate(room, stride, self.truncation_side);
            }
        }
        // `encode` ran the post-processor already (without special tokens); running it again to add them moves
        // offsets it adjusts a second time (byte-level BPE's `trim_offsets`), so the plain tokens keep these.
        let plain_offsets: Vec<Vec<(usize, usize)>> = std::iter::once(&plain)
            .chain(plain.get_overflowing())
            .map(|e| e.get_offsets().to_vec())
            .collect();
        let mut first = if specials > 0 {
            self.inner
                .post_process(plain, None, true)
                .map_err(tokenizer_error)?
        } else {
            plain
        };
        let rest = first.take_overflowing();
        Ok(std::iter::once(&first)
            .chain(&rest)
            .zip(&plain_offsets)
            .map(|(encoding, plain)| SpannedTokens::new(encoding, plain))
            .collect())
    }

    /// The vocabulary entry of `id` (`##ing`, `Ġworld`, `▁world`), as transformers' `convert_ids_to_tokens`.
    pub fn piece(&self, id: u32) -> String {
        self.inner.id_to_token(id).unwrap_or_default()
    }

    /// Pieces back to text through the tokenizer's decoder, or joined by spaces when it has none (transformers'
    /// `convert_tokens_to_string`).
    pub fn join_pieces(&self, pieces: Vec<String>) -> String {
        match self.inner.get_decoder() {
            Some(decoder) => {
                let fallback = pieces.concat();
                decoder.decode(pieces).unwrap_or(fallback)
            }
            None => pieces.join(" "),
        }
    }

    /// Whether the model marks pieces that continue a word (WordPiece's `##`, a BPE's `continuing_subword_prefix`):
    /// then a token is a subword when its piece is longer than its text.
    pub fn marks_subwords(&self) -> bool {
        match self.inner.get_model() {
            ModelWrapper::WordPiece(model) => !model.continuing_subword_prefix.is_empty(),
            ModelWrapper::BPE(model) => model
                .continuing_subword_prefix
                .as_ref()
                .is_some_and(|prefix| !prefix.is_empty()),
            _ => false,
        }
    }

    pub fn unk_id(&self) -> Option<u32> {
        self.unk_id
    }

    /// Whether `id` is one the tokenizer's template adds (`[CLS]`, `[SEP]`): where token-id inputs, which carry
    /// no mask, have special tokens.
    pub fn is_special(&self, id: u32) -> bool {
        self.template_ids.contains(&id)
    }
}

#[cfg(test)]
mod tests {
    use super::super::text::tests::bert;
    use super::*;

    #[test]
    fn offsets_count_code_points_and_specials_are_marked() {
        let tokenizer = bert();
        let windows = tokenizer
            .encode_spans("éx a  b", true, 64, Overflow::Refuse)
            .unwrap();
        assert_eq!(windows.len(), 1);
        let window = &windows[0];
        assert_eq!(window.ids, [2, 1, 4, 5, 3]);
        // `éx` is 3 bytes and 2 code points: one unknown word.
        assert_eq!(window.offsets, [(0, 0), (0, 2), (3, 4), (6, 7), (0, 0)]);
        assert_eq!(window.special, [true, false, false, false, true]);
        assert_eq!(tokenizer.unk_id(), Some(1));
        assert!(tokenizer.marks_subwords());
        assert_eq!(tokenizer.piece(4), "a");
        assert!(tokenizer.is_special(2) && tokenizer.is_special(3) && !tokenizer.is_special(1));
    }

    #[test]
    fn overflow_refuses_truncates_or_makes_overlapping_windows() {
        let tokenizer = bert();
        assert_eq!(
            tokenizer.encode_spans("a b c d e", true, 5, Overflow::Refuse),
            Err(EncodeError::TooLong {
                count: 7,
                exact: true
            })
        );
        let cut = tokenizer
            .encode_spans("a b c d e", true, 5, Overflow::Truncate)
            .unwrap();
        assert_eq!(
            cut.iter().map(|w| w.ids.clone()).collect::<Vec<_>>(),
            [vec![2, 4, 5, 6, 3]]
        );
        let windows = tokenizer
            .encode_spans("a b c d e", true, 5, Overflow::Windows { stride: 1 })
            .unwrap();
        let ids: Vec<Vec<u32>> = windows.iter().map(|w| w.ids.clone()).collect();
        assert_eq!(ids, [vec![2, 4, 5, 6, 3], vec![2, 6, 7, 8, 3]]);
        assert_eq!(windows[1].offsets[1], (4, 5));
        assert!(
            tokenizer
                .encode_spans("a b c d e", true, 5, Overflow::Windows { stride: 3 })
                .is_err()
        );
        assert!(
            tokenizer
                .encode_spans("a", true, 2, Overflow::Truncate)
                .is_err()
        );
    }
}
