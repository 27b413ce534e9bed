//! `BertForSequenceClassification`: the BERT encoder, then the [CLS] hidden state through the pooler
//! (dense + tanh) and the classifier.
//!
//! Written here rather than taken from candle-transformers because its f16 mask is `(1 - mask) × finfo.min`, and
//! `finfo.min` overflows to -inf in f16, so `0 × -inf` poisons every score with NaN; and to run q, k and v as one
//! matrix product and the element-wise work through the fused operations of `ops`. The pooler and classifier run in f32.

use candle_core::{DType, IndexOp, Module, Tensor};
use candle_nn::{Embedding, Linear, VarBuilder, embedding, linear};
use classify_protocol::ModelShape;
use classify_protocol::config::ModelConfig;
use serde::Deserialize;

use super::SequenceClassifier;
use super::ops::{Activation, Dense, LayerNorm, Logits, add_repeated, masked_softmax, swap_middle};

#[derive(Debug, Clone, Deserialize)]
struct BertConfig {
    vocab_size: usize,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    #[serde(default = "default_hidden_act")]
    hidden_act: String,
    max_position_embeddings: usize,
    #[serde(default = "default_type_vocab_size")]
    type_vocab_size: usize,
    #[serde(default = "default_layer_norm_eps")]
    layer_norm_eps: f64,
    #[serde(default)]
    position_embedding_type: Option<String>,
}

fn default_hidden_act() -> String {
    "gelu".to_owned()
}

fn default_type_vocab_size() -> usize {
    2
}

fn default_layer_norm_eps() -> f64 {
    1e-12
}

struct SelfAttention {
    /// q, k and v stacked into one `[3 × hidden, hidden]` projection.
    qkv: Dense,
    output: Dense,
    norm: LayerNorm,
    heads: usize,
    head_dim: usize,
}

impl SelfAttention {
    fn load(config: &BertConfig, vb: VarBuilder) -> candle_core::Result<SelfAttention> {
        let hidden = config.hidden_size;
        let part = |name: &str| linear(hidden, hidden, vb.pp("self").pp(name));
        let (q, k, v) = (part("query")?, part("key")?, part("value")?);
        Ok(SelfAttention {
            qkv: Dense::stacked(&[&q, &k, &v])?,
            output: linear(hidden, hidden, vb.pp("output.dense"))?.into(),
            norm: LayerNorm::load(hidden, config.layer_norm_eps, vb.pp("output.LayerNorm"))?,
            heads: config.num_attention_heads,
            head_dim: hidden / config.num_attention_heads,
        })
    }

    /// `mask`: `[batch, 1, 1, len]` additive, in the activations' dtype: 0 for real tokens, -inf for padding
    /// (every row has at least one real token, so no row is all -inf).
    fn forward(&self, xs: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let (batch, len, hidden) = xs.dims3()?;
        let qkv = self.qkv.heads(xs, self.head_dim)?;
        let q = qkv.take(0, self.heads)?;
        let k = qkv.take(self.heads, self.heads)?;
        let v = qkv.take(2 * self.heads, self.heads)?;
        let logits = Logits {
            scale: (self.head_dim as f64).powf(-0.5),
            softcap: None,
        };
        let probs = masked_softmax(&q.matmul(&k.t()?)?, mask, self.heads * len, len, logits)?;
        let context =
            swap_middle(&probs.matmul(&v)?, None, 0, len)?.reshape((batch, len, hidden))?;
        self.output.forward_residual_norm(&context, xs, &self.norm)
    }
}

struct Layer {
    attention: SelfAttention,
    intermediate: Dense,
    activation: Activation,
    output: Dense,
    norm: LayerNorm,
}

impl Layer {
    fn load(config: &BertConfig, vb: VarBuilder) -> anyhow::Result<Layer> {
        let (hidden, inner) = (config.hidden_size, config.intermediate_size);
        Ok(Layer {
            attention: SelfAttention::load(config, vb.pp("attention"))?,
            intermediate: linear(hidden, inner, vb.pp("intermediate.dense"))?.into(),
            activation: Activation::from_name(&config.hidden_act)?,
            output: linear(inner, hidden, vb.pp("output.dense"))?.into(),
            norm: LayerNorm::load(hidden, config.layer_norm_eps, vb.pp("output.LayerNorm"))?,
        })
    }

    fn forward(&self, xs: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let attended = self.attention.forward(xs, mask)?;
        let inner = self
            .intermediate
            .forward_activated(&attended, self.activation)?;
        self.output
            .forward_residual_norm(&inner, &attended, &self.norm)
    }
}

pub struct BertClassifier {
    word_embeddings: Embedding,
    position_embeddings: Embedding,
    /// Row 0 of the token-type table: every input is a single segment.
    token_type: Tensor,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
    pooler: Linear,
    classifier: Linear,
    pad_token_id: u32,
    shape: ModelShape,
}

impl BertClassifier {
    pub fn load(
        config_json: &[u8],
        model_config: &ModelConfig,
        vb: VarBuilder,
    ) -> anyhow::Result<Self> {
        let config: BertConfig = serde_json::from_slice(config_json)?;
        if let Some(kind) = config.position_embedding_type.as_deref() {
            anyhow::ensure!(
                kind == "absolute",
                "position_embedding_type `{kind}` is not supported (only absolute)"
            );
        }
        anyhow::ensure!(
            config.num_attention_heads > 0
                && config
                    .hidden_size
                    .is_multiple_of(config.num_attention_heads),
            "hidden_size {} is not a multiple of num_attention_heads {}",
            config.hidden_size,
            config.num_attention_heads
        );
        let hidden = config.hidden_size;
        let embeddings = vb.pp("bert.embeddings");
        let token_types = embedding(
            config.type_vocab_size,
            hidden,
            embeddings.pp("token_type_embeddings"),
        )?;
        let layers = (0..config.num_hidden_layers)
            .map(|i| Layer::load(&config, vb.pp(format!("bert.encoder.layer.{i}"))))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let f32_linear = |out: usize, name: &str| -> candle_core::Result<Linear> {
            let l = linear(hidden, out, vb.pp(name))?;
            Ok(Linear::new(
                l.weight().to_dtype(DType::F32)?,
                l.bias().map(|b| b.to_dtype(DType::F32)).transpose()?,
            ))
        };
        let num_classes = vb.get_unchecked("classifier.weight")?.dim(0)?;
        Ok(BertClassifier {
            word_embeddings: embedding(
                config.vocab_size,
                hidden,
                embeddings.pp("word_embeddings"),
            )?,
            position_embeddings: embedding(
                config.max_position_embeddings,
                hidden,
                embeddings.pp("position_embeddings"),
            )?,
            token_type: token_types.embeddings().i(0)?,
            embedding_norm: LayerNorm::load(
                hidden,
                config.layer_norm_eps,
                embeddings.pp("LayerNorm"),
            )?,
            layers,
            pooler: f32_linear(hidden, "bert.pooler.dense")?,
            classifier: f32_linear(num_classes, "classifier")?,
            pad_token_id: model_config.pad_token_id.unwrap_or(0),
            shape: ModelShape {
                num_classes,
                max_positions: config.max_position_embeddings,
                vocab_size: config.vocab_size,
            },
        })
    }

    pub fn shape(&self) -> ModelShape {
        self.shape
    }
}

impl SequenceClassifier for BertClassifier {
    fn forward(&self, batch: &[&[u32]]) -> candle_core::Result<Vec<Vec<f32>>> {
        let device = self.word_embeddings.embeddings().device();
        let longest = batch.iter().map(|s| s.len()).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(batch.len() * longest);
        let mut mask = Vec::with_capacity(batch.len() * longest);
        for sequence in batch {
            let padding = longest - sequence.len();
            ids.extend_from_slice(sequence);
            ids.extend(std::iter::repeat_n(self.pad_token_id, padding));
            mask.extend(std::iter::repeat_n(0f32, sequence.len()));
            mask.extend(std::iter::repeat_n(f32::NEG_INFINITY, padding));
        }
        let ids = Tensor::from_vec(ids, (batch.len(), longest), device)?;
        let dtype = self.word_embeddings.embeddings().dtype();
        let mask = Tensor::from_vec(mask, (batch.len(), 1, 1, longest), device)?.to_dtype(dtype)?;
        let positions = Tensor::arange(0u32, longest as u32, device)?;
        let hidden = self.token_type.elem_count();
        let words = self.word_embeddings.forward(&ids)?;
        let positions = self.position_embeddings.forward(&positions)?;
        let embedded = add_repeated(&words, &positions, batch.len(), longest * hidden)?;
        let embedded = add_repeated(&embedded, &self.token_type, batch.len() * longest, hidden)?;
        let mut xs = self.embedding_norm.forward(&embedded)?;
        for layer in &self.layers {
            xs = layer.forward(&xs, &mask)?;
        }
        // contiguous: CUDA matrix products reject the row stride of a column slice.
        let first_token = xs.i((.., 0))?.to_dtype(DType::F32)?.contiguous()?;
        let pooled = self.pooler.forward(&first_token)?.tanh()?;
        self.classifier.forward(&pooled)?.to_vec2()
    }
}
