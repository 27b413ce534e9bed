//! Redaction: a text with the spans of its entities replaced, so that an edge function can strip PII in one call.

use super::aggregate::Entity;

/// Which entities to replace and with what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redaction {
    /// Only entities with these labels; `None`: every entity of the answer.
    pub labels: Option<Vec<String>>,
    /// What replaces a span; `{label}` in it becomes the entity's label.
    pub replacement: String,
}

impl Default for Redaction {
    fn default() -> Self {
        Redaction {
            labels: None,
            replacement: "[{label}]".to_owned(),
        }
    }
}

impl Redaction {
    /// `text` with the spans of `entities` (code points) replaced, without the whitespace at their edges (a
    /// SentencePiece token's span starts at the space before its word). Entities that overlap are replaced as one
    /// span under the label of the one that starts first; adjacent ones each get their replacement.
    pub fn apply(&self, text: &str, entities: &[Entity]) -> String {
        let chars: Vec<char> = text.chars().collect();
        let blank = |i: usize| chars.get(i).is_some_and(|c| c.is_whitespace());
        let mut spans: Vec<(usize, usize, &str)> = entities
            .iter()
            .filter(|e| self.labels.as_ref().is_none_or(|l| l.contains(&e.label)))
            .filter_map(|e| {
                e.span
                    .map(|(start, end)| (start, end.min(chars.len()), e.label.as_str()))
            })
            .map(|(mut start, mut end, label)| {
                while start < end && blank(start) {
                    start += 1;
                }
                while end > start && blank(end - 1) {
                    end -= 1;
                }
                (start, end, label)
            })
            .filter(|(start, end, _)| start < end)
            .collect();
        spans.sort_by_key(|&(start, end, _)| (start, std::cmp::Reverse(end)));
        let mut merged: Vec<(usize, usize, &str)> = Vec::with_capacity(spans.len());
        for span in spans {
            match merged.last_mut() {
                Some(last) if span.0 < last.1 => last.1 = last.1.max(span.1),
                _ => merged.push(span),
            }
        }
        let mut out = String::with_capacity(text.len());
        let mut spans = merged.into_iter().peekable();
        let mut skip_until = 0;
        for (i, &c) in chars.iter().enumerate() {
            if let Some(&(start, end, label)) = spans.peek()
                && i == start
            {
                out.push_str(&self.replacement.replace("{label}", label));
                skip_until = end;
                spans.next();
            }
            if i >= skip_until {
                out.push(c);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(label: &str, start: usize, end: usize) -> Entity {
        Entity {
            label: label.to_owned(),
            score: 0.9,
            index: None,
            word: String::new(),
            span: Some((start, end)),
        }
    }

    #[test]
    fn spans_are_replaced_by_label_in_code_points() {
        let text = "Café Zoë called Ann";
        let entities = [
            entity("LOC", 0, 4),
            entity("PER", 5, 8),
            entity("PER", 16, 19),
        ];
        assert_eq!(
            Redaction::default().apply(text, &entities),
            "[LOC] [PER] called [PER]"
        );
        let only_people = Redaction {
            labels: Some(vec!["PER".to_owned()]),
            replacement: "<{label}:{label}>".to_owned(),
        };
        assert_eq!(
            only_people.apply(text, &entities),
            "Café <PER:PER> called <PER:PER>"
        );
    }

    #[test]
    fn overlapping_spans_become_one_and_adjacent_ones_stay_apart() {
        let text = "abcdefgh";
        let overlapping = [entity("B", 2, 5), entity("A", 1, 4), entity("C", 4, 6)];
        assert_eq!(Redaction::default().apply(text, &overlapping), "a[A]gh");
        let adjacent = [entity("A", 0, 2), entity("B", 2, 4)];
        assert_eq!(Redaction::default().apply(text, &adjacent), "[A][B]efgh");
        let empty_and_past_the_end = [entity("A", 3, 3), entity("B", 6, 20)];
        assert_eq!(
            Redaction::default().apply(text, &empty_and_past_the_end),
            "abcdef[B]"
        );
        let spaced = [entity("A", 3, 9), entity("B", 9, 10)];
        assert_eq!(
            Redaction::default().apply("see https x", &spaced),
            "see [A] x",
            "edge whitespace stays; a blank span is no span"
        );
    }
}
