//! Where models run and in which dtype: the one place that chooses.

use std::fmt;
use std::str::FromStr;

use candle_core::{DType, Device};

/// `--device auto|cpu|cuda[:N]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    /// CUDA device 0 when the binary has CUDA and a GPU is present, else the CPU.
    Auto,
    Cpu,
    Cuda(usize),
}

impl FromStr for DeviceChoice {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceChoice::Cuda)
                .ok_or_else(|| format!("`{value}` is not auto, cpu, cuda or cuda:N")),
        }
    }
}

/// `--dtype auto|f32|f16|bf16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DTypeChoice {
    /// bf16 on a GPU that has it (compute capability 8.0+), f16 on older GPUs, f32 on the CPU.
    Auto,
    Fixed(DType),
}

impl FromStr for DTypeChoice {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "auto" => Ok(DTypeChoice::Auto),
            "f32" => Ok(DTypeChoice::Fixed(DType::F32)),
            "f16" => Ok(DTypeChoice::Fixed(DType::F16)),
            "bf16" => Ok(DTypeChoice::Fixed(DType::BF16)),
            _ => Err(format!("`{value}` is not auto, f32, f16 or bf16")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Placement {
    pub device: Device,
    /// The dtype weights are converted to on load and the backbone computes in; heads and softmax use f32.
    pub dtype: DType,
}

impl Placement {
    /// On the CPU, bf16/f16 checkpoints are widened to f32 on load.
    pub fn choose(device: DeviceChoice, dtype: DTypeChoice) -> anyhow::Result<Placement> {
        let device = match device {
            DeviceChoice::Cpu => Device::Cpu,
            DeviceChoice::Cuda(ordinal) => open_cuda(ordinal)?,
            DeviceChoice::Auto => match open_cuda(0) {
                Ok(device) => device,
                Err(reason) => {
                    if cfg!(feature = "cuda") {
                        tracing::warn!(%reason, "no usable CUDA device; running on the CPU");
                    }
                    Device::Cpu
                }
            },
        };
        let dtype = match (dtype, &device) {
            (DTypeChoice::Auto, Device::Cpu) => DType::F32,
            (DTypeChoice::Fixed(DType::F32), _) => DType::F32,
            (DTypeChoice::Fixed(dtype), Device::Cpu) => anyhow::bail!(
                "--dtype {} needs a CUDA device: on the CPU models compute in f32",
                dtype.as_str()
            ),
            (DTypeChoice::Fixed(dtype), _) => dtype,
            (DTypeChoice::Auto, device) => {
                if supports_bf16(device)? {
                    DType::BF16
                } else {
                    DType::F16
                }
            }
        };
        Ok(Placement { device, dtype })
    }
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let device = match self.device.location() {
            candle_core::DeviceLocation::Cpu => "cpu".to_owned(),
            candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
            candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
        };
        write!(f, "{device} {}", self.dtype.as_str())
    }
}

#[cfg(feature = "cuda")]
fn open_cuda(ordinal: usize) -> anyhow::Result<Device> {
    use anyhow::Context;
    let device =
        Device::new_cuda(ordinal).with_context(|| format!("cannot open cuda:{ordinal}"))?;
    let cuda = device.as_cuda_device()?;
    // One stream per process: cross-stream event tracking would only add work to every allocation.
    // SAFETY: no tensor of this device is shared with another stream.
    unsafe { cuda.disable_event_tracking() };
    let context = cuda.cuda_stream().context().clone();
    keep_freed_memory(context.cu_device());
    let (major, minor) = context.compute_capability()?;
    tracing::info!(
        gpu = context.name().unwrap_or_default(),
        compute_capability = format!("{major}.{minor}"),
        memory_gib = context.total_mem().unwrap_or(0) as f64 / f64::from(1 << 30),
        "CUDA device"
    );
    Ok(device)
}

/// Stream-ordered allocations come from the device's default pool, which by default hands freed memory back to
/// the driver at every synchronisation, so each forward pass would allocate its activations afresh. Keep it
/// pooled, as PyTorch's caching allocator does.
#[cfg(feature = "cuda")]
fn keep_freed_memory(device: candle_core::cuda_backend::cudarc::driver::sys::CUdevice) {
    use candle_core::cuda_backend::cudarc::driver::sys;
    let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
    let mut threshold = u64::MAX;
    // SAFETY: driver calls on a device handle from a live context, with pointers to live locals.
    let status = unsafe {
        match sys::cuDeviceGetDefaultMemPool(&mut pool, device) {
            sys::CUresult::CUDA_SUCCESS => sys::cuMemPoolSetAttribute(
                pool,
                sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
                (&raw mut threshold).cast(),
            ),
            failed => failed,
        }
    };
    if status != sys::CUresult::CUDA_SUCCESS {
        tracing::warn!(?status, "cannot keep freed GPU memory pooled");
    }
}

#[cfg(not(feature = "cuda"))]
fn open_cuda(ordinal: usize) -> anyhow::Result<Device> {
    anyhow::bail!(
        "cuda:{ordinal} requested, but this binary was built without CUDA (build it with native/cuda/build.sh)"
    )
}

#[cfg(feature = "cuda")]
fn supports_bf16(device: &Device) -> anyhow::Result<bool> {
    let (major, _) = device
        .as_cuda_device()?
        .cuda_stream()
        .context()
        .compute_capability()?;
    Ok(major >= 8)
}

#[cfg(not(feature = "cuda"))]
fn supports_bf16(_device: &Device) -> anyhow::Result<bool> {
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_and_dtype_flags() {
        assert_eq!("auto".parse(), Ok(DeviceChoice::Auto));
        assert_eq!("cpu".parse(), Ok(DeviceChoice::Cpu));
        assert_eq!("cuda".parse(), Ok(DeviceChoice::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(DeviceChoice::Cuda(3)));
        assert!("cuda:x".parse::<DeviceChoice>().is_err());
        assert!("gpu".parse::<DeviceChoice>().is_err());
        assert_eq!("bf16".parse(), Ok(DTypeChoice::Fixed(DType::BF16)));
        assert_eq!("auto".parse(), Ok(DTypeChoice::Auto));
        assert!("f64".parse::<DTypeChoice>().is_err());
    }

    #[test]
    fn cpu_computes_in_f32() {
        let auto = Placement::choose(DeviceChoice::Cpu, DTypeChoice::Auto).unwrap();
        assert_eq!(auto.dtype, DType::F32);
        let half = Placement::choose(DeviceChoice::Cpu, DTypeChoice::Fixed(DType::F16));
        assert!(
            half.unwrap_err()
                .to_string()
                .contains("needs a CUDA device")
        );
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_is_a_clear_error() {
        let error = Placement::choose(DeviceChoice::Cuda(0), DTypeChoice::Auto).unwrap_err();
        assert!(error.to_string().contains("built without CUDA"));
        let auto = Placement::choose(DeviceChoice::Auto, DTypeChoice::Auto).unwrap();
        assert!(auto.device.is_cpu());
    }
}
