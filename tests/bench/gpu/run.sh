#!/usr/bin/env bash
# One GPU session: CUDA parity on the fixtures, cold start, then end-to-end HTTP load on BERT-base (f16) and
# Qwen2.5-1.5B (bf16) next to transformers' forward-only throughput for the same shapes, on the same GPU.
#
# Runs on a CUDA host with python3 + torch + transformers (the models are generated there) and without a Rust
# toolchain: build here with native/cuda/build.sh and `cargo build --release -p classify-tests --bin bench-http`,
# then pass the two binaries:   tests/bench/gpu/run.sh CLASSIFY_NATIVE BENCH_HTTP OUT_DIR
# BENCH_SECONDS (default 15) bounds each load run; COMPILE=0 skips the torch.compile baseline (minutes);
# PROFILE=0 skips the Nsight Compute kernel profile; QUICK=1 keeps f32/bf16 parity, the profile, batch-1 and the
# 256-client runs only.
set -uo pipefail
seconds=${BENCH_SECONDS:-15}
server_bin=$(realpath "$1") bench_bin=$(realpath "$2") out=$(realpath -m "$3")
cd "$(dirname "$0")"
fixtures=../../fixtures/models
work=${TMPDIR:-/tmp}/classify-gpu
mkdir -p "$out" "$work"
log() { echo "== $(date +%T) $*" | tee -a "$out/steps.log"; }

# CUDA libraries (cuBLAS, cuRAND, NVRTC, the runtime) from the CUDA toolkit or PyTorch's nvidia-* wheels.
nvidia=$(python3 -c 'import nvidia, os; print(list(nvidia.__path__)[0])' 2>/dev/null)
for dir in ${nvidia:+"$nvidia"/*/lib} /usr/local/cuda/lib64 /usr/local/nvidia/lib64; do
    [ -d "$dir" ] && LD_LIBRARY_PATH="$dir:${LD_LIBRARY_PATH:-}"
done
export LD_LIBRARY_PATH
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee -a "$out/steps.log"
if ldd "$server_bin" | grep "not found"; then
    log "missing libraries"; exit 1
fi

log "generating BERT-base and Qwen2.5-1.5B random checkpoints (background)"
python3 make_models.py "$work/models" > "$work/make_models.log" 2>&1 &
make_models=$!

# Starts the server and waits for its first answered classify request; ready_s = seconds from launch to it.
port=8123 starts=0
start_server() {
    local probe_model=$1; shift
    starts=$((starts + 1))
    local started=$EPOCHREALTIME
    "$server_bin" --port $port "$@" > "$work/server-$starts.log" 2>&1 &
    server=$!
    for _ in $(seq 1 2400); do
        if curl -sf -o /dev/null "http://127.0.0.1:$port/v1/classify" -H 'content-type: application/json' \
            -d "{\"model\":\"$probe_model\",\"input\":\"hello world\"}"; then
            ready_s=$(awk "BEGIN { printf \"%.2f\", $EPOCHREALTIME - $started }")
            return 0
        fi
        kill -0 $server 2>/dev/null || { log "server exited"; tail -5 "$work/server-$starts.log" | tee -a "$out/steps.log"; return 1; }
        sleep 0.05
    done
    log "server not ready"; return 1
}
stop_server() {
    kill $server 2>/dev/null; wait $server 2>/dev/null
    grep -i "error" "$work/server-$starts.log" | sed 's/\x1b\[[0-9;]*m//g' | head -5 | tee -a "$out/steps.log"
}

all=$(ls $fixtures | sed "s|^|$fixtures/|" | paste -sd,)
names=$(ls $fixtures)
export CUDA_CACHE_PATH=$work/jit-cache
rm -rf "$CUDA_CACHE_PATH"
start_server bert-sentiment --device cuda --dtype f32 --model "$all"; log "cold start, empty JIT cache: ${ready_s}s"
log "parity f32"; python3 cuda_parity.py http://127.0.0.1:$port 1e-4 $names | tee -a "$out/parity.jsonl"
stop_server
start_server bert-sentiment --device cuda --dtype f32 --model "$all"; log "second start, warm JIT cache: ${ready_s}s"
stop_server
start_server bert-sentiment --device cuda --dtype bf16 --model "$all"; log "start bf16: ${ready_s}s"
log "parity bf16"; python3 cuda_parity.py http://127.0.0.1:$port 2e-2 $names | tee -a "$out/parity.jsonl"
stop_server
if [ "${QUICK:-0}" != 1 ]; then
    start_server bert-sentiment --device cuda --dtype f16 --model "$all"; log "start f16: ${ready_s}s"
    log "parity f16"; python3 cuda_parity.py http://127.0.0.1:$port 2e-2 $names | tee -a "$out/parity.jsonl"
    stop_server
fi

wait $make_models || { log "model generation failed"; cat "$work/make_models.log"; exit 1; }

# Where a BERT-base forward spends GPU time: Nsight Compute times ~2 forwards' kernels under load.
if command -v ncu > /dev/null && [ "${PROFILE:-1}" = 1 ]; then
    log "ncu kernel profile, bert-base f16"
    timeout 150 ncu --target-processes all --launch-skip 3000 --launch-count 500 --metrics gpu__time_duration.sum \
        --csv --log-file "$work/ncu.csv" "$server_bin" --port 8124 --device cuda --dtype f16 \
        --max-batch-tokens 32768 --max-batch-requests 256 --model "$work/models/bert-base" > "$work/ncu-server.log" 2>&1 &
    for _ in $(seq 1 600); do curl -sf -o /dev/null http://127.0.0.1:8124/health && break; sleep 0.1; done
    timeout 60 "$bench_bin" --url http://127.0.0.1:8124 --model bert-base --clients 64 --tokens 128 \
        --requests 2000 --max-seconds 40 > /dev/null
    pkill -INT -f "^$server_bin --port 8124"; wait
    python3 ncu_summary.py "$work/ncu.csv" | tee -a "$out/steps.log"
fi

bench() {
    local model=$1 label=$2; shift 2
    "$bench_bin" --url http://127.0.0.1:$port --model "$model" --label "$label" "$@" | tee -a "$out/http.jsonl"
}
for spec in "bert-base f16" "qwen2.5-1.5b bf16"; do
    set -- $spec
    model=$1 dtype=$2
    start_server "$model" --device cuda --dtype "$dtype" --max-batch-tokens 32768 --max-batch-requests 256 \
        --max-concurrent-requests 1024 --model "$work/models/$model" || continue
    log "$model $dtype server ready in ${ready_s}s"
    bench "$model" "batch-1 16 tok" --clients 1 --tokens 16 --requests 400 --max-seconds 10
    bench "$model" "256 clients x 128 tok" --clients 256 --tokens 128 --requests 100000 --max-seconds $seconds
    [ "${QUICK:-0}" = 1 ] ||
        bench "$model" "32 clients x 128 tok" --clients 32 --tokens 128 --requests 100000 --max-seconds $seconds
    bench "$model" "256 clients x 8-256 tok" --clients 256 --tokens 8-256 --requests 100000 --max-seconds $seconds
    nvidia-smi --query-gpu=memory.used --format=csv,noheader | sed "s/^/$model GPU memory used: /" | tee -a "$out/http.jsonl"
    curl -s http://127.0.0.1:$port/metrics > "$out/metrics-$model.txt"
    stop_server
done

[ "${QUICK:-0}" = 1 ] && { log done; exit 0; }
log "transformers forward-only, eager"
python3 transformers_forward.py "$work/models/bert-base,$work/models/qwen2.5-1.5b" | tee "$out/transformers.jsonl"
[ "${COMPILE:-1}" = 0 ] && { log done; exit 0; }
log "transformers forward-only, torch.compile(mode=reduce-overhead)"
timeout 300 python3 transformers_forward.py "$work/models/bert-base,$work/models/qwen2.5-1.5b" \
    --compile --shapes 1x16,256x128 2>"$work/compile.err" | grep compiled | tee -a "$out/transformers.jsonl"
log done
