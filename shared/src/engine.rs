//! The contract every inference engine implements — the native server's candle models and the edge's ONNX
//! runner alike: what the model is ([`ModelShape`]) and a forward pass from token ids to raw scores ([`Logits`]).

use std::fmt;

/// One input's tokens for a forward pass.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TokenSequence {
    pub ids: Vec<u32>,
    /// One token type (segment) id per token for a sentence pair, as the tokenizer's pair template assigns them
    /// (BERT: 0 on `[CLS] a [SEP]`, 1 on `b [SEP]`); `None` for a single segment, all 0.
    pub type_ids: Option<Vec<u32>>,
}

impl TokenSequence {
    pub fn single(ids: Vec<u32>) -> TokenSequence {
        TokenSequence {
            ids,
            type_ids: None,
        }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// What a forward pass answers for each input sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// One row of `num_classes` scores per sequence (sequence classification, reward and reranking heads).
    Sequence,
    /// One row per token of each sequence (token classification).
    Token,
}

/// What an engine learns from the weights themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelShape {
    /// Width of an output row: the classification head's outputs.
    pub num_classes: usize,
    /// Rows of the position table (or the context length for rotary models).
    pub max_positions: usize,
    /// Rows of the token embedding table.
    pub vocab_size: usize,
    pub output: OutputKind,
}

impl ModelShape {
    /// Output rows a forward pass over `batch` gives.
    pub fn rows_for(&self, batch: &[&TokenSequence]) -> usize {
        match self.output {
            OutputKind::Sequence => batch.len(),
            OutputKind::Token => batch.iter().map(|s| s.len()).sum(),
        }
    }
}

/// Raw f32 scores of one forward pass: rows of `width` values, row-major — one row per sequence, or one per
/// token with the sequences one after another (see [`OutputKind`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Logits {
    width: usize,
    values: Vec<f32>,
}

impl Logits {
    /// `values` as rows of `width`; an error when they do not divide into such rows.
    pub fn new(width: usize, values: Vec<f32>) -> Result<Logits, EngineError> {
        if width == 0 || !values.len().is_multiple_of(width) {
            return Err(EngineError::new(format!(
                "{} scores are not rows of {width}",
                values.len()
            )));
        }
        Ok(Logits { width, values })
    }

    /// Rows of equal width (an empty list is zero rows of `width`).
    pub fn from_rows(width: usize, rows: Vec<Vec<f32>>) -> Result<Logits, EngineError> {
        if let Some(row) = rows.iter().find(|row| row.len() != width) {
            return Err(EngineError::new(format!(
                "a row has {} scores, expected {width}",
                row.len()
            )));
        }
        Logits::new(width, rows.concat())
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn rows(&self) -> usize {
        self.values.len() / self.width
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.width..(i + 1) * self.width]
    }

    /// `count` rows from row `first`, one after another.
    pub fn rows_slice(&self, first: usize, count: usize) -> &[f32] {
        &self.values[first * self.width..(first + count) * self.width]
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[f32]> {
        self.values.chunks_exact(self.width)
    }

    pub fn into_rows(self) -> Vec<Vec<f32>> {
        self.values
            .chunks_exact(self.width)
            .map(<[f32]>::to_vec)
            .collect()
    }

    /// Checks that these are what `shape` promises for `batch`: its row count, `num_classes` wide, all finite.
    pub fn check(&self, shape: &ModelShape, batch: &[&TokenSequence]) -> Result<(), EngineError> {
        self.check_rows(shape.rows_for(batch), shape.num_classes)
    }

    /// Checks that these are `rows` rows of `width` finite scores.
    pub fn check_rows(&self, rows: usize, width: usize) -> Result<(), EngineError> {
        if self.width != width || self.rows() != rows {
            return Err(EngineError::new(format!(
                "the model returned {} rows of {} scores, expected {rows} of {width}",
                self.rows(),
                self.width,
            )));
        }
        if self.values.iter().any(|x| !x.is_finite()) {
            return Err(EngineError::new("the model produced non-finite logits"));
        }
        Ok(())
    }
}

/// Why a forward pass (or loading the model for one) failed, as one line for logs and error bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineError(String);

impl EngineError {
    pub fn new(message: impl Into<String>) -> EngineError {
        EngineError(message.into())
    }

    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EngineError {}

/// A model's forward pass over a batch of token-id sequences of any lengths.
pub trait Engine: Send {
    /// Classes, usable positions, vocabulary and output kind, as read from the weights or the graph.
    fn shape(&self) -> ModelShape;

    /// Whether a forward pass costs its longest sequence times the batch size (the engine pads), rather than
    /// the sum of the lengths (it runs the real tokens only). Batchers size passes by it.
    fn pads_batches(&self) -> bool {
        true
    }

    /// Raw scores for `batch`, as [`ModelShape::output`] says: one row per sequence or per token.
    fn forward(&self, batch: &[&TokenSequence]) -> Result<Logits, EngineError>;
}

/// Runs a batch of two sequences of different lengths (so padding and masks are exercised) with ids the
/// vocabulary has, and checks the answer's shape: a model that loads but cannot run fails here, at load, where
/// `/health` and startup report it, instead of on every request.
pub fn warm_up(engine: &dyn Engine, max_len: usize) -> Result<(), EngineError> {
    let shape = engine.shape();
    let vocab = u32::try_from(shape.vocab_size.max(1)).unwrap_or(u32::MAX);
    let id = |i: u32| i % vocab;
    let long = u32::try_from(max_len.clamp(1, 4)).unwrap_or(1);
    let batch = [
        TokenSequence::single((1..=long).map(id).collect()),
        TokenSequence::single(vec![id(1)]),
    ];
    let batch: Vec<&TokenSequence> = batch.iter().collect();
    let logits = engine
        .forward(&batch)
        .map_err(|e| EngineError::new(format!("a warm-up run failed: {e}")))?;
    logits
        .check(&shape, &batch)
        .map_err(|e| EngineError::new(format!("a warm-up run failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scores each sequence (or token) by its length; `broken` answers one row too few.
    struct Lengths {
        output: OutputKind,
        broken: bool,
    }

    impl Engine for Lengths {
        fn shape(&self) -> ModelShape {
            ModelShape {
                num_classes: 2,
                max_positions: 8,
                vocab_size: 5,
                output: self.output,
            }
        }

        fn forward(&self, batch: &[&TokenSequence]) -> Result<Logits, EngineError> {
            let mut rows: Vec<Vec<f32>> = match self.output {
                OutputKind::Sequence => batch.iter().map(|s| vec![s.len() as f32; 2]).collect(),
                OutputKind::Token => batch
                    .iter()
                    .flat_map(|s| s.ids.iter().map(|&id| vec![id as f32; 2]))
                    .collect(),
            };
            if self.broken {
                rows.pop();
            }
            Logits::from_rows(2, rows)
        }
    }

    #[test]
    fn warm_up_passes_a_working_engine_and_refuses_a_wrong_shape() {
        for output in [OutputKind::Sequence, OutputKind::Token] {
            let fine = Lengths {
                output,
                broken: false,
            };
            assert_eq!(warm_up(&fine, 512), Ok(()));
            let broken = Lengths {
                output,
                broken: true,
            };
            let error = warm_up(&broken, 512).unwrap_err();
            assert!(
                error
                    .message()
                    .starts_with("a warm-up run failed: the model returned"),
                "{error}"
            );
        }
    }

    #[test]
    fn logits_are_rows_of_one_width() {
        let logits = Logits::from_rows(2, vec![vec![1.0, 2.0], vec![3.0, 4.0]]).unwrap();
        assert_eq!(logits.rows(), 2);
        assert_eq!(logits.row(1), [3.0, 4.0]);
        assert_eq!(logits.iter().len(), 2);
        assert_eq!(logits.into_rows(), [vec![1.0, 2.0], vec![3.0, 4.0]]);
        assert!(Logits::from_rows(2, vec![vec![1.0]]).is_err());
        assert!(Logits::new(0, vec![]).is_err());
        assert!(Logits::new(3, vec![1.0; 4]).is_err());
    }

    #[test]
    fn check_refuses_non_finite_scores_and_counts_token_rows() {
        let shape = ModelShape {
            num_classes: 1,
            max_positions: 8,
            vocab_size: 5,
            output: OutputKind::Token,
        };
        let a = TokenSequence::single(vec![1, 2, 3]);
        let b = TokenSequence::single(vec![4]);
        let batch = [&a, &b];
        assert_eq!(shape.rows_for(&batch), 4);
        assert!(
            Logits::new(1, vec![0.0; 4])
                .unwrap()
                .check(&shape, &batch)
                .is_ok()
        );
        assert!(
            Logits::new(1, vec![0.0; 2])
                .unwrap()
                .check(&shape, &batch)
                .is_err()
        );
        let nan = Logits::new(1, vec![0.0, f32::NAN, 0.0, 0.0]).unwrap();
        assert!(nan.check(&shape, &batch).is_err());
    }
}
