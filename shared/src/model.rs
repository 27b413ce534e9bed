//! What the protocol knows about a served model: its name, metadata, tokenizer and labels.

use std::path::Path;

use crate::activation::Activation;
use crate::chat::ChatTemplate;
use crate::config::ModelConfig;
use crate::cross_encoder::CrossEncoderHead;
use crate::engine::{ModelShape, OutputKind};
use crate::moderation::ModerationPolicy;
use crate::response::unix_now;
use crate::tokenize::{RerankPrompt, TextTokenizer};

/// The files of a Hugging Face model directory (what `save_pretrained` writes) that this project reads.
pub mod file_names {
    pub const CONFIG: &str = "config.json";
    pub const TOKENIZER: &str = "tokenizer.json";
    pub const TOKENIZER_CONFIG: &str = "tokenizer_config.json";
    pub const CHAT_TEMPLATE: &str = "chat_template.jinja";
    /// This project's own: how `/v1/moderations` flags the model's labels.
    pub const MODERATION: &str = "moderation.json";
    /// This project's own: an LLM reranker's prompt and answer tokens (`tokenize::RerankPrompt`).
    pub const RERANKER: &str = "reranker.json";
    /// The weights in one file.
    pub const SAFETENSORS: &str = "model.safetensors";
    /// The weights in shards: the index names them.
    pub const SAFETENSORS_INDEX: &str = "model.safetensors.index.json";
}

pub struct ServedModel {
    /// The name clients send in `model`.
    pub name: String,
    pub config: ModelConfig,
    pub tokenizer: TextTokenizer,
    /// One label per class of the head, in class-id order.
    pub labels: Vec<String>,
    pub max_model_len: usize,
    /// Token ids must be below this (the embedding table's rows).
    pub vocab_size: usize,
    /// One answer per input (classifiers, rerankers, reward models) or per token (token classification).
    pub output: OutputKind,
    /// Unix seconds when the model was loaded.
    pub created: u64,
    /// The chat template for `messages` requests; `Err` says why the model's template cannot be used.
    pub chat_template: Result<Option<ChatTemplate>, String>,
    /// Which labels flag on `/v1/moderations`, and from what score.
    pub moderation: ModerationPolicy,
    /// An LLM reranker's prompt: pairs are put in it instead of the tokenizer's pair template.
    pub prompt: Option<RerankPrompt>,
}

/// config.json and the tokenizer files of a Hugging Face model directory.
pub struct ModelFiles {
    pub config: ModelConfig,
    /// config.json as read, for engines whose architecture configs parse more of it.
    pub config_json: Vec<u8>,
    pub tokenizer: TextTokenizer,
    pub chat_template: Result<Option<ChatTemplate>, String>,
    /// `moderation.json`, when present.
    pub moderation: Option<Vec<u8>>,
    /// The prompt of an LLM reranker (a `*ForCausalLM` checkpoint, or any with `reranker.json`).
    pub prompt: Option<RerankPrompt>,
    /// The head of a Sentence-Transformers cross-encoder saved as modules; `config` already counts its scores
    /// and carries its activation.
    pub cross_encoder: Option<CrossEncoderHead>,
}

impl ModelFiles {
    /// Reads `config.json`, `tokenizer.json` and, when present, `tokenizer_config.json`, `chat_template.jinja`,
    /// `moderation.json`, `reranker.json` and a Sentence-Transformers cross-encoder's modules. Errors name the file; a chat template that cannot be used is kept as its error
    /// (the model still classifies text).
    pub fn read(dir: &Path) -> Result<ModelFiles, String> {
        let read = |name: &str| {
            std::fs::read(dir.join(name)).map_err(|e| format!("{}: {e}", dir.join(name).display()))
        };
        let config_json = read(file_names::CONFIG)?;
        let mut config = ModelConfig::from_json(&config_json)
            .map_err(|e| format!("{}: {e}", dir.join(file_names::CONFIG).display()))?;
        let cross_encoder = CrossEncoderHead::read(dir)?;
        if let Some(head) = &cross_encoder {
            config.use_cross_encoder_head(head);
        }
        let tokenizer_config = dir.join(file_names::TOKENIZER_CONFIG);
        let tokenizer_config = if tokenizer_config.exists() {
            Some(read(file_names::TOKENIZER_CONFIG)?)
        } else {
            None
        };
        let tokenizer =
            TextTokenizer::from_json(&read(file_names::TOKENIZER)?, tokenizer_config.as_deref())
                .map_err(|e| format!("{}: {e}", dir.join(file_names::TOKENIZER).display()))?;
        let template_file = dir.join(file_names::CHAT_TEMPLATE);
        let template_file = if template_file.exists() {
            let bytes = read(file_names::CHAT_TEMPLATE)?;
            Some(
                String::from_utf8(bytes)
                    .map_err(|_| format!("{}: not UTF-8", template_file.display()))?,
            )
        } else {
            None
        };
        // tokenizer_config.json parsed already (TextTokenizer::from_json refuses invalid JSON).
        let tokenizer_config = tokenizer_config
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or(serde_json::Value::Null);
        let chat_template = ChatTemplate::from_files(template_file, &tokenizer_config);
        let optional = |name: &str| match dir.join(name).exists() {
            true => read(name).map(Some),
            false => Ok(None),
        };
        let moderation = optional(file_names::MODERATION)?;
        let reranker = optional(file_names::RERANKER)?;
        let prompt = RerankPrompt::for_model(&config, &tokenizer, reranker.as_deref()).map_err(|e| {
            match reranker {
                Some(_) => format!("{}: {e}", dir.join(file_names::RERANKER).display()),
                None => format!(
                    "{}: served as an LLM reranker with Qwen3-Reranker's prompt ({} may set another): {e}",
                    dir.display(),
                    file_names::RERANKER
                ),
            }
        })?;
        if let Err(e) = &chat_template {
            tracing::warn!(model = %dir.display(), "chat requests will be refused: {e}");
        }
        Ok(ModelFiles {
            config,
            config_json,
            tokenizer,
            chat_template,
            moderation,
            prompt,
            cross_encoder,
        })
    }
}

impl ServedModel {
    /// Joins the files with what the engine found in the weights. The max length is the position table's size,
    /// lowered by the tokenizer's `model_max_length` when that is smaller.
    pub fn new(name: String, files: ModelFiles, shape: ModelShape) -> Result<ServedModel, String> {
        let labels = files.config.labels(shape.num_classes)?;
        let max_model_len = match files.tokenizer.model_max_length() {
            Some(limit) if limit > 0 => limit.min(shape.max_positions),
            _ => shape.max_positions,
        };
        let moderation = ModerationPolicy::new(&labels, files.moderation.as_deref())
            .map_err(|e| format!("{}: {e}", file_names::MODERATION))?;
        Ok(ServedModel {
            name,
            config: files.config,
            tokenizer: files.tokenizer,
            labels,
            max_model_len,
            vocab_size: shape.vocab_size,
            output: shape.output,
            created: unix_now(),
            chat_template: files.chat_template,
            moderation,
            prompt: files.prompt,
        })
    }

    /// The task in vLLM's names: `classify` for one answer per input, `token_classify` per token.
    pub fn task(&self) -> &'static str {
        match self.output {
            OutputKind::Sequence => "classify",
            OutputKind::Token => "token_classify",
        }
    }

    pub fn num_classes(&self) -> usize {
        self.labels.len()
    }

    pub fn activation(&self) -> Activation {
        Activation::for_model(
            self.config.problem_type,
            self.config.saved_activation,
            self.num_classes(),
        )
    }

    /// Reward models with a `reward_token_id` score the hidden state of that token: an input that does not end
    /// with it gets it appended (and counted in usage), as the models' own scoring code (`get_score`) does for
    /// any input — texts, token ids, chat messages and sentence pairs alike.
    pub fn append_reward_token(&self, ids: &mut Vec<u32>) {
        if let Some(token) = self.config.reward_token_id
            && ids.last() != Some(&token)
        {
            ids.push(token);
        }
    }

    /// Places of the max length that [`ServedModel::append_reward_token`] may take: a truncation budget keeps
    /// room for them.
    pub fn appended_tokens(&self) -> usize {
        usize::from(self.config.reward_token_id.is_some())
    }

    /// The class id of the NLI label "entailment" as transformers' zero-shot pipeline finds it: the first
    /// `label2id` key that starts with "entail" (any case), else the first such label in class order.
    pub fn entailment_id(&self) -> Option<usize> {
        let entails = |label: &str| label.to_lowercase().starts_with("entail");
        match &self.config.label2id {
            Some(label2id) => label2id
                .iter()
                .find(|(label, _)| entails(label))
                .map(|(_, &id)| id)
                .filter(|&id| id < self.num_classes()),
            None => self.labels.iter().position(|label| entails(label)),
        }
    }

    pub fn architecture(&self) -> &str {
        self.config.architecture().unwrap_or("unknown")
    }
}
