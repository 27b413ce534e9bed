//! The component's HTTP glue around the protocol handler, with the mounted ONNX models as the engine and the
//! native server as the place for every other model. Each wasi:http version has its entry point
//! (`incoming_p2`/`incoming_p3`) and its way of sending a request (`outgoing_p2`/`outgoing_p3`); the rest is
//! shared: `deployment` (settings, models, the handler), `upstream` (forwarding to the native server),
//! `snapshot` (pre-initialization, with `allocator` zeroing what loading frees). `classifier` exports the same routes as typed functions to other components.

mod allocator;
mod classifier;
mod deployment;
mod log;
mod outgoing;
mod snapshot;
mod upstream;

#[cfg(feature = "wasi-http-p2")]
mod incoming_p2;
#[cfg(any(feature = "wasi-http-p3-rc", feature = "wasi-http-p3"))]
mod incoming_p3;
#[cfg(feature = "wasi-http-p2")]
mod outgoing_p2;
#[cfg(any(feature = "wasi-http-p3-rc", feature = "wasi-http-p3"))]
mod outgoing_p3;
