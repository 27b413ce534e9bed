//! The edge deployment: a Spin / wasi:http component that serves small ONNX classifiers with tract and
//! forwards requests for other models to the native server. The engine (`onnx`, `registry`) builds on every
//! target so it can be tested natively; the HTTP entry point exists only in the wasm32 component, in one of
//! three builds picked by a cargo feature: `wasi-http-p3-rc` (default), `wasi-http-p3` or `wasi-http-p2`.

pub mod onnx;
mod onnx_file;
pub mod registry;

#[cfg(target_arch = "wasm32")]
mod component;

// The SDK's macros name `::spin_sdk`; each build links one SDK under that name.
#[cfg(all(target_arch = "wasm32", feature = "wasi-http-p2"))]
extern crate spin_sdk_5 as spin_sdk;
#[cfg(all(target_arch = "wasm32", feature = "wasi-http-p3-rc"))]
extern crate spin_sdk_6 as spin_sdk;
#[cfg(all(target_arch = "wasm32", feature = "wasi-http-p3"))]
extern crate spin_sdk_7 as spin_sdk;

#[cfg(all(
    target_arch = "wasm32",
    not(any(
        all(
            feature = "wasi-http-p3-rc",
            not(feature = "wasi-http-p3"),
            not(feature = "wasi-http-p2")
        ),
        all(
            feature = "wasi-http-p3",
            not(feature = "wasi-http-p3-rc"),
            not(feature = "wasi-http-p2")
        ),
        all(
            feature = "wasi-http-p2",
            not(feature = "wasi-http-p3-rc"),
            not(feature = "wasi-http-p3")
        ),
    ))
))]
compile_error!(
    "enable exactly one of the features wasi-http-p3-rc (default), wasi-http-p3, wasi-http-p2 \
     (with --no-default-features for the last two)"
);
