// Runs the CUDA kernels of native/kernels/ on the host so their index arithmetic and reductions can be tested on a
// machine without a GPU: every warp is 32 host threads, and warp shuffles exchange values through a barrier.
// Included before the kernel sources (g++ -include).
#pragma once
#include <barrier>
#include <cmath>
#include <functional>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __forceinline__ inline

struct Dim {
    unsigned int x = 1, y = 1, z = 1;
};
inline thread_local Dim threadIdx, blockIdx, blockDim, gridDim;

inline float rsqrtf(float v) { return 1.0f / std::sqrt(v); }

struct Warp {
    std::barrier<> step{32};
    float slots[32];
};
inline thread_local Warp *this_warp = nullptr;

inline float __shfl_xor_sync(unsigned int, float value, int mask) {
    const unsigned int lane = threadIdx.x % 32;
    this_warp->slots[lane] = value;
    this_warp->step.arrive_and_wait();
    const float other = this_warp->slots[lane ^ static_cast<unsigned int>(mask)];
    this_warp->step.arrive_and_wait();
    return other;
}

// Launches `kernel` over `grid` blocks of `block` threads (a multiple of 32), one warp at a time.
inline void launch(unsigned int grid, unsigned int block, const std::function<void()> &kernel) {
    for (unsigned int b = 0; b < grid; ++b) {
        for (unsigned int first = 0; first < block; first += 32) {
            Warp warp;
            std::vector<std::thread> lanes;
            for (unsigned int lane = 0; lane < 32; ++lane) {
                lanes.emplace_back([&, lane] {
                    threadIdx.x = first + lane;
                    blockIdx.x = b;
                    blockDim.x = block;
                    gridDim.x = grid;
                    this_warp = &warp;
                    kernel();
                });
            }
            for (auto &lane : lanes) lane.join();
        }
    }
}
