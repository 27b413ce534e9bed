//! A batch without padding: its sequences' tokens one after another, `[tokens, features]`. The parts of an encoder
//! that treat each token alone (projections, feed-forward, norms: nearly all of its work) run on these rows only;
//! attention runs on a padded view of them. With mixed lengths this skips the padding's share of every matrix
//! product (text-embeddings-inference runs its BERT-family encoders the same way).

use candle_core::{Device, Result, Tensor};
use classify_protocol::TokenSequence;

/// The rows of a packed batch and how they map to and from the padded layout `[batch, longest]`.
pub struct PackedBatch {
    /// `[tokens]` token ids.
    pub ids: Vec<u32>,
    /// `[tokens]` token type ids (0 for single segments); `None` when every sequence is a single segment.
    pub type_ids: Option<Vec<u32>>,
    lengths: Vec<usize>,
    longest: usize,
}

impl PackedBatch {
    pub fn new(batch: &[&TokenSequence]) -> PackedBatch {
        let ids = batch.iter().flat_map(|s| s.ids.iter().copied()).collect();
        let type_ids = batch.iter().any(|s| s.type_ids.is_some()).then(|| {
            batch
                .iter()
                .flat_map(|s| match &s.type_ids {
                    Some(types) => types.clone(),
                    None => vec![0; s.len()],
                })
                .collect()
        });
        PackedBatch {
            ids,
            type_ids,
            lengths: batch.iter().map(|s| s.len()).collect(),
            longest: batch.iter().map(|s| s.len()).max().unwrap_or(0),
        }
    }

    pub fn tokens(&self) -> usize {
        self.ids.len()
    }

    /// The additive attention mask `[batch, 1, 1, longest]`: 0 on tokens, -inf on padding, as f32.
    pub fn attention_mask(&self, device: &Device) -> Result<Tensor> {
        let mut mask = Vec::with_capacity(self.lengths.len() * self.longest);
        for &length in &self.lengths {
            mask.extend(std::iter::repeat_n(0f32, length));
            mask.extend(std::iter::repeat_n(
                f32::NEG_INFINITY,
                self.longest - length,
            ));
        }
        Tensor::from_vec(mask, (self.lengths.len(), 1, 1, self.longest), device)
    }

    /// The index tensors that move rows between the packed and the padded layouts.
    pub fn layout(&self, device: &Device) -> Result<PackedLayout> {
        if self.lengths.contains(&0) {
            candle_core::bail!("a packed batch cannot hold an empty sequence");
        }
        let uniform = self.lengths.iter().all(|&l| l == self.longest);
        let (mut to_padded, mut to_packed, mut first) = (Vec::new(), Vec::new(), Vec::new());
        let mut start = 0u32;
        for (row, &length) in self.lengths.iter().enumerate() {
            first.push(start);
            if !uniform {
                // A padding row repeats the sequence's first token: attention masks it as a key, and what it
                // computes as a query is dropped when the rows are packed again.
                to_padded.extend(start..start + length as u32);
                to_padded.extend(std::iter::repeat_n(start, self.longest - length));
                let padded_start = (row * self.longest) as u32;
                to_packed.extend(padded_start..padded_start + length as u32);
            }
            start += length as u32;
        }
        let index = |rows: Vec<u32>| {
            let count = rows.len();
            Tensor::from_vec(rows, count, device)
        };
        Ok(PackedLayout {
            lengths: self.lengths.clone(),
            batch: self.lengths.len(),
            longest: self.longest,
            moves: match uniform {
                true => None,
                false => Some((index(to_padded)?, index(to_packed)?)),
            },
            first: index(first)?,
        })
    }
}

pub struct PackedLayout {
    lengths: Vec<usize>,
    batch: usize,
    longest: usize,
    /// The packed row of each padded row, and the padded row of each packed one; `None` when no sequence is
    /// padded, so the two layouts are one reshape apart.
    moves: Option<(Tensor, Tensor)>,
    /// The packed row of each sequence's first token.
    first: Tensor,
}

impl PackedLayout {
    /// `[tokens, features]` → `[batch, longest, features]`.
    pub fn padded(&self, packed: &Tensor) -> Result<Tensor> {
        let features = packed.dim(1)?;
        let rows = match &self.moves {
            Some((to_padded, _)) => packed.index_select(to_padded, 0)?,
            None => packed.clone(),
        };
        rows.reshape((self.batch, self.longest, features))
    }

    /// `[batch, longest, features]` → `[tokens, features]`.
    pub fn packed(&self, padded: &Tensor) -> Result<Tensor> {
        let (batch, longest, features) = padded.dims3()?;
        let rows = padded.reshape((batch * longest, features))?;
        match &self.moves {
            Some((_, to_packed)) => rows.index_select(to_packed, 0),
            None => Ok(rows),
        }
    }

    /// Each sequence's first token, `[batch, features]`.
    pub fn first_tokens(&self, packed: &Tensor) -> Result<Tensor> {
        packed.index_select(&self.first, 0)
    }

    /// Each sequence's mean over its tokens, `[batch, features]`, accumulated in f32.
    pub fn means(&self, packed: &Tensor) -> Result<Tensor> {
        let (tokens, features) = packed.dims2()?;
        let device = packed.device();
        let (mut owner, mut weight) = (Vec::with_capacity(tokens), Vec::with_capacity(tokens));
        for (row, &length) in self.lengths.iter().enumerate() {
            owner.extend(std::iter::repeat_n(row as u32, length));
            weight.extend(std::iter::repeat_n(1.0 / length as f32, length));
        }
        let owner = Tensor::from_vec(owner, tokens, device)?;
        let weight = Tensor::from_vec(weight, (tokens, 1), device)?;
        let weighted = packed
            .to_dtype(candle_core::DType::F32)?
            .broadcast_mul(&weight)?;
        Tensor::zeros((self.batch, features), candle_core::DType::F32, device)?
            .index_add(&owner, &weighted, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::PackedBatch;
    use candle_core::{Device, Tensor};
    use classify_protocol::TokenSequence;

    fn sequence(ids: &[u32]) -> TokenSequence {
        TokenSequence {
            ids: ids.to_vec(),
            type_ids: None,
        }
    }

    #[test]
    fn rows_move_between_the_layouts() {
        let (a, b) = (sequence(&[5, 6, 7]), sequence(&[8]));
        let batch = PackedBatch::new(&[&a, &b]);
        assert_eq!(batch.ids, [5, 6, 7, 8]);
        assert_eq!(batch.tokens(), 4);
        let layout = batch.layout(&Device::Cpu).unwrap();
        let rows = Tensor::new(&[[0f32, 1.], [2., 3.], [4., 5.], [6., 7.]], &Device::Cpu).unwrap();
        let padded = layout.padded(&rows).unwrap();
        assert_eq!(
            padded.to_vec3::<f32>().unwrap(),
            [
                [[0., 1.], [2., 3.], [4., 5.]],
                [[6., 7.], [6., 7.], [6., 7.]]
            ]
        );
        let back = layout.packed(&padded).unwrap();
        assert_eq!(
            back.to_vec2::<f32>().unwrap(),
            rows.to_vec2::<f32>().unwrap()
        );
        let first = layout.first_tokens(&rows).unwrap();
        assert_eq!(first.to_vec2::<f32>().unwrap(), [[0., 1.], [6., 7.]]);
        let mask = batch.attention_mask(&Device::Cpu).unwrap();
        assert_eq!(
            mask.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            [0., 0., 0., 0., f32::NEG_INFINITY, f32::NEG_INFINITY]
        );
    }

    #[test]
    fn equal_lengths_need_no_gather_and_types_are_packed() {
        let a = TokenSequence {
            ids: vec![1, 2],
            type_ids: Some(vec![0, 1]),
        };
        let b = sequence(&[3, 4]);
        let batch = PackedBatch::new(&[&a, &b]);
        assert_eq!(batch.type_ids.as_deref(), Some(&[0, 1, 0, 0][..]));
        let layout = batch.layout(&Device::Cpu).unwrap();
        assert!(layout.moves.is_none());
        let rows = Tensor::arange(0f32, 8., &Device::Cpu)
            .unwrap()
            .reshape((4, 2))
            .unwrap();
        let padded = layout.padded(&rows).unwrap();
        assert_eq!(padded.dims(), [2, 2, 2]);
        assert_eq!(
            layout
                .first_tokens(&rows)
                .unwrap()
                .to_vec2::<f32>()
                .unwrap(),
            [[0., 1.], [4., 5.]]
        );
    }

    #[test]
    fn an_empty_sequence_is_an_error() {
        let (a, empty) = (sequence(&[1]), sequence(&[]));
        assert!(
            PackedBatch::new(&[&a, &empty])
                .layout(&Device::Cpu)
                .is_err()
        );
    }
}
