"""One time-boxed GPU session: train drafters for the default target on the GPU, then check CUDA correctness
and time every method with `specdec bench --device cuda`.

    python scripts/gpu_session.py --gguf SmolLM2-135M-Instruct.Q4_1.gguf --prompts prompts.jsonl \
        [--responses responses.jsonl] --out DIR --plan responses=80,eagle=300,medusa=30,distilled=50,bench=0

prompts.jsonl holds {"group", "source", "text"} lines (made from the training data by `load_prompts`, in
round-robin group order so that a run cut by its deadline stays balanced); --responses seeds the cache with
answers generated earlier. --plan gives each stage its seconds (0 or absent: skipped); each stage ends by its
deadline and writes its results as it ends:

1. responses: the target answers prompts greedily (transformers, batched on the GPU) until its deadline;
2. eagle, medusa, distilled: features once (inside the first of them), a 30-step probe that measures the step
   time (evaluations left out), then as many steps as the stage's time allows (the cosine schedule is sized to
   that count, so the run is complete, not cut);
3. bench on cuda: vanilla, pld, lookahead, the new drafters, eagle+pld and transformers' generate, Spec-Bench questions,
   greedy. Its identical-to-vanilla column is the CUDA correctness check;
4. sampling: a short sampled generation per method checks the sampling path runs on the GPU.

With --steps KIND=N the stage runs no probe. --init eagle=shipped starts the eagle run from the shipped head (with --lr eagle=5e-4, say, and the shipped head's
--fuse-layers); make its prompts file with scripts/session_prompts.py so the records it was trained on keep their
held-out split. --steps eagle=2000 fixes a stage's step count instead (the probe's estimate has been 2-4x too high on an H200:
its 30 steps include warm-up that a long run amortises). Files over 15 MiB under --out are split into
NAME.part00, NAME.part01, ... at the end (the device returns files of at most 16 MiB); join them with
`cat NAME.part* > NAME`.

Made for a machine without network access: the GGUF is given as a file and nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--prompts", required=True)
    ap.add_argument("--responses", default=None)
    ap.add_argument("--out", required=True)
    ap.add_argument("--work", default="/tmp/specdec-gpu")
    ap.add_argument("--plan", default="responses=80,eagle=300,medusa=30,distilled=50,bench=120",
                    help="seconds per stage, in order: responses, eagle, medusa, distilled, bench, sampling "
                         "(0: skip; sampling defaults to 15)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--fuse-layers", default="", help="eagle: target layers fused with the final feature, e.g. 2,15")
    ap.add_argument("--feature-weight", type=float, default=1.0, help="eagle: feature regression weight")
    ap.add_argument("--cls-weight", type=float, default=0.1, help="eagle: cross-entropy weight")
    ap.add_argument("--steps", default="", help="fixed step counts per stage, e.g. eagle=2000 (else: from the probe)")
    ap.add_argument("--init", default="", help="start a stage's run from a drafter, e.g. eagle=shipped (the one in the "
                                               "package) or eagle=DIR (specdec train --init)")
    ap.add_argument("--lr", default="", help="learning rate per stage, e.g. eagle=5e-4 (default 1e-3)")
    ap.add_argument("--profile-steps", type=int, default=0,
                    help="after each probe, profile this many steps and write profile-KIND.txt (0: no profile)")
    ap.add_argument("--gen-batch", type=int, default=256,
                    help="responses: prompts per generate() batch (the earlier sessions used 128: ~12-17 s per 512)")
    ap.add_argument("--bench-per-category", type=int, default=2)
    ap.add_argument("--bench-tokens", type=int, default=128)
    args = ap.parse_args()
    start = time.monotonic()
    out, work = Path(args.out), Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    plan = {k: float(v) for k, v in (item.split("=") for item in args.plan.split(","))}
    report: dict = {"plan_s": plan, "stages": {}}

    def save_report():
        (out / "session.json").write_text(json.dumps(report, indent=1))

    from specdec.models.load import load_model
    t = time.monotonic()
    target = load_model(args.gguf, device=args.device)
    report["env"] = {"torch": torch.__version__, "transformers": __import__("transformers").__version__,
                     "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
                     "load_s": round(time.monotonic() - t, 1)}
    log(f"target loaded: {report['env']}")
    save_report()

    deadline = time.monotonic() + plan.get("responses", 0)
    records = stage(report, "responses", responses, target, args, work, deadline)
    save_report()
    drafters = {}
    for kind in ("eagle", "medusa", "distilled"):
        deadline += plan.get(kind, 0)
        if plan.get(kind, 0) > 0 and records:
            drafters[kind] = stage(report, kind, train, kind, target, records, work, out, deadline, args)
            save_report()
    del target
    torch.cuda.empty_cache()
    if plan.get("bench", 0) > 0:
        deadline += plan["bench"]
        stage(report, "bench", bench, args, drafters, out, deadline)
    if plan.get("sampling", 15) > 0:
        stage(report, "sampling", sampling_check, args, drafters, time.monotonic() + plan.get("sampling", 15))
    split_large_files(out)
    report["total_s"] = round(time.monotonic() - start, 1)
    save_report()
    log("done")
    return 0


def split_large_files(out: Path, limit: int = 15 << 20) -> None:
    for path in [p for p in out.rglob("*") if p.is_file() and p.stat().st_size > limit]:
        data = path.read_bytes()
        for i in range(0, len(data), limit):
            path.with_name(f"{path.name}.part{i // limit:02d}").write_bytes(data[i:i + limit])
        path.unlink()
        log(f"split {path} into {(len(data) + limit - 1) // limit} parts")


def stage(report: dict, name: str, fn, *fn_args):
    t = time.monotonic()
    log(f"stage {name}")
    try:
        result = fn(*fn_args)
        report["stages"][name] = {"ok": True, "seconds": round(time.monotonic() - t, 1)}
        if isinstance(result, dict):
            report["stages"][name]["result"] = result
        return result
    except Exception as e:  # noqa: BLE001 -- report and go on: later stages may still run
        traceback.print_exc()
        report["stages"][name] = {"ok": False, "seconds": round(time.monotonic() - t, 1),
                                  "error": f"{type(e).__name__}: {e}"}
        return None


def responses(target, args, work: Path, deadline: float) -> list[dict]:
    from specdec.train.prompts import Prompt
    from specdec.train.responses import generate_responses
    prompts = [Prompt(**json.loads(line)) for line in Path(args.prompts).read_text().splitlines() if line.strip()]
    path = work / "responses.jsonl"
    if args.responses and not path.exists():
        shutil.copy(args.responses, path)
    t = time.monotonic()
    generate_responses(target, prompts, path, max_new_tokens=128, max_prompt_tokens=1024, batch_size=args.gen_batch,
                       stop=lambda: time.monotonic() > deadline)
    log(f"responses: generation ended after {time.monotonic() - t:.1f}s")
    records = generate_responses(target, prompts, path, max_new_tokens=128, max_prompt_tokens=1024,
                                 generate=False)
    log(f"responses: {len(records)} records, {sum(len(r['response_ids']) for r in records)} response tokens")
    return records


def train(kind: str, target, records: list[dict], work: Path, out: Path, stop: float, args) -> Path:
    from specdec.train.loop import LoopConfig
    from specdec.train.pipeline import TrainSettings, train_drafter
    fuse = tuple(int(x) for x in args.fuse_layers.split(",") if x.strip()) if kind == "eagle" else ()
    per_kind = lambda text: dict(item.split("=") for item in text.split(",") if item.strip())  # noqa: E731
    init, lr = per_kind(args.init).get(kind), float(per_kind(args.lr).get(kind, 1e-3))

    def settings(steps: int, eval_every: int) -> TrainSettings:
        loop = LoopConfig(steps=steps, lr=lr, token_budget=8192, eval_every=eval_every, checkpoint_every=10_000)
        return TrainSettings(draft_vocab=8192, heads=4, unroll=3, eval_prompts=3, work_dir=work, loop=loop,
                             fuse_layers=fuse, feature_weight=args.feature_weight, cls_weight=args.cls_weight,
                             init=init)

    t = time.monotonic()
    shutil.rmtree(out / kind, ignore_errors=True)
    fixed = per_kind(args.steps)
    if kind in fixed and args.profile_steps <= 0:     # a fixed count needs no probe (the run's log times its steps)
        steps = int(fixed[kind])
    else:
        shutil.rmtree(work / f"{kind}-probe", ignore_errors=True)     # a probe must time fresh steps, not resume
        train_drafter(kind, target, records, work / f"{kind}-probe", settings(30, 10), progress=False)
        probe = [json.loads(line) for line in
                 (work / f"{kind}-probe" / "run" / "train_log.jsonl").read_text().splitlines()]
        per_step = (probe[-1]["train_seconds"] - probe[0]["train_seconds"]) / 20    # first 10 steps: warm-up
        left = stop - time.monotonic() - 30                       # evaluations and the decode check
        steps = int(fixed[kind]) if kind in fixed else max(50, int(left / per_step))
        log(f"{kind}: probe {time.monotonic() - t:.1f}s (features included), {per_step * 1000:.0f} ms/step -> {steps}")
        if args.profile_steps > 0:
            profile(kind, target, records, work, out, settings(args.profile_steps, args.profile_steps))
            steps = int(fixed[kind]) if kind in fixed else max(50, int((stop - time.monotonic() - 30) / per_step))
    eagle = (f" --fuse-layers {args.fuse_layers} --feature-weight {args.feature_weight} --cls-weight "
             f"{args.cls_weight}" if kind == "eagle" else "")
    start = f" --init {init}" if init else ""
    command = (f"python scripts/gpu_session.py (stage {kind}): specdec train {kind}{start} --steps {steps} --lr {lr:g} "
               f"--token-budget 8192 --draft-vocab 8192{eagle} on {len(records)} self-answered prompts, "
               f"{device_name(target)}")
    summary = train_drafter(kind, target, records, out / kind, settings(steps, max(1, steps // 5)),
                            progress=False, command=command)
    log(f"{kind}: {json.dumps(summary.get('held_out_metrics'))} decode {summary.get('decode_eval')}")
    (out / kind / "run" / "checkpoint.pt").unlink(missing_ok=True)     # optimiser state: not worth bringing back
    return out / kind


def profile(kind: str, target, records: list[dict], work: Path, out: Path, settings) -> None:
    """A few training steps under torch.profiler (features are cached by then): where a step's time goes."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    import dataclasses

    import specdec.train.loop as loop
    from specdec.train.pipeline import train_drafter
    shutil.rmtree(work / f"{kind}-profile", ignore_errors=True)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    evaluate, loop.evaluate = loop.evaluate, lambda *a, **k: {}      # training steps only
    try:
        with torch_profile(activities=activities) as prof:
            train_drafter(kind, target, records, work / f"{kind}-profile", dataclasses.replace(settings, eval_prompts=0),
                          progress=False)
    finally:
        loop.evaluate = evaluate
    sort = "cuda_time_total" if torch.cuda.is_available() else "cpu_time_total"
    (out / f"profile-{kind}.txt").write_text(prof.key_averages().table(sort_by=sort, row_limit=40))
    log(f"{kind}: profile written")


def device_name(target) -> str:
    dev = target.runtime.device
    return torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"


def bench(args, drafters: dict, out: Path, stop: float) -> None:
    methods = ["pld", "lookahead"] + [k for k, v in drafters.items() if v] + ["eagle+pld"]   # union: shipped or new head
    cmd = [sys.executable, "-m", "specdec.cli", "bench", "--model", args.gguf, "--device", args.device,
           "--methods", ",".join(methods), "--baselines", "hf_vanilla", "--per-category",
           str(args.bench_per_category), "--max-new-tokens", str(args.bench_tokens), "--out", str(out / "bench"), "--quiet"]
    for k, v in drafters.items():
        if v:
            cmd += ["--method-option", f"{k}:drafter={v}"]
    if drafters.get("eagle"):
        cmd += ["--method-option", f"eagle+pld:eagle.drafter={drafters['eagle']}"]
    log(" ".join(cmd))
    subprocess.run(cmd, cwd=ROOT, timeout=max(30, stop - time.monotonic()), check=True)


def sampling_check(args, drafters: dict, stop: float) -> dict:
    """Sampled generation on the GPU for each method: it must run and finish (the distribution itself is
    tested on the CPU, where the engine's generator lives)."""
    from specdec.config import SamplingParams
    from specdec.drafters import make_drafter
    from specdec.engine import SpeculativeDecoder
    from specdec.models.load import load_model
    target = load_model(args.gguf, device=args.device, quiet=True)
    done = {}
    for method in ["vanilla", "pld", "lookahead"] + [k for k, v in drafters.items() if v]:
        if time.monotonic() > stop:
            break
        opts = {"drafter": str(drafters[method])} if drafters.get(method) else {}
        drafter = None if method == "vanilla" else make_drafter(method, target, opts)
        r = SpeculativeDecoder(target, drafter).generate("Write a haiku about the sea.", 32,
                                                         SamplingParams(temperature=0.8, top_p=0.95, seed=1))
        done[method] = r.stats.new_tokens
    log(f"sampling on {args.device}: {done}")
    return done


if __name__ == "__main__":
    sys.exit(main())
