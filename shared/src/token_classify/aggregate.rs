//! Per-token scores to entities, step for step as transformers' `TokenClassificationPipeline` post-processes them
//! (`gather_pre_entities`, `aggregate`, `aggregate_words`, `group_entities`, `aggregate_overlapping_entities`), so
//! that labels, words, offsets and scores are the pipeline's.

use crate::activation::argmax;
use crate::tokenize::{SpannedTokens, TextTokenizer};

/// How tokens become entities (the pipeline's `aggregation_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// One entity per token: its best label, the raw vocabulary piece as the word, the token's index.
    None,
    /// Adjacent tokens with the same tag merged (a `B-` always starts a new entity).
    Simple,
    /// Words labelled by their first token, then merged as [`Strategy::Simple`] does.
    First,
    /// Words labelled by the mean of their tokens' probabilities.
    Average,
    /// Words labelled by their most confident token.
    Max,
}

impl Strategy {
    pub const NAMES: [(&'static str, Strategy); 5] = [
        ("none", Strategy::None),
        ("simple", Strategy::Simple),
        ("first", Strategy::First),
        ("average", Strategy::Average),
        ("max", Strategy::Max),
    ];

    fn by_word(self) -> bool {
        matches!(self, Strategy::First | Strategy::Average | Strategy::Max)
    }
}

/// One entity of an answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    /// The token's label ([`Strategy::None`]) or the group's (the label after its first `-`).
    pub label: String,
    pub score: f32,
    /// The token's position in its window, special tokens counted ([`Strategy::None`] only).
    pub index: Option<usize>,
    pub word: String,
    /// `[start, end)` in code points of the text; `None` for token-id inputs.
    pub span: Option<(usize, usize)>,
}

/// A token as the pipeline gathers it.
struct Token {
    piece: String,
    probs: Vec<f32>,
    span: Option<(usize, usize)>,
    index: usize,
    is_subword: bool,
}

/// One window's tokens and their raw scores (`labels.len()` per token, in token order).
pub struct Window<'a> {
    pub tokens: &'a SpannedTokens,
    pub logits: &'a [f32],
}

/// What the post-processing reads: the tokenizer, the model's labels and the request's choices.
pub struct Aggregation<'a> {
    pub tokenizer: &'a TextTokenizer,
    pub labels: &'a [String],
    pub strategy: Strategy,
    pub ignore_labels: &'a [String],
}

impl Aggregation<'_> {
    /// The entities of one input: `text` as sent (`None` for token ids, which have no offsets), cut into `windows`.
    /// Entities of overlapping windows are merged as the pipeline merges them.
    pub fn entities(&self, text: Option<&str>, windows: &[Window]) -> Vec<Entity> {
        let chars: Option<Vec<char>> = text.map(|t| t.chars().collect());
        let mut entities = Vec::new();
        for window in windows {
            let tokens = self.gather(chars.as_deref(), window);
            let grouped = self.aggregate(tokens);
            entities.extend(
                grouped
                    .into_iter()
                    .filter(|e| !self.ignore_labels.contains(&e.label)),
            );
        }
        if windows.len() > 1 {
            entities = merge_overlapping(entities);
        }
        entities
    }

    fn gather(&self, chars: Option<&[char]>, window: &Window) -> Vec<Token> {
        let width = self.labels.len();
        let tokens = window.tokens;
        let word_aware = self.tokenizer.marks_subwords();
        let mut gathered = Vec::with_capacity(tokens.ids.len());
        for (index, (&id, logits)) in tokens
            .ids
            .iter()
            .zip(window.logits.chunks_exact(width))
            .enumerate()
        {
            if tokens.special[index] {
                continue;
            }
            let mut piece = self.tokenizer.piece(id);
            let (span, mut is_subword) = match chars {
                Some(chars) => {
                    let end = tokens.offsets[index].1.min(chars.len());
                    let start = tokens.offsets[index].0.min(end);
                    let text: String = chars[start..end].iter().collect();
                    let is_subword = if word_aware {
                        piece.chars().count() != end - start
                    } else {
                        // The pipeline's fallback: a token continues a word unless a space is just before it or
                        // is its first character.
                        start > 0 && !chars[start - 1..(start + 1).min(chars.len())].contains(&' ')
                    };
                    if Some(id) == self.tokenizer.unk_id() {
                        piece = text;
                    }
                    (Some((start, end)), is_subword)
                }
                None => (None, false),
            };
            if Some(id) == self.tokenizer.unk_id() {
                is_subword = false;
            }
            gathered.push(Token {
                piece,
                probs: softmax(logits),
                span,
                index,
                is_subword,
            });
        }
        gathered
    }

    fn aggregate(&self, tokens: Vec<Token>) -> Vec<Entity> {
        let entities: Vec<Entity> = if self.strategy.by_word() {
            self.aggregate_words(tokens)
        } else {
            tokens
                .into_iter()
                .map(|token| {
                    let best = argmax(&token.probs);
                    Entity {
                        label: self.labels[best].clone(),
                        score: token.probs[best],
                        index: Some(token.index),
                        word: token.piece,
                        span: token.span,
                    }
                })
                .collect()
        };
        if self.strategy == Strategy::None {
            entities
        } else {
            self.group_entities(entities)
        }
    }

    /// Words (a token and the subwords after it) labelled as the strategy says.
    fn aggregate_words(&self, tokens: Vec<Token>) -> Vec<Entity> {
        let mut words = Vec::new();
        let mut word: Vec<Token> = Vec::new();
        for token in tokens {
            if !word.is_empty() && !token.is_subword {
                words.push(self.aggregate_word(std::mem::take(&mut word)));
            }
            word.push(token);
        }
        if !word.is_empty() {
            words.push(self.aggregate_word(word));
        }
        words
    }

    fn aggregate_word(&self, tokens: Vec<Token>) -> Entity {
        let probs: Vec<f32> = match self.strategy {
            Strategy::Max => {
                // The first token whose best probability is the word's highest.
                let mut best = &tokens[0];
                for token in &tokens[1..] {
                    if max(&token.probs) > max(&best.probs) {
                        best = token;
                    }
                }
                best.probs.clone()
            }
            Strategy::Average => (0..self.labels.len())
                .map(|class| mean(tokens.iter().map(|t| t.probs[class])))
                .collect(),
            Strategy::First | Strategy::None | Strategy::Simple => tokens[0].probs.clone(),
        };
        let best = argmax(&probs);
        let span = match (tokens[0].span, tokens[tokens.len() - 1].span) {
            (Some((start, _)), Some((_, end))) => Some((start, end)),
            _ => None,
        };
        Entity {
            label: self.labels[best].clone(),
            score: probs[best],
            index: None,
            word: self
                .tokenizer
                .join_pieces(tokens.into_iter().map(|t| t.piece).collect()),
            span,
        }
    }

    /// Adjacent entities of the same tag as one, unless the later one is a `B-`.
    fn group_entities(&self, entities: Vec<Entity>) -> Vec<Entity> {
        let mut groups = Vec::new();
        let mut group: Vec<Entity> = Vec::new();
        for entity in entities {
            if let Some(last) = group.last() {
                let (bi, current) = tag(&entity.label);
                let (_, previous) = tag(&last.label);
                if !(current == previous && bi != 'B') {
                    groups.push(self.group_sub_entities(std::mem::take(&mut group)));
                }
            }
            group.push(entity);
        }
        if !group.is_empty() {
            groups.push(self.group_sub_entities(group));
        }
        groups
    }

    fn group_sub_entities(&self, entities: Vec<Entity>) -> Entity {
        let first = &entities[0];
        let label = first
            .label
            .split_once('-')
            .map_or(first.label.as_str(), |(_, rest)| rest)
            .to_owned();
        let span = match (first.span, entities[entities.len() - 1].span) {
            (Some((start, _)), Some((_, end))) => Some((start, end)),
            _ => None,
        };
        Entity {
            label,
            score: mean(entities.iter().map(|e| e.score)),
            index: None,
            span,
            word: self
                .tokenizer
                .join_pieces(entities.into_iter().map(|e| e.word).collect()),
        }
    }
}

/// `B-PER` → (`B`, `PER`), `I-PER` → (`I`, `PER`); any other label continues: (`I`, the whole label).
fn tag(label: &str) -> (char, &str) {
    if let Some(rest) = label.strip_prefix("B-") {
        ('B', rest)
    } else if let Some(rest) = label.strip_prefix("I-") {
        ('I', rest)
    } else {
        ('I', label)
    }
}

/// Entities of overlapping windows by start; of two that overlap, the longer (then the more confident) stays.
fn merge_overlapping(mut entities: Vec<Entity>) -> Vec<Entity> {
    let key = |e: &Entity| e.span.map_or(0, |(start, _)| start);
    entities.sort_by_key(key);
    let mut merged = Vec::with_capacity(entities.len());
    let mut entities = entities.into_iter();
    let Some(mut previous) = entities.next() else {
        return merged;
    };
    let length = |e: &Entity| e.span.map_or(0, |(start, end)| end - start);
    let end = |e: &Entity| e.span.map_or(0, |(_, end)| end);
    for entity in entities {
        if key(&previous) <= key(&entity) && key(&entity) < end(&previous) {
            let (current, before) = (length(&entity), length(&previous));
            if current > before || (current == before && entity.score > previous.score) {
                previous = entity;
            }
        } else {
            merged.push(std::mem::replace(&mut previous, entity));
        }
    }
    merged.push(previous);
    merged
}

/// numpy's softmax as the pipeline writes it: `exp(x - max) / sum`, in f32.
fn softmax(logits: &[f32]) -> Vec<f32> {
    let top = max(logits);
    let exps: Vec<f32> = logits.iter().map(|x| (x - top).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

fn max(values: &[f32]) -> f32 {
    values.iter().copied().fold(f32::NEG_INFINITY, f32::max)
}

fn mean(values: impl Iterator<Item = f32>) -> f32 {
    let (sum, count) = values.fold((0.0f32, 0usize), |(s, n), v| (s + v, n + 1));
    sum / count.max(1) as f32
}

#[cfg(test)]
mod tests;
