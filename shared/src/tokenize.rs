//! Tokenization on top of the `tokenizers` crate with the contract's rules: the tokenizer.json's own padding and
//! truncation are ignored; `add_special_tokens` and `truncate_prompt_tokens` are applied per request.

use serde_json::Value;
use tokenizers::{PostProcessor, Tokenizer, TruncationDirection};

pub struct TextTokenizer {
    inner: Tokenizer,
    /// Special tokens the post-processor adds to a single sequence ([CLS] and [SEP] for BERT, BOS for Llama).
    num_special_tokens: usize,
    truncation_side: TruncationDirection,
    /// `model_max_length` from tokenizer_config.json when it is a real limit (not transformers' 1e30 placeholder).
    model_max_length: Option<usize>,
}

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
        let num_special_tokens = inner
            .get_post_processor()
            .map_or(0, |p| p.added_tokens(false));
        Ok(TextTokenizer {
            inner,
            num_special_tokens,
            truncation_side: side_from_config
                .or(configured_side)
                .unwrap_or(TruncationDirection::Right),
            model_max_length,
        })
    }

    pub fn num_special_tokens(&self) -> usize {
        self.num_special_tokens
    }

    pub fn model_max_length(&self) -> Option<usize> {
        self.model_max_length
    }

    /// Token ids for `text`, keeping at most `max_tokens` in total (special tokens included and kept).
    pub fn encode(
        &self,
        text: &str,
        add_special_tokens: bool,
        max_tokens: Option<usize>,
    ) -> Result<Vec<u32>, String> {
        let full = self
            .inner
            .encode(text, add_special_tokens)
            .map_err(|e| e.to_string())?;
        let Some(limit) = max_tokens.filter(|&limit| full.len() > limit) else {
            return Ok(full.get_ids().to_vec());
        };
        let specials = if add_special_tokens {
            self.num_special_tokens
        } else {
            0
        };
        if limit < specials {
            return Err(format!(
                "cannot keep {limit} tokens: the tokenizer adds {specials} special tokens"
            ));
        }
        // The same steps as the tokenizer's own truncation: cut the plain sequence, then add the special tokens.
        let mut plain = self.inner.encode(text, false).map_err(|e| e.to_string())?;
        plain.truncate(limit - specials, 0, self.truncation_side);
        if specials == 0 {
            return Ok(plain.get_ids().to_vec());
        }
        let processed = self
            .inner
            .post_process(plain, None, true)
            .map_err(|e| e.to_string())?;
        Ok(processed.get_ids().to_vec())
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

    #[test]
    fn invalid_tokenizer_json_is_an_error() {
        assert!(TextTokenizer::from_json(b"{}", None).is_err());
        assert!(TextTokenizer::from_json(BERT_TOKENIZER.as_bytes(), Some(b"not json")).is_err());
    }
}
