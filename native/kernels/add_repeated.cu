// out = x + y, where y repeats along x's middle dimension: x is [outer, mid, inner], y is [outer, inner].
// Bias adds, attention masks and position embeddings are all this shape of broadcast. Sums are formed in f32 and
// rounded once, as PyTorch does.
#include <cuda_fp16.h>
#include <cuda_bf16.h>

#define ADD_REPEATED(NAME, T, TO_FLOAT, FROM_FLOAT)                                                      \
    extern "C" __global__ void NAME(const unsigned int n, const unsigned int mid, const unsigned int inner, \
                                    const T *x, const T *y, T *out) {                                    \
        const unsigned int block = mid * inner;                                                          \
        for (unsigned int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) { \
            const unsigned int j = (i / block) * inner + i % inner;                                      \
            out[i] = FROM_FLOAT(TO_FLOAT(x[i]) + TO_FLOAT(y[j]));                                        \
        }                                                                                                \
    }

#define IDENTITY(v) (v)
ADD_REPEATED(add_repeated_f32, float, IDENTITY, IDENTITY)
ADD_REPEATED(add_repeated_f16, __half, __half2float, __float2half)
ADD_REPEATED(add_repeated_bf16, __nv_bfloat16, __bfloat162float, __float2bfloat16)
