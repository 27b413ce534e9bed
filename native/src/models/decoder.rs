//! The decoder-only transformer that Llama, Qwen2, Qwen3 and Gemma2 share, with the options where they differ,
//! and the sequence-classification head on the hidden state of each input's last real token.

use candle_core::{D, DType, Device, Module, Tensor};
use candle_nn::{Embedding, VarBuilder, embedding, linear_b};
use classify_protocol::{Engine, EngineError, ModelShape, OutputKind, TokenSequence};
use serde::Deserialize;
use serde_json::Value;

use super::heads::{ClassifierHead, HeadKind};
use super::ops::{
    Activation, AttentionLogits, Dense, gated_activation, masked_softmax, swap_middle,
};
use super::rope::Rope;

use super::checkpoint::{Checkpoint, into_logits};
use super::padded::RightPadded;

/// The config.json fields every supported decoder uses; each architecture file turns them into a [`DecoderSpec`].
#[derive(Debug, Clone, Deserialize)]
pub struct DecoderConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: Option<usize>,
    pub head_dim: Option<usize>,
    #[serde(default = "default_rms_norm_eps")]
    pub rms_norm_eps: f64,
    pub max_position_embeddings: usize,
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub mlp_bias: bool,
    pub hidden_act: Option<String>,
    pub hidden_activation: Option<String>,
    pub pad_token_id: Option<Value>,
    /// `lm_head` shares the embedding table (read by LLM rerankers).
    #[serde(default)]
    pub tie_word_embeddings: bool,
}

fn default_rms_norm_eps() -> f64 {
    1e-6
}

impl DecoderConfig {
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    pub fn num_key_value_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }
}

/// Everything that tells the supported decoders apart.
#[derive(Debug, Clone)]
pub struct DecoderSpec {
    pub config: DecoderConfig,
    pub rope: Rope,
    pub activation: Activation,
    pub q_k_v_bias: bool,
    pub o_bias: bool,
    /// Qwen3: RMSNorm over each head of q and k before rotary.
    pub qk_norm: bool,
    /// Gemma: norms scale by `1 + weight`.
    pub norm_adds_one: bool,
    /// Gemma2: extra norms after attention and around the MLP.
    pub sandwich_norms: bool,
    /// Gemma: embeddings are multiplied by this.
    pub embedding_scale: Option<f64>,
    /// Multiplies q·k (1/sqrt(head_dim) unless the config says otherwise).
    pub attention_scale: f64,
    /// Gemma2: `tanh(scores / cap) * cap` before the mask.
    pub attention_softcap: Option<f64>,
    /// Per layer: attend to at most this many most recent positions.
    pub sliding_window: Vec<Option<usize>>,
}

impl DecoderSpec {
    /// The Llama layout read from config.json: SwiGLU (or `hidden_act`), rotary from the config, `attention_bias`
    /// on q, k, v and o, 1/sqrt(head_dim) scaling. Architecture files change what differs. Also returns the raw
    /// config for architecture-specific keys.
    pub fn llama_layout(config_json: &[u8]) -> anyhow::Result<(DecoderSpec, Value)> {
        let raw: Value = serde_json::from_slice(config_json)?;
        let config: DecoderConfig = serde_json::from_value(raw.clone())?;
        let spec = DecoderSpec {
            rope: Rope::from_config(&raw, config.head_dim(), config.max_position_embeddings)?,
            activation: Activation::from_name(config.hidden_act.as_deref().unwrap_or("silu"))?,
            q_k_v_bias: config.attention_bias,
            o_bias: config.attention_bias,
            qk_norm: false,
            norm_adds_one: false,
            sandwich_norms: false,
            embedding_scale: None,
            attention_scale: (config.head_dim() as f64).powf(-0.5),
            attention_softcap: None,
            sliding_window: Vec::new(),
            config,
        };
        Ok((spec, raw))
    }
}

/// Qwen's optional sliding window is rejected: released Qwen2/Qwen3 checkpoints leave it off.
pub fn reject_qwen_sliding_window(raw: &Value) -> anyhow::Result<()> {
    let enabled = raw
        .get("use_sliding_window")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    anyhow::ensure!(!enabled, "use_sliding_window = true is not supported");
    Ok(())
}

struct RmsNorm {
    /// In the activations' dtype; Gemma's `1 + weight` is formed in f32 first.
    weight: Tensor,
    eps: f32,
}

impl RmsNorm {
    fn load(size: usize, eps: f64, adds_one: bool, vb: VarBuilder) -> candle_core::Result<RmsNorm> {
        let dtype = vb.dtype();
        let weight = vb.get(size, "weight")?.to_dtype(DType::F32)?;
        let weight = if adds_one { (weight + 1.0)? } else { weight };
        Ok(RmsNorm {
            weight: weight.to_dtype(dtype)?,
            eps: eps as f32,
        })
    }

    /// One fused kernel that accumulates in f32 whatever the activations' dtype.
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::ops::rms_norm(&xs.contiguous()?, &self.weight, self.eps)
    }
}

struct Attention {
    /// q, k and v stacked into one projection: one matrix product instead of three.
    qkv: Dense,
    o: Dense,
    q_norm: Option<RmsNorm>,
    k_norm: Option<RmsNorm>,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    scale: f64,
    softcap: Option<f64>,
}

impl Attention {
    fn load(spec: &DecoderSpec, vb: VarBuilder) -> candle_core::Result<Attention> {
        let c = &spec.config;
        let (heads, kv_heads, head_dim) =
            (c.num_attention_heads, c.num_key_value_heads(), c.head_dim());
        let qk_norm = |name: &str| {
            spec.qk_norm
                .then(|| RmsNorm::load(head_dim, c.rms_norm_eps, spec.norm_adds_one, vb.pp(name)))
                .transpose()
        };
        let part = |heads: usize, name: &str| {
            linear_b(
                c.hidden_size,
                heads * head_dim,
                spec.q_k_v_bias,
                vb.pp(name),
            )
        };
        let (q, k, v) = (
            part(heads, "q_proj")?,
            part(kv_heads, "k_proj")?,
            part(kv_heads, "v_proj")?,
        );
        Ok(Attention {
            qkv: Dense::stacked(&[&q, &k, &v])?,
            o: linear_b(
                heads * head_dim,
                c.hidden_size,
                spec.o_bias,
                vb.pp("o_proj"),
            )?
            .try_into()?,
            q_norm: qk_norm("q_norm")?,
            k_norm: qk_norm("k_norm")?,
            heads,
            kv_heads,
            head_dim,
            scale: spec.attention_scale,
            softcap: spec.attention_softcap,
        })
    }

    fn forward(
        &self,
        xs: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        mask: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let (batch, len, _) = xs.dims3()?;
        let qkv = self.qkv.heads(xs, self.head_dim)?;
        // Heads split off (bias added) in one pass each; Qwen3's per-head norm works on either layout.
        let split = |start: usize, heads: usize, norm: Option<&RmsNorm>| {
            let t = qkv.take(start, heads)?;
            match norm {
                Some(norm) => norm.forward(&t),
                None => Ok(t),
            }
        };
        let q = split(0, self.heads, self.q_norm.as_ref())?;
        let k = split(self.heads, self.kv_heads, self.k_norm.as_ref())?;
        let v = split(self.heads + self.kv_heads, self.kv_heads, None)?;
        let q = candle_nn::rotary_emb::rope(&q, cos, sin)?;
        let k = candle_nn::rotary_emb::rope(&k, cos, sin)?;
        // Grouped-query attention without copying k and v per query head: query heads are numbered group by group,
        // so each KV head's queries are contiguous rows of q viewed as [batch, kv_heads, group × len, head_dim].
        let grouped = (batch, self.kv_heads, self.heads / self.kv_heads * len);
        let q = q.reshape((grouped.0, grouped.1, grouped.2, self.head_dim))?;
        let scores = q.matmul(&k.t()?)?.reshape((batch, self.heads, len, len))?;
        let logits = AttentionLogits {
            scale: self.scale,
            softcap: self.softcap,
        };
        let probs = masked_softmax(&scores, mask, batch * self.heads, len * len, logits)?
            .reshape((grouped.0, grouped.1, grouped.2, len))?;
        let out = probs
            .matmul(&v)?
            .reshape((batch, self.heads, len, self.head_dim))?;
        let out =
            swap_middle(&out, None, 0, len)?.reshape((batch, len, self.heads * self.head_dim))?;
        self.o.forward(&out)
    }
}

struct Mlp {
    /// The gate and up projections stacked into one.
    gate_up: Dense,
    down: Dense,
    activation: Activation,
}

impl Mlp {
    fn load(spec: &DecoderSpec, vb: VarBuilder) -> candle_core::Result<Mlp> {
        let c = &spec.config;
        let projection =
            |name: &str| linear_b(c.hidden_size, c.intermediate_size, c.mlp_bias, vb.pp(name));
        Ok(Mlp {
            gate_up: Dense::stacked(&[&projection("gate_proj")?, &projection("up_proj")?])?,
            down: linear_b(
                c.intermediate_size,
                c.hidden_size,
                c.mlp_bias,
                vb.pp("down_proj"),
            )?
            .try_into()?,
            activation: spec.activation,
        })
    }

    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let gated = gated_activation(&self.gate_up.forward(xs)?, self.activation)?;
        self.down.forward(&gated)
    }
}

struct Layer {
    attention: Attention,
    mlp: Mlp,
    input_norm: RmsNorm,
    post_attention_norm: RmsNorm,
    /// Gemma2's pre/post feed-forward norms.
    feed_forward_norms: Option<(RmsNorm, RmsNorm)>,
    sliding_window: Option<usize>,
}

impl Layer {
    fn load(spec: &DecoderSpec, index: usize, vb: VarBuilder) -> candle_core::Result<Layer> {
        let c = &spec.config;
        let norm = |name: &str| {
            RmsNorm::load(
                c.hidden_size,
                c.rms_norm_eps,
                spec.norm_adds_one,
                vb.pp(name),
            )
        };
        let feed_forward_norms = if spec.sandwich_norms {
            Some((
                norm("pre_feedforward_layernorm")?,
                norm("post_feedforward_layernorm")?,
            ))
        } else {
            None
        };
        Ok(Layer {
            attention: Attention::load(spec, vb.pp("self_attn"))?,
            mlp: Mlp::load(spec, vb.pp("mlp"))?,
            input_norm: norm("input_layernorm")?,
            post_attention_norm: norm("post_attention_layernorm")?,
            feed_forward_norms,
            sliding_window: spec.sliding_window.get(index).copied().flatten(),
        })
    }

    fn forward(
        &self,
        xs: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        mask: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let attended = self
            .attention
            .forward(&self.input_norm.forward(xs)?, cos, sin, mask)?;
        match &self.feed_forward_norms {
            None => {
                let xs = (xs + attended)?;
                let ff = self.mlp.forward(&self.post_attention_norm.forward(&xs)?)?;
                xs + ff
            }
            Some((pre, post)) => {
                let xs = (xs + self.post_attention_norm.forward(&attended)?)?;
                let ff = post.forward(&self.mlp.forward(&pre.forward(&xs)?)?)?;
                xs + ff
            }
        }
    }
}

/// A decoder backbone with a classification or reward head read at each input's last real token.
pub struct DecoderClassifier {
    embed: Embedding,
    layers: Vec<Layer>,
    norm: RmsNorm,
    head: ClassifierHead,
    rope: Rope,
    embedding_scale: Option<f64>,
    pad_token_id: u32,
    shape: ModelShape,
    device: Device,
}

impl DecoderClassifier {
    /// Loads `model.*` and the head's tensors (of `lm_head`, only what an LLM reranker's head reads).
    pub fn load(
        spec: DecoderSpec,
        head: HeadKind,
        pad_token_id: u32,
        checkpoint: Checkpoint,
    ) -> candle_core::Result<DecoderClassifier> {
        let c = &spec.config;
        let vb = checkpoint.vb;
        let model = vb.pp("model");
        let layers = (0..c.num_hidden_layers)
            .map(|i| Layer::load(&spec, i, model.pp(format!("layers.{i}"))))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let head = ClassifierHead::load(head, c.hidden_size, &vb, checkpoint.weights)?;
        let num_classes = head.num_classes()?;
        Ok(DecoderClassifier {
            embed: embedding(c.vocab_size, c.hidden_size, model.pp("embed_tokens"))?,
            norm: RmsNorm::load(
                c.hidden_size,
                c.rms_norm_eps,
                spec.norm_adds_one,
                model.pp("norm"),
            )?,
            layers,
            head,
            shape: ModelShape {
                num_classes,
                max_positions: c.max_position_embeddings,
                vocab_size: c.vocab_size,
                output: OutputKind::Sequence,
            },
            rope: spec.rope,
            embedding_scale: spec.embedding_scale,
            pad_token_id,
            device: vb.device().clone(),
        })
    }

    /// `[1, 1, len, len]` additive mask in `dtype`: causal, and within the sliding window when there is one.
    /// Every row keeps its diagonal, so -inf never fills a whole row.
    fn mask(&self, len: usize, window: Option<usize>, dtype: DType) -> candle_core::Result<Tensor> {
        let mut values = Vec::with_capacity(len * len);
        for query in 0..len {
            for key in 0..len {
                let visible = key <= query && window.is_none_or(|w| query - key < w);
                values.push(if visible { 0.0 } else { f32::NEG_INFINITY });
            }
        }
        Tensor::from_vec(values, (1, 1, len, len), &self.device)?.to_dtype(dtype)
    }
}

impl DecoderClassifier {
    /// The head's output, `[batch, num_classes]`.
    fn head_output(&self, batch: &[&TokenSequence]) -> candle_core::Result<Tensor> {
        // Right padding: with causal attention, real tokens never see the padding after them.
        let padded = RightPadded::new(batch, self.pad_token_id);
        let longest = padded.longest;
        let ids = Tensor::from_vec(padded.ids, (batch.len(), longest), &self.device)?;
        let mut xs = self.embed.forward(&ids)?;
        if let Some(scale) = self.embedding_scale {
            xs = (xs * scale)?;
        }
        let (cos, sin) = self.rope.tables(longest, &self.device)?;
        let (cos, sin) = (cos.to_dtype(xs.dtype())?, sin.to_dtype(xs.dtype())?);
        let full = self.mask(longest, None, xs.dtype())?;
        let mut sliding: Option<(usize, Tensor)> = None;
        for layer in &self.layers {
            let mask = match layer.sliding_window {
                Some(window) if window < longest => {
                    if sliding.as_ref().is_none_or(|(built, _)| *built != window) {
                        sliding = Some((window, self.mask(longest, Some(window), xs.dtype())?));
                    }
                    sliding
                        .as_ref()
                        .map_or_else(|| full.clone(), |(_, mask)| mask.clone())
                }
                _ => full.clone(),
            };
            xs = layer.forward(&xs, &cos, &sin, &mask)?;
        }
        // Only the last real token of each input reaches the head: gather those rows, then the final norm.
        let hidden = xs.dim(D::Minus1)?;
        let last: Vec<u32> = batch
            .iter()
            .enumerate()
            .map(|(b, sequence)| (b * longest + sequence.len().saturating_sub(1)) as u32)
            .collect();
        let last = Tensor::from_vec(last, batch.len(), &self.device)?;
        let last = xs
            .reshape((batch.len() * longest, hidden))?
            .index_select(&last, 0)?;
        let last = self.norm.forward(&last)?.to_dtype(DType::F32)?;
        self.head.forward(&last)
    }
}

impl Engine for DecoderClassifier {
    fn shape(&self) -> ModelShape {
        self.shape
    }

    fn forward(&self, batch: &[&TokenSequence]) -> Result<classify_protocol::Logits, EngineError> {
        into_logits(self.head_output(batch))
    }
}

/// An architecture's decoder with `head`: what each decoder file's loader returns.
pub fn load_classifier(
    checkpoint: Checkpoint,
    spec: anyhow::Result<DecoderSpec>,
    head: HeadKind,
) -> anyhow::Result<Box<dyn Engine>> {
    let spec = spec?;
    let pad = pad_token_id(&spec.config);
    Ok(Box::new(DecoderClassifier::load(
        spec, head, pad, checkpoint,
    )?))
}

/// A causal LM served as an LLM reranker: one score, its "yes" logit less its "no" logit at the last token (vLLM's
/// `from_2_way_softmax`), whose sigmoid is `softmax([no, yes])[yes]`. The tokens come from the model's prompt.
pub fn load_yes_no_reranker(
    checkpoint: Checkpoint,
    spec: anyhow::Result<DecoderSpec>,
) -> anyhow::Result<Box<dyn Engine>> {
    let spec = spec?;
    let Some(tokens) = checkpoint.yes_no else {
        anyhow::bail!(
            "a causal LM is served as a reranker, which needs the prompt's answer tokens"
        );
    };
    // One score through a sigmoid, whatever labels or activation config.json carries for generation.
    let config = &mut *checkpoint.config;
    config.num_labels = Some(1);
    config.id2label = None;
    config.label2id = None;
    config.problem_type = None;
    config.saved_activation = None;
    let tied = spec.config.tie_word_embeddings;
    load_classifier(checkpoint, Ok(spec), HeadKind::YesNo { tokens, tied })
}

/// The first pad id of config.json (an integer or a list), else 0: padding only fills positions after each input.
fn pad_token_id(config: &DecoderConfig) -> u32 {
    match &config.pad_token_id {
        Some(Value::Number(n)) => n.as_u64().and_then(|n| u32::try_from(n).ok()).unwrap_or(0),
        Some(Value::Array(ids)) => ids
            .first()
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0),
        _ => 0,
    }
}
