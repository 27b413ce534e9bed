#!/usr/bin/env bash
# Builds classify-native with CUDA on a machine that has neither a GPU nor a CUDA toolkit.
#
# NVIDIA's CUDA 13.0 wheels from PyPI are unpacked into a toolkit directory (nvcc, headers, cuBLAS, cuRAND, NVRTC,
# the runtime), given the unversioned .so links a linker looks for, plus a link-time stub libcuda.so (SONAME
# libcuda.so.1) generated from cuda.h: the GPU host's driver provides the real one at run time.
#
# candle-core and candle-kernels are built from copies patched with native/cuda/candle-sass.patch (in
# target/cuda-patched), which embed every kernel module as a fatbin with SASS for the target GPU, so a fresh host
# does not spend its first start JIT-compiling PTX. Cargo.lock is restored afterwards.
#
#   native/cuda/build.sh                 # -> target/cuda/release/classify-native
#   CUDA_COMPUTE_CAP=80 native/cuda/build.sh   # another GPU generation (default 90: H100/H200)
#
# The binary needs, on the GPU host, a CUDA 13 driver and libcudart/libcublas/libcublasLt/libcurand/libnvrtc 13
# on the library path (a CUDA 13 toolkit, or the same wheels, e.g. from a PyTorch cu130 install).
set -euo pipefail
cd "$(dirname "$0")/../.."

toolkit=${CLASSIFY_CUDA_TOOLKIT:-$PWD/target/cuda-toolkit}
wheels=(
    nvidia-cuda-nvcc==13.0.88
    nvidia-nvvm==13.0.88
    nvidia-cuda-crt==13.0.88
    nvidia-cuda-cccl==13.0.85
    nvidia-cuda-runtime==13.0.96
    nvidia-cuda-nvrtc==13.0.88
    nvidia-curand==10.4.0.35
    nvidia-cublas==13.0.2.14
)

if [ ! -e "$toolkit/.complete" ]; then
    echo "Assembling a CUDA 13.0 toolkit from PyPI wheels in $toolkit"
    rm -rf "$toolkit" "$toolkit.download"
    mkdir -p "$toolkit.download"
    python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform manylinux_2_12_x86_64 --platform manylinux2010_x86_64 \
        -d "$toolkit.download" "${wheels[@]}"
    for wheel in "$toolkit.download"/*.whl; do
        python3 -m zipfile -e "$wheel" "$toolkit.download/unpacked"
    done
    mv "$toolkit.download/unpacked/nvidia/cu13" "$toolkit"
    rm -rf "$toolkit.download"
    chmod +x "$toolkit"/bin/* "$toolkit"/nvvm/bin/*
    ln -s lib "$toolkit/lib64"
    # Linkers look for libfoo.so; the wheels ship only the SONAME files.
    for library in "$toolkit"/lib/lib*.so.*; do
        base=${library%%.so.*}.so
        [ -e "$base" ] || ln -s "$(basename "$library")" "$base"
    done
    # A stub exporting every driver API function cuda.h declares (after its _v2/_v3 renames).
    mkdir -p "$toolkit/lib/stubs"
    echo '#include <cuda.h>' | gcc -E -I"$toolkit/include" - \
        | grep -oE '\bcu[A-Z][A-Za-z0-9_]* *\(' | tr -d ' (' | sort -u \
        | sed 's/.*/void &(void) {}/' > "$toolkit/lib/stubs/libcuda.c"
    gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$toolkit/lib/stubs/libcuda.so" "$toolkit/lib/stubs/libcuda.c"
    touch "$toolkit/.complete"
fi

# candle with SASS (see the header), re-copied whenever the patch changes.
patched=$PWD/target/cuda-patched
if [ ! -e "$patched/.complete" ] || [ native/cuda/candle-sass.patch -nt "$patched/.complete" ]; then
    rm -rf "$patched"
    mkdir -p "$patched"
    cargo fetch --locked
    metadata=$(cargo metadata --format-version 1 --locked --features classify-native/cuda)
    for crate in candle-core candle-kernels; do
        manifest=$(python3 -c 'import json, sys
packages = json.loads(sys.stdin.read())["packages"]
print(next(p["manifest_path"] for p in packages if p["name"] == sys.argv[1]))' "$crate" <<< "$metadata")
        cp -r "$(dirname "$manifest")" "$patched/$crate"
    done
    patch -d "$patched" -p1 --quiet < native/cuda/candle-sass.patch
    touch "$patched/.complete"
fi
cp Cargo.lock target/Cargo.lock.before-cuda
trap 'cp target/Cargo.lock.before-cuda Cargo.lock' EXIT

export CUDA_HOME="$toolkit"
export PATH="$toolkit/bin:$PATH"
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
export LIBRARY_PATH="$toolkit/lib:$toolkit/lib/stubs${LIBRARY_PATH:+:$LIBRARY_PATH}"
cargo build -p classify-native --release --features cuda --target-dir target/cuda \
    --config "patch.crates-io.candle-core.path='$patched/candle-core'" \
    --config "patch.crates-io.candle-kernels.path='$patched/candle-kernels'" "$@"
echo "built target/cuda/release/classify-native (CUDA, compute capability $CUDA_COMPUTE_CAP)"
