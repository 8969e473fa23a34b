"""Train drafters for a target on a GPU, then check CUDA correctness and time every method with `specdec bench`.

    python scripts/gpu_session.py --model SmolLM2-135M-Instruct.Q4_1.gguf --prompts prompts.jsonl \
        [--responses responses.jsonl] --out DIR --plan responses=80,eagle=300,medusa=30,distilled=50,bench=120

--model is anything `specdec` loads (a .gguf file, a Hugging Face directory, a registry name). prompts.jsonl holds
{"group", "source", "text"} lines (`specdec.train.prompts.load_prompts` makes them from training data, in
round-robin group order, so that generation stopped by its time limit stays balanced across groups); --responses
seeds the response cache with answers generated earlier. The stages run in order, each within its time limit
in seconds from --plan (0 or absent: skipped), and each writes its results under --out as it ends, with a
summary of all stages in report.json:

1. responses: the target answers prompts greedily (transformers, batched on the GPU) until its time limit;
2. eagle, medusa, distilled: features once (inside the first of them), a 30-step probe that measures the step
   time (evaluations left out), then as many steps as the stage's time allows (the cosine schedule is sized to
   that count, so the run is complete, not cut); --steps KIND=N fixes the count instead and runs no probe (the
   probe's estimate can be 2-4x too high: its 30 steps include warm-up that a long run amortises);
3. bench: vanilla, pld, lookahead, the new drafters, eagle+pld and transformers' generate on Spec-Bench
   questions, greedy. Its identical-to-vanilla column is the CUDA correctness check;
4. sampling: a short sampled generation per method checks that the sampling path runs on the device.

--init eagle=shipped starts the eagle run from the head in the package (with --lr eagle=5e-4, say, and that
head's --fuse-layers). Records are the answered prompts in file order and every 20th is held out, so the prompts
file of a run started from a drafter must begin with the prompts that drafter was trained on, in their order.
Nothing is downloaded: the model and the prompts are files.
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
STAGES = ("responses", "eagle", "medusa", "distilled", "bench", "sampling")
sys.path.insert(0, str(ROOT))


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 epilog="Stages and their output are described in the file's docstring.")
    ap.add_argument("--model", required=True, help="target: a .gguf file, Hugging Face directory or registry name")
    ap.add_argument("--prompts", required=True, help="JSONL of {group, source, text} prompts to answer and train on")
    ap.add_argument("--responses", default=None, help="JSONL of earlier answers to seed the response cache with")
    ap.add_argument("--out", required=True, help="results directory: drafters, bench run, report.json")
    ap.add_argument("--work", default="/tmp/specdec-gpu", help="scratch directory: responses, features, probes")
    ap.add_argument("--plan", default="responses=80,eagle=300,medusa=30,distilled=50,bench=120",
                    help="time limit in seconds per stage, in order: responses, eagle, medusa, distilled, bench, "
                         "sampling (0: skip; sampling defaults to 15)")
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
    ap.add_argument("--gen-batch", type=int, default=256, help="responses: prompts per generate() batch")
    ap.add_argument("--keep-checkpoints", action="store_true",
                    help="keep each training run's checkpoint.pt (optimiser state, needed only to resume)")
    ap.add_argument("--bench-per-category", type=int, default=2)
    ap.add_argument("--bench-tokens", type=int, default=128)
    args = ap.parse_args(argv)
    try:
        args.plan = {k: float(v) for k, v in (item.split("=") for item in args.plan.split(",") if item.strip())}
    except ValueError:
        ap.error(f"--plan {args.plan!r} is malformed; accepted: STAGE=SECONDS,... e.g. responses=80,eagle=300")
    unknown = set(args.plan) - set(STAGES)
    if unknown:
        ap.error(f"--plan names stage {sorted(unknown)[0]!r}; accepted: {', '.join(STAGES)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.monotonic()
    out, work = Path(args.out), Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    plan = args.plan
    report: dict = {"plan_s": plan, "stages": {}}

    def save_report():
        (out / "report.json").write_text(json.dumps(report, indent=1))

    from specdec.models.load import load_model
    t = time.monotonic()
    target = load_model(args.model, device=args.device)
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
    report["total_s"] = round(time.monotonic() - start, 1)
    save_report()
    log("done")
    return 0


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
    if not args.keep_checkpoints:
        (out / kind / "run" / "checkpoint.pt").unlink(missing_ok=True)
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
            train_drafter(kind, target, records, work / f"{kind}-profile",
                          dataclasses.replace(settings, eval_prompts=0), progress=False)
    finally:
        loop.evaluate = evaluate
    sort = "cuda_time_total" if torch.cuda.is_available() else "cpu_time_total"
    (out / f"profile-{kind}.txt").write_text(prof.key_averages().table(sort_by=sort, row_limit=40))
    log(f"{kind}: profile written")


def device_name(target) -> str:
    dev = target.runtime.device
    return torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"


def bench(args, drafters: dict, out: Path, stop: float) -> None:
    # eagle+pld: the union with the new eagle head, or with the shipped one if none was trained
    methods = ["pld", "lookahead"] + [k for k, v in drafters.items() if v] + ["eagle+pld"]
    cmd = [sys.executable, "-m", "specdec.cli", "bench", "--model", args.model, "--device", args.device,
           "--methods", ",".join(methods), "--baselines", "hf_vanilla", "--per-category", str(args.bench_per_category),
           "--max-new-tokens", str(args.bench_tokens), "--out", str(out / "bench"), "--quiet"]
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
    target = load_model(args.model, device=args.device, quiet=True)
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
