//! LLM rerankers' prompts: a causal LM asked whether a document meets a query, scored on its "yes" token against
//! "no" at the end of a fixed prompt. Qwen3-Reranker's prompt is the default for a `*ForCausalLM` checkpoint;
//! `reranker.json` beside a model replaces any part of it (and gives any model, e.g. a reranker converted to
//! `*ForSequenceClassification`, a prompt).

use serde::Deserialize;
use tokenizers::TruncationDirection;

use super::pair::{PairCut, PairEncodeError, PairSide, PairTruncation};
use super::text::TextTokenizer;
use crate::config::ModelConfig;
use crate::engine::TokenSequence;

/// Qwen3-Reranker's model card: the system line and the user turn's opening.
pub const DEFAULT_PREFIX: &str = "<|im_start|>system\nJudge whether the Document meets the requirements based on the \
                                  Query and the Instruct provided. Note that the answer can only be \"yes\" or \
                                  \"no\".<|im_end|>\n<|im_start|>user\n";
/// The assistant turn with an empty think block, after which the model answers.
pub const DEFAULT_SUFFIX: &str = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n";
pub const DEFAULT_TEMPLATE: &str =
    "<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {document}";
pub const DEFAULT_INSTRUCTION: &str =
    "Given a web search query, retrieve relevant passages that answer the query";

/// The two tokens whose logits make the score: `softmax([no, yes])[yes]`, i.e. `sigmoid(yes - no)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct YesNoTokens {
    pub yes: u32,
    pub no: u32,
}

/// `reranker.json`: every field optional, Qwen3-Reranker's value when left out.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RerankerFile {
    prefix: Option<String>,
    suffix: Option<String>,
    template: Option<String>,
    default_instruction: Option<String>,
    yes_token: Option<String>,
    no_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Instruction,
    Query,
    Document,
}

#[derive(Debug, Clone)]
pub struct RerankPrompt {
    prefix: Vec<u32>,
    suffix: Vec<u32>,
    template: Vec<Piece>,
    default_instruction: String,
    pub tokens: YesNoTokens,
}

impl RerankPrompt {
    /// The model's prompt: from `reranker.json` when there is one, else Qwen3-Reranker's for a `*ForCausalLM`
    /// checkpoint, else none (a cross-encoder pairs texts with its tokenizer's pair template).
    pub fn for_model(
        config: &ModelConfig,
        tokenizer: &TextTokenizer,
        file: Option<&[u8]>,
    ) -> Result<Option<RerankPrompt>, String> {
        let causal_lm = config
            .architecture()
            .is_some_and(|a| a.ends_with("ForCausalLM"));
        let file: RerankerFile = match file {
            Some(bytes) => serde_json::from_slice(bytes).map_err(|e| e.to_string())?,
            None if causal_lm => RerankerFile::default(),
            None => return Ok(None),
        };
        let token = |text: Option<String>, default: &str| {
            let text = text.unwrap_or_else(|| default.to_owned());
            tokenizer.inner.token_to_id(&text).ok_or_else(|| {
                format!("the tokenizer has no token `{text}` to score the answer with")
            })
        };
        let tokens = YesNoTokens {
            yes: token(file.yes_token, "yes")?,
            no: token(file.no_token, "no")?,
        };
        let fixed = |text: Option<String>, default: &str| {
            let text = text.unwrap_or_else(|| default.to_owned());
            tokenizer
                .inner
                .encode(text, false)
                .map(|e| e.get_ids().to_vec())
                .map_err(|e| e.to_string())
        };
        Ok(Some(RerankPrompt {
            prefix: fixed(file.prefix, DEFAULT_PREFIX)?,
            suffix: fixed(file.suffix, DEFAULT_SUFFIX)?,
            template: parse_template(file.template.as_deref().unwrap_or(DEFAULT_TEMPLATE))?,
            default_instruction: file
                .default_instruction
                .unwrap_or_else(|| DEFAULT_INSTRUCTION.to_owned()),
            tokens,
        }))
    }

    /// Whether the template has a place for a request's `instruction`.
    pub fn takes_instruction(&self) -> bool {
        self.template.contains(&Piece::Instruction)
    }

    /// The template filled in, and the byte where the document starts in it.
    fn body(&self, instruction: Option<&str>, query: &str, document: &str) -> (String, usize) {
        let mut body = String::with_capacity(query.len() + document.len() + 256);
        let mut document_at = 0;
        for piece in &self.template {
            match piece {
                Piece::Text(text) => body.push_str(text),
                Piece::Instruction => {
                    body.push_str(instruction.unwrap_or(&self.default_instruction))
                }
                Piece::Query => body.push_str(query),
                Piece::Document => {
                    document_at = body.len();
                    body.push_str(document);
                }
            }
        }
        (body, document_at)
    }

    /// The prompt's tokens for (`query`, `document`): prefix, the filled template, suffix, each tokenized alone
    /// without special tokens, as Qwen3-Reranker's model card does. A cut keeps the prefix and suffix and takes
    /// the template's tokens from the end (the document's end): `longest_first` as the model card truncates,
    /// `only_second` the same but refused where the document would lose every token; `only_first` cannot be done.
    pub fn encode(
        &self,
        tokenizer: &TextTokenizer,
        instruction: Option<&str>,
        query: &str,
        document: &str,
        cut: Option<PairCut>,
        limit: usize,
    ) -> Result<TokenSequence, PairEncodeError> {
        let fixed = self.prefix.len() + self.suffix.len();
        let (body, document_at) = self.body(instruction, query, document);
        let tokenizer_error = |e: String| PairEncodeError::Tokenizer(e);
        let body_ids = match cut {
            Some(PairCut {
                max_tokens,
                strategy,
            }) => {
                let budget =
                    max_tokens
                        .checked_sub(fixed)
                        .ok_or(PairEncodeError::BelowSpecialTokens {
                            max_tokens,
                            specials: fixed,
                        })?;
                if strategy == PairTruncation::OnlyFirst {
                    return Err(PairEncodeError::PromptCutsTheEnd);
                }
                let (encoding, _) = tokenizer
                    .plain_tokens_from(&body, budget, TruncationDirection::Right)
                    .map_err(tokenizer_error)?;
                if strategy == PairTruncation::OnlySecond && encoding.len() > budget {
                    let before_document = encoding
                        .get_offsets()
                        .iter()
                        .take_while(|(start, _)| *start < document_at)
                        .count();
                    if before_document >= budget {
                        return Err(PairEncodeError::KeptSideTooLong {
                            side: PairSide::First,
                            max_tokens,
                        });
                    }
                }
                let mut ids = encoding.get_ids().to_vec();
                ids.truncate(budget);
                ids
            }
            None => {
                let wanted = (limit + 1).saturating_sub(fixed);
                let (encoding, whole) = tokenizer
                    .plain_tokens_from(&body, wanted, TruncationDirection::Right)
                    .map_err(tokenizer_error)?;
                let count = encoding.len() + fixed;
                if count > limit {
                    return Err(PairEncodeError::TooLong {
                        count: if whole { count } else { limit + 1 },
                        exact: whole,
                    });
                }
                encoding.get_ids().to_vec()
            }
        };
        let mut ids = Vec::with_capacity(fixed + body_ids.len());
        ids.extend_from_slice(&self.prefix);
        ids.extend(body_ids);
        ids.extend_from_slice(&self.suffix);
        Ok(TokenSequence::single(ids))
    }
}

/// `{query}` and `{document}` once each, `{instruction}` at most once; `{{` and `}}` are literal braces (Python's
/// `str.format`, which the model cards use).
fn parse_template(template: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('{', Some('{')) | ('}', Some('}')) => {
                chars.next();
                text.push(c);
            }
            ('{', _) => {
                let name: String = chars.by_ref().take_while(|&c| c != '}').collect();
                let piece = match name.as_str() {
                    "instruction" => Piece::Instruction,
                    "query" => Piece::Query,
                    "document" => Piece::Document,
                    _ => {
                        return Err(format!(
                            "template: unknown placeholder `{{{name}}}` (use {{instruction}}, {{query}}, \
                             {{document}}, and {{{{ }}}} for braces)"
                        ));
                    }
                };
                if pieces.contains(&piece) {
                    return Err(format!("template: `{{{name}}}` appears twice"));
                }
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(piece);
            }
            ('}', _) => return Err("template: a lone `}` (write `}}` for a brace)".to_owned()),
            _ => text.push(c),
        }
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    for (piece, name) in [(Piece::Query, "query"), (Piece::Document, "document")] {
        if !pieces.contains(&piece) {
            return Err(format!("template: `{{{name}}}` is missing"));
        }
    }
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenize::tests::BERT_TOKENIZER;

    fn causal_lm() -> ModelConfig {
        ModelConfig::from_json(br#"{"architectures":["Qwen3ForCausalLM"]}"#).unwrap()
    }

    fn tokenizer() -> TextTokenizer {
        TextTokenizer::from_json(BERT_TOKENIZER.as_bytes(), None).unwrap()
    }

    /// The test tokenizer's words (a..e) as the answer tokens, and a short prompt in them.
    const SHORT: &[u8] =
        br#"{"prefix": "a", "suffix": "e", "template": "{instruction} b {query} c {document}",
                             "default_instruction": "d", "yes_token": "a", "no_token": "b"}"#;

    #[test]
    fn templates_are_parsed_as_python_formats_them() {
        assert_eq!(
            parse_template("{{x}} {query}: {document}}}").unwrap(),
            [
                Piece::Text("{x} ".into()),
                Piece::Query,
                Piece::Text(": ".into()),
                Piece::Document,
                Piece::Text("}".into())
            ]
        );
        for (bad, says) in [
            ("{query} {doc}", "`{doc}`"),
            ("{query}", "`{document}` is missing"),
            ("{query} {document} {query}", "twice"),
            ("{query} } {document}", "lone"),
        ] {
            let err = parse_template(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn only_causal_lms_or_a_reranker_file_get_a_prompt() {
        let tokenizer = tokenizer();
        let classifier =
            ModelConfig::from_json(br#"{"architectures":["BertForSequenceClassification"]}"#)
                .unwrap();
        assert!(
            RerankPrompt::for_model(&classifier, &tokenizer, None)
                .unwrap()
                .is_none()
        );
        let prompt = RerankPrompt::for_model(&classifier, &tokenizer, Some(SHORT))
            .unwrap()
            .unwrap();
        assert_eq!(prompt.tokens, YesNoTokens { yes: 4, no: 5 });
        // The default answer tokens are not in the test vocabulary: the error says which.
        let err = RerankPrompt::for_model(&causal_lm(), &tokenizer, None).unwrap_err();
        assert!(err.contains("`yes`"), "{err}");
        let err = RerankPrompt::for_model(&causal_lm(), &tokenizer, Some(br#"{"answer": "a"}"#))
            .unwrap_err();
        assert!(err.contains("answer"), "{err}");
    }

    #[test]
    fn prompts_are_prefix_body_suffix_and_cut_at_the_document_end() {
        let tokenizer = tokenizer();
        let prompt = RerankPrompt::for_model(&causal_lm(), &tokenizer, Some(SHORT))
            .unwrap()
            .unwrap();
        assert!(prompt.takes_instruction());
        // a | d b <query> c <document> | e, with a=4 b=5 c=6 d=7 e=8.
        let encode = |instruction, cut| prompt.encode(&tokenizer, instruction, "a", "b c", cut, 64);
        assert_eq!(encode(None, None).unwrap().ids, [4, 7, 5, 4, 6, 5, 6, 8]);
        assert_eq!(
            encode(Some("e"), None).unwrap().ids,
            [4, 8, 5, 4, 6, 5, 6, 8]
        );
        let cut = |max_tokens, strategy| {
            Some(PairCut {
                max_tokens,
                strategy,
            })
        };
        assert_eq!(
            encode(None, cut(7, PairTruncation::LongestFirst))
                .unwrap()
                .ids,
            [4, 7, 5, 4, 6, 5, 8]
        );
        assert_eq!(
            encode(None, cut(7, PairTruncation::OnlySecond))
                .unwrap()
                .ids,
            [4, 7, 5, 4, 6, 5, 8]
        );
        // Six tokens keep only what comes before the document: only_second refuses, longest_first cuts.
        assert_eq!(
            encode(None, cut(6, PairTruncation::OnlySecond)),
            Err(PairEncodeError::KeptSideTooLong {
                side: PairSide::First,
                max_tokens: 6
            })
        );
        assert!(encode(None, cut(6, PairTruncation::LongestFirst)).is_ok());
        assert_eq!(
            encode(None, cut(1, PairTruncation::LongestFirst)),
            Err(PairEncodeError::BelowSpecialTokens {
                max_tokens: 1,
                specials: 2
            })
        );
        assert_eq!(
            encode(None, cut(7, PairTruncation::OnlyFirst)),
            Err(PairEncodeError::PromptCutsTheEnd)
        );
        assert_eq!(
            prompt.encode(&tokenizer, None, "a", "b c", None, 7),
            Err(PairEncodeError::TooLong {
                count: 8,
                exact: true
            })
        );
    }
}
