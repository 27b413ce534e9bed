//! `DebertaV2ForSequenceClassification` (DeBERTa-v2 and -v3, mDeBERTa): a post-norm encoder whose attention adds
//! content→position (c2p) and position→content (p2c) scores over shared relative-position embeddings (log buckets
//! in v3), the `ContextPooler` on the first token and the classifier, as transformers' `modeling_deberta_v2`;
//! `DebertaV2ForTokenClassification`: the classifier on every token.
//!
//! Written here rather than taken from candle-transformers, whose version projects the relative embeddings for
//! every sequence of a batch (`repeat`) and multiplies them in one small product per head and sequence, runs only
//! in f32, and cannot add absolute positions (`position_biased_input`) to a batch. Here each layer's projections
//! of the relative embeddings are computed once, at load, and each position score is one product per head over
//! the whole batch. DeBERTa-v2 xlarge/xxlarge's convolution layer (`conv_kernel_size > 0`) runs after the first
//! layer, as in transformers.

use candle_core::{D, DType, Device, Module, Tensor};
use candle_nn::{
    Conv1d, Conv1dConfig, Embedding, Linear, VarBuilder, conv1d, embedding, linear, linear_no_bias,
};
use classify_protocol::{Engine, EngineError, ModelShape, OutputKind, TokenSequence};
use serde::Deserialize;

use super::checkpoint::{Checkpoint, into_logits};
use super::encoder::{EncoderHead, FirstTokenHead};
use super::ops::{Activation, AttentionLogits, Dense, LayerNorm, attend};
use super::padded::RightPadded;

/// `pos_att_type` as configs write it: a list, or (older ones) `"p2c|c2p"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum PositionScores {
    List(Vec<String>),
    Joined(String),
}

impl PositionScores {
    fn has(&self, kind: &str) -> bool {
        match self {
            PositionScores::List(kinds) => {
                kinds.iter().any(|k| k.trim().eq_ignore_ascii_case(kind))
            }
            PositionScores::Joined(kinds) => kinds
                .split('|')
                .any(|k| k.trim().eq_ignore_ascii_case(kind)),
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_eps() -> f64 {
    1e-7
}

fn minus_one() -> i64 {
    -1
}

fn default_conv_act() -> String {
    "tanh".to_owned()
}

fn default_conv_groups() -> usize {
    1
}

#[derive(Debug, Clone, Deserialize)]
struct DebertaV2Config {
    vocab_size: usize,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    #[serde(default = "super::bert::default_hidden_act")]
    hidden_act: String,
    #[serde(default = "default_eps")]
    layer_norm_eps: f64,
    max_position_embeddings: usize,
    #[serde(default)]
    type_vocab_size: usize,
    #[serde(default = "default_true")]
    position_biased_input: bool,
    #[serde(default)]
    relative_attention: bool,
    #[serde(default = "minus_one")]
    max_relative_positions: i64,
    #[serde(default = "minus_one")]
    position_buckets: i64,
    #[serde(default)]
    pos_att_type: Option<PositionScores>,
    #[serde(default)]
    share_att_key: bool,
    #[serde(default)]
    norm_rel_ebd: Option<String>,
    #[serde(default)]
    embedding_size: Option<usize>,
    #[serde(default)]
    conv_kernel_size: usize,
    #[serde(default = "default_conv_act")]
    conv_act: String,
    #[serde(default = "default_conv_groups")]
    conv_groups: usize,
    #[serde(default)]
    pooler_hidden_act: Option<String>,
    #[serde(default)]
    pad_token_id: Option<u32>,
}

/// transformers' `make_log_bucket_position` for one relative position (in f32, as torch computes it).
fn log_bucket(relative: i64, bucket_size: i64, max_position: i64) -> i64 {
    let mid = bucket_size / 2;
    let abs = if relative < mid && relative > -mid {
        mid - 1
    } else {
        relative.abs()
    };
    if abs <= mid {
        return relative;
    }
    let ratio = (abs as f32 / mid as f32).ln() / ((max_position - 1) as f32 / mid as f32).ln();
    let log_pos = (ratio * (mid - 1) as f32).ceil() as i64 + mid;
    log_pos * relative.signum()
}

/// Relative attention: which position scores, and the bucketing that maps token distances to positions.
struct RelativePositions {
    span: usize,
    buckets: Option<(i64, i64)>,
    c2p: bool,
    p2c: bool,
}

impl RelativePositions {
    /// The c2p and p2c gather indices for a padded length: `[heads, batch, len, len]`, row i column j holding
    /// `clamp(span + r(i, j))` and `clamp(span - r(i, j))`, where `r(i, j)` is the (bucketed) `i - j`.
    fn indices(
        &self,
        heads: usize,
        batch: usize,
        len: usize,
        device: &Device,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let top = 2 * self.span as i64 - 1;
        let (mut c2p, mut p2c) = (Vec::with_capacity(len * len), Vec::with_capacity(len * len));
        for i in 0..len as i64 {
            for j in 0..len as i64 {
                let r = match self.buckets {
                    Some((size, max)) => log_bucket(i - j, size, max),
                    None => i - j,
                };
                c2p.push((self.span as i64 + r).clamp(0, top) as u32);
                p2c.push((self.span as i64 - r).clamp(0, top) as u32);
            }
        }
        let expand = |values: Vec<u32>| {
            Tensor::from_vec(values, (1, 1, len, len), device)?
                .broadcast_as((heads, batch, len, len))?
                .contiguous()
        };
        Ok((expand(c2p)?, expand(p2c)?))
    }
}

/// `[2 × span, heads × head_dim]` projected positions as `[heads, head_dim, 2 × span]`.
fn position_heads(projected: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
    let (rows, width) = projected.dims2()?;
    projected
        .reshape((rows, heads, width / heads))?
        .permute((1, 2, 0))?
        .contiguous()
}

/// `[batch, heads, len, d]` as `[heads, batch × len, d]`.
fn heads_first(x: &Tensor) -> candle_core::Result<Tensor> {
    let (batch, heads, len, d) = x.dims4()?;
    x.transpose(0, 1)?
        .contiguous()?
        .reshape((heads, batch * len, d))
}

/// One layer's projections of the relative-position embeddings, as `[heads, head_dim, 2 × span]`: they depend on
/// the weights alone, so they are computed once, at load.
struct PositionHeads {
    /// For content→position scores (the key projection, or `pos_key_proj`).
    key: Option<Tensor>,
    /// For position→content scores (the query projection, or `pos_query_proj`).
    query: Option<Tensor>,
    span: usize,
}

struct Attention {
    qkv: Dense,
    positions: Option<PositionHeads>,
    output: Dense,
    norm: LayerNorm,
    heads: usize,
    head_dim: usize,
}

impl Attention {
    /// `relative`: the position scores and the (normalized) relative embeddings `[2 × span, hidden]`.
    fn load(
        config: &DebertaV2Config,
        vb: VarBuilder,
        relative: Option<(&RelativePositions, &Tensor)>,
    ) -> candle_core::Result<Attention> {
        let hidden = config.hidden_size;
        let heads = config.num_attention_heads;
        let part = |name: &str| linear(hidden, hidden, vb.pp("self").pp(name));
        let (q, k, v) = (part("query_proj")?, part("key_proj")?, part("value_proj")?);
        let qkv = Dense::stacked(&[&q, &k, &v])?;
        let positions = match relative {
            Some((relative, table)) => {
                // `shared`: the content projection used when `share_att_key`.
                let project = |wanted: bool, name: &str, shared: &Linear| {
                    if !wanted {
                        return Ok(None);
                    }
                    let projection = match config.share_att_key {
                        true => Dense::try_from(shared.clone())?,
                        false => Dense::try_from(part(name)?)?,
                    };
                    position_heads(&projection.forward(table)?, heads).map(Some)
                };
                Some(PositionHeads {
                    key: project(relative.c2p, "pos_key_proj", &k)?,
                    query: project(relative.p2c, "pos_query_proj", &q)?,
                    span: relative.span,
                })
            }
            None => None,
        };
        Ok(Attention {
            qkv,
            positions,
            output: linear(hidden, hidden, vb.pp("output.dense"))?.try_into()?,
            norm: LayerNorm::load(hidden, config.layer_norm_eps, vb.pp("output.LayerNorm"))?,
            heads,
            head_dim: hidden / heads,
        })
    }

    /// `indices`: this batch's c2p and p2c gather indices ([`RelativePositions::indices`]).
    fn forward(
        &self,
        xs: &Tensor,
        mask: &Tensor,
        indices: Option<&(Tensor, Tensor)>,
    ) -> candle_core::Result<Tensor> {
        let (batch, len, _) = xs.dims3()?;
        let qkv = self.qkv.heads(xs, self.head_dim)?;
        let q = qkv.take(0, self.heads)?;
        let k = qkv.take(self.heads, self.heads)?;
        let v = qkv.take(2 * self.heads, self.heads)?;
        let mut scores = q.matmul(&k.t()?)?;
        let mut scale_factor = 1;
        if let (Some(positions), Some((c2p_index, p2c_index))) = (&self.positions, indices) {
            let positions_shape = (self.heads, batch, len, 2 * positions.span);
            if let Some(pos_key) = &positions.key {
                scale_factor += 1;
                let c2p = heads_first(&q)?
                    .matmul(pos_key)?
                    .reshape(positions_shape)?
                    .gather(c2p_index, D::Minus1)?;
                scores = (scores + c2p.transpose(0, 1)?)?;
            }
            if let Some(pos_query) = &positions.query {
                scale_factor += 1;
                let p2c = heads_first(&k)?
                    .matmul(pos_query)?
                    .reshape(positions_shape)?
                    .gather(p2c_index, D::Minus1)?;
                scores = (scores + p2c.transpose(2, 3)?.transpose(0, 1)?)?;
            }
        }
        let logits = AttentionLogits {
            scale: ((self.head_dim * scale_factor) as f64).powf(-0.5),
            softcap: None,
        };
        let context = attend(&scores.contiguous()?, &v, mask, logits)?;
        self.output.forward_residual_norm(&context, xs, &self.norm)
    }
}

struct Layer {
    attention: Attention,
    intermediate: Dense,
    activation: Activation,
    output: Dense,
    norm: LayerNorm,
}

impl Layer {
    fn load(
        config: &DebertaV2Config,
        vb: VarBuilder,
        relative: Option<(&RelativePositions, &Tensor)>,
    ) -> anyhow::Result<Layer> {
        let (hidden, inner) = (config.hidden_size, config.intermediate_size);
        Ok(Layer {
            attention: Attention::load(config, vb.pp("attention"), relative)?,
            intermediate: linear(hidden, inner, vb.pp("intermediate.dense"))?.try_into()?,
            activation: Activation::from_name(&config.hidden_act)?,
            output: linear(inner, hidden, vb.pp("output.dense"))?.try_into()?,
            norm: LayerNorm::load(hidden, config.layer_norm_eps, vb.pp("output.LayerNorm"))?,
        })
    }
}

/// transformers' `ConvLayer`: a convolution over the embeddings whose activation is added to the first layer's
/// output, then normalized.
struct ConvLayer {
    conv: Conv1d,
    activation: NamedActivation,
    norm: LayerNorm,
}

impl ConvLayer {
    fn load(config: &DebertaV2Config, vb: VarBuilder) -> anyhow::Result<ConvLayer> {
        let (hidden, kernel, groups) = (
            config.hidden_size,
            config.conv_kernel_size,
            config.conv_groups,
        );
        anyhow::ensure!(
            groups > 0 && hidden.is_multiple_of(groups),
            "conv_groups {groups} does not divide the hidden size {hidden}"
        );
        let settings = Conv1dConfig {
            padding: (kernel - 1) / 2,
            groups,
            ..Conv1dConfig::default()
        };
        Ok(ConvLayer {
            conv: conv1d(hidden, hidden, kernel, settings, vb.pp("conv"))?,
            activation: named_activation(&config.conv_act)?,
            norm: LayerNorm::load(hidden, config.layer_norm_eps, vb.pp("LayerNorm"))?,
        })
    }

    /// `embedded`: the embeddings with padded positions zeroed (the convolution reads its neighbours); `keep`:
    /// `[batch, len, 1]`, 1 on real tokens and 0 on padding.
    fn forward(
        &self,
        embedded: &Tensor,
        first_layer: &Tensor,
        keep: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let convolved = self
            .conv
            .forward(&embedded.transpose(1, 2)?.contiguous()?)?
            .transpose(1, 2)?
            .broadcast_mul(keep)?;
        let normed = self
            .norm
            .forward(&(first_layer + (self.activation)(&convolved)?)?)?;
        normed.broadcast_mul(keep)
    }
}

pub struct DebertaV2Classifier {
    words: Embedding,
    /// The absolute position table, added when `position_biased_input`.
    positions: Option<Embedding>,
    /// The token-type table (DeBERTa-v2; v3 has none and ignores the tokenizer's type ids, as transformers).
    token_types: Option<Embedding>,
    projection: Option<Linear>,
    embedding_norm: LayerNorm,
    relative: Option<RelativePositions>,
    layers: Vec<Layer>,
    conv: Option<ConvLayer>,
    head: EncoderHead,
    pad_token_id: u32,
    shape: ModelShape,
}

type NamedActivation = fn(&Tensor) -> candle_core::Result<Tensor>;

/// `pooler_hidden_act` and `conv_act`: transformers' `ACT2FN` names, tanh included.
fn named_activation(name: &str) -> anyhow::Result<NamedActivation> {
    if name == "tanh" {
        return Ok(Tensor::tanh);
    }
    Ok(match Activation::from_name(name)? {
        Activation::Gelu => Tensor::gelu_erf,
        Activation::GeluTanh => Tensor::gelu,
        Activation::Relu => Tensor::relu,
        Activation::Silu => Tensor::silu,
    })
}

pub fn load(checkpoint: Checkpoint, output: OutputKind) -> anyhow::Result<Box<dyn Engine>> {
    let config: DebertaV2Config = checkpoint.parse_config()?;
    anyhow::ensure!(
        config.num_attention_heads > 0
            && config
                .hidden_size
                .is_multiple_of(config.num_attention_heads),
        "hidden size {} is not a multiple of the head count {}",
        config.hidden_size,
        config.num_attention_heads
    );
    let vb = checkpoint.vb;
    let (hidden, eps) = (config.hidden_size, config.layer_norm_eps);
    let width = config.embedding_size.unwrap_or(hidden);
    let embeddings = vb.pp("deberta.embeddings");
    let encoder = vb.pp("deberta.encoder");
    let relative = if config.relative_attention {
        let max_relative = match config.max_relative_positions {
            n if n < 1 => config.max_position_embeddings as i64,
            n => n,
        };
        let span = if config.position_buckets > 0 {
            config.position_buckets
        } else {
            max_relative
        } as usize;
        let table = encoder.get_unchecked("rel_embeddings.weight")?;
        let rows = table.dim(0)?;
        anyhow::ensure!(
            rows >= 2 * span,
            "rel_embeddings has {rows} rows, fewer than 2 × {span}"
        );
        let mut table = table.narrow(0, 0, 2 * span)?;
        let normalized = config
            .norm_rel_ebd
            .as_deref()
            .is_some_and(|n| n.split('|').any(|n| n.trim() == "layer_norm"));
        if normalized {
            table = LayerNorm::load(hidden, eps, encoder.pp("LayerNorm"))?.forward(&table)?;
        }
        let scores = config.pos_att_type.as_ref();
        Some((
            RelativePositions {
                span,
                buckets: (config.position_buckets > 0)
                    .then_some((config.position_buckets, max_relative)),
                c2p: scores.is_some_and(|s| s.has("c2p")),
                p2c: scores.is_some_and(|s| s.has("p2c")),
            },
            table.contiguous()?,
        ))
    } else {
        None
    };
    let layers = (0..config.num_hidden_layers)
        .map(|i| {
            Layer::load(
                &config,
                encoder.pp("layer").pp(i),
                relative.as_ref().map(|(r, t)| (r, t)),
            )
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let relative = relative.map(|(relative, _)| relative);
    let conv = (config.conv_kernel_size > 0)
        .then(|| ConvLayer::load(&config, encoder.pp("conv")))
        .transpose()?;
    let head = EncoderHead::load(output, &vb, hidden, || {
        let pooler_act = named_activation(config.pooler_hidden_act.as_deref().unwrap_or("gelu"))
            .map_err(candle_core::Error::wrap)?;
        FirstTokenHead::load(
            vb.pp("pooler.dense"),
            pooler_act,
            vb.pp("classifier"),
            hidden,
        )
    })?;
    let max_positions = if config.position_biased_input {
        config.max_position_embeddings
    } else {
        // Relative positions only: no absolute table bounds the length, transformers' tokenizers cap it.
        config.max_position_embeddings.max(512)
    };
    let shape = ModelShape {
        num_classes: head.num_classes()?,
        max_positions,
        vocab_size: config.vocab_size,
        output,
    };
    Ok(Box::new(DebertaV2Classifier {
        words: embedding(config.vocab_size, width, embeddings.pp("word_embeddings"))?,
        positions: config
            .position_biased_input
            .then(|| {
                embedding(
                    config.max_position_embeddings,
                    width,
                    embeddings.pp("position_embeddings"),
                )
            })
            .transpose()?,
        token_types: (config.type_vocab_size > 0)
            .then(|| {
                embedding(
                    config.type_vocab_size,
                    width,
                    embeddings.pp("token_type_embeddings"),
                )
            })
            .transpose()?,
        projection: (width != hidden)
            .then(|| linear_no_bias(width, hidden, embeddings.pp("embed_proj")))
            .transpose()?,
        embedding_norm: LayerNorm::load(hidden, eps, embeddings.pp("LayerNorm"))?,
        relative,
        layers,
        conv,
        head,
        pad_token_id: config.pad_token_id.unwrap_or(0),
        shape,
    }))
}

impl DebertaV2Classifier {
    /// The head's output, `[batch, num_classes]` (`[tokens, num_classes]` per token).
    fn head_output(&self, batch: &[&TokenSequence]) -> candle_core::Result<Tensor> {
        let table = self.words.embeddings();
        let (device, dtype) = (table.device(), table.dtype());
        let padded = RightPadded::new(batch, self.pad_token_id);
        let len = padded.longest;
        let shape = (batch.len(), len);
        let mask = padded.mask(0f32, f32::NEG_INFINITY);
        let keep = self.conv.as_ref().map(|_| padded.mask(1f32, 0f32));
        let mask = Tensor::from_vec(mask, (batch.len(), 1, 1, len), device)?.to_dtype(dtype)?;
        let ids = Tensor::from_slice(&padded.ids, shape, device)?;
        let mut xs = self.words.forward(&ids)?;
        if let Some(positions) = &self.positions {
            let table = positions.embeddings().narrow(0, 0, len)?;
            xs = xs.broadcast_add(&table.unsqueeze(0)?)?;
        }
        if let Some(types) = &self.token_types {
            let type_ids = match &padded.type_ids {
                Some(type_ids) => Tensor::from_slice(type_ids, shape, device)?,
                None => Tensor::zeros(shape, DType::U32, device)?,
            };
            xs = (xs + types.forward(&type_ids)?)?;
        }
        if let Some(projection) = &self.projection {
            xs = projection.forward(&xs)?;
        }
        // transformers zeroes padded positions here. Attention masks them as keys, so only the convolution, which
        // reads each token's neighbours, needs them zeroed.
        xs = self.embedding_norm.forward(&xs)?;
        let keep = match keep {
            Some(keep) => {
                let keep =
                    Tensor::from_vec(keep, (batch.len(), len, 1), device)?.to_dtype(dtype)?;
                xs = xs.broadcast_mul(&keep)?;
                Some(keep)
            }
            None => None,
        };
        let embedded = xs.clone();
        let heads = self.layers.first().map_or(1, |l| l.attention.heads);
        let indices = self
            .relative
            .as_ref()
            .map(|r| r.indices(heads, batch.len(), len, device))
            .transpose()?;
        for (i, layer) in self.layers.iter().enumerate() {
            let attended = layer.attention.forward(&xs, &mask, indices.as_ref())?;
            let inner = layer
                .intermediate
                .forward_activated(&attended, layer.activation)?;
            xs = layer
                .output
                .forward_residual_norm(&inner, &attended, &layer.norm)?;
            if let (0, Some(conv), Some(keep)) = (i, &self.conv, &keep) {
                xs = conv.forward(&embedded, &xs, keep)?;
            }
        }
        self.head.forward_padded(&xs, &padded)
    }
}

impl Engine for DebertaV2Classifier {
    fn shape(&self) -> ModelShape {
        self.shape
    }

    fn forward(&self, batch: &[&TokenSequence]) -> Result<classify_protocol::Logits, EngineError> {
        into_logits(self.head_output(batch))
    }
}

#[cfg(test)]
mod tests {
    use super::log_bucket;

    const RELATIVE: [i64; 26] = [
        -600, -300, -129, -100, -70, -33, -9, -8, -7, 0, 5, 7, 8, 9, 10, 17, 33, 63, 64, 100, 128,
        129, 200, 511, 512, 1000,
    ];

    /// transformers 5.23's `make_log_bucket_position(torch.tensor(RELATIVE), size, max)`.
    #[test]
    fn log_buckets_match_transformers() {
        let cases: [(i64, i64, [i64; 26]); 2] = [
            (
                16,
                64,
                [
                    -23, -21, -18, -17, -16, -13, -9, -8, -7, 0, 5, 7, 8, 9, 9, 11, 13, 15, 16, 17,
                    18, 18, 19, 23, 23, 25,
                ],
            ),
            (
                256,
                512,
                [
                    -270, -207, -129, -100, -70, -33, -9, -8, -7, 0, 5, 7, 8, 9, 10, 17, 33, 63,
                    64, 100, 128, 129, 169, 255, 256, 317,
                ],
            ),
        ];
        for (size, max, expected) in cases {
            let buckets = RELATIVE.map(|r| log_bucket(r, size, max));
            assert_eq!(buckets, expected, "bucket size {size}, max position {max}");
        }
    }
}
