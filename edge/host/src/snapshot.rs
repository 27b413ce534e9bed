//! Pre-initializes the edge component with wasmtime-wizer: instantiates it with the models directory mounted at
//! `/models`, calls its `wizer-initialize` export (which loads every model) and writes the component back with
//! that memory as its initial state. A fresh instance of the result answers without loading anything.

use std::path::Path;
use std::time::Instant;

use anyhow::Context as _;

use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker, ResourceType};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{FsPerms, WasiCtx};

use crate::host::GuestState;
use wasmtime_wizer::Wizer;

/// Sizes and time of one pre-initialization.
#[derive(Debug, Clone, Copy)]
pub struct SnapshotReport {
    pub input_bytes: usize,
    pub output_bytes: usize,
    pub seconds: f64,
    pub memory: MemoryImage,
}

/// What a component's core modules start with: the largest initial linear memory among them (the guest's heap:
/// every instance of the component has at least this much) and the bytes of all their data segments (what the
/// memory is initialized with: code's constants, and a snapshot's loaded models).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryImage {
    pub initial_memory_bytes: u64,
    pub data_bytes: u64,
}

impl MemoryImage {
    pub fn of(wasm: &[u8]) -> anyhow::Result<MemoryImage> {
        let mut image = MemoryImage {
            initial_memory_bytes: 0,
            data_bytes: 0,
        };
        for payload in wasmparser::Parser::new(0).parse_all(wasm) {
            match payload? {
                wasmparser::Payload::MemorySection(memories) => {
                    for memory in memories {
                        let memory = memory?;
                        let page = 1u64 << memory.page_size_log2.unwrap_or(16);
                        image.initial_memory_bytes =
                            image.initial_memory_bytes.max(memory.initial * page);
                    }
                }
                wasmparser::Payload::DataSection(segments) => {
                    for segment in segments {
                        image.data_bytes += segment?.data.len() as u64;
                    }
                }
                _ => {}
            }
        }
        Ok(image)
    }
}

/// Writes to `output` the component at `component` with every model under `models` loaded.
///
/// The initializer sees no environment, no stdio, no network and the models read-only. wasi:http is not linked,
/// and the WASIp3 release-candidate interfaces (which wasmtime does not implement) are stubs that trap, so every
/// build of the component (p2, p3-rc, p3) can be initialized: loading models only reads files.
pub async fn snapshot(
    component: &Path,
    models: &Path,
    output: &Path,
) -> anyhow::Result<SnapshotReport> {
    let started = Instant::now();
    let wasm = std::fs::read(component).with_context(|| component.display().to_string())?;
    let mut config = Config::new();
    config.wasm_component_model_async(true);
    let engine = Engine::new(&config)?;
    let mut wasi = WasiCtx::builder();
    wasi.preopened_dir(models, "/models", FsPerms::ReadOnly)
        .map_err(|e| anyhow::anyhow!("{}: {e:#}", models.display()))?;
    let mut store = Store::new(&engine, GuestState::new(wasi.build()));
    // Wizer reads the guest's whole linear memory in one call; with a MiniLM-size model loaded that is more than
    // the 128 MiB a guest may hand the host by default.
    store.set_hostcall_fuel(usize::MAX);
    // The component-level export of `wizer-initialize` stays, so its core function must stay too (calling it
    // again only finds the models loaded).
    let (snapshot, _) = Wizer::new()
        .keep_init_func(true)
        .run_component(&mut store, &wasm, async |store, component| {
            let mut linker = Linker::new(store.engine());
            wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
            wasmtime_wasi::p3::add_to_linker(&mut linker)?;
            stub_release_candidates(&mut linker, component)?;
            linker.instantiate_async(store, component).await
        })
        .await
        .map_err(|e| anyhow::anyhow!("pre-initializing {}: {e:#}", component.display()))?;
    std::fs::write(output, &snapshot).with_context(|| output.display().to_string())?;
    Ok(SnapshotReport {
        input_bytes: wasm.len(),
        output_bytes: snapshot.len(),
        seconds: started.elapsed().as_secs_f64(),
        memory: MemoryImage::of(&snapshot)?,
    })
}

/// Defines every import of `component` from a `@0.3.0-rc-…` package, and every wasi:http import, as functions
/// that fail and resources nobody can create. (Linker::define_unknown_imports_as_traps would also stub the
/// semver-compatible WASIp2 imports that the linker does provide, and break their resource types.)
fn stub_release_candidates<T: 'static>(
    linker: &mut Linker<T>,
    component: &Component,
) -> wasmtime::Result<()> {
    let engine = linker.engine().clone();
    for (name, item) in component.component_type().imports(&engine) {
        let ComponentItem::ComponentInstance(instance) = item.ty else {
            continue;
        };
        if !(name.contains("@0.3.0-rc") || name.starts_with("wasi:http/")) {
            continue;
        }
        let mut stub = linker.instance(name)?;
        for (export, item) in instance.exports(&engine) {
            let qualified = format!("{name}#{export}");
            match item.ty {
                ComponentItem::ComponentFunc(func) if func.async_() => {
                    stub.func_new_concurrent(export, move |_, _, _, _| {
                        let qualified = qualified.clone();
                        Box::pin(async move {
                            wasmtime::bail!("`{qualified}` is not available while pre-initializing")
                        })
                    })?;
                }
                ComponentItem::ComponentFunc(_) => {
                    stub.func_new(export, move |_, _, _, _| {
                        wasmtime::bail!("`{qualified}` is not available while pre-initializing")
                    })?;
                }
                ComponentItem::Resource(_) => {
                    stub.resource(export, ResourceType::host::<()>(), |_, _| Ok(()))?;
                }
                _ => {}
            }
        }
    }
    Ok(())
}
