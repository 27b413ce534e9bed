// Host stand-in for CUDA's cuda_fp16.h, enough for the kernels in native/kernels/ (GCC's _Float16 is IEEE half).
#pragma once
struct __half {
    _Float16 value;
};
inline float __half2float(__half h) { return static_cast<float>(h.value); }
inline __half __float2half_rn(float f) { return __half{static_cast<_Float16>(f)}; }
