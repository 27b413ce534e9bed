//! The parts of a Hugging Face `config.json` that the contract and the engines need.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::activation::{Activation, ProblemType};
use crate::cross_encoder::CrossEncoderHead;

/// Model metadata read from config.json. Unknown keys are ignored.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub architectures: Vec<String>,
    pub model_type: Option<String>,
    pub num_labels: Option<usize>,
    /// `id2label` with its string keys parsed to class ids.
    pub id2label: Option<BTreeMap<usize, String>>,
    /// `label2id`, in key order (serde_json keeps no other).
    pub label2id: Option<BTreeMap<String, usize>>,
    pub problem_type: Option<ProblemType>,
    /// The `activation_fn` a Sentence-Transformers cross-encoder saved (`sentence_transformers.activation_fn`).
    pub saved_activation: Option<Activation>,
    pub pad_token_id: Option<u32>,
    pub vocab_size: Option<usize>,
    pub max_position_embeddings: Option<usize>,
    /// Reward models scored at this token (InternLM2's `reward_token_id`): appended to inputs that lack it.
    pub reward_token_id: Option<u32>,
}

#[derive(Deserialize)]
struct RawConfig {
    #[serde(default)]
    architectures: Option<Vec<String>>,
    model_type: Option<String>,
    num_labels: Option<usize>,
    id2label: Option<BTreeMap<String, String>>,
    label2id: Option<BTreeMap<String, Value>>,
    problem_type: Option<ProblemType>,
    sentence_transformers: Option<SentenceTransformersConfig>,
    pad_token_id: Option<Value>,
    vocab_size: Option<usize>,
    max_position_embeddings: Option<usize>,
    reward_token_id: Option<u32>,
}

#[derive(Deserialize)]
struct SentenceTransformersConfig {
    activation_fn: Option<String>,
}

impl ModelConfig {
    /// Parses config.json. The error says which field is wrong; callers add the file name.
    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let raw: RawConfig = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let id2label = match raw.id2label {
            None => None,
            Some(map) => {
                let mut parsed = BTreeMap::new();
                for (key, label) in map {
                    let id = key
                        .parse::<usize>()
                        .map_err(|_| format!("id2label key `{key}` is not a class id"))?;
                    parsed.insert(id, label);
                }
                Some(parsed)
            }
        };
        // pad_token_id is sometimes a list (several pad ids); the first one is the padding id.
        let pad_token_id = match raw.pad_token_id {
            Some(Value::Number(n)) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
            Some(Value::Array(ids)) => ids
                .first()
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok()),
            _ => None,
        };
        Ok(ModelConfig {
            architectures: raw.architectures.unwrap_or_default(),
            model_type: raw.model_type,
            num_labels: raw.num_labels,
            id2label,
            // Lenient: only zero-shot reads it, and a stray value must not stop the model from loading.
            label2id: raw.label2id.map(|map| {
                map.into_iter()
                    .filter_map(|(label, id)| {
                        let id = id
                            .as_u64()
                            .or_else(|| id.as_str().and_then(|s| s.parse().ok()))?;
                        Some((label, usize::try_from(id).ok()?))
                    })
                    .collect()
            }),
            problem_type: raw.problem_type,
            saved_activation: raw
                .sentence_transformers
                .and_then(|saved| saved.activation_fn)
                .map(|name| Activation::from_torch_name(&name))
                .transpose()
                .map_err(|e| format!("sentence_transformers.activation_fn: {e}"))?,
            pad_token_id,
            vocab_size: raw.vocab_size,
            max_position_embeddings: raw.max_position_embeddings,
            reward_token_id: raw.reward_token_id,
        })
    }

    /// A modular cross-encoder's config.json describes its bare backbone: the scores are counted by the head's
    /// last Dense (labels the config declares for another count are dropped), and the activation is the one
    /// config_sentence_transformers.json names.
    pub fn use_cross_encoder_head(&mut self, head: &CrossEncoderHead) {
        let scores = head.num_scores();
        if scores.is_some() && self.declared_num_labels() != scores {
            self.num_labels = scores;
            self.id2label = None;
            self.label2id = None;
        }
        if head.activation.is_some() {
            self.saved_activation = head.activation;
        }
    }

    pub fn architecture(&self) -> Option<&str> {
        self.architectures.first().map(String::as_str)
    }

    /// How many positions an input may use: `max_position_embeddings`, less `pad_token_id + 1` for the
    /// RoBERTa family, whose position ids start after the padding index.
    pub fn usable_positions(&self) -> Option<usize> {
        let table = self.max_position_embeddings?;
        let after_padding = matches!(
            self.model_type.as_deref(),
            Some("roberta" | "xlm-roberta" | "camembert")
        );
        Some(if after_padding {
            table.saturating_sub(self.pad_token_id.unwrap_or(1) as usize + 1)
        } else {
            table
        })
    }

    /// The class count the config declares: `num_labels`, else the size of `id2label`.
    pub fn declared_num_labels(&self) -> Option<usize> {
        self.num_labels
            .or_else(|| self.id2label.as_ref().map(BTreeMap::len))
    }

    /// Labels for a head with `num_classes` outputs: `id2label[i]`, else `LABEL_i` when the config
    /// declares `num_labels`, else `Class_i`. Fails when the config and the head disagree.
    pub fn labels(&self, num_classes: usize) -> Result<Vec<String>, String> {
        if let Some(declared) = self.declared_num_labels()
            && declared != num_classes
        {
            return Err(format!(
                "config.json declares {declared} labels but the classification head has {num_classes} outputs"
            ));
        }
        let labels = (0..num_classes)
            .map(|i| match (&self.id2label, self.num_labels) {
                (Some(map), _) => map.get(&i).cloned().unwrap_or_else(|| format!("LABEL_{i}")),
                (None, Some(_)) => format!("LABEL_{i}"),
                (None, None) => format!("Class_{i}"),
            })
            .collect();
        Ok(labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_labels_problem_type_and_limits() {
        let config = ModelConfig::from_json(
            br#"{"architectures":["BertForSequenceClassification"],"id2label":{"0":"NEG","1":"POS"},
                "problem_type":"single_label_classification","pad_token_id":0,"max_position_embeddings":512,
                "torch_dtype":"float32","vocab_size":30522,"unknown":{"nested":true}}"#,
        )
        .unwrap();
        assert_eq!(config.architecture(), Some("BertForSequenceClassification"));
        assert_eq!(config.labels(2).unwrap(), ["NEG", "POS"]);
        assert_eq!(
            config.problem_type,
            Some(ProblemType::SingleLabelClassification)
        );
        assert_eq!(config.pad_token_id, Some(0));
        assert_eq!(config.max_position_embeddings, Some(512));
        assert_eq!(config.vocab_size, Some(30522));
    }

    #[test]
    fn roberta_positions_start_after_padding() {
        let roberta = ModelConfig::from_json(
            br#"{"model_type":"xlm-roberta","pad_token_id":1,"max_position_embeddings":514}"#,
        )
        .unwrap();
        assert_eq!(roberta.usable_positions(), Some(512));
        let bert =
            ModelConfig::from_json(br#"{"model_type":"bert","max_position_embeddings":512}"#)
                .unwrap();
        assert_eq!(bert.usable_positions(), Some(512));
    }

    #[test]
    fn label_rungs() {
        let with_num = ModelConfig::from_json(br#"{"num_labels":3}"#).unwrap();
        assert_eq!(
            with_num.labels(3).unwrap(),
            ["LABEL_0", "LABEL_1", "LABEL_2"]
        );
        let bare = ModelConfig::from_json(b"{}").unwrap();
        assert_eq!(bare.labels(2).unwrap(), ["Class_0", "Class_1"]);
        let partial =
            ModelConfig::from_json(br#"{"num_labels":2,"id2label":{"1":"yes"}}"#).unwrap();
        assert_eq!(partial.labels(2).unwrap(), ["LABEL_0", "yes"]);
    }

    #[test]
    fn head_and_config_must_agree() {
        let config = ModelConfig::from_json(br#"{"id2label":{"0":"a","1":"b"}}"#).unwrap();
        let err = config.labels(3).unwrap_err();
        assert!(
            err.contains("2 labels") && err.contains("3 outputs"),
            "{err}"
        );
    }

    #[test]
    fn bad_id2label_key_is_an_error() {
        let err = ModelConfig::from_json(br#"{"id2label":{"x":"a"}}"#).unwrap_err();
        assert!(err.contains("`x`"), "{err}");
    }

    #[test]
    fn pad_token_id_list_takes_the_first() {
        let config = ModelConfig::from_json(br#"{"pad_token_id":[7,8]}"#).unwrap();
        assert_eq!(config.pad_token_id, Some(7));
    }
}
