//! The protocol's pair encodings and chat rendering, token for token against transformers (pairs.json,
//! chat.json): what both deployments send to their engines.

use classify_protocol::ModelFiles;
use classify_protocol::tokenize::{PairCut, PairTruncation};
use classify_tests::fixtures::{ENCODER_MODELS, Fixture, LLM_RERANKERS, REWARD_MODELS};
use classify_tests::pair_cases::{ChatReference, EncodedPair, PairReference};

fn check(
    fixture: &Fixture,
    got: &classify_protocol::TokenSequence,
    want: &EncodedPair,
    what: &str,
) {
    assert_eq!(got.ids, want.ids, "{}: {what}", fixture.name);
    if let Some(types) = &want.type_ids {
        let got_types = got
            .type_ids
            .clone()
            .unwrap_or_else(|| vec![0; got.ids.len()]);
        assert_eq!(&got_types, types, "{}: {what}: token types", fixture.name);
    }
}

#[test]
fn pairs_are_encoded_as_transformers_encodes_them() {
    let mut checked = 0;
    for name in ENCODER_MODELS.iter().chain(LLM_RERANKERS) {
        let fixture = Fixture::load(name);
        let Some(reference) = PairReference::load(&fixture) else {
            continue;
        };
        let files = ModelFiles::read(&fixture.dir).unwrap_or_else(|e| panic!("{e}"));
        let tokenizer = &files.tokenizer;
        let max_len = fixture.reference.max_model_len;
        // A cross-encoder's pair template, or an LLM reranker's prompt.
        let encode = |query: &str, document: &str, cut, instruction| match &files.prompt {
            Some(prompt) => prompt.encode(tokenizer, instruction, query, document, cut, max_len),
            None => tokenizer.encode_pair(query, document, cut, max_len),
        };
        if let Some(rerank) = &reference.rerank {
            for (document, want) in rerank.documents.iter().zip(&rerank.pairs) {
                let got = encode(&rerank.query, document, None, None).unwrap();
                check(&fixture, &got, want, document);
                checked += 1;
            }
            for cut in &rerank.truncated {
                let strategy = PairTruncation::from_name(&cut.truncation).unwrap();
                let pair_cut = PairCut {
                    max_tokens: cut.truncate_prompt_tokens,
                    strategy,
                };
                let got = encode(&rerank.query, &cut.document, Some(pair_cut), None).unwrap();
                let want = EncodedPair {
                    ids: cut.ids.clone(),
                    type_ids: cut.type_ids.clone(),
                    logits: vec![],
                };
                check(
                    &fixture,
                    &got,
                    &want,
                    &format!("{} to {}", cut.truncation, cut.truncate_prompt_tokens),
                );
                checked += 1;
            }
            if let Some(instructed) = &rerank.instructed {
                let instruction = Some(instructed.instruction.as_str());
                for (document, want) in rerank.documents.iter().zip(&instructed.pairs) {
                    let got = encode(&rerank.query, document, None, instruction).unwrap();
                    check(&fixture, &got, want, &instructed.instruction);
                    checked += 1;
                }
            }
        }
        for case in reference.zero_shot.iter().flatten() {
            for (label, want) in case.candidate_labels.iter().zip(&case.pairs) {
                let hypothesis = case.hypothesis_template.replace("{}", label);
                let cut = PairCut {
                    max_tokens: max_len,
                    strategy: PairTruncation::OnlyFirst,
                };
                let got = tokenizer
                    .encode_pair(&case.sequence, &hypothesis, Some(cut), max_len)
                    .unwrap();
                check(&fixture, &got, want, &hypothesis);
                checked += 1;
            }
        }
    }
    assert!(checked >= 57, "only {checked} pairs checked");
}

#[test]
fn chat_templates_render_as_apply_chat_template() {
    let mut checked = 0;
    for name in REWARD_MODELS {
        let fixture = Fixture::load(name);
        let Some(chat) = ChatReference::load(&fixture) else {
            continue;
        };
        let files = ModelFiles::read(&fixture.dir).unwrap_or_else(|e| panic!("{e}"));
        let template = files.chat_template.unwrap().expect("a chat template");
        for case in &chat.cases {
            let messages = classify_protocol::chat::parse_messages(&case.messages).unwrap();
            let text = template.render(&messages).unwrap();
            let ids = files.tokenizer.encode(&text, false, None).unwrap();
            assert_eq!(ids, case.ids, "{name}: {text:?}");
            checked += 1;
        }
    }
    assert!(checked >= 2, "only {checked} conversations checked");
}
