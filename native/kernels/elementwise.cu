// Element-wise kernels over contiguous tensors, each a flat grid-stride loop over W-element packs: the index
// arithmetic runs once per pack, and the vector variants (W × sizeof(T) = 16 bytes) move a pack in one access.
#include "common.cuh"

// out = x + y, where y repeats along x's middle dimension: x is [outer, mid, inner], y is [outer, inner]. Bias adds,
// attention masks and position embeddings are all this shape of broadcast.
template <typename T, unsigned int W>
__device__ void add_repeated(unsigned int n, unsigned int mid, unsigned int inner, const T *x, const T *y, T *out) {
    GRID_STRIDE(p, n / W) {
        const unsigned int i = p * W;
        const Pack<T, W> a = load<T, W>(x + i);
        const Pack<T, W> b = load<T, W>(y + (i / (mid * inner)) * inner + i % inner);
        Pack<T, W> r;
#pragma unroll
        for (unsigned int k = 0; k < W; ++k) r.v[k] = from_f32<T>(to_f32(a.v[k]) + to_f32(b.v[k]));
        store<T, W>(out + i, r);
    }
}
#define ADD_REPEATED_PARAMS(T)                                                                                   \
    (unsigned int n, unsigned int mid, unsigned int inner, const T *x, const T *y, T *out)
INSTANTIATE(add_repeated, ADD_REPEATED_PARAMS, (n, mid, inner, x, y, out))

// out = activation(x + bias), x is [rows, features], bias is [features]: a linear layer's bias and activation.
template <typename T, unsigned int W>
__device__ void bias_activation(unsigned int n, unsigned int features, unsigned int activation, const T *x,
                                const T *bias, T *out) {
    GRID_STRIDE(p, n / W) {
        const unsigned int i = p * W;
        const Pack<T, W> a = load<T, W>(x + i);
        const Pack<T, W> b = load<T, W>(bias + i % features);
        Pack<T, W> r;
#pragma unroll
        for (unsigned int k = 0; k < W; ++k) r.v[k] = from_f32<T>(activate(activation, to_f32(a.v[k]) + to_f32(b.v[k])));
        store<T, W>(out + i, r);
    }
}
#define BIAS_ACTIVATION_PARAMS(T)                                                                                \
    (unsigned int n, unsigned int features, unsigned int activation, const T *x, const T *bias, T *out)
INSTANTIATE(bias_activation, BIAS_ACTIVATION_PARAMS, (n, features, activation, x, bias, out))

// out = activation(gate) × up, where x is [rows, 2 × inner] holding gate then up per row and out is [rows, inner]:
// a gated MLP's two projections computed as one matrix product.
template <typename T, unsigned int W>
__device__ void gated_activation(unsigned int n, unsigned int inner, unsigned int activation, const T *x, T *out) {
    GRID_STRIDE(p, n / W) {
        const unsigned int i = p * W;
        const unsigned int row = i / inner;
        const T *gate = x + 2 * row * inner + (i - row * inner);
        const Pack<T, W> g = load<T, W>(gate);
        const Pack<T, W> u = load<T, W>(gate + inner);
        Pack<T, W> r;
#pragma unroll
        for (unsigned int k = 0; k < W; ++k) r.v[k] = from_f32<T>(activate(activation, to_f32(g.v[k])) * to_f32(u.v[k]));
        store<T, W>(out + i, r);
    }
}
#define GATED_ACTIVATION_PARAMS(T) (unsigned int n, unsigned int inner, unsigned int activation, const T *x, T *out)
INSTANTIATE(gated_activation, GATED_ACTIVATION_PARAMS, (n, inner, activation, x, out))

// Swaps dimensions 1 and 2 of a contiguous [batch, a, b, d] tensor while keeping b-indices [first, first + count),
// adding bias[b, d] when it is not null: out is [batch, count, a, d]. Splits a fused q/k/v projection's product into
// heads with its bias ([batch, len, heads, d] → [batch, heads, len, d]) and merges attention output back
// ([batch, heads, len, d] → [batch, len, heads, d]) in one pass each.
template <typename T, unsigned int W>
__device__ void swap_middle(unsigned int n, unsigned int a, unsigned int b, unsigned int first, unsigned int count,
                            unsigned int d, const T *in, const T *bias, T *out) {
    GRID_STRIDE(p, n / W) {
        const unsigned int i = p * W;
        unsigned int rest = i / d;
        const unsigned int di = i - rest * d;
        const unsigned int ai = rest % a;
        rest /= a;
        const unsigned int ci = rest % count;
        const unsigned int batch = rest / count;
        Pack<T, W> v = load<T, W>(in + ((batch * a + ai) * b + first + ci) * d + di);
        if (bias != nullptr) {
            const Pack<T, W> add = load<T, W>(bias + (first + ci) * d + di);
#pragma unroll
            for (unsigned int k = 0; k < W; ++k) v.v[k] = from_f32<T>(to_f32(v.v[k]) + to_f32(add.v[k]));
        }
        store<T, W>(out + i, v);
    }
}
#define SWAP_MIDDLE_PARAMS(T)                                                                                    \
    (unsigned int n, unsigned int a, unsigned int b, unsigned int first, unsigned int count, unsigned int d,      \
     const T *in, const T *bias, T *out)
INSTANTIATE(swap_middle, SWAP_MIDDLE_PARAMS, (n, a, b, first, count, d, in, bias, out))
