//! A batch padded on the right to its longest sequence, with its attention mask: the layout of the models that
//! do not run packed batches (`packed.rs`).

use candle_core::Tensor;
use classify_protocol::TokenSequence;

/// A batch padded on the right with `pad` to its longest sequence.
pub struct RightPadded {
    /// `[batch × longest]` token ids, row-major.
    pub ids: Vec<u32>,
    /// `[batch × longest]` token type ids (0 on padding and single segments); `None` when every sequence of the
    /// batch is a single segment.
    pub type_ids: Option<Vec<u32>>,
    pub longest: usize,
    lengths: Vec<usize>,
}

impl RightPadded {
    pub fn new(batch: &[&TokenSequence], pad: u32) -> RightPadded {
        let longest = batch.iter().map(|s| s.len()).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(batch.len() * longest);
        for sequence in batch {
            ids.extend_from_slice(&sequence.ids);
            ids.extend(std::iter::repeat_n(pad, longest - sequence.len()));
        }
        let type_ids = batch.iter().any(|s| s.type_ids.is_some()).then(|| {
            let mut type_ids = Vec::with_capacity(batch.len() * longest);
            for sequence in batch {
                match &sequence.type_ids {
                    Some(types) => type_ids.extend_from_slice(types),
                    None => type_ids.extend(std::iter::repeat_n(0, sequence.len())),
                }
                type_ids.extend(std::iter::repeat_n(0, longest - sequence.len()));
            }
            type_ids
        });
        RightPadded {
            ids,
            type_ids,
            longest,
            lengths: batch.iter().map(|s| s.len()).collect(),
        }
    }

    /// `[batch × longest]`: `real` at each input's tokens, `padding` after them.
    pub fn mask<T: Copy>(&self, real: T, padding: T) -> Vec<T> {
        let mut mask = Vec::with_capacity(self.lengths.len() * self.longest);
        for &length in &self.lengths {
            mask.extend(std::iter::repeat_n(real, length));
            mask.extend(std::iter::repeat_n(padding, self.longest - length));
        }
        mask
    }

    /// Each input's mean over its real tokens of a `[batch, longest, hidden]` tensor, `[batch, hidden]`.
    pub fn means(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let longest = self.longest;
        let weights: Vec<f32> = self
            .lengths
            .iter()
            .flat_map(|&real| {
                (0..longest).map(move |i| if i < real { 1.0 / real as f32 } else { 0.0 })
            })
            .collect();
        let weights = Tensor::from_vec(weights, (self.lengths.len(), 1, longest), xs.device())?
            .to_dtype(xs.dtype())?;
        weights.matmul(xs)?.squeeze(1)
    }

    /// The rows of the real tokens of a `[batch, longest, hidden]` tensor as `[tokens, hidden]`, sequence after
    /// sequence: what a head on every token reads.
    pub fn real_rows(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let (batch, longest, hidden) = xs.dims3()?;
        let mut rows = Vec::with_capacity(self.lengths.iter().sum());
        for (i, &length) in self.lengths.iter().enumerate() {
            rows.extend((0..length).map(|j| (i * longest + j) as u32));
        }
        let count = rows.len();
        let rows = Tensor::from_vec(rows, count, xs.device())?;
        xs.reshape((batch * longest, hidden))?
            .index_select(&rows, 0)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    #[test]
    fn real_rows_leave_the_padding_out() {
        let (a, b) = (
            TokenSequence::single(vec![1, 2, 3]),
            TokenSequence::single(vec![4]),
        );
        let padded = RightPadded::new(&[&a, &b], 0);
        let xs = Tensor::arange(0f32, 6.0, &Device::Cpu)
            .unwrap()
            .reshape((2, 3, 1))
            .unwrap();
        let rows: Vec<Vec<f32>> = padded.real_rows(&xs).unwrap().to_vec2().unwrap();
        assert_eq!(rows, [[0.0], [1.0], [2.0], [3.0]]);
    }
}
