use super::*;
use crate::tokenize::Overflow;

/// WordPiece with `##` subwords and the WordPiece decoder, as BERT NER models ship.
const NER_TOKENIZER: &str = r###"{
  "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
  "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                 "strip_accents": null, "lowercase": false},
  "pre_tokenizer": {"type": "BertPreTokenizer"},
  "post_processor": {"type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
               {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
    "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
    "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                       "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
  "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
  "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
            "max_input_chars_per_word": 100,
            "vocab": {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "Ann": 4, "lives": 5, "in": 6, "New": 7,
                      "York": 8, "##er": 9}}
}"###;

const LABELS: [&str; 5] = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"];

/// Logits that pick `label` for a token, by `margin` over every other label.
fn pick(label: &str, margin: f32) -> Vec<f32> {
    LABELS
        .iter()
        .map(|l| if *l == label { margin } else { 0.0 })
        .collect()
}

fn run(
    text: &str,
    picks: &[(&str, f32)],
    strategy: Strategy,
) -> Vec<(String, String, usize, usize)> {
    let tokenizer = TextTokenizer::from_json(NER_TOKENIZER.as_bytes(), None).unwrap();
    let labels: Vec<String> = LABELS.iter().map(|l| (*l).to_owned()).collect();
    let windows = tokenizer
        .encode_spans(text, true, 64, Overflow::Refuse)
        .unwrap();
    let tokens = &windows[0];
    assert_eq!(tokens.ids.len(), picks.len() + 2, "{:?}", tokens.ids);
    let mut logits = pick("O", 1.0);
    for (label, margin) in picks {
        logits.extend(pick(label, *margin));
    }
    logits.extend(pick("O", 1.0));
    let aggregation = Aggregation {
        tokenizer: &tokenizer,
        labels: &labels,
        strategy,
        ignore_labels: &["O".to_owned()],
    };
    let window = Window {
        tokens,
        logits: &logits,
    };
    aggregation
        .entities(Some(text), &[window])
        .into_iter()
        .map(|e| {
            let (start, end) = e.span.unwrap();
            (e.label, e.word, start, end)
        })
        .collect()
}

fn entity(label: &str, word: &str, start: usize, end: usize) -> (String, String, usize, usize) {
    (label.to_owned(), word.to_owned(), start, end)
}

/// `York` says I-LOC, its subword `##er` more confidently I-PER: each word strategy resolves it its own way.
const YORKER: [(&str, f32); 6] = [
    ("B-PER", 5.0),
    ("O", 5.0),
    ("O", 5.0),
    ("B-LOC", 5.0),
    ("I-LOC", 5.0),
    ("I-PER", 8.0),
];
const TEXT: &str = "Ann lives in New Yorker";

#[test]
fn none_gives_every_token_with_its_piece() {
    let tokens = run(TEXT, &YORKER, Strategy::None);
    assert_eq!(
        tokens,
        [
            entity("B-PER", "Ann", 0, 3),
            entity("B-LOC", "New", 13, 16),
            entity("I-LOC", "York", 17, 21),
            entity("I-PER", "##er", 21, 23),
        ]
    );
}

#[test]
fn simple_merges_tags_and_splits_at_a_new_tag() {
    assert_eq!(
        run(TEXT, &YORKER, Strategy::Simple),
        [
            entity("PER", "Ann", 0, 3),
            entity("LOC", "New York", 13, 21),
            entity("PER", "##er", 21, 23),
        ]
    );
}

#[test]
fn word_strategies_keep_words_whole() {
    let first = run(TEXT, &YORKER, Strategy::First);
    assert_eq!(
        first,
        [
            entity("PER", "Ann", 0, 3),
            entity("LOC", "New Yorker", 13, 23)
        ]
    );
    let people_and_places = [
        entity("PER", "Ann", 0, 3),
        entity("LOC", "New", 13, 16),
        entity("PER", "Yorker", 17, 23),
    ];
    assert_eq!(run(TEXT, &YORKER, Strategy::Max), people_and_places);
    assert_eq!(run(TEXT, &YORKER, Strategy::Average), people_and_places);
}

#[test]
fn an_unknown_word_is_its_text_and_starts_a_word() {
    let picks = [("B-PER", 5.0), ("I-PER", 5.0)];
    assert_eq!(
        run("Ann Zoë", &picks, Strategy::First),
        [entity("PER", "Ann Zoë", 0, 7)]
    );
}

#[test]
fn labels_without_a_tag_continue_and_a_group_is_named_after_its_first_dash() {
    let tokenizer = TextTokenizer::from_json(NER_TOKENIZER.as_bytes(), None).unwrap();
    let aggregation = Aggregation {
        tokenizer: &tokenizer,
        labels: &[],
        strategy: Strategy::Simple,
        ignore_labels: &[],
    };
    let token = |label: &str, word: &str| Entity {
        label: label.to_owned(),
        score: 0.5,
        index: None,
        word: word.to_owned(),
        span: None,
    };
    let groups = aggregation.group_entities(vec![
        token("PII-EMAIL", "Ann"),
        token("PII-EMAIL", "lives"),
        token("URL", "in"),
        token("I-URL", "New"),
        token("B-URL", "York"),
    ]);
    let names: Vec<(&str, &str)> = groups
        .iter()
        .map(|g| (g.label.as_str(), g.word.as_str()))
        .collect();
    assert_eq!(
        names,
        [("EMAIL", "Ann lives"), ("URL", "in New"), ("URL", "York")]
    );
}

#[test]
fn overlapping_windows_keep_the_longer_then_the_surer_entity() {
    let at = |start: usize, end: usize, score: f32| Entity {
        label: "PER".to_owned(),
        score,
        index: None,
        word: String::new(),
        span: Some((start, end)),
    };
    let merged = merge_overlapping(vec![
        at(0, 3, 0.5),
        at(10, 14, 0.6),
        at(0, 5, 0.4),
        at(10, 14, 0.7),
    ]);
    let spans: Vec<(Option<(usize, usize)>, f32)> =
        merged.iter().map(|e| (e.span, e.score)).collect();
    assert_eq!(spans, [(Some((0, 5)), 0.4), (Some((10, 14)), 0.7)]);
}
