//! Launchers for the kernels in native/kernels/ (fatbins built by build.rs: SASS for the build's GPU architecture,
//! so nothing is JIT-compiled on it, plus PTX). Inputs are made contiguous and must share the output's dtype (f32,
//! f16 or bf16); every output is a fresh contiguous tensor.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{
    CudaFunction, CudaModule, CudaStream, DevicePtr, LaunchConfig, PushKernelArg,
};
use candle_core::cuda_backend::cudarc::nvrtc::Ptx;
use candle_core::cuda_backend::{CudaStorage, CudaStorageSlice, WrapErr};
use candle_core::op::BackpropOp;
use candle_core::{DType, Layout, Result, Shape, Storage, Tensor};

use super::layers::{Activation, AttentionLogits, LayerNorm};

/// A module built by build.rs: (name, fatbin image).
type Module = (&'static str, &'static [u8]);
const ELEMENTWISE: Module = (
    "elementwise",
    include_bytes!(concat!(env!("OUT_DIR"), "/elementwise.fatbin")),
);
const ROWS: Module = (
    "rows",
    include_bytes!(concat!(env!("OUT_DIR"), "/rows.fatbin")),
);

/// Loaded modules by (CUDA context address, module name); contexts live as long as the process.
type LoadedModules = Mutex<HashMap<(usize, &'static str), Arc<CudaModule>>>;
static LOADED: OnceLock<LoadedModules> = OnceLock::new();

fn function(stream: &CudaStream, module: Module, kernel: &str) -> Result<CudaFunction> {
    let context = stream.context();
    let key = (Arc::as_ptr(context) as usize, module.0);
    let mut loaded = LOADED
        .get_or_init(Default::default)
        .lock()
        .map_err(|_| candle_core::Error::Msg("the CUDA module cache is poisoned".into()))?;
    let cuda_module = match loaded.get(&key) {
        Some(cuda_module) => cuda_module.clone(),
        None => {
            let cuda_module = context
                .load_module(Ptx::from_binary(module.1.to_vec()))
                .w()?;
            loaded.insert(key, cuda_module.clone());
            cuda_module
        }
    };
    cuda_module.load_function(kernel).w()
}

const THREADS_PER_BLOCK: usize = 256;
const WARP: usize = 32;

enum Arg<'a> {
    U32(usize),
    F32(f64),
    Tensor(&'a Tensor),
    /// A null pointer in place of an optional tensor.
    Null,
}

/// How a kernel's threads cover its output.
enum Work<'a> {
    /// One thread per pack of output elements. The 16-byte variant runs when every size in `multiples` and every
    /// input's offset is a multiple of the pack width (the kernel's pack loads then stay aligned).
    Packs { multiples: &'a [usize] },
    /// One warp per row.
    Rows(usize),
}

/// Argument values as the kernels take them; device pointers are 64-bit.
enum Value {
    U32(u32),
    F32(f32),
    Pointer(u64),
}

fn dtype_suffix(dtype: DType) -> Result<&'static str> {
    Ok(match dtype {
        DType::F32 => "f32",
        DType::F16 => "f16",
        DType::BF16 => "bf16",
        other => candle_core::bail!("classify kernels: unsupported dtype {other:?}"),
    })
}

/// The device address of a contiguous input's first element. The stream-ordering guard `device_ptr` returns is
/// dropped at once: device.rs turns event tracking off, so it has nothing to record.
fn pointer(storage: &Storage, layout: &Layout, stream: &CudaStream) -> Result<u64> {
    let Storage::Cuda(storage) = storage else {
        candle_core::bail!("classify kernels: an input is not on the CUDA device");
    };
    let Some((start, _)) = layout.contiguous_offsets() else {
        candle_core::bail!("classify kernels take contiguous inputs");
    };
    let base = match &storage.slice {
        CudaStorageSlice::F32(s) => s.device_ptr(stream).0,
        CudaStorageSlice::F16(s) => s.device_ptr(stream).0,
        CudaStorageSlice::BF16(s) => s.device_ptr(stream).0,
        _ => candle_core::bail!("classify kernels: unsupported dtype {:?}", storage.dtype()),
    };
    Ok(base + (start * storage.dtype().size_in_bytes()) as u64)
}

/// Runs `kernel` from `module` with `args` (in order, then the output) and returns the output, `shape` in `dtype`.
fn launch(
    module: Module,
    kernel: &str,
    work: Work,
    args: &[Arg],
    shape: Shape,
    dtype: DType,
) -> Result<Tensor> {
    let inputs = args
        .iter()
        .filter_map(|arg| match arg {
            Arg::Tensor(t) => Some(t.contiguous()),
            _ => None,
        })
        .collect::<Result<Vec<_>>>()?;
    let Some(first) = inputs.first() else {
        candle_core::bail!("{kernel}: no input tensor");
    };
    if let Some(other) = inputs.iter().find(|t| t.dtype() != dtype) {
        candle_core::bail!(
            "{kernel}: input in {:?}, output in {dtype:?}",
            other.dtype()
        );
    }
    let n = shape.elem_count();
    if n == 0 {
        return Tensor::zeros(shape, dtype, first.device());
    }
    let device = first.device().as_cuda_device()?.clone();
    let stream = device.cuda_stream();
    let width = 16 / dtype.size_in_bytes();
    let (name, threads) = match work {
        Work::Packs { multiples } => {
            let aligned = multiples.iter().all(|m| m % width == 0)
                && inputs
                    .iter()
                    .all(|t| t.layout().start_offset() % width == 0);
            match aligned {
                true => (format!("{kernel}_{}_16", dtype_suffix(dtype)?), n / width),
                false => (format!("{kernel}_{}_1", dtype_suffix(dtype)?), n),
            }
        }
        Work::Rows(rows) => (format!("{kernel}_{}", dtype_suffix(dtype)?), rows * WARP),
    };
    let mut values = Vec::with_capacity(args.len());
    let mut tensors = inputs.iter();
    for arg in args {
        values.push(match arg {
            Arg::U32(v) => Value::U32(u32::try_from(*v).map_err(|_| {
                candle_core::Error::Msg(format!("{kernel}: {v} does not fit 32 bits"))
            })?),
            Arg::F32(v) => Value::F32(*v as f32),
            Arg::Null => Value::Pointer(0),
            Arg::Tensor(_) => {
                let Some(tensor) = tensors.next() else {
                    candle_core::bail!("{kernel}: inputs out of step");
                };
                let (storage, layout) = tensor.storage_and_layout();
                Value::Pointer(pointer(&storage, layout, &stream)?)
            }
        });
    }
    let (slice, out) = match dtype {
        // SAFETY (all three): every kernel writes each of the n output elements.
        DType::F32 => {
            let s = unsafe { device.alloc::<f32>(n)? };
            let p = s.device_ptr(&stream).0;
            (CudaStorageSlice::F32(s), p)
        }
        DType::F16 => {
            let s = unsafe { device.alloc::<half::f16>(n)? };
            let p = s.device_ptr(&stream).0;
            (CudaStorageSlice::F16(s), p)
        }
        DType::BF16 => {
            let s = unsafe { device.alloc::<half::bf16>(n)? };
            let p = s.device_ptr(&stream).0;
            (CudaStorageSlice::BF16(s), p)
        }
        other => candle_core::bail!("classify kernels: unsupported dtype {other:?}"),
    };
    let function = function(&stream, module, &name)?;
    let mut builder = stream.launch_builder(&function);
    for value in &values {
        match value {
            Value::U32(v) => builder.arg(v),
            Value::F32(v) => builder.arg(v),
            Value::Pointer(v) => builder.arg(v),
        };
    }
    builder.arg(&out);
    let config = LaunchConfig {
        grid_dim: (threads.div_ceil(THREADS_PER_BLOCK).max(1) as u32, 1, 1),
        block_dim: (THREADS_PER_BLOCK as u32, 1, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: the callers below check the shapes the kernels index with; the inputs stay borrowed until launch.
    unsafe { builder.launch(config) }.w()?;
    drop(inputs);
    let storage = Storage::Cuda(CudaStorage { slice, device });
    Ok(Tensor::from_storage(
        storage,
        shape,
        BackpropOp::none(),
        false,
    ))
}

fn activation_code(activation: Activation) -> usize {
    // The codes of `activate` in native/kernels/common.cuh.
    match activation {
        Activation::Gelu => 0,
        Activation::GeluTanh => 1,
        Activation::Silu => 2,
        Activation::Relu => 3,
    }
}

pub fn add_repeated(x: &Tensor, y: &Tensor, mid: usize, inner: usize) -> Result<Tensor> {
    let args = [
        Arg::U32(x.elem_count()),
        Arg::U32(mid),
        Arg::U32(inner),
        Arg::Tensor(x),
        Arg::Tensor(y),
    ];
    let work = Work::Packs {
        multiples: &[inner],
    };
    launch(
        ELEMENTWISE,
        "add_repeated",
        work,
        &args,
        x.shape().clone(),
        x.dtype(),
    )
}

pub fn swap_middle(x: &Tensor, bias: Option<&Tensor>, first: usize, n: usize) -> Result<Tensor> {
    let (batch, a, b, d) = x.dims4()?;
    let shape = Shape::from((batch, n, a, d));
    let args = [
        Arg::U32(shape.elem_count()),
        Arg::U32(a),
        Arg::U32(b),
        Arg::U32(first),
        Arg::U32(n),
        Arg::U32(d),
        Arg::Tensor(x),
        bias.map_or(Arg::Null, Arg::Tensor),
    ];
    let work = Work::Packs { multiples: &[d] };
    launch(ELEMENTWISE, "swap_middle", work, &args, shape, x.dtype())
}

pub fn gated_activation(x: &Tensor, activation: Activation) -> Result<Tensor> {
    let mut dims = x.dims().to_vec();
    let Some(last) = dims.last_mut() else {
        candle_core::bail!("gated_activation: a scalar has no features");
    };
    *last /= 2;
    let inner = *last;
    let shape = Shape::from(dims);
    let args = [
        Arg::U32(shape.elem_count()),
        Arg::U32(inner),
        Arg::U32(activation_code(activation)),
        Arg::Tensor(x),
    ];
    let work = Work::Packs {
        multiples: &[inner],
    };
    launch(
        ELEMENTWISE,
        "gated_activation",
        work,
        &args,
        shape,
        x.dtype(),
    )
}

pub fn bias_activation(x: &Tensor, bias: &Tensor, activation: Activation) -> Result<Tensor> {
    let features = bias.elem_count();
    if x.dims().last() != Some(&features) {
        candle_core::bail!(
            "bias_activation: {:?} does not end in {features} features",
            x.shape()
        );
    }
    let args = [
        Arg::U32(x.elem_count()),
        Arg::U32(features),
        Arg::U32(activation_code(activation)),
        Arg::Tensor(x),
        Arg::Tensor(bias),
    ];
    let work = Work::Packs {
        multiples: &[features],
    };
    launch(
        ELEMENTWISE,
        "bias_activation",
        work,
        &args,
        x.shape().clone(),
        x.dtype(),
    )
}

pub fn masked_softmax(
    scores: &Tensor,
    mask: &Tensor,
    mid: usize,
    inner: usize,
    logits: AttentionLogits,
) -> Result<Tensor> {
    let len = scores.dims().last().copied().unwrap_or(1);
    let rows = scores.elem_count() / len;
    let args = [
        Arg::U32(rows),
        Arg::U32(len),
        Arg::U32(mid),
        Arg::U32(inner),
        Arg::F32(logits.scale),
        Arg::F32(logits.softcap.unwrap_or(0.0)),
        Arg::Tensor(scores),
        Arg::Tensor(mask),
    ];
    let shape = scores.shape().clone();
    launch(
        ROWS,
        "masked_softmax",
        Work::Rows(rows),
        &args,
        shape,
        scores.dtype(),
    )
}

pub fn bias_residual_layer_norm(
    x: &Tensor,
    bias: &Tensor,
    residual: &Tensor,
    norm: &LayerNorm,
) -> Result<Tensor> {
    let hidden = bias.elem_count();
    if x.dims().last() != Some(&hidden)
        || residual.shape() != x.shape()
        || norm.weight.elem_count() != hidden
        || norm.beta.elem_count() != hidden
    {
        candle_core::bail!(
            "bias_residual_layer_norm: {:?} + {hidden} bias + {:?} residual do not match",
            x.shape(),
            residual.shape()
        );
    }
    let rows = x.elem_count() / hidden;
    let args = [
        Arg::U32(rows),
        Arg::U32(hidden),
        Arg::F32(norm.eps),
        Arg::Tensor(x),
        Arg::Tensor(bias),
        Arg::Tensor(residual),
        Arg::Tensor(&norm.weight),
        Arg::Tensor(&norm.beta),
    ];
    let (shape, dtype) = (x.shape().clone(), x.dtype());
    launch(
        ROWS,
        "bias_residual_layer_norm",
        Work::Rows(rows),
        &args,
        shape,
        dtype,
    )
}
