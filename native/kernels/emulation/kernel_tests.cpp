// Tests the kernels of native/kernels/ on the host (cuda_emulation.h) against double-precision references, for
// f32, f16 and bf16, scalar and 16-byte variants. Kernels are looked up by the exported names the server launches
// (dlsym) and run with the server's launch shapes (native/src/models/ops/cuda.rs): 256 threads per block, one
// thread per pack or one warp per row. Built with AddressSanitizer, so an out-of-bounds index fails the run.
// Exit status 0 when every check passes.
#include "../elementwise.cu"
#include "../rows.cu"

#include <cstdio>
#include <dlfcn.h>
#include <random>
#include <string>
#include <type_traits>

static int failures = 0;
static std::mt19937 rng(7);

template <typename T> const char *suffix() {
    if constexpr (std::is_same_v<T, float>) return "f32";
    else if constexpr (std::is_same_v<T, __half>) return "f16";
    else return "bf16";
}

template <typename T> double tolerance() {
    if constexpr (std::is_same_v<T, float>) return 2e-5;
    else if constexpr (std::is_same_v<T, __half>) return 2e-3;
    else return 1.6e-2;
}

template <typename Function> Function *lookup(const std::string &name) {
    void *symbol = dlsym(RTLD_DEFAULT, name.c_str());
    if (symbol == nullptr) {
        std::printf("FAIL missing kernel %s\n", name.c_str());
        std::exit(1);
    }
    return reinterpret_cast<Function *>(symbol);
}

template <typename T> std::vector<T> random_values(std::size_t n, float low = -3.0f, float high = 3.0f) {
    std::uniform_real_distribution<float> values(low, high);
    std::vector<T> out(n);
    for (auto &v : out) v = from_f32<T>(values(rng));
    return out;
}

template <typename T> double value(T v) { return to_f32(v); }

template <typename T> void check(const std::string &what, const std::vector<T> &got, const std::vector<double> &want) {
    for (std::size_t i = 0; i < want.size(); ++i) {
        const double g = value(got[i]);
        const bool same_infinity = std::isinf(want[i]) && g == want[i];
        if (!same_infinity && !(std::fabs(g - want[i]) <= tolerance<T>() * (1.0 + std::fabs(want[i])))) {
            std::printf("FAIL %s<%s>: element %zu is %.7g, expected %.7g\n", what.c_str(), suffix<T>(), i, g, want[i]);
            ++failures;
            return;
        }
    }
}

static unsigned int blocks_for(std::size_t threads) { return threads == 0 ? 1 : (threads + 255) / 256; }

// The server's choice: the 16-byte variant when the sizes allow it.
template <typename T> unsigned int width_for(unsigned int multiple) {
    const unsigned int w = 16 / sizeof(T);
    return multiple % w == 0 ? w : 1;
}

template <typename T> std::string name(const char *kernel, unsigned int width) {
    return std::string(kernel) + "_" + suffix<T>() + (width == 1 ? "_1" : "_16");
}

double activation_reference(unsigned int code, double x) {
    switch (code) {
    case 0: return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
    case 1: return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
    case 2: return x / (1.0 + std::exp(-x));
    default: return x > 0 ? x : 0.0;
    }
}

template <typename T> void test_add_repeated(unsigned int outer, unsigned int mid, unsigned int inner, bool one_block) {
    const unsigned int n = outer * mid * inner, w = width_for<T>(inner);
    auto x = random_values<T>(n), y = random_values<T>(outer * inner);
    std::vector<T> out(n);
    auto kernel = lookup<void(unsigned int, unsigned int, unsigned int, const T *, const T *, T *)>(name<T>("add_repeated", w));
    launch(one_block ? 1 : blocks_for(n / w), 256, [&] { kernel(n, mid, inner, x.data(), y.data(), out.data()); });
    std::vector<double> want(n);
    for (unsigned int o = 0; o < outer; ++o)
        for (unsigned int m = 0; m < mid; ++m)
            for (unsigned int i = 0; i < inner; ++i) {
                const unsigned int at = (o * mid + m) * inner + i;
                want[at] = value(x[at]) + value(y[o * inner + i]);
            }
    check("add_repeated", out, want);
}

template <typename T> void test_swap_middle(unsigned int batch, unsigned int a, unsigned int b, unsigned int first,
                                            unsigned int count, unsigned int d, bool with_bias) {
    const unsigned int n = batch * count * a * d, w = width_for<T>(d);
    auto in = random_values<T>(batch * a * b * d), bias = random_values<T>(b * d);
    std::vector<T> out(n);
    using Kernel = void(unsigned int, unsigned int, unsigned int, unsigned int, unsigned int, unsigned int, const T *,
                        const T *, T *);
    auto kernel = lookup<Kernel>(name<T>("swap_middle", w));
    const T *added = with_bias ? bias.data() : nullptr;
    launch(blocks_for(n / w), 256, [&] { kernel(n, a, b, first, count, d, in.data(), added, out.data()); });
    std::vector<double> want(n);
    for (unsigned int z = 0; z < batch; ++z)
        for (unsigned int c = 0; c < count; ++c)
            for (unsigned int ai = 0; ai < a; ++ai)
                for (unsigned int di = 0; di < d; ++di)
                    want[((z * count + c) * a + ai) * d + di] = value(in[((z * a + ai) * b + first + c) * d + di]) +
                                                               (with_bias ? value(bias[(first + c) * d + di]) : 0.0);
    check(with_bias ? "swap_middle+bias" : "swap_middle", out, want);
}

template <typename T> void test_bias_activation(unsigned int rows, unsigned int features, unsigned int code) {
    const unsigned int n = rows * features, w = width_for<T>(features);
    auto x = random_values<T>(n), bias = random_values<T>(features);
    std::vector<T> out(n);
    auto kernel = lookup<void(unsigned int, unsigned int, unsigned int, const T *, const T *, T *)>(name<T>("bias_activation", w));
    launch(blocks_for(n / w), 256, [&] { kernel(n, features, code, x.data(), bias.data(), out.data()); });
    std::vector<double> want(n);
    for (unsigned int i = 0; i < n; ++i) want[i] = activation_reference(code, value(x[i]) + value(bias[i % features]));
    check("bias_activation/" + std::to_string(code), out, want);
}

template <typename T> void test_gated_activation(unsigned int rows, unsigned int inner, unsigned int code) {
    const unsigned int n = rows * inner, w = width_for<T>(inner);
    auto x = random_values<T>(2 * n);
    std::vector<T> out(n);
    auto kernel = lookup<void(unsigned int, unsigned int, unsigned int, const T *, T *)>(name<T>("gated_activation", w));
    launch(blocks_for(n / w), 256, [&] { kernel(n, inner, code, x.data(), out.data()); });
    std::vector<double> want(n);
    for (unsigned int r = 0; r < rows; ++r)
        for (unsigned int c = 0; c < inner; ++c)
            want[r * inner + c] = activation_reference(code, value(x[2 * r * inner + c])) * value(x[2 * r * inner + inner + c]);
    check("gated_activation/" + std::to_string(code), out, want);
}

// scores [outer, mid, inner] with rows of `len`; mask [outer, inner]. Some mask entries are -inf, and with
// `empty_row` the first row is masked completely.
template <typename T> void test_masked_softmax(unsigned int outer, unsigned int mid, unsigned int inner, unsigned int len,
                                               float scale, float softcap, bool empty_row) {
    const unsigned int n = outer * mid * inner, rows = n / len;
    auto scores = random_values<T>(n, -8.0f, 8.0f);
    auto mask = random_values<T>(outer * inner, -1.0f, 1.0f);
    std::bernoulli_distribution hidden(0.3);
    for (auto &m : mask)
        if (hidden(rng)) m = from_f32<T>(-INFINITY);
    for (unsigned int o = 0; o < outer; ++o) mask[o * inner] = from_f32<T>(0.0f);
    if (empty_row)
        for (unsigned int c = 0; c < len; ++c) mask[c] = from_f32<T>(-INFINITY);
    std::vector<T> out(n);
    using Kernel = void(unsigned int, unsigned int, unsigned int, unsigned int, float, float, const T *, const T *, T *);
    auto kernel = lookup<Kernel>(std::string("masked_softmax_") + suffix<T>());
    launch(blocks_for(rows * 32), 256, [&] { kernel(rows, len, mid, inner, scale, softcap, scores.data(), mask.data(), out.data()); });
    std::vector<double> want(n);
    for (unsigned int r = 0; r < rows; ++r) {
        std::vector<double> logits(len);
        double largest = -INFINITY;
        for (unsigned int c = 0; c < len; ++c) {
            const unsigned int i = r * len + c;
            double v = value(scores[i]) * scale;
            if (softcap > 0) v = softcap * std::tanh(v / softcap);
            logits[c] = v + value(mask[(i / (mid * inner)) * inner + i % inner]);
            largest = std::max(largest, logits[c]);
        }
        double sum = 0;
        for (double l : logits) sum += std::isinf(largest) ? 0.0 : std::exp(l - largest);
        for (unsigned int c = 0; c < len; ++c)
            want[r * len + c] = std::isinf(largest) ? 0.0 : std::exp(logits[c] - largest) / sum;
    }
    check("masked_softmax", out, want);
}

template <typename T> void test_bias_residual_layer_norm(unsigned int rows, unsigned int hidden) {
    auto x = random_values<T>(rows * hidden), residual = random_values<T>(rows * hidden);
    auto bias = random_values<T>(hidden), weight = random_values<T>(hidden, 0.5f, 1.5f), beta = random_values<T>(hidden);
    std::vector<T> out(rows * hidden);
    const float eps = 1e-12f;
    using Kernel = void(unsigned int, unsigned int, float, const T *, const T *, const T *, const T *, const T *, T *);
    auto kernel = lookup<Kernel>(std::string("bias_residual_layer_norm_") + suffix<T>());
    launch(blocks_for(rows * 32), 256, [&] {
        kernel(rows, hidden, eps, x.data(), bias.data(), residual.data(), weight.data(), beta.data(), out.data());
    });
    std::vector<double> want(rows * hidden);
    for (unsigned int r = 0; r < rows; ++r) {
        std::vector<double> v(hidden);
        double mean = 0, variance = 0;
        for (unsigned int c = 0; c < hidden; ++c) {
            v[c] = value(x[r * hidden + c]) + value(bias[c]) + value(residual[r * hidden + c]);
            mean += v[c] / hidden;
        }
        for (double e : v) variance += (e - mean) * (e - mean) / hidden;
        for (unsigned int c = 0; c < hidden; ++c)
            want[r * hidden + c] = (v[c] - mean) / std::sqrt(variance + eps) * value(weight[c]) + value(beta[c]);
    }
    check("bias_residual_layer_norm", out, want);
}

template <typename T> void test_all() {
    test_add_repeated<T>(3, 5, 16, false);  // vector variant
    test_add_repeated<T>(2, 7, 6, false);   // scalar variant (6 is no multiple of the pack width)
    test_add_repeated<T>(4, 9, 32, true);   // one block: the grid-stride loop covers the rest
    test_add_repeated<T>(1, 300, 8, false); // BERT's position embeddings: outer 1
    test_swap_middle<T>(2, 5, 12, 4, 4, 16, true);  // q/k/v split with bias: [batch, len, 3 × heads, d], heads 4..8
    test_swap_middle<T>(2, 5, 12, 8, 4, 16, false); // the same without bias
    test_swap_middle<T>(3, 4, 6, 0, 6, 8, false);   // head merge: [batch, heads, len, d] → [batch, len, heads, d]
    test_swap_middle<T>(2, 3, 5, 1, 3, 6, true);    // scalar variant
    for (unsigned int code = 0; code < 4; ++code) {
        test_bias_activation<T>(7, 24, code);
        test_gated_activation<T>(5, 40, code);
    }
    test_bias_activation<T>(3, 10, 0);
    test_gated_activation<T>(3, 10, 2);
    // BERT: mask [batch, len] repeated over heads × len query rows; decoder: one [len, len] mask for every
    // (batch, head); lengths below, at and above a warp.
    test_masked_softmax<T>(3, 4 * 5, 5, 5, 0.5f, 0.0f, false);
    test_masked_softmax<T>(2, 2 * 40, 40, 40, 0.125f, 0.0f, true);
    test_masked_softmax<T>(1, 6, 33 * 33, 33, 0.25f, 0.0f, false);
    test_masked_softmax<T>(1, 4, 70 * 70, 70, 1.0f, 5.0f, false);
    test_bias_residual_layer_norm<T>(9, 48);
    test_bias_residual_layer_norm<T>(3, 100);
}

int main() {
    std::setvbuf(stdout, nullptr, _IONBF, 0); // failures stay visible if a sanitizer aborts the run
    test_all<float>();
    test_all<__half>();
    test_all<__nv_bfloat16>();
    if (failures == 0) std::printf("all kernel checks passed\n");
    return failures == 0 ? 0 : 1;
}
