//! The post-norm transformer encoder BERT and its descendants share (DistilBERT, RoBERTa, XLM-R, ELECTRA), the
//! two-layer head on the first token they all classify sequences with, the linear head on every token of
//! their token classifiers, and a Sentence-Transformers cross-encoder's modules on a pooling. Each architecture file names its tensors and
//! builds the embeddings; everything after the embeddings is here.
//!
//! Written here rather than taken from candle-transformers because its f16 mask is `(1 - mask) × finfo.min`, and
//! `finfo.min` overflows to -inf in f16, so `0 × -inf` poisons every score with NaN; and to run q, k and v as one
//! matrix product and the element-wise work through the fused operations of `ops`. The head runs in f32.

use candle_core::{DType, IndexOp, Module, Tensor};
use candle_nn::{Embedding, Linear, VarBuilder, embedding, linear};
use classify_protocol::cross_encoder::Pooling;
use classify_protocol::{Engine, EngineError, ModelShape, OutputKind, TokenSequence};

use super::checkpoint::into_logits;
use super::modular_head::ModularHead;
use super::ops::{Activation, AttentionLogits, Dense, LayerNorm, add_repeated, attend};
use super::packed::{PackedBatch, PackedLayout};
use super::padded::RightPadded;

/// Where one encoder layer keeps its tensors, relative to the layer's prefix.
pub struct LayerNames {
    pub query: &'static str,
    pub key: &'static str,
    pub value: &'static str,
    pub attention_output: &'static str,
    pub attention_norm: &'static str,
    pub intermediate: &'static str,
    pub output: &'static str,
    pub output_norm: &'static str,
}

/// BERT's names, kept by RoBERTa, XLM-R and ELECTRA.
pub const BERT_LAYER: LayerNames = LayerNames {
    query: "attention.self.query",
    key: "attention.self.key",
    value: "attention.self.value",
    attention_output: "attention.output.dense",
    attention_norm: "attention.output.LayerNorm",
    intermediate: "intermediate.dense",
    output: "output.dense",
    output_norm: "output.LayerNorm",
};

/// The sizes every layer shares.
#[derive(Debug, Clone, Copy)]
pub struct LayerShape {
    pub hidden: usize,
    pub heads: usize,
    pub intermediate: usize,
    pub activation: Activation,
    pub layer_norm_eps: f64,
}

impl LayerShape {
    fn head_dim(&self) -> usize {
        self.hidden / self.heads
    }

    fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.heads > 0 && self.hidden.is_multiple_of(self.heads),
            "hidden size {} is not a multiple of the head count {}",
            self.hidden,
            self.heads
        );
        Ok(())
    }
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
    fn load(shape: &LayerShape, names: &LayerNames, vb: &VarBuilder) -> candle_core::Result<Self> {
        let hidden = shape.hidden;
        let part = |name: &str| linear(hidden, hidden, vb.pp(name));
        let (q, k, v) = (part(names.query)?, part(names.key)?, part(names.value)?);
        Ok(SelfAttention {
            qkv: Dense::stacked(&[&q, &k, &v])?,
            output: linear(hidden, hidden, vb.pp(names.attention_output))?.try_into()?,
            norm: LayerNorm::load(hidden, shape.layer_norm_eps, vb.pp(names.attention_norm))?,
            heads: shape.heads,
            head_dim: shape.head_dim(),
        })
    }

    /// `xs`: a packed batch's rows `[tokens, hidden]`, attending in the padded `layout`. `mask`:
    /// `[batch, 1, 1, len]` additive, in the activations' dtype: 0 for real tokens, -inf for padding (every row
    /// has at least one real token, so no row is all -inf).
    fn forward(
        &self,
        xs: &Tensor,
        mask: &Tensor,
        layout: &PackedLayout,
    ) -> candle_core::Result<Tensor> {
        let qkv = self.qkv.heads_padded(xs, self.head_dim, layout)?;
        let q = qkv.take(0, self.heads)?;
        let k = qkv.take(self.heads, self.heads)?;
        let v = qkv.take(2 * self.heads, self.heads)?;
        let logits = AttentionLogits {
            scale: (self.head_dim as f64).powf(-0.5),
            softcap: None,
        };
        let context = layout.packed(&attend(&q.matmul(&k.t()?)?, &v, mask, logits)?)?;
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
    fn load(shape: &LayerShape, names: &LayerNames, vb: VarBuilder) -> candle_core::Result<Layer> {
        let (hidden, inner) = (shape.hidden, shape.intermediate);
        Ok(Layer {
            attention: SelfAttention::load(shape, names, &vb)?,
            intermediate: linear(hidden, inner, vb.pp(names.intermediate))?.try_into()?,
            activation: shape.activation,
            output: linear(inner, hidden, vb.pp(names.output))?.try_into()?,
            norm: LayerNorm::load(hidden, shape.layer_norm_eps, vb.pp(names.output_norm))?,
        })
    }

    fn forward(
        &self,
        xs: &Tensor,
        mask: &Tensor,
        layout: &PackedLayout,
    ) -> candle_core::Result<Tensor> {
        let attended = self.attention.forward(xs, mask, layout)?;
        let inner = self
            .intermediate
            .forward_activated(&attended, self.activation)?;
        self.output
            .forward_residual_norm(&inner, &attended, &self.norm)
    }
}

/// How position ids are counted.
#[derive(Debug, Clone, Copy)]
pub enum Positions {
    /// `0, 1, 2, …` (BERT, DistilBERT, ELECTRA).
    FromZero,
    /// RoBERTa's: real tokens count from `padding_idx + 1`, and a pad token takes `padding_idx` without
    /// advancing the count (transformers' `create_position_ids_from_input_ids`).
    AfterPadding { padding_idx: u32 },
}

impl Positions {
    /// How many positions of a table with `table_rows` rows an input can use.
    pub fn usable(self, table_rows: usize) -> usize {
        match self {
            Positions::FromZero => table_rows,
            Positions::AfterPadding { padding_idx } => {
                table_rows.saturating_sub(padding_idx as usize + 1)
            }
        }
    }

    fn push_ids(self, sequence: &[u32], pad: u32, out: &mut Vec<u32>) {
        match self {
            Positions::FromZero => out.extend(0..sequence.len() as u32),
            Positions::AfterPadding { padding_idx } => {
                let mut count = padding_idx;
                for &id in sequence {
                    if id == pad {
                        out.push(padding_idx);
                    } else {
                        count += 1;
                        out.push(count);
                    }
                }
            }
        }
    }
}

/// Word + position (+ the first token type's row) embeddings, LayerNorm, and ELECTRA's projection to the hidden
/// size when its embeddings are narrower.
pub struct Embeddings {
    pub words: Embedding,
    pub positions: Embedding,
    pub position_ids: Positions,
    /// The token-type table and its row 0 (added to every token of a batch of single segments). None for
    /// models without token types.
    pub token_types: Option<(Embedding, Tensor)>,
    pub norm: LayerNorm,
    pub projection: Option<Linear>,
}

impl Embeddings {
    /// The tables under `vb` as BERT names them (`word_embeddings`, `position_embeddings`,
    /// `token_type_embeddings` when `type_vocab_size > 0`, `LayerNorm`), `width` features wide.
    pub fn load_bert_layout(
        vb: &VarBuilder,
        vocab_size: usize,
        max_positions: usize,
        type_vocab_size: usize,
        width: usize,
        layer_norm_eps: f64,
        position_ids: Positions,
    ) -> candle_core::Result<Embeddings> {
        let token_types = if type_vocab_size > 0 {
            let table = embedding(type_vocab_size, width, vb.pp("token_type_embeddings"))?;
            let first = table.embeddings().i(0)?;
            Some((table, first))
        } else {
            None
        };
        Ok(Embeddings {
            words: embedding(vocab_size, width, vb.pp("word_embeddings"))?,
            positions: embedding(max_positions, width, vb.pp("position_embeddings"))?,
            position_ids,
            token_types,
            norm: LayerNorm::load(width, layer_norm_eps, vb.pp("LayerNorm"))?,
            projection: None,
        })
    }

    /// A packed batch's `[tokens]` ids, positions and `type_ids` (`None` when every input is a single segment).
    fn forward(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        type_ids: Option<&Tensor>,
    ) -> candle_core::Result<Tensor> {
        let tokens = ids.dim(0)?;
        let width = self.words.embeddings().dim(1)?;
        let mut embedded = self.words.forward(ids)?;
        embedded = (embedded + self.positions.forward(positions)?)?;
        match (&self.token_types, type_ids) {
            (Some((table, _)), Some(type_ids)) => {
                embedded = (embedded + table.forward(type_ids)?)?
            }
            (Some((_, first)), None) => {
                embedded = add_repeated(&embedded, first, tokens, width)?;
            }
            (None, _) => {}
        }
        let normed = self.norm.forward(&embedded)?;
        match &self.projection {
            Some(projection) => projection.forward(&normed),
            None => Ok(normed),
        }
    }
}

/// `out(activation(dense(first token)))`, in f32: BERT's pooler + classifier, DistilBERT's pre_classifier,
/// RoBERTa's and ELECTRA's classification heads.
pub struct FirstTokenHead {
    dense: Linear,
    activation: fn(&Tensor) -> candle_core::Result<Tensor>,
    out: Linear,
}

fn f32_linear(vb: VarBuilder, in_dim: usize) -> candle_core::Result<Linear> {
    let out_dim = vb.get_unchecked("weight")?.dim(0)?;
    let l = linear(in_dim, out_dim, vb)?;
    Ok(Linear::new(
        l.weight().to_dtype(DType::F32)?,
        l.bias().map(|b| b.to_dtype(DType::F32)).transpose()?,
    ))
}

impl FirstTokenHead {
    pub fn load(
        dense: VarBuilder,
        activation: fn(&Tensor) -> candle_core::Result<Tensor>,
        out: VarBuilder,
        hidden: usize,
    ) -> candle_core::Result<FirstTokenHead> {
        let dense = f32_linear(dense, hidden)?;
        let inner = dense.weight().dim(0)?;
        Ok(FirstTokenHead {
            dense,
            activation,
            out: f32_linear(out, inner)?,
        })
    }

    pub(super) fn num_classes(&self) -> candle_core::Result<usize> {
        self.out.weight().dim(0)
    }

    pub(super) fn forward(&self, first_token: &Tensor) -> candle_core::Result<Tensor> {
        self.out
            .forward(&(self.activation)(&self.dense.forward(first_token)?)?)
    }
}

/// What an encoder answers with.
pub enum EncoderHead {
    /// Sequence classification: the first token through a [`FirstTokenHead`].
    FirstToken(FirstTokenHead),
    /// Token classification (`*ForTokenClassification`): `classifier`, one linear layer, on every token.
    EveryToken(Linear),
    /// A Sentence-Transformers cross-encoder's head on its pooling of the tokens.
    Modular(ModularHead),
}

impl EncoderHead {
    /// The head for `output`: the sequence head `first_token` loads, or the token classifiers' `classifier`
    /// under `vb` (in f32).
    pub fn load(
        output: OutputKind,
        vb: &VarBuilder,
        hidden: usize,
        first_token: impl FnOnce() -> candle_core::Result<FirstTokenHead>,
    ) -> candle_core::Result<EncoderHead> {
        Ok(match output {
            OutputKind::Sequence => EncoderHead::FirstToken(first_token()?),
            OutputKind::Token => EncoderHead::EveryToken(f32_linear(vb.pp("classifier"), hidden)?),
        })
    }

    pub fn num_classes(&self) -> candle_core::Result<usize> {
        match self {
            EncoderHead::FirstToken(head) => head.num_classes(),
            EncoderHead::EveryToken(classifier) => classifier.weight().dim(0),
            EncoderHead::Modular(head) => Ok(head.num_scores()),
        }
    }

    fn output(&self) -> OutputKind {
        match self {
            EncoderHead::FirstToken(_) | EncoderHead::Modular(_) => OutputKind::Sequence,
            EncoderHead::EveryToken(_) => OutputKind::Token,
        }
    }

    /// `xs`: a right-padded batch's last hidden states `[batch, longest, hidden]` → `[batch, classes]` or
    /// `[tokens, classes]` (the real tokens only).
    pub fn forward_padded(&self, xs: &Tensor, padded: &RightPadded) -> candle_core::Result<Tensor> {
        match self {
            EncoderHead::FirstToken(head) => {
                head.forward(&xs.i((.., 0))?.to_dtype(DType::F32)?.contiguous()?)
            }
            EncoderHead::EveryToken(classifier) => {
                classifier.forward(&padded.real_rows(xs)?.to_dtype(DType::F32)?)
            }
            EncoderHead::Modular(head) => head.forward(&match head.pooling {
                Pooling::FirstToken => xs.i((.., 0))?.contiguous()?,
                Pooling::Mean => padded.means(xs)?,
            }),
        }
    }

    /// `xs`: the packed batch's last hidden states `[tokens, hidden]` → `[batch, classes]` or `[tokens, classes]`.
    fn forward(&self, xs: &Tensor, layout: &PackedLayout) -> candle_core::Result<Tensor> {
        match self {
            EncoderHead::FirstToken(head) => {
                head.forward(&layout.first_tokens(xs)?.to_dtype(DType::F32)?)
            }
            EncoderHead::EveryToken(classifier) => classifier.forward(&xs.to_dtype(DType::F32)?),
            EncoderHead::Modular(head) => head.forward(&match head.pooling {
                Pooling::FirstToken => layout.first_tokens(xs)?,
                Pooling::Mean => layout.means(xs)?,
            }),
        }
    }
}

/// An encoder with its head: the whole sequence or token classifier.
pub struct EncoderClassifier {
    embeddings: Embeddings,
    layers: Vec<Layer>,
    head: EncoderHead,
    pad_token_id: u32,
    shape: ModelShape,
}

/// The parts an architecture file gathers for [`EncoderClassifier::new`].
pub struct EncoderParts<'a> {
    pub embeddings: Embeddings,
    /// The prefix of layer `i` is `layers.pp(i)`.
    pub layers: VarBuilder<'a>,
    pub num_layers: usize,
    pub layer_shape: LayerShape,
    pub layer_names: &'static LayerNames,
    pub head: EncoderHead,
    pub pad_token_id: u32,
    pub vocab_size: usize,
}

impl EncoderClassifier {
    pub fn new(parts: EncoderParts) -> anyhow::Result<EncoderClassifier> {
        parts.layer_shape.check()?;
        let layers = (0..parts.num_layers)
            .map(|i| Layer::load(&parts.layer_shape, parts.layer_names, parts.layers.pp(i)))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let table_rows = parts.embeddings.positions.embeddings().dim(0)?;
        Ok(EncoderClassifier {
            shape: ModelShape {
                num_classes: parts.head.num_classes()?,
                max_positions: parts.embeddings.position_ids.usable(table_rows),
                vocab_size: parts.vocab_size,
                output: parts.head.output(),
            },
            embeddings: parts.embeddings,
            layers,
            head: parts.head,
            pad_token_id: parts.pad_token_id,
        })
    }
}

impl EncoderClassifier {
    /// The head's output, `[batch, num_classes]` (`[tokens, num_classes]` per token).
    fn head_output(&self, batch: &[&TokenSequence]) -> candle_core::Result<Tensor> {
        let table = self.embeddings.words.embeddings();
        let (device, dtype) = (table.device(), table.dtype());
        let packed = PackedBatch::new(batch);
        let tokens = packed.tokens();
        let mut positions = Vec::with_capacity(tokens);
        for sequence in batch {
            self.embeddings
                .position_ids
                .push_ids(&sequence.ids, self.pad_token_id, &mut positions);
        }
        let layout = packed.layout(device)?;
        let mask = packed.attention_mask(device)?.to_dtype(dtype)?;
        let positions = Tensor::from_vec(positions, tokens, device)?;
        let type_ids = packed
            .type_ids
            .map(|types| Tensor::from_vec(types, tokens, device))
            .transpose()?;
        let ids = Tensor::from_vec(packed.ids, tokens, device)?;
        let mut xs = self
            .embeddings
            .forward(&ids, &positions, type_ids.as_ref())?;
        for layer in &self.layers {
            xs = layer.forward(&xs, &mask, &layout)?;
        }
        self.head.forward(&xs, &layout)
    }
}

impl Engine for EncoderClassifier {
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
