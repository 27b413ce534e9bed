// Row-wise kernels: one warp per row, reductions in f32 with warp shuffles (rows are short enough that each lane
// re-reading its elements from cache beats staging them in shared memory).
#include "common.cuh"

#define ROW_OF_THIS_WARP ((blockIdx.x * blockDim.x + threadIdx.x) / 32)
#define LANE (threadIdx.x % 32)

// out = softmax(cap(scores × scale) + mask) over the last dimension (len), where cap(v) = softcap × tanh(v / softcap)
// when softcap > 0, and the mask repeats along the scores' middle dimension as in add_repeated (scores viewed as
// [outer, mid, inner], mask as [outer, inner], inner a multiple of len). A row whose every logit is -inf gets zeros.
template <typename T>
__device__ void masked_softmax(unsigned int rows, unsigned int len, unsigned int mid, unsigned int inner, float scale,
                               float softcap, const T *scores, const T *mask, T *out) {
    const unsigned int row = ROW_OF_THIS_WARP;
    if (row >= rows) return;
    const unsigned int start = row * len;
    const T *s = scores + start;
    const T *m = mask + (start / (mid * inner)) * inner + start % inner;
    auto logit = [&](unsigned int c) {
        float v = to_f32(s[c]) * scale;
        if (softcap > 0.0f) v = softcap * tanhf(v / softcap);
        return v + to_f32(m[c]);
    };
    float largest = -INFINITY;
    for (unsigned int c = LANE; c < len; c += 32) largest = fmaxf(largest, logit(c));
    largest = warp_max(largest);
    float sum = 0.0f;
    if (largest != -INFINITY)
        for (unsigned int c = LANE; c < len; c += 32) sum += expf(logit(c) - largest);
    sum = warp_sum(sum);
    const float inverse = largest == -INFINITY ? 0.0f : 1.0f / sum;
    for (unsigned int c = LANE; c < len; c += 32)
        out[start + c] = from_f32<T>(largest == -INFINITY ? 0.0f : expf(logit(c) - largest) * inverse);
}

// out = layer_norm(x + bias + residual) × weight + beta per row of `hidden` (biased variance, as PyTorch): a BERT
// block's output projection bias, residual connection and LayerNorm in one pass.
template <typename T>
__device__ void bias_residual_layer_norm(unsigned int rows, unsigned int hidden, float eps, const T *x, const T *bias,
                                         const T *residual, const T *weight, const T *beta, T *out) {
    const unsigned int row = ROW_OF_THIS_WARP;
    if (row >= rows) return;
    const unsigned int start = row * hidden;
    auto value = [&](unsigned int c) { return to_f32(x[start + c]) + to_f32(bias[c]) + to_f32(residual[start + c]); };
    float sum = 0.0f;
    for (unsigned int c = LANE; c < hidden; c += 32) sum += value(c);
    const float mean = warp_sum(sum) / hidden;
    float squares = 0.0f;
    for (unsigned int c = LANE; c < hidden; c += 32) {
        const float centered = value(c) - mean;
        squares += centered * centered;
    }
    const float inverse_std = rsqrtf(warp_sum(squares) / hidden + eps);
    for (unsigned int c = LANE; c < hidden; c += 32)
        out[start + c] = from_f32<T>((value(c) - mean) * inverse_std * to_f32(weight[c]) + to_f32(beta[c]));
}

#define INSTANTIATE_ROWS(NAME, PARAMS, ARGS)                                                                     \
    extern "C" __global__ void NAME##_f32 PARAMS(float) { NAME<float> ARGS; }                                    \
    extern "C" __global__ void NAME##_f16 PARAMS(__half) { NAME<__half> ARGS; }                                  \
    extern "C" __global__ void NAME##_bf16 PARAMS(__nv_bfloat16) { NAME<__nv_bfloat16> ARGS; }

#define MASKED_SOFTMAX_PARAMS(T)                                                                                 \
    (unsigned int rows, unsigned int len, unsigned int mid, unsigned int inner, float scale, float softcap,       \
     const T *scores, const T *mask, T *out)
INSTANTIATE_ROWS(masked_softmax, MASKED_SOFTMAX_PARAMS, (rows, len, mid, inner, scale, softcap, scores, mask, out))

#define BIAS_RESIDUAL_LAYER_NORM_PARAMS(T)                                                                       \
    (unsigned int rows, unsigned int hidden, float eps, const T *x, const T *bias, const T *residual,             \
     const T *weight, const T *beta, T *out)
INSTANTIATE_ROWS(bias_residual_layer_norm, BIAS_RESIDUAL_LAYER_NORM_PARAMS,
                 (rows, hidden, eps, x, bias, residual, weight, beta, out))
