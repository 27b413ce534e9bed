//! Tensor operations the models share, with a CUDA kernel where candle's generic one is slow.
//!
//! candle's broadcasting add and strided copy compute a strided index per element (a 64-bit division per
//! dimension); profiled with Nsight Compute on BERT-base f16 the add took 61% of a forward pass's GPU time.
//! [`add_repeated`] covers every broadcast add the models do (biases, attention masks, position embeddings) and
//! [`swap_middle`] the head split/merge transposes, each with one flat kernel (native/kernels/).

use candle_core::{Module, Result, Tensor};

/// `x + y`, where `y` repeats along x's middle dimension: `x` is viewed as `[outer, mid, inner]` and `y` as
/// `[outer, inner]`. The result has x's shape.
pub fn add_repeated(x: &Tensor, y: &Tensor, mid: usize, inner: usize) -> Result<Tensor> {
    let outer = y.elem_count() / inner.max(1);
    if outer * inner != y.elem_count() || outer * mid * inner != x.elem_count() {
        candle_core::bail!(
            "add_repeated: {:?} is not [outer, {mid}, {inner}] over {:?}",
            x.shape(),
            y.shape()
        );
    }
    #[cfg(feature = "cuda")]
    if x.device().is_cuda() && x.elem_count() < u32::MAX as usize {
        let (x, y) = (x.contiguous()?, y.contiguous()?);
        return x.apply_op2_no_bwd(&y, &cuda::AddRepeated { mid, inner });
    }
    x.reshape((outer, mid, inner))?
        .broadcast_add(&y.reshape((outer, 1, inner))?)?
        .reshape(x.shape())
}

/// Dimensions 1 and 2 of a `[batch, a, b, d]` tensor swapped, keeping b-indices `first..first + n`: the result is a
/// contiguous `[batch, n, a, d]`. Splits a fused q/k/v projection into heads and merges heads back, one pass each
/// (candle's strided copy was a quarter of BERT's GPU time).
pub fn swap_middle(x: &Tensor, first: usize, n: usize) -> Result<Tensor> {
    let (_, _, b, _) = x.dims4()?;
    if first + n > b {
        candle_core::bail!(
            "swap_middle: {first}..{} is outside dimension 2 of {:?}",
            first + n,
            x.shape()
        );
    }
    #[cfg(feature = "cuda")]
    if x.device().is_cuda() && x.elem_count() < u32::MAX as usize {
        return x
            .contiguous()?
            .apply_op1_no_bwd(&cuda::SwapMiddle { first, n });
    }
    x.narrow(2, first, n)?.transpose(1, 2)?.contiguous()
}

/// A linear layer whose bias add goes through [`add_repeated`].
#[derive(Debug, Clone)]
pub struct Dense {
    /// The matrix product alone.
    product: candle_nn::Linear,
    bias: Option<Tensor>,
}

impl Dense {
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Dense {
        Dense {
            product: candle_nn::Linear::new(weight, None),
            bias,
        }
    }
}

impl From<candle_nn::Linear> for Dense {
    fn from(linear: candle_nn::Linear) -> Dense {
        Dense::new(linear.weight().clone(), linear.bias().cloned())
    }
}

impl Module for Dense {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let out = self.product.forward(xs)?;
        match &self.bias {
            None => Ok(out),
            Some(bias) => {
                let features = bias.elem_count();
                add_repeated(&out, bias, out.elem_count() / features.max(1), features)
            }
        }
    }
}

#[cfg(feature = "cuda")]
mod cuda {
    use candle_core::backend::BackendStorage;
    use candle_core::cuda_backend::cudarc::driver::{
        CudaSlice, CudaView, DeviceRepr, LaunchConfig, PushKernelArg,
    };
    use candle_core::cuda_backend::{CudaStorage, CudaStorageSlice, WrapErr};
    use candle_core::{CpuStorage, CudaDevice, CustomOp1, CustomOp2, Layout, Result, Shape};

    /// A PTX module built by build.rs: (module name, PTX text).
    type Module = (&'static str, &'static str);
    const ADD_REPEATED: Module = (
        "classify_add_repeated",
        include_str!(concat!(env!("OUT_DIR"), "/add_repeated.ptx")),
    );
    const HEADS: Module = (
        "classify_heads",
        include_str!(concat!(env!("OUT_DIR"), "/heads.ptx")),
    );

    fn view<'a, T>(slice: &'a CudaSlice<T>, layout: &Layout) -> Result<CudaView<'a, T>> {
        match layout.contiguous_offsets() {
            Some((start, end)) => Ok(slice.slice(start..end)),
            None => candle_core::bail!("classify kernels take contiguous inputs"),
        }
    }

    /// Launches `kernel` over `n` output elements with `scalars`, then `inputs`, then the output as arguments.
    fn launch<T: DeviceRepr>(
        device: &CudaDevice,
        (module, ptx): Module,
        kernel: &str,
        scalars: &[u32],
        inputs: &[CudaView<'_, T>],
        n: usize,
    ) -> Result<CudaSlice<T>> {
        let function = device.get_or_load_custom_func(kernel, module, ptx)?;
        // SAFETY: every kernel here writes all n output elements.
        let out = unsafe { device.alloc::<T>(n)? };
        let mut builder = function.builder();
        for scalar in scalars {
            builder.arg(scalar);
        }
        for input in inputs {
            builder.arg(input);
        }
        builder.arg(&out);
        // SAFETY: the kernels index their inputs within the shapes the callers checked.
        unsafe { builder.launch(LaunchConfig::for_num_elems(n as u32)) }.w()?;
        Ok(out)
    }

    fn suffix(storage: &CudaStorage) -> Result<&'static str> {
        Ok(match &storage.slice {
            CudaStorageSlice::F32(_) => "f32",
            CudaStorageSlice::F16(_) => "f16",
            CudaStorageSlice::BF16(_) => "bf16",
            _ => candle_core::bail!("classify kernels: unsupported dtype {:?}", storage.dtype()),
        })
    }

    pub struct AddRepeated {
        pub mid: usize,
        pub inner: usize,
    }

    impl CustomOp2 for AddRepeated {
        fn name(&self) -> &'static str {
            "add-repeated"
        }

        fn cpu_fwd(
            &self,
            _: &CpuStorage,
            _: &Layout,
            _: &CpuStorage,
            _: &Layout,
        ) -> Result<(CpuStorage, Shape)> {
            candle_core::bail!("add_repeated runs this op on CUDA only")
        }

        fn cuda_fwd(
            &self,
            x: &CudaStorage,
            x_layout: &Layout,
            y: &CudaStorage,
            y_layout: &Layout,
        ) -> Result<(CudaStorage, Shape)> {
            use CudaStorageSlice::{BF16, F16, F32};
            let device = x.device();
            let n = x_layout.shape().elem_count();
            let kernel = format!("add_repeated_{}", suffix(x)?);
            let scalars = [n as u32, self.mid as u32, self.inner as u32];
            let slice = match (&x.slice, &y.slice) {
                (F32(a), F32(b)) => F32(launch(
                    device,
                    ADD_REPEATED,
                    &kernel,
                    &scalars,
                    &[view(a, x_layout)?, view(b, y_layout)?],
                    n,
                )?),
                (F16(a), F16(b)) => F16(launch(
                    device,
                    ADD_REPEATED,
                    &kernel,
                    &scalars,
                    &[view(a, x_layout)?, view(b, y_layout)?],
                    n,
                )?),
                (BF16(a), BF16(b)) => BF16(launch(
                    device,
                    ADD_REPEATED,
                    &kernel,
                    &scalars,
                    &[view(a, x_layout)?, view(b, y_layout)?],
                    n,
                )?),
                _ => candle_core::bail!(
                    "add_repeated: dtypes {:?} and {:?} differ",
                    x.dtype(),
                    y.dtype()
                ),
            };
            let storage = CudaStorage {
                slice,
                device: device.clone(),
            };
            Ok((storage, x_layout.shape().clone()))
        }
    }

    pub struct SwapMiddle {
        pub first: usize,
        pub n: usize,
    }

    impl CustomOp1 for SwapMiddle {
        fn name(&self) -> &'static str {
            "swap-middle"
        }

        fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
            candle_core::bail!("swap_middle runs this op on CUDA only")
        }

        fn cuda_fwd(&self, x: &CudaStorage, layout: &Layout) -> Result<(CudaStorage, Shape)> {
            use CudaStorageSlice::{BF16, F16, F32};
            let device = x.device();
            let (batch, a, b, d) = layout.shape().dims4()?;
            let shape = Shape::from((batch, self.n, a, d));
            let total = shape.elem_count();
            let kernel = format!("swap_middle_{}", suffix(x)?);
            let scalars = [total, a, b, self.first, self.n, d].map(|v| v as u32);
            let slice = match &x.slice {
                F32(s) => F32(launch(
                    device,
                    HEADS,
                    &kernel,
                    &scalars,
                    &[view(s, layout)?],
                    total,
                )?),
                F16(s) => F16(launch(
                    device,
                    HEADS,
                    &kernel,
                    &scalars,
                    &[view(s, layout)?],
                    total,
                )?),
                BF16(s) => BF16(launch(
                    device,
                    HEADS,
                    &kernel,
                    &scalars,
                    &[view(s, layout)?],
                    total,
                )?),
                _ => candle_core::bail!("swap_middle: unsupported dtype {:?}", x.dtype()),
            };
            let storage = CudaStorage {
                slice,
                device: device.clone(),
            };
            Ok((storage, shape))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn repeats_along_the_middle_dimension() {
        let x = Tensor::arange(0f32, 12.0, &Device::Cpu)
            .unwrap()
            .reshape((2, 3, 2))
            .unwrap();
        let y = Tensor::new(&[[100f32, 200.0], [300.0, 400.0]], &Device::Cpu).unwrap();
        let sum = add_repeated(&x, &y, 3, 2).unwrap();
        assert_eq!(sum.dims(), [2, 3, 2]);
        assert_eq!(
            sum.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            [
                100., 201., 102., 203., 104., 205., 306., 407., 308., 409., 310., 411.
            ]
        );
        assert!(add_repeated(&x, &y, 2, 2).is_err());
    }

    #[test]
    fn swap_middle_selects_and_transposes() {
        // [1, a=2, b=3, d=1]: value = 10 * a + b.
        let x = Tensor::new(
            &[[[[0f32], [1.], [2.]], [[10.], [11.], [12.]]]],
            &Device::Cpu,
        )
        .unwrap();
        let swapped = swap_middle(&x, 1, 2).unwrap();
        assert_eq!(swapped.dims(), [1, 2, 2, 1]);
        assert_eq!(
            swapped.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            [1., 11., 2., 12.]
        );
        assert!(swap_middle(&x, 2, 2).is_err());
    }
}
