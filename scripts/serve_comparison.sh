#!/usr/bin/env bash
# Serving comparison on this machine: `specdec serve` with vanilla decoding, fixed prompt lookup, load-aware
# prompt lookup and load-aware eagle+pld, and (when VLLM_PYTHON is set) vLLM's CPU build, measured by one
# `specdec bench serve --compare` run: at each concurrency level, ROUNDS rounds, every configuration back to back
# in each round (order rotating), so ratios within a round are paired against this machine's drift. One report:
# OUT/results.json, summary.md, throughput.png. The servers run side by side (one idles while another is
# measured), listen on 127.0.0.1 only and are stopped before the script ends.
#
#   scripts/serve_comparison.sh OUT [DTYPE]          DTYPE: float32 (default), bfloat16 or q4
#   VLLM_PYTHON=vllm-venv/bin/python VLLM_MODEL_DIR=DIR scripts/serve_comparison.sh OUT float32
#
# Settings from the environment: MODEL (smollm2-135m), MAX_TOKENS (64), CONCURRENCY (1,2,4,8,16), ROUNDS (3),
# PORT (8100; the servers use PORT, PORT+1 and PORT+2).
set -euo pipefail
out=${1:?usage: scripts/serve_comparison.sh OUT [DTYPE]}
dtype=${2:-float32}
model=${MODEL:-smollm2-135m}
max_tokens=${MAX_TOKENS:-64}
concurrency=${CONCURRENCY:-1,2,4,8,16}
rounds=${ROUNDS:-3}
port=${PORT:-8100}
pids=()

stop() {                                   # every server's whole process group (vLLM starts workers)
    for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    pids=()
}
trap stop EXIT

start() {                                  # start PORT "$@" in its own process group, wait for /health
    local p=$1
    shift
    setsid "$@" > "$out/server-$p.log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    for _ in $(seq 1 900); do
        if curl -sf "http://127.0.0.1:$p/health" > /dev/null 2>&1; then return 0; fi
        if ! kill -0 "$pid" 2>/dev/null; then echo "server exited: see $out/server-$p.log" >&2; exit 1; fi
        sleep 1
    done
    echo "server not ready after 900 s: see $out/server-$p.log" >&2
    exit 1
}

mkdir -p "$out"
url() { echo "http://127.0.0.1:$1/v1"; }
start "$port" specdec serve --model "$model" --dtype "$dtype" --method vanilla,pld --speculation fixed --port "$port"
start "$((port + 1))" specdec serve --model "$model" --dtype "$dtype" --method pld,eagle+pld \
    --speculation load-aware --port "$((port + 1))"
compare=(--compare "vanilla-$dtype" "$(url "$port")" '{"method": "vanilla"}'
         --compare "pld-fixed-$dtype" "$(url "$port")" '{"method": "pld"}'
         --compare "pld-load-aware-$dtype" "$(url "$((port + 1))")" '{"method": "pld"}'
         --compare "eagle+pld-load-aware-$dtype" "$(url "$((port + 1))")" '{"method": "eagle+pld"}')
if [ -n "${VLLM_PYTHON:-}" ] && [ "$dtype" != q4 ]; then
    export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-4}
    start "$((port + 2))" "$VLLM_PYTHON" -m vllm.entrypoints.openai.api_server \
        --model "${VLLM_MODEL_DIR:?set VLLM_MODEL_DIR to the Hugging Face directory of the model}" --host 127.0.0.1 \
        --port "$((port + 2))" --dtype "$dtype" --served-model-name "$model"
    compare+=(--compare "vllm-$dtype" "$(url "$((port + 2))")")
fi
specdec bench serve "${compare[@]}" --out "$out" --concurrency "$concurrency" --rounds "$rounds" \
    --max-tokens "$max_tokens" --baseline "vanilla-$dtype"
stop
echo "wrote $out/results.json, summary.md, throughput.png"
