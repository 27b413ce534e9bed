// Host stand-in for CUDA's cuda_bf16.h: bfloat16 as the upper 16 bits of an f32, rounded to nearest even.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
struct __nv_bfloat16 {
    std::uint16_t bits;
};
inline float __bfloat162float(__nv_bfloat16 b) {
    const std::uint32_t word = static_cast<std::uint32_t>(b.bits) << 16;
    float f;
    std::memcpy(&f, &word, sizeof f);
    return f;
}
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
    std::uint32_t word;
    std::memcpy(&word, &f, sizeof word);
    if (std::isnan(f)) return __nv_bfloat16{0x7fc0};
    word += 0x7fffu + ((word >> 16) & 1u);
    return __nv_bfloat16{static_cast<std::uint16_t>(word >> 16)};
}
