//! Pre-initialization: `wizer-initialize` loads every mounted model so that `edge-host snapshot` (wasmtime-wizer)
//! can save the component with the models already in its memory. A fresh instance of the snapshot answers its
//! first request without loading anything, as long as nothing is mounted at run time (the snapshot is
//! self-contained) or the files mounted for the model asked for are the ones it was taken from (same
//! fingerprint, checked on the model's first use); otherwise the mounted files load on first use.
//!
//! The snapshot must not hold host state: nothing here prints, reads the environment or keeps a file open, and
//! wasi-libc's table of preopened directories is reset so the new instance asks its own host for them.

use std::path::Path;
use std::sync::OnceLock;

use super::allocator::zeroing_freed;
use crate::registry::{EdgeModels, OnnxFileOrder, Preloaded};

/// Where the models are mounted (spin.toml `files`, or edge-host `--models`).
pub(super) const MODELS_ROOT: &str = "/models";

/// Models loaded by `wizer-initialize`, when this instance comes from a snapshot.
static PRELOADED: OnceLock<Preloaded> = OnceLock::new();

mod bindings {
    wit_bindgen::generate!({
        inline: "package classify:edge; world preinit { export wizer-initialize: func(); }",
    });
}

struct Preinit;

impl bindings::Guest for Preinit {
    fn wizer_initialize() {
        // Failures are kept with their model and reported when a request or /health asks for it.
        let models =
            zeroing_freed(|| Preloaded::load(Path::new(MODELS_ROOT), &OnnxFileOrder::default()));
        let _ = PRELOADED.set(models);
        unsafe extern "C" {
            fn __wasilibc_reset_preopens();
        }
        // SAFETY: no file or directory opened through wasi-libc is still open here (every load has returned).
        unsafe { __wasilibc_reset_preopens() };
    }
}

bindings::export!(Preinit with_types_in bindings);

/// The models this instance serves: the snapshot's as far as the files mounted are the ones it was taken from,
/// else what is mounted.
pub(super) fn mounted_models(root: &Path, order: &OnnxFileOrder) -> &'static EdgeModels {
    match PRELOADED.get() {
        Some(preloaded) => preloaded.serve(root, order),
        None => Box::leak(Box::new(EdgeModels::scan(root, order))),
    }
}
