#!/usr/bin/env bash
# Serving comparison on this machine: `specdec serve` with vanilla decoding, fixed prompt lookup, load-aware
# prompt lookup and load-aware eagle+pld, and (when VLLM_PYTHON is set) vLLM's CPU build, each measured by
# `specdec bench serve` at the same concurrency levels into one report (OUT/results.json, summary.md,
# throughput.png). Servers listen on 127.0.0.1 only and are stopped before the script ends.
#
#   scripts/serve_comparison.sh OUT [DTYPE]          DTYPE: float32 (default), bfloat16 or q4
#   VLLM_PYTHON=vllm-venv/bin/python VLLM_MODEL_DIR=DIR scripts/serve_comparison.sh OUT float32
#
# Settings from the environment: MODEL (smollm2-135m), MAX_TOKENS (64), CONCURRENCY (1,2,4,8,16), PORT (8100).
set -euo pipefail
out=${1:?usage: scripts/serve_comparison.sh OUT [DTYPE]}
dtype=${2:-float32}
model=${MODEL:-smollm2-135m}
max_tokens=${MAX_TOKENS:-64}
concurrency=${CONCURRENCY:-1,2,4,8,16}
port=${PORT:-8100}
pid=""

stop() {                                   # the server's whole process group (vLLM starts workers)
    if [ -n "$pid" ]; then kill -TERM -- "-$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=""; fi
}
trap stop EXIT

start() {                                  # start "$@" in its own process group, wait for /health
    setsid "$@" > "$out/server-$port.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 900); do
        if curl -sf "http://127.0.0.1:$port/health" > /dev/null 2>&1; then return 0; fi
        if ! kill -0 "$pid" 2>/dev/null; then echo "server exited: see $out/server-$port.log" >&2; exit 1; fi
        sleep 1
    done
    echo "server not ready after 900 s: see $out/server-$port.log" >&2
    exit 1
}

bench() {                                  # bench LABEL [EXTRA_JSON]
    specdec bench serve --url "http://127.0.0.1:$port/v1" --label "$1" --out "$out" --concurrency "$concurrency" \
        --max-tokens "$max_tokens" --baseline "vanilla-$dtype" --quiet ${2:+--extra "$2"}
}

mkdir -p "$out"
start specdec serve --model "$model" --dtype "$dtype" --method vanilla,pld --speculation fixed --port "$port"
bench "vanilla-$dtype" '{"method": "vanilla"}'
bench "pld-fixed-$dtype" '{"method": "pld"}'
stop
port=$((port + 1))
start specdec serve --model "$model" --dtype "$dtype" --method pld,eagle+pld --speculation load-aware --port "$port"
bench "pld-load-aware-$dtype" '{"method": "pld"}'
bench "eagle+pld-load-aware-$dtype" '{"method": "eagle+pld"}'
stop
if [ -n "${VLLM_PYTHON:-}" ] && [ "$dtype" != q4 ]; then
    port=$((port + 1))
    export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-4}
    start "$VLLM_PYTHON" -m vllm.entrypoints.openai.api_server \
        --model "${VLLM_MODEL_DIR:?set VLLM_MODEL_DIR to the Hugging Face directory of the model}" --host 127.0.0.1 \
        --port "$port" --dtype "$dtype" --served-model-name "$model"
    bench "vllm-$dtype"
    stop
fi
echo "wrote $out/results.json, summary.md, throughput.png"
