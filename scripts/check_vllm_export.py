"""specdec's half of scripts/check_vllm_export.sh: export a drafter for vLLM, write the prompts as token ids,
decode them with the same drafter as a chain of k, and compare with what vLLM did (the vLLM half runs in vLLM's
own virtual environment, which has no specdec).

    python scripts/check_vllm_export.py prepare OUT [--kind eagle3|distilled] [--drafter DIR] [--model M]
                                                    [--per-group 4] [--k 3]
    python scripts/check_vllm_export.py compare OUT

prepare writes OUT/head (vLLM layout: an EAGLE-3 head, or for `distilled` a Hugging Face Llama draft model),
OUT/prompts.json (token ids with the target's chat template, Spec-Bench first turns, and the vLLM speculative
method) and OUT/specdec.json (greedy outputs, emitted tokens and target passes of a k-token chain); compare reads
OUT/vllm.json and writes OUT/report.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from specdec.bench.machine import machine_info, machine_line
from specdec.bench.questions import GROUPS, default_data_path, load_questions, select
from specdec.drafters import make_drafter
from specdec.engine import SpeculativeDecoder
from specdec.export.eagle3 import engine_files, readme, write_engine_dir
from specdec.heads.io import load_drafter
from specdec.models.load import load_model


def prepare(args) -> None:
    from specdec.drafters.trained import shipped_drafter
    out = Path(args.out)
    target = load_model(args.model, quiet=True)
    drafter_dir = Path(args.drafter) if args.drafter else shipped_drafter(target, args.kind)
    if drafter_dir is None:
        raise SystemExit(f"no {args.kind} drafter ships for {args.model}; pass --drafter DIR")
    if args.kind == "distilled":
        return _prepare_distilled(args, out, target, drafter_dir)
    config, state = load_drafter(drafter_dir, "eagle3")
    files, tensors = engine_files(config, state, "vllm")
    write_engine_dir(out / "head", files, tensors, readme("vllm", str((out / "head").resolve()), args.model,
                                                          list(config["feature_layers"]), args.k))
    files, tensors = engine_files(config, state, "speculators", embed=target.runtime.embed.float().cpu(),
                                  verifier=target.info["hf_dir"], speculative_tokens=args.k)
    write_engine_dir(out / "speculators-head", files, tensors, readme(
        "speculators", str((out / "speculators-head").resolve()), args.model, list(config["feature_layers"]), args.k))
    prompts = _prompts(target, args)
    # chain mode with the same k as vLLM: depth k, one child per node, no cost-curve cut
    drafter = make_drafter("eagle3", target, {"drafter": str(out / "head"), "depth": args.k, "topk": 1,
                                              "nodes": args.k, "fit": False})
    runs = _chain_runs(target, drafter, prompts, args.max_new_tokens)
    _write(out, target, args, prompts, runs, drafter_dir, "eagle3")


def _prompts(target, args) -> list[dict]:
    questions = select(load_questions(default_data_path()), list(GROUPS), args.per_group)
    return [{"id": f"{q.question_id}", "group": q.category, "prompt_ids": target.encode(q.turns[0])}
            for q in questions]


def _chain_runs(target, drafter, prompts, max_new_tokens: int) -> list[dict]:
    runs = []
    for p in prompts:
        res = SpeculativeDecoder(target, drafter).generate(p["prompt_ids"], max_new_tokens)
        vanilla = SpeculativeDecoder(target).generate(p["prompt_ids"], max_new_tokens)
        runs.append({"id": p["id"], "token_ids": res.token_ids, "identical_to_vanilla": res.token_ids == vanilla.token_ids,
                     "emitted": res.stats.emitted_tokens, "passes": res.stats.target_forwards})
    return runs


def _write(out: Path, target, args, prompts, runs, drafter_dir, method: str) -> None:
    (out / "prompts.json").write_text(json.dumps({"model_dir": target.info["hf_dir"], "k": args.k, "method": method,
                                                  "max_new_tokens": args.max_new_tokens, "prompts": prompts}))
    (out / "specdec.json").write_text(json.dumps({"drafter": str(drafter_dir), "runs": runs}))


def _prepare_distilled(args, out: Path, target, drafter_dir: Path) -> None:
    """The distilled drafter as a Hugging Face Llama draft model (vLLM's `draft_model` method), and specdec's
    own drafter as a chain of k (its draft vocabulary only; the export's other output rows are the target's)."""
    import torch

    from specdec.export.llama import copy_tokenizer, llama_files, readme as llama_readme, special_ids
    from specdec.heads.target import embedding, lm_head_rows
    config, state = load_drafter(drafter_dir, "distilled")
    hf_dir = target.info["hf_dir"]
    files, tensors = llama_files(config, state, embedding(target).cpu(),
                                 lm_head_rows(target, torch.arange(target.runtime.vocab_size)).cpu(),
                                 special_ids(hf_dir))
    head = write_engine_dir(out / "head", files, tensors, llama_readme("vllm", str((out / "head").resolve()),
                                                                       args.model, args.k))
    copy_tokenizer(hf_dir, head)
    prompts = _prompts(target, args)
    drafter = make_drafter("distilled", target, {"drafter": str(drafter_dir), "num_draft": args.k,
                                                 "adaptive": False, "fit": False})
    _write(out, target, args, prompts, _chain_runs(target, drafter, prompts, args.max_new_tokens), drafter_dir,
           "draft_model")


def compare(args) -> None:
    out = Path(args.out)
    spec, vllm, setup = (json.loads((out / f).read_text()) for f in ("specdec.json", "vllm.json", "prompts.json"))
    s_emitted = sum(r["emitted"] for r in spec["runs"])
    s_passes = sum(r["passes"] for r in spec["runs"])
    specdec_tau = s_emitted / s_passes
    m = vllm["metrics"]
    vllm_tau = 1 + m["accepted_tokens"] / m["drafts"] if m["drafts"] else None
    spec_outputs = vllm.get("spec_outputs", vllm.get("eagle3_outputs"))
    same = sum(a == b for a, b in zip(spec_outputs, vllm["vanilla_outputs"]))
    agree = sum(a == r["token_ids"] for a, r in zip(vllm["vanilla_outputs"], spec["runs"]))
    report = {
        "method": setup.get("method", "eagle3"), "prompts": len(setup["prompts"]), "k": setup["k"],
        "max_new_tokens": setup["max_new_tokens"],
        "machine": machine_line(machine_info("float32", "cpu", sys.argv)), "vllm_version": vllm["version"],
        "specdec_mean_accepted_length": round(specdec_tau, 4),
        "vllm_mean_accepted_length": None if vllm_tau is None else round(vllm_tau, 4),
        "relative_difference": None if vllm_tau is None else round(abs(vllm_tau - specdec_tau) / specdec_tau, 4),
        "vllm_speculative_identical_to_vllm_vanilla": f"{same}/{len(vllm['vanilla_outputs'])}",
        "specdec_identical_to_specdec_vanilla": f"{sum(r['identical_to_vanilla'] for r in spec['runs'])}/{len(spec['runs'])}",
        "vllm_vanilla_identical_to_specdec": f"{agree}/{len(spec['runs'])}",
        "vllm_acceptance_per_position": [round(x / m["drafts"], 4) for x in m["accepted_per_position"]]
        if m["drafts"] else [], "vllm_counters": m}
    if setup.get("method", "eagle3") == "eagle3":
        report["speculators_forward"] = speculators_forward(out, setup["model_dir"])
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


def speculators_forward(out: Path, model_dir: str) -> dict:
    """The speculators library's forward of the exported head (its Eagle3DraftModel, first training-time-test step,
    inputs and lm_head output saved by the vLLM venv's half) against specdec's head on the same inputs."""
    import torch
    from safetensors.torch import load_file

    from specdec.export.eagle3 import read_engine_dir
    from specdec.train.kinds import get_kind
    error = out / "speculators-error.txt"
    if error.is_file():
        return {"ran": False, "why": error.read_text().strip().splitlines()[-1]}
    saved = load_file(str(out / "speculators-forward.safetensors"))
    target = load_model(model_dir, quiet=True)
    config, state = read_engine_dir(out / "speculators-head", target)
    net = get_kind("eagle3").load(config, state).eval()
    hs, ids = saved["hidden_states"][0], saved["input_ids"][0]
    t, n = hs.shape[0], len(config["feature_layers"])
    with torch.no_grad():
        g = net(net.target_input(None, hs.view(t, n, -1)).unsqueeze(0), target.runtime.embed[ids].float().unsqueeze(0),
                torch.arange(t))
        ours = net.logits(g)[0]
    diff = float((ours - saved["logits"][0]).abs().max())
    return {"ran": True, "positions": t, "max_abs_logit_difference": diff, "within_1e-4": diff < 1e-4}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=["prepare", "compare"])
    ap.add_argument("out")
    ap.add_argument("--kind", default="eagle3", choices=["eagle3", "distilled"],
                    help="what to export: an eagle3 head (vLLM's eagle3 method) or a distilled draft model (draft_model)")
    ap.add_argument("--drafter", default=None, help="a drafter directory of that kind (default: the shipped one)")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--per-group", type=int, default=4, help="Spec-Bench questions per group (first turns)")
    ap.add_argument("--k", type=int, default=3, help="draft tokens per step (vLLM's num_speculative_tokens)")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    args = ap.parse_args()
    prepare(args) if args.step == "prepare" else compare(args)


if __name__ == "__main__":
    main()
