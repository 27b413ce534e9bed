// Swaps dimensions 1 and 2 of a contiguous [batch, a, b, d] tensor while keeping b-indices [first, first + n):
// out is [batch, n, a, d]. Splits fused q/k/v projections into heads ([batch, len, heads, d] → [batch, heads, len, d])
// and merges attention output back ([batch, heads, len, d] → [batch, len, heads, d]) in one pass each.
#include <cuda_fp16.h>
#include <cuda_bf16.h>

#define SWAP_MIDDLE(NAME, T)                                                                                    \
    extern "C" __global__ void NAME(const unsigned int total, const unsigned int a, const unsigned int b,         \
                                    const unsigned int first, const unsigned int n, const unsigned int d,        \
                                    const T *in, T *out) {                                                       \
        for (unsigned int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += blockDim.x * gridDim.x) {     \
            const unsigned int di = i % d;                                                                        \
            const unsigned int ai = (i / d) % a;                                                                  \
            const unsigned int ni = (i / (d * a)) % n;                                                            \
            const unsigned int batch = i / (d * a * n);                                                           \
            out[i] = in[((batch * a + ai) * b + first + ni) * d + di];                                            \
        }                                                                                                        \
    }

SWAP_MIDDLE(swap_middle_f32, float)
SWAP_MIDDLE(swap_middle_f16, __half)
SWAP_MIDDLE(swap_middle_bf16, __nv_bfloat16)
