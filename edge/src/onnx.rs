//! ONNX sequence and token classifiers on tract, as an [`Engine`]: inputs and output kind detected from the
//! graph, optimized once, run per batch.

use std::path::Path;
use std::sync::Arc;

use classify_protocol::config::ModelConfig;
use classify_protocol::{Engine, EngineError, Logits, ModelShape, OutputKind, TokenSequence};
use tract_onnx::prelude::*;

/// The graph inputs this runner knows how to feed, all int64 `[batch, sequence]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InputRole {
    InputIds,
    AttentionMask,
    TokenTypeIds,
}

impl InputRole {
    fn from_name(name: &str) -> Option<InputRole> {
        match name {
            "input_ids" => Some(InputRole::InputIds),
            "attention_mask" => Some(InputRole::AttentionMask),
            "token_type_ids" => Some(InputRole::TokenTypeIds),
            _ => None,
        }
    }
}

pub struct OnnxClassifier {
    plan: Arc<TypedRunnableModel>,
    inputs: Vec<InputRole>,
    pad_token_id: u32,
    shape: ModelShape,
    /// Run each sequence alone, so that its logits do not depend on what it is batched with (see
    /// [`crate::onnx_file::OnnxGraph::quantizes_activations`]).
    one_at_a_time: bool,
}

impl OnnxClassifier {
    /// Loads and optimizes `path`, the graph of the model whose config.json is `config`. The graph must take some
    /// of `input_ids`, `attention_mask`, `token_type_ids` (including `input_ids`) and give logits
    /// `[batch, num_labels]` (a sequence classifier) or `[batch, sequence, num_labels]` (a token classifier).
    pub fn load(path: &Path, config: &ModelConfig) -> Result<OnnxClassifier, String> {
        let max_positions = config
            .usable_positions()
            .ok_or("config.json has no max_position_embeddings")?;
        let vocab_size = config.vocab_size.ok_or("config.json has no vocab_size")?;
        let graph = crate::onnx_file::read_model(path)?;
        let model = graph.model;
        let mut inputs = Vec::new();
        for outlet in model.input_outlets().map_err(|e| e.to_string())? {
            let name = &model.node(outlet.node).name;
            let role = InputRole::from_name(name).ok_or_else(|| {
                format!("unsupported graph input `{name}` (expected input_ids, attention_mask, token_type_ids)")
            })?;
            inputs.push(role);
        }
        if !inputs.contains(&InputRole::InputIds) {
            return Err("the graph has no `input_ids` input".to_owned());
        }
        let model = model
            .into_optimized()
            .map_err(|e| format!("cannot optimize the graph: {e:#}"))?;
        let logits = model.output_fact(0).map_err(|e| e.to_string())?;
        let (classes, output) = match logits.shape.dims() {
            [_, classes] => (Some(classes), OutputKind::Sequence),
            [_, _, classes] => (Some(classes), OutputKind::Token),
            _ => (None, OutputKind::Sequence),
        };
        let num_classes = classes
            .and_then(|n| n.to_i64().ok())
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| n > 0)
            .ok_or_else(|| {
                format!(
                    "the first output must be logits [batch, num_labels] or [batch, sequence, num_labels], found {:?}",
                    logits.shape
                )
            })?;
        let plan = model.into_runnable().map_err(|e| format!("{e:#}"))?;
        Ok(OnnxClassifier {
            plan,
            inputs,
            pad_token_id: config.pad_token_id.unwrap_or(0),
            shape: ModelShape {
                num_classes,
                max_positions,
                vocab_size,
                output,
            },
            one_at_a_time: graph.quantizes_activations,
        })
    }

    fn run_batch(&self, sequences: &[&TokenSequence]) -> Result<Vec<f32>, String> {
        let batch = sequences.len();
        let longest = sequences.iter().map(|s| s.len()).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(batch * longest);
        let mut mask = Vec::with_capacity(batch * longest);
        let mut type_ids = Vec::with_capacity(batch * longest);
        for sequence in sequences {
            let padding = longest - sequence.len();
            ids.extend(sequence.ids.iter().map(|&id| i64::from(id)));
            ids.extend(std::iter::repeat_n(i64::from(self.pad_token_id), padding));
            mask.extend(std::iter::repeat_n(1i64, sequence.len()));
            mask.extend(std::iter::repeat_n(0i64, padding));
            match &sequence.type_ids {
                Some(types) => type_ids.extend(types.iter().map(|&t| i64::from(t))),
                None => type_ids.extend(std::iter::repeat_n(0i64, sequence.len())),
            }
            type_ids.extend(std::iter::repeat_n(0i64, padding));
        }
        let tensor = |values: Vec<i64>| -> Result<TValue, String> {
            tract_ndarray::Array2::from_shape_vec((batch, longest), values)
                .map(|array| array.into_tensor().into_tvalue())
                .map_err(|e| e.to_string())
        };
        let mut feed = TVec::new();
        for role in &self.inputs {
            feed.push(match role {
                InputRole::InputIds => tensor(ids.clone())?,
                InputRole::AttentionMask => tensor(mask.clone())?,
                InputRole::TokenTypeIds => tensor(type_ids.clone())?,
            });
        }
        let outputs = self.plan.run(feed).map_err(|e| format!("{e:#}"))?;
        let logits = outputs
            .first()
            .ok_or("the model returned no output")?
            .to_plain_array_view::<f32>()
            .map_err(|e| e.to_string())?;
        let classes = self.shape.num_classes;
        match self.shape.output {
            OutputKind::Sequence if logits.shape() == [batch, classes] => {
                Ok(logits.iter().copied().collect())
            }
            // Each sequence's rows without the padding after it.
            OutputKind::Token if logits.shape() == [batch, longest, classes] => {
                let mut values = Vec::with_capacity(batch * longest * classes);
                for (i, sequence) in sequences.iter().enumerate() {
                    let rows = logits.slice(tract_ndarray::s![i, ..sequence.len(), ..]);
                    values.extend(rows.iter().copied());
                }
                Ok(values)
            }
            _ => Err(format!(
                "logits have shape {:?}, expected [{batch}, {}{classes}]",
                logits.shape(),
                if self.shape.output == OutputKind::Token {
                    format!("{longest}, ")
                } else {
                    String::new()
                }
            )),
        }
    }
}

impl Engine for OnnxClassifier {
    fn shape(&self) -> ModelShape {
        self.shape
    }

    /// One run with right padding and an attention mask, or one run per sequence for graphs that quantize
    /// activations.
    fn forward(&self, batch: &[&TokenSequence]) -> Result<Logits, EngineError> {
        let values = if self.one_at_a_time && batch.len() > 1 {
            let mut values =
                Vec::with_capacity(self.shape.rows_for(batch) * self.shape.num_classes);
            for sequence in batch {
                values.extend(
                    self.run_batch(std::slice::from_ref(sequence))
                        .map_err(EngineError::new)?,
                );
            }
            values
        } else {
            self.run_batch(batch).map_err(EngineError::new)?
        };
        Logits::new(self.shape.num_classes, values)
    }
}
