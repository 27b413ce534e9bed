//! ONNX sequence classifiers on tract: inputs detected from the graph, optimized once, run per batch.

use std::path::Path;
use std::sync::Arc;

use classify_protocol::TokenSequence;
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
    num_classes: usize,
    /// Run each sequence alone, so that its logits do not depend on what it is batched with (see
    /// [`crate::onnx_file::OnnxGraph::quantizes_activations`]).
    one_at_a_time: bool,
}

impl OnnxClassifier {
    /// Loads and optimizes `path`. The graph must take some of `input_ids`, `attention_mask`, `token_type_ids`
    /// (including `input_ids`) and give logits `[batch, num_labels]`.
    pub fn load(path: &Path, pad_token_id: u32) -> Result<OnnxClassifier, String> {
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
        let num_classes = match logits.shape.dims() {
            [_, classes] => classes.to_i64().ok().and_then(|n| usize::try_from(n).ok()),
            _ => None,
        }
        .filter(|&n| n > 0)
        .ok_or_else(|| {
            format!(
                "the first output must be logits [batch, num_labels], found {:?}",
                logits.shape
            )
        })?;
        let plan = model.into_runnable().map_err(|e| format!("{e:#}"))?;
        Ok(OnnxClassifier {
            plan,
            inputs,
            pad_token_id,
            num_classes,
            one_at_a_time: graph.quantizes_activations,
        })
    }

    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// Logits for every sequence: in one run with right padding and an attention mask, or one run per sequence
    /// for graphs that quantize activations.
    pub fn run(&self, sequences: &[TokenSequence]) -> Result<Vec<Vec<f32>>, String> {
        if self.one_at_a_time && sequences.len() > 1 {
            let mut logits = Vec::with_capacity(sequences.len());
            for sequence in sequences {
                logits.extend(self.run_batch(std::slice::from_ref(sequence))?);
            }
            return Ok(logits);
        }
        self.run_batch(sequences)
    }

    fn run_batch(&self, sequences: &[TokenSequence]) -> Result<Vec<Vec<f32>>, String> {
        let batch = sequences.len();
        let longest = sequences.iter().map(TokenSequence::len).max().unwrap_or(0);
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
        if logits.shape() != [batch, self.num_classes] {
            return Err(format!(
                "logits have shape {:?}, expected [{batch}, {}]",
                logits.shape(),
                self.num_classes
            ));
        }
        Ok(logits
            .outer_iter()
            .map(|row| row.iter().copied().collect())
            .collect())
    }
}
