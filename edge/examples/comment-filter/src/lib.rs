//! Example: a Spin HTTP component that asks the classify component whether a comment is spam, through the typed
//! interface `classify:edge/classifier@0.1.0` (edge/wit/classifier.wit) linked into it in-process — by Spin's
//! component dependencies (`spin-comment-filter.toml`) or by `wac plug` — rather than over HTTP.
//!
//! `POST /comments` `{"comment": "...", "model"?: "..."}` answers `{"accepted", "label", "probs", "model"}`:
//! a comment the classifier labels `spam` is not accepted. Errors of the classifier keep their kind and message.
//! `POST /comments/rank` `{"post": "...", "comments": [...], "model"?: "..."}` answers `{"model", "ranked":
//! [{"index", "relevance_score"}]}`, the comments most relevant to the post first (a cross-encoder's rerank);
//! `POST /comments/relevance` (same body) answers `{"model", "scores"}`, each comment's score in comment order.
//! `POST /comments/length` `{"comment": "...", "model"?: "..."}` answers `{"tokens", "fits", "max_model_len"}`:
//! the token ids the classifier reads and whether they fit the model's length.
//! Every answer that asked the classifier carries `Server-Timing: classify;dur=MS`.
//! `GET /comments/models` lists the models the classifier serves.

#[cfg(target_arch = "wasm32")]
mod component;

// The SDK's macros name `::spin_sdk`; each build links one SDK under that name.
#[cfg(all(target_arch = "wasm32", feature = "wasi-http-p3-rc"))]
extern crate spin_sdk_6 as spin_sdk;
#[cfg(all(target_arch = "wasm32", feature = "wasi-http-p3"))]
extern crate spin_sdk_7 as spin_sdk;
