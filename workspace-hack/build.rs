//! Present so that the `[build-dependencies]` of Cargo.toml, which unify the features of build scripts' and
//! proc-macros' dependencies, are resolved.
fn main() {}
