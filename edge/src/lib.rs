//! The edge deployment: a Spin / wasi:http component that serves small ONNX classifiers with tract and
//! forwards requests for other models to the native server. The engine (`onnx`, `registry`) builds on every
//! target so it can be tested natively; the HTTP entry point exists only in the wasm32 component.

pub mod onnx;
pub mod registry;

#[cfg(target_arch = "wasm32")]
mod component;
