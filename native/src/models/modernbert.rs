//! `ModernBertForSequenceClassification`: a pre-norm encoder with rotary positions (one theta for global layers,
//! another for local ones), layers alternating between global attention and a sliding window of
//! `local_attention` tokens, GeGLU MLPs, biases and norm biases only where config.json asks for them, then
//! `classifier_pooling` (`cls` or `mean`) and the head `dense` + activation + norm before the classifier;
//! `ModernBertForTokenClassification`: the same head and classifier on every token; `ModernBertModel` with a
//! Sentence-Transformers cross-encoder's modules (the Ettin rerankers).
//! Batches run packed (`packed.rs`): everything but attention on the real tokens only.
//! Reads both config layouts: transformers 5's `layer_types` + `rope_parameters`, and the hub's
//! `global_attn_every_n_layers` + `global_rope_theta` / `local_rope_theta`.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Embedding, VarBuilder, embedding, linear_b};
use classify_protocol::cross_encoder::Pooling;
use classify_protocol::{Engine, EngineError, ModelShape, OutputKind, TokenSequence};
use serde::Deserialize;
use serde_json::Value;

use super::ops::{
    Activation, AttentionLogits, Dense, LayerNorm, gated_activation, masked_softmax, swap_middle,
};
use super::rope::Rope;

use super::checkpoint::{Checkpoint, into_logits};
use super::modular_head::ModularHead;
use super::packed::{PackedBatch, PackedLayout};

#[derive(Debug, Clone, Deserialize)]
struct ModernBertConfig {
    vocab_size: usize,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    max_position_embeddings: usize,
    #[serde(default = "default_norm_eps")]
    norm_eps: f64,
    #[serde(default)]
    norm_bias: bool,
    #[serde(default)]
    attention_bias: bool,
    #[serde(default)]
    mlp_bias: bool,
    #[serde(default)]
    classifier_bias: bool,
    #[serde(default = "default_activation")]
    hidden_activation: String,
    #[serde(default = "default_activation")]
    classifier_activation: String,
    #[serde(default = "default_pooling")]
    classifier_pooling: String,
    #[serde(default = "default_local_attention")]
    local_attention: usize,
    #[serde(default = "default_global_every")]
    global_attn_every_n_layers: usize,
    #[serde(default)]
    layer_types: Option<Vec<String>>,
}

fn default_norm_eps() -> f64 {
    1e-5
}

fn default_activation() -> String {
    "gelu".to_owned()
}

fn default_pooling() -> String {
    "cls".to_owned()
}

fn default_local_attention() -> usize {
    128
}

fn default_global_every() -> usize {
    3
}

/// Theta of one attention kind: `rope_parameters[kind].rope_theta`, else the transformers-4 field, else its default.
fn rope_theta(raw: &Value, kind: &str, legacy: &str, default: f64) -> f64 {
    raw.pointer(&format!("/rope_parameters/{kind}/rope_theta"))
        .or_else(|| raw.get(legacy))
        .and_then(Value::as_f64)
        .unwrap_or(default)
}

fn norm(size: usize, config: &ModernBertConfig, vb: VarBuilder) -> candle_core::Result<LayerNorm> {
    if config.norm_bias {
        LayerNorm::load(size, config.norm_eps, vb)
    } else {
        LayerNorm::load_without_bias(size, config.norm_eps, vb)
    }
}

struct Layer {
    /// None in layer 0, whose input is the already normalized embeddings.
    attention_norm: Option<LayerNorm>,
    qkv: Dense,
    attention_output: Dense,
    mlp_norm: LayerNorm,
    mlp_in: Dense,
    mlp_out: Dense,
    local: bool,
}

impl Layer {
    fn load(
        config: &ModernBertConfig,
        index: usize,
        local: bool,
        vb: VarBuilder,
    ) -> anyhow::Result<Layer> {
        let (hidden, inner) = (config.hidden_size, config.intermediate_size);
        let attention = vb.pp("attn");
        let mlp = vb.pp("mlp");
        Ok(Layer {
            attention_norm: if index == 0 {
                None
            } else {
                Some(norm(hidden, config, vb.pp("attn_norm"))?)
            },
            qkv: linear_b(
                hidden,
                3 * hidden,
                config.attention_bias,
                attention.pp("Wqkv"),
            )?
            .try_into()?,
            attention_output: linear_b(hidden, hidden, config.attention_bias, attention.pp("Wo"))?
                .try_into()?,
            mlp_norm: norm(hidden, config, vb.pp("mlp_norm"))?,
            mlp_in: linear_b(hidden, 2 * inner, config.mlp_bias, mlp.pp("Wi"))?.try_into()?,
            mlp_out: linear_b(inner, hidden, config.mlp_bias, mlp.pp("Wo"))?.try_into()?,
            local,
        })
    }
}

/// What the head reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeadInput {
    /// The first token (`classifier_pooling: cls`).
    FirstToken,
    /// The mean of the real tokens (`classifier_pooling: mean`).
    Mean,
    /// Every token (token classification).
    EveryToken,
}

/// What reads the pooled states.
enum Head {
    /// `head.dense` → activation → `head.norm` → `classifier` (`ModernBertFor*Classification`).
    Classifier {
        dense: Dense,
        activation: Activation,
        norm: LayerNorm,
        classifier: Dense,
    },
    /// A Sentence-Transformers cross-encoder's modules (`ModernBertModel` with modules.json).
    Modular(ModularHead),
}

pub struct ModernBertClassifier {
    embeddings: Embedding,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
    final_norm: LayerNorm,
    head: Head,
    head_input: HeadInput,
    global_rope: Rope,
    local_rope: Rope,
    /// Half the sliding window: a local layer's token sees tokens at most this far away.
    local_reach: usize,
    heads: usize,
    head_dim: usize,
    activation: Activation,
    shape: ModelShape,
    device: Device,
}

pub fn load(checkpoint: Checkpoint, output: OutputKind) -> anyhow::Result<Box<dyn Engine>> {
    let config: ModernBertConfig = checkpoint.parse_config()?;
    let pooling = config.classifier_pooling.as_str();
    anyhow::ensure!(
        matches!(pooling, "cls" | "mean"),
        "classifier_pooling `{pooling}` is not supported (cls, mean)"
    );
    let vb = &checkpoint.vb;
    let hidden = config.hidden_size;
    let classifier: Dense = {
        let rows = vb.get_unchecked("classifier.weight")?.dim(0)?;
        linear_b(hidden, rows, true, vb.pp("classifier"))?.try_into()?
    };
    let head = vb.pp("head");
    let head = Head::Classifier {
        dense: linear_b(hidden, hidden, config.classifier_bias, head.pp("dense"))?.try_into()?,
        activation: Activation::from_name(&config.classifier_activation)?,
        norm: norm(hidden, &config, head.pp("norm"))?,
        classifier,
    };
    let head_input = match (output, pooling) {
        (OutputKind::Token, _) => HeadInput::EveryToken,
        (OutputKind::Sequence, "mean") => HeadInput::Mean,
        (OutputKind::Sequence, _) => HeadInput::FirstToken,
    };
    let model = vb.pp("model");
    with_head(&checkpoint, config, &model, head, head_input, output)
}

/// `ModernBertModel` with a Sentence-Transformers cross-encoder's head (modules.json; the Ettin rerankers):
/// tensors without the `model.` prefix, the pooling from the Pooling module.
pub fn load_cross_encoder(checkpoint: Checkpoint) -> anyhow::Result<Box<dyn Engine>> {
    let config: ModernBertConfig = checkpoint.parse_config()?;
    let head = ModularHead::load(
        checkpoint.cross_encoder_head("ModernBertModel")?,
        config.hidden_size,
        checkpoint.vb.device(),
    )?;
    let head_input = match head.pooling {
        Pooling::FirstToken => HeadInput::FirstToken,
        Pooling::Mean => HeadInput::Mean,
    };
    let model = checkpoint.vb.clone();
    with_head(
        &checkpoint,
        config,
        &model,
        Head::Modular(head),
        head_input,
        OutputKind::Sequence,
    )
}

/// The backbone under `model` with `head`.
fn with_head(
    checkpoint: &Checkpoint,
    config: ModernBertConfig,
    model: &VarBuilder,
    head: Head,
    head_input: HeadInput,
    output: OutputKind,
) -> anyhow::Result<Box<dyn Engine>> {
    let raw: Value = checkpoint.parse_config()?;
    let (hidden, heads) = (config.hidden_size, config.num_attention_heads);
    anyhow::ensure!(
        heads > 0 && hidden.is_multiple_of(heads),
        "hidden_size {hidden} is not a multiple of num_attention_heads {heads}"
    );
    let head_dim = hidden / heads;
    let local = |i: usize| match &config.layer_types {
        Some(types) => types.get(i).map(String::as_str) == Some("sliding_attention"),
        None => !i.is_multiple_of(config.global_attn_every_n_layers.max(1)),
    };
    let layers = (0..config.num_hidden_layers)
        .map(|i| Layer::load(&config, i, local(i), model.pp(format!("layers.{i}"))))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let theta = |kind: &str, legacy: &str, default: f64| Rope {
        inv_freq: (0..head_dim / 2)
            .map(|i| {
                1.0 / rope_theta(&raw, kind, legacy, default).powf((2 * i) as f64 / head_dim as f64)
                    as f32
            })
            .collect(),
    };
    let num_classes = match &head {
        Head::Classifier { classifier, .. } => classifier.weight_rows()?,
        Head::Modular(head) => head.num_scores(),
    };
    let model = ModernBertClassifier {
        embeddings: embedding(
            config.vocab_size,
            hidden,
            model.pp("embeddings.tok_embeddings"),
        )?,
        embedding_norm: norm(hidden, &config, model.pp("embeddings.norm"))?,
        layers,
        final_norm: norm(hidden, &config, model.pp("final_norm"))?,
        head,
        head_input,
        shape: ModelShape {
            num_classes,
            max_positions: config.max_position_embeddings,
            vocab_size: config.vocab_size,
            output,
        },
        global_rope: theta("full_attention", "global_rope_theta", 160_000.0),
        local_rope: theta("sliding_attention", "local_rope_theta", 10_000.0),
        local_reach: config.local_attention / 2,
        heads,
        head_dim,
        activation: Activation::from_name(&config.hidden_activation)?,
        device: model.device().clone(),
    };
    Ok(Box::new(model))
}

impl ModernBertClassifier {
    /// `[batch, len × len]` additive mask of a local layer: keys within reach that are real tokens. A padding
    /// query also sees itself, so that no row is all -inf (a NaN there would reach real rows through 0 × NaN).
    fn local_mask(
        &self,
        lengths: &[usize],
        len: usize,
        dtype: DType,
    ) -> candle_core::Result<Tensor> {
        let mut values = Vec::with_capacity(lengths.len() * len * len);
        for &real in lengths {
            for query in 0..len {
                for key in 0..len {
                    let visible =
                        query.abs_diff(key) <= self.local_reach && (key < real || key == query);
                    values.push(if visible { 0.0 } else { f32::NEG_INFINITY });
                }
            }
        }
        Tensor::from_vec(values, (lengths.len(), len * len), &self.device)?.to_dtype(dtype)
    }

    /// `xs`: the packed batch's rows `[tokens, hidden]`, attending in the padded `layout`.
    fn attention(
        &self,
        layer: &Layer,
        xs: &Tensor,
        layout: &PackedLayout,
        rope: (&Tensor, &Tensor),
        mask: (&Tensor, usize),
    ) -> candle_core::Result<Tensor> {
        let qkv = layer.qkv.heads_padded(xs, self.head_dim, layout)?;
        let (cos, sin) = rope;
        let q = candle_nn::rotary_emb::rope(&qkv.take(0, self.heads)?, cos, sin)?;
        let k = candle_nn::rotary_emb::rope(&qkv.take(self.heads, self.heads)?, cos, sin)?;
        let v = qkv.take(2 * self.heads, self.heads)?;
        let logits = AttentionLogits {
            scale: (self.head_dim as f64).powf(-0.5),
            softcap: None,
        };
        let (mask, inner) = mask;
        let (batch, _, len, _) = q.dims4()?;
        let scores = q.matmul(&k.t()?)?;
        let mid = scores.elem_count() / (batch * inner);
        let probs = masked_softmax(&scores, mask, mid, inner, logits)?;
        let context = swap_middle(&probs.matmul(&v)?, None, 0, len)?.reshape((
            batch,
            len,
            self.heads * self.head_dim,
        ))?;
        layer.attention_output.forward(&layout.packed(&context)?)
    }
}

impl ModernBertClassifier {
    /// The head's output, `[batch, num_classes]` (`[tokens, num_classes]` per token).
    fn head_output(&self, batch: &[&TokenSequence]) -> candle_core::Result<Tensor> {
        let lengths: Vec<usize> = batch.iter().map(|s| s.len()).collect();
        let longest = lengths.iter().copied().max().unwrap_or(0);
        let packed = PackedBatch::new(batch);
        let layout = packed.layout(&self.device)?;
        let padding: Vec<f32> = lengths
            .iter()
            .flat_map(|&real| {
                (0..longest).map(move |i| if i < real { 0.0 } else { f32::NEG_INFINITY })
            })
            .collect();
        let tokens = packed.tokens();
        let ids = Tensor::from_vec(packed.ids, tokens, &self.device)?;
        let mut xs = self
            .embedding_norm
            .forward(&self.embeddings.forward(&ids)?)?;
        let dtype = xs.dtype();
        let global_mask =
            Tensor::from_vec(padding, (batch.len(), longest), &self.device)?.to_dtype(dtype)?;
        let local_mask = if self.layers.iter().any(|l| l.local) && longest > self.local_reach + 1 {
            Some(self.local_mask(&lengths, longest, dtype)?)
        } else {
            None
        };
        let tables = |rope: &Rope| -> candle_core::Result<(Tensor, Tensor)> {
            let (cos, sin) = rope.tables(longest, &self.device)?;
            Ok((cos.to_dtype(dtype)?, sin.to_dtype(dtype)?))
        };
        let (global_cos, global_sin) = tables(&self.global_rope)?;
        let (local_cos, local_sin) = tables(&self.local_rope)?;
        for layer in &self.layers {
            let normed = match &layer.attention_norm {
                Some(norm) => norm.forward(&xs)?,
                None => xs.clone(),
            };
            let (rope, mask) = match (layer.local, &local_mask) {
                (true, Some(local)) => ((&local_cos, &local_sin), (local, longest * longest)),
                (true, None) => ((&local_cos, &local_sin), (&global_mask, longest)),
                (false, _) => ((&global_cos, &global_sin), (&global_mask, longest)),
            };
            xs = (&xs + self.attention(layer, &normed, &layout, rope, mask)?)?;
            let inner = gated_activation(
                &layer.mlp_in.forward(&layer.mlp_norm.forward(&xs)?)?,
                self.activation,
            )?;
            xs = (&xs + layer.mlp_out.forward(&inner)?)?;
        }
        let xs = self.final_norm.forward(&xs)?;
        // Packed rows are the real tokens, sequence after sequence: what a head on every token reads.
        let pooled = match self.head_input {
            HeadInput::Mean => layout.means(&xs)?.to_dtype(xs.dtype())?,
            HeadInput::FirstToken => layout.first_tokens(&xs)?,
            HeadInput::EveryToken => xs,
        };
        match &self.head {
            Head::Classifier {
                dense,
                activation,
                norm,
                classifier,
            } => {
                classifier.forward(&norm.forward(&dense.forward_activated(&pooled, *activation)?)?)
            }
            Head::Modular(head) => head.forward(&pooled),
        }
    }
}

impl Engine for ModernBertClassifier {
    fn shape(&self) -> ModelShape {
        self.shape
    }

    fn pads_batches(&self) -> bool {
        false
    }

    fn forward(&self, batch: &[&TokenSequence]) -> Result<classify_protocol::Logits, EngineError> {
        into_logits(self.head_output(batch))
    }
}
