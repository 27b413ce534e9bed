//! One text through the tokenizer with the contract's rules: the tokenizer.json's own padding and truncation are
//! ignored; `add_special_tokens` and `truncate_prompt_tokens` are applied per request.

use serde_json::Value;
use tokenizers::{PostProcessor, Tokenizer, TruncationDirection};

pub struct TextTokenizer {
    pub(super) inner: Tokenizer,
    /// Special tokens the post-processor adds to a single sequence ([CLS] and [SEP] for BERT, BOS for Llama).
    num_special_tokens: usize,
    /// Special tokens its pair template adds (3 for BERT's `[CLS] a [SEP] b [SEP]`, 4 for RoBERTa's).
    pub(super) num_pair_special_tokens: usize,
    pub(super) truncation_side: TruncationDirection,
    /// `model_max_length` from tokenizer_config.json when it is a real limit (not transformers' 1e30 placeholder).
    model_max_length: Option<usize>,
    /// Bytes of the longest vocabulary entry: no token covers more of the text than that (about), which sizes the
    /// first prefix of a long text to tokenize.
    longest_token_bytes: usize,
    /// The unknown token: tokenizer_config.json's `unk_token` (what transformers reports), else the model's own.
    pub(super) unk_id: Option<u32>,
    /// The ids the post-processor adds to a single text (`[CLS]`, `[SEP]`; `<s>`, `</s>`).
    pub(super) template_ids: Vec<u32>,
}

/// Why a text could not be tokenized within a limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodeError {
    Tokenizer(String),
    /// The text has `count` tokens (special tokens included), or at least that many when `exact` is false (a
    /// prefix already had them and the rest was not tokenized).
    TooLong {
        count: usize,
        exact: bool,
    },
}

impl std::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EncodeError::Tokenizer(e) => write!(f, "{e}"),
            EncodeError::TooLong { count, exact: true } => write!(f, "{count} tokens"),
            EncodeError::TooLong {
                count,
                exact: false,
            } => write!(f, "more than {} tokens", count - 1),
        }
    }
}

/// A long text is tokenized in prefixes (suffixes when truncating on the left) cut at whitespace, starting at
/// this many times what the wanted tokens could cover and doubling, until one yields enough tokens.
const FIRST_WINDOW_FACTOR: usize = 2;
/// Texts up to this many bytes are always tokenized whole.
const MIN_WINDOW_BYTES: usize = 4096;

impl TextTokenizer {
    /// Builds from tokenizer.json and, when present, tokenizer_config.json (for `truncation_side`).
    pub fn from_json(
        tokenizer_json: &[u8],
        tokenizer_config: Option<&[u8]>,
    ) -> Result<Self, String> {
        let mut inner = Tokenizer::from_bytes(tokenizer_json).map_err(|e| e.to_string())?;
        let configured_side = inner.get_truncation().map(|t| t.direction);
        inner.with_padding(None);
        inner.with_truncation(None).map_err(|e| e.to_string())?;
        let config: Value = match tokenizer_config {
            Some(bytes) => {
                serde_json::from_slice(bytes).map_err(|e| format!("tokenizer_config.json: {e}"))?
            }
            None => Value::Null,
        };
        let side_from_config = match config.get("truncation_side").and_then(Value::as_str) {
            Some("left") => Some(TruncationDirection::Left),
            Some("right") => Some(TruncationDirection::Right),
            Some(other) => {
                return Err(format!(
                    "tokenizer_config.json: unknown truncation_side `{other}`"
                ));
            }
            None => None,
        };
        let model_max_length = config
            .get("model_max_length")
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok());
        let unk_id = unk_token(&config, &inner).and_then(|token| inner.token_to_id(&token));
        let template_ids = inner
            .encode("", true)
            .map(|e| e.get_ids().to_vec())
            .unwrap_or_default();
        let num_special_tokens = inner
            .get_post_processor()
            .map_or(0, |p| p.added_tokens(false));
        let num_pair_special_tokens = inner
            .get_post_processor()
            .map_or(0, |p| p.added_tokens(true));
        let longest_token_bytes = inner
            .get_vocab(true)
            .keys()
            .map(String::len)
            .max()
            .unwrap_or(1);
        Ok(TextTokenizer {
            inner,
            num_special_tokens,
            num_pair_special_tokens,
            truncation_side: side_from_config
                .or(configured_side)
                .unwrap_or(TruncationDirection::Right),
            model_max_length,
            longest_token_bytes,
            unk_id,
            template_ids,
        })
    }

    pub fn num_special_tokens(&self) -> usize {
        self.num_special_tokens
    }

    pub fn model_max_length(&self) -> Option<usize> {
        self.model_max_length
    }

    /// Token ids for `text`, keeping at most `max_tokens` in total (special tokens included and kept). With a
    /// limit, only as much of a long text is tokenized as the kept tokens need (see [`Self::plain_tokens`]).
    pub fn encode(
        &self,
        text: &str,
        add_special_tokens: bool,
        max_tokens: Option<usize>,
    ) -> Result<Vec<u32>, String> {
        let specials = self.specials(add_special_tokens);
        let Some(limit) = max_tokens else {
            let full = self.inner.encode(text, add_special_tokens);
            return full
                .map(|e| e.get_ids().to_vec())
                .map_err(|e| e.to_string());
        };
        if limit < specials {
            return Err(format!(
                "cannot keep {limit} tokens: the tokenizer adds {specials} special tokens"
            ));
        }
        // The same steps as the tokenizer's own truncation: cut the plain sequence, then add the special tokens.
        let (mut plain, _) = self.plain_tokens(text, limit - specials)?;
        plain.truncate(limit - specials, 0, self.truncation_side);
        self.finish(plain, add_special_tokens)
    }

    /// Token ids for `text` when it has at most `limit` tokens (special tokens included); otherwise
    /// [`EncodeError::TooLong`], found without tokenizing more of a long text than a prefix past the limit.
    pub fn encode_within(
        &self,
        text: &str,
        add_special_tokens: bool,
        limit: usize,
    ) -> Result<Vec<u32>, EncodeError> {
        let specials = self.specials(add_special_tokens);
        let wanted = (limit + 1).saturating_sub(specials);
        let (plain, whole) = self
            .plain_tokens(text, wanted)
            .map_err(EncodeError::Tokenizer)?;
        let count = plain.len() + specials;
        if count > limit {
            return Err(EncodeError::TooLong {
                count: if whole { count } else { limit + 1 },
                exact: whole,
            });
        }
        self.finish(plain, add_special_tokens)
            .map_err(EncodeError::Tokenizer)
    }

    fn specials(&self, add_special_tokens: bool) -> usize {
        if add_special_tokens {
            self.num_special_tokens
        } else {
            0
        }
    }

    fn finish(
        &self,
        plain: tokenizers::Encoding,
        add_special_tokens: bool,
    ) -> Result<Vec<u32>, String> {
        if !add_special_tokens || self.num_special_tokens == 0 {
            return Ok(plain.get_ids().to_vec());
        }
        let processed = self
            .inner
            .post_process(plain, None, true)
            .map_err(|e| e.to_string())?;
        Ok(processed.get_ids().to_vec())
    }

    /// The plain tokens (no special tokens) of `text`, or of the part of it on the truncation side that has at
    /// least `wanted` of them, and whether that is the whole text. The part ends (or, truncating on the left,
    /// starts) at a whitespace character, so its tokens are the same as the whole text's there for every
    /// tokenizer whose pre-tokenizer splits on whitespace (BERT, byte-level BPE, Metaspace), which makes this
    /// exact; it bounds the work on a huge text to about what the wanted tokens cover.
    pub(super) fn plain_tokens(
        &self,
        text: &str,
        wanted: usize,
    ) -> Result<(tokenizers::Encoding, bool), String> {
        self.plain_tokens_from(text, wanted, self.truncation_side)
    }

    /// As [`Self::plain_tokens`], keeping the `side` of a long text whatever the tokenizer's truncation side.
    pub(super) fn plain_tokens_from(
        &self,
        text: &str,
        wanted: usize,
        side: TruncationDirection,
    ) -> Result<(tokenizers::Encoding, bool), String> {
        let mut window = wanted
            .saturating_add(1)
            .saturating_mul(self.longest_token_bytes)
            .saturating_mul(FIRST_WINDOW_FACTOR)
            .max(MIN_WINDOW_BYTES);
        loop {
            let part = (window < text.len())
                .then(|| whitespace_cut(text, window, side))
                .flatten();
            let Some(part) = part else {
                let whole = self.inner.encode(text, false).map_err(|e| e.to_string())?;
                return Ok((whole, true));
            };
            let encoding = self.inner.encode(part, false).map_err(|e| e.to_string())?;
            if encoding.len() >= wanted {
                return Ok((encoding, false));
            }
            window = window.saturating_mul(2);
        }
    }
    /// Keeps `limit` of the caller's token ids, cutting on the tokenizer's truncation side.
    pub fn truncate_ids(&self, ids: &mut Vec<u32>, limit: usize) {
        if ids.len() <= limit {
            return;
        }
        match self.truncation_side {
            TruncationDirection::Right => ids.truncate(limit),
            TruncationDirection::Left => {
                ids.drain(..ids.len() - limit);
            }
        }
    }
}

/// The unknown token's text: tokenizer_config.json's `unk_token` (a string or an added-token object), else the
/// WordPiece or BPE model's.
fn unk_token(config: &Value, tokenizer: &Tokenizer) -> Option<String> {
    let configured = match config.get("unk_token") {
        Some(Value::String(token)) => Some(token.clone()),
        Some(object) => object
            .get("content")
            .and_then(Value::as_str)
            .map(str::to_owned),
        None => None,
    };
    configured.or_else(|| match tokenizer.get_model() {
        tokenizers::ModelWrapper::WordPiece(model) => Some(model.unk_token.clone()),
        tokenizers::ModelWrapper::BPE(model) => model.unk_token.clone(),
        _ => None,
    })
}

/// The first (or, from the left, last) at most `window` bytes of `text`, ending before (starting at) a whitespace
/// character; `None` when there is no whitespace there to cut at.
fn whitespace_cut(text: &str, window: usize, side: TruncationDirection) -> Option<&str> {
    match side {
        TruncationDirection::Right => {
            let mut end = window.min(text.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            let cut = text[..end].rfind(char::is_whitespace)?;
            Some(&text[..cut])
        }
        TruncationDirection::Left => {
            let mut start = text.len().saturating_sub(window);
            while !text.is_char_boundary(start) {
                start += 1;
            }
            let cut = start + text[start..].find(char::is_whitespace)?;
            Some(&text[cut..])
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A tiny WordPiece tokenizer in the BERT layout, with padding and truncation settings that must be ignored.
    pub(crate) const BERT_TOKENIZER: &str = r###"{
      "version": "1.0",
      "truncation": {"direction": "Right", "max_length": 3, "strategy": "LongestFirst", "stride": 0},
      "padding": {"strategy": {"Fixed": 16}, "direction": "Right", "pad_to_multiple_of": null, "pad_id": 0,
                  "pad_type_id": 0, "pad_token": "[PAD]"},
      "added_tokens": [],
      "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                     "strip_accents": null, "lowercase": true},
      "pre_tokenizer": {"type": "BertPreTokenizer"},
      "post_processor": {"type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                   {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                           "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
      "decoder": null,
      "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                "max_input_chars_per_word": 100,
                "vocab": {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "a": 4, "b": 5, "c": 6, "d": 7, "e": 8}}
    }"###;

    pub(crate) fn bert() -> TextTokenizer {
        TextTokenizer::from_json(BERT_TOKENIZER.as_bytes(), None).unwrap()
    }

    #[test]
    fn stored_padding_and_truncation_are_ignored() {
        assert_eq!(
            bert().encode("a b c d e", true, None).unwrap(),
            [2, 4, 5, 6, 7, 8, 3]
        );
    }

    #[test]
    fn special_tokens_can_be_left_out() {
        let tokenizer = bert();
        assert_eq!(tokenizer.num_special_tokens(), 2);
        assert_eq!(tokenizer.encode("a b", false, None).unwrap(), [4, 5]);
    }

    #[test]
    fn truncation_keeps_special_tokens_in_the_budget() {
        let tokenizer = bert();
        assert_eq!(
            tokenizer.encode("a b c d e", true, Some(4)).unwrap(),
            [2, 4, 5, 3]
        );
        assert_eq!(
            tokenizer.encode("a b c d e", false, Some(2)).unwrap(),
            [4, 5]
        );
        assert_eq!(
            tokenizer.encode("a b", true, Some(10)).unwrap(),
            [2, 4, 5, 3]
        );
        assert!(tokenizer.encode("a b c", true, Some(1)).is_err());
    }

    #[test]
    fn left_truncation_side_from_tokenizer_config() {
        let tokenizer = TextTokenizer::from_json(
            BERT_TOKENIZER.as_bytes(),
            Some(br#"{"truncation_side":"left","model_max_length":1e30}"#),
        )
        .unwrap();
        assert_eq!(tokenizer.model_max_length(), None);
        assert_eq!(
            tokenizer.encode("a b c d e", true, Some(4)).unwrap(),
            [2, 7, 8, 3]
        );
        let mut ids = vec![1, 2, 3, 4];
        tokenizer.truncate_ids(&mut ids, 2);
        assert_eq!(ids, [3, 4]);
    }

    #[test]
    fn model_max_length_from_tokenizer_config() {
        let tokenizer = TextTokenizer::from_json(
            BERT_TOKENIZER.as_bytes(),
            Some(br#"{"model_max_length":512}"#),
        );
        assert_eq!(tokenizer.unwrap().model_max_length(), Some(512));
    }

    #[test]
    fn ids_truncate_on_the_right_by_default() {
        let mut ids = vec![1, 2, 3, 4];
        bert().truncate_ids(&mut ids, 3);
        assert_eq!(ids, [1, 2, 3]);
    }

    /// Truncating the whole text's tokens, as transformers does.
    fn reference(tokenizer: &TextTokenizer, text: &str, limit: usize) -> Vec<u32> {
        let mut plain = tokenizer.inner.encode(text, false).unwrap();
        plain.truncate(limit - 2, 0, tokenizer.truncation_side);
        let full = tokenizer.inner.post_process(plain, None, true).unwrap();
        full.get_ids().to_vec()
    }

    #[test]
    fn a_huge_text_is_cut_exactly_as_truncating_all_its_tokens() {
        let text = format!("{}  e\td", "a bb cde  ".repeat(50_000));
        let right = bert();
        let left = TextTokenizer::from_json(
            BERT_TOKENIZER.as_bytes(),
            Some(br#"{"truncation_side":"left"}"#),
        )
        .unwrap();
        for tokenizer in [&right, &left] {
            for limit in [2, 5, 64, 3000] {
                assert_eq!(
                    tokenizer.encode(&text, true, Some(limit)).unwrap(),
                    reference(tokenizer, &text, limit),
                    "limit {limit}"
                );
            }
        }
        assert!(
            !right.plain_tokens(&text, 10).unwrap().1,
            "only a prefix is tokenized"
        );
    }

    #[test]
    fn whitespace_runs_and_unbroken_words_still_give_the_exact_answer() {
        let spaces = format!("{}a b c", " ".repeat(100_000));
        assert_eq!(bert().encode(&spaces, true, Some(3)).unwrap(), [2, 4, 3]);
        let word = "a".repeat(100_000);
        assert_eq!(
            bert().encode(&word, true, Some(3)).unwrap(),
            reference(&bert(), &word, 3)
        );
    }

    #[test]
    fn within_a_limit_a_long_text_is_refused_from_a_prefix() {
        let tokenizer = bert();
        assert_eq!(
            tokenizer.encode_within("a b c", true, 5).unwrap(),
            [2, 4, 5, 6, 3]
        );
        assert_eq!(
            tokenizer.encode_within("a b c d", true, 5),
            Err(EncodeError::TooLong {
                count: 6,
                exact: true
            })
        );
        let huge = "a ".repeat(500_000);
        let refused = tokenizer.encode_within(&huge, true, 512).unwrap_err();
        assert_eq!(
            refused,
            EncodeError::TooLong {
                count: 513,
                exact: false
            }
        );
        assert_eq!(refused.to_string(), "more than 512 tokens");
    }

    #[test]
    fn invalid_tokenizer_json_is_an_error() {
        assert!(TextTokenizer::from_json(b"{}", None).is_err());
        assert!(TextTokenizer::from_json(BERT_TOKENIZER.as_bytes(), Some(b"not json")).is_err());
    }
}
