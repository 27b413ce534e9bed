// Shared by the server's kernels: f32 conversions, 16-byte packs, activations and warp reductions.
// Every kernel computes in f32 and rounds once when it stores, as PyTorch's fused kernels do.
#pragma once
#include <cuda_fp16.h>
#include <cuda_bf16.h>

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T> __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_f32<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) {
    return __float2bfloat16_rn(v);
}

// W consecutive elements moved with one load or store (W × sizeof(T) = 16 bytes for the vector variants, 1 for
// the scalar ones); callers guarantee the alignment.
template <typename T, unsigned int W> struct alignas(sizeof(T) * W) Pack {
    T v[W];
};

template <typename T, unsigned int W> __device__ __forceinline__ Pack<T, W> load(const T *p) {
    return *reinterpret_cast<const Pack<T, W> *>(p);
}

template <typename T, unsigned int W> __device__ __forceinline__ void store(T *p, const Pack<T, W> &pack) {
    *reinterpret_cast<Pack<T, W> *>(p) = pack;
}

// Activation codes shared with native/src/models/ops/cuda.rs: 0 exact GELU (erf), 1 GELU tanh approximation,
// 2 SiLU, 3 ReLU.
__device__ __forceinline__ float activate(unsigned int activation, float x) {
    switch (activation) {
    case 0:
        return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    case 1:
        return 0.5f * x * (1.0f + tanhf(0.79788456080286536f * (x + 0.044715f * x * x * x)));
    case 2:
        return x / (1.0f + expf(-x));
    default:
        return fmaxf(x, 0.0f);
    }
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int offset = 16; offset > 0; offset /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
}

#define GRID_STRIDE(i, n) for (unsigned int i = blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += blockDim.x * gridDim.x)

// extern "C" entry points `<name>_<dtype>_<width>` for f32, f16 and bf16 at width 1 and 16 bytes.
#define INSTANTIATE(NAME, PARAMS, ARGS)                                                                          \
    extern "C" __global__ void NAME##_f32_1 PARAMS(float) { NAME<float, 1> ARGS; }                              \
    extern "C" __global__ void NAME##_f32_16 PARAMS(float) { NAME<float, 4> ARGS; }                             \
    extern "C" __global__ void NAME##_f16_1 PARAMS(__half) { NAME<__half, 1> ARGS; }                            \
    extern "C" __global__ void NAME##_f16_16 PARAMS(__half) { NAME<__half, 8> ARGS; }                           \
    extern "C" __global__ void NAME##_bf16_1 PARAMS(__nv_bfloat16) { NAME<__nv_bfloat16, 1> ARGS; }             \
    extern "C" __global__ void NAME##_bf16_16 PARAMS(__nv_bfloat16) { NAME<__nv_bfloat16, 8> ARGS; }
