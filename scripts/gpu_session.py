"""Check, time, train and bench specdec on a GPU in stages, most valuable first, each under its own time limit.

    python scripts/gpu_session.py --model SmolLM2-135M-Instruct.Q4_1.gguf --prompts prompts.jsonl \
        [--responses responses.jsonl] --out DIR \
        --plan tests=300,latency=120,responses=80,eagle=300,medusa=30,distilled=50,bench=120

--model is anything `specdec` loads (a .gguf file, a Hugging Face directory, a registry name). prompts.jsonl holds
{"group", "source", "text"} lines (`specdec.train.prompts.load_prompts` makes them from training data, in
round-robin group order, so that generation stopped by its time limit stays balanced across groups); --responses
seeds the response cache with answers generated earlier. The stages run in this order, each within its time
limit in seconds from --plan (0 or absent: skipped), and each writes its own small result file under --out,
stage-NAME.json, as soon as it ends (report.json gathers them):

1. tests: the tiny-model test suite on the device (SPECDEC_TEST_DEVICE, `-m "not real_model"`); the file holds
   the counts and each failing or skipped test with its one-line reason;
2. latency: `specdec latency` of --model in bfloat16 at a 512-token context (ms per token end to end, the
   bandwidth bound), and of each --latency-model, each without and (on CUDA) with CUDA graphs (a model that
   fails is recorded and the next one runs);
3. responses: the target answers prompts greedily (transformers, batched on the GPU) until its time limit;
4. eagle, medusa, distilled: features once (inside the first of them), a 30-step probe that measures the step
   time (evaluations left out), then as many steps as the stage's time allows (the cosine schedule is sized to
   that count, so the run is complete, not cut); --steps KIND=N fixes the count instead and runs no probe (the
   probe's estimate can be 2-4x too high: its 30 steps include warm-up that a long run amortises);
5. bench: vanilla, pld, lookahead, the trained drafters, eagle+pld and transformers' generate on Spec-Bench
   questions, greedy, the target under CUDA graphs on CUDA (--cuda-graphs). Its identical-to-vanilla column is
   the correctness check of every method on the device;
6. sampling: a short sampled generation per method checks that the sampling path runs on the device.

A later stage runs on its own with the others left out of --plan: bench and sampling then use the drafters an
earlier run trained into --out (DIR/eagle, ...). --init eagle=shipped starts the eagle run from the head in the
package (with --lr eagle=5e-4, say, and that head's --fuse-layers). Records are the answered prompts in file
order and every 20th is held out, so the prompts file of a run started from a drafter must begin with the
prompts that drafter was trained on, in their order. Nothing is downloaded: the models and the prompts are files.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("tests", "latency", "responses", "eagle", "medusa", "distilled", "bench", "sampling")
TRAINED = ("eagle", "medusa", "distilled")
sys.path.insert(0, str(ROOT))


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 epilog="Stages and their output are described in the file's docstring.")
    ap.add_argument("--model", required=True, help="target: a .gguf file, Hugging Face directory or registry name")
    ap.add_argument("--prompts", default=None, help="JSONL of {group, source, text} prompts to answer and train on "
                                                     "(needed by the responses and training stages)")
    ap.add_argument("--responses", default=None, help="JSONL of earlier answers to seed the response cache with")
    ap.add_argument("--out", required=True, help="results directory: stage-NAME.json per stage, report.json, drafters, "
                                                      "bench run; a rerun into it keeps the other stages' records")
    ap.add_argument("--work", default="/tmp/specdec-gpu", help="scratch directory: responses, features, probes")
    ap.add_argument("--plan", default="tests=300,latency=120,responses=80,eagle=300,medusa=30,distilled=50,bench=120,"
                                      "sampling=15",
                    help="time limit in seconds per stage, in order: tests, latency, responses, eagle, medusa, "
                         "distilled, bench, sampling (0 or absent: skipped)")
    ap.add_argument("--latency-model", action="append", default=[],
                    help="latency: another model to time in bfloat16, e.g. qwen2.5-coder-1.5b (repeatable)")
    ap.add_argument("--latency-context", type=int, default=512, help="latency: tokens of context (default 512)")
    ap.add_argument("--latency-tokens", type=int, default=64, help="latency: tokens decoded per run (default 64)")
    ap.add_argument("--latency-runs", type=int, default=5, help="latency: timed runs per model (default 5)")
    ap.add_argument("--test-args", default='tests -m "not real_model" -q',
                    help="tests: pytest arguments (default: tests -m \"not real_model\" -q; -n auto is added when "
                         "pytest-xdist is installed)")
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
    if any(args.plan.get(k, 0) > 0 for k in ("responses",) + TRAINED) and not args.prompts:
        ap.error("the responses and training stages need --prompts FILE; accepted: a JSONL of {group, source, text} "
                 "prompts")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.monotonic()
    out, work = Path(args.out), Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    plan = args.plan
    earlier = json.loads((out / "report.json").read_text()) if (out / "report.json").is_file() else {}
    report: dict = {"plan_s": plan, "stages": earlier.get("stages", {}), "env": {
        "torch": torch.__version__, "transformers": __import__("transformers").__version__,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}}

    def run(name: str, fn, *fn_args):
        """A stage within its time limit; its result file and the report written as soon as it ends."""
        seconds = plan.get(name, 0)
        if seconds <= 0:
            return None
        result = stage(report, name, fn, *fn_args, time.monotonic() + seconds)
        (out / f"stage-{name}.json").write_text(json.dumps(report["stages"][name], indent=1))
        (out / "report.json").write_text(json.dumps(report, indent=1))
        return result

    run("tests", run_tests, args, out)
    run("latency", latency, args)
    records, drafters = None, {}
    if any(plan.get(k, 0) > 0 for k in ("responses",) + TRAINED):
        from specdec.models.load import load_model
        t = time.monotonic()
        target = load_model(args.model, device=args.device)
        report["env"]["load_s"] = round(time.monotonic() - t, 1)
        log(f"target loaded: {report['env']}")
        records = run("responses", responses, target, args, work)
        if records is None and plan.get("responses", 0) <= 0:   # training only: the answers cached by an earlier run
            records = responses(target, args, work, time.monotonic())
        for kind in TRAINED:
            if records:
                drafters[kind] = run(kind, train, kind, target, records, work, out, args)
        del target
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    for kind in TRAINED:                       # drafters trained by an earlier run of this script into --out
        if not drafters.get(kind) and (out / kind / "model.safetensors").is_file():
            drafters[kind] = out / kind
    run("bench", bench, args, drafters, out)
    run("sampling", sampling_check, args, drafters)
    report["total_s"] = round(time.monotonic() - start, 1)
    (out / "report.json").write_text(json.dumps(report, indent=1))
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


def run_tests(args, out: Path, stop: float) -> dict:
    """The test suite with the tiny targets on --device; the counts and each failing or skipped test's line."""
    import importlib.util
    import shlex
    cmd = [sys.executable, "-m", "pytest", *shlex.split(args.test_args), "-rfEs", "-p", "no:cacheprovider"]
    if importlib.util.find_spec("xdist") is not None and "-n" not in cmd:
        cmd += ["-n", "auto"]
    env = {**os.environ, "SPECDEC_TEST_DEVICE": args.device}
    log(" ".join(cmd))
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=max(10, stop - time.monotonic()))
        text, code = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as e:
        text, code = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or ""), "timeout"
    (out / "tests.log").write_text(text)
    result = pytest_summary(text)
    result.update(exit=code, command=" ".join(cmd), device=args.device)
    log(f"tests: {result['counts']} (exit {code})")
    return result


def pytest_summary(text: str) -> dict:
    """Counts from pytest's last line and the short summary's FAILED / ERROR / SKIPPED lines (-rfEs)."""
    import re
    final = next((line for line in reversed(text.splitlines()) if re.search(r"\b(passed|failed|error)", line)), "")
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|errors?|skipped|deselected|xfailed|xpassed)",
                                               final)}
    lines = [line[:300] for line in text.splitlines() if line.startswith(("FAILED ", "ERROR ", "SKIPPED "))]
    return {"counts": counts, "problems": lines[:200], "problems_total": len(lines)}


def latency(args, stop: float) -> dict:
    """`specdec latency` in bfloat16 (a 512-token context by default): --model, then each --latency-model, as time
    allows."""
    from specdec.bench.latency import decode_latency
    from specdec.models.load import load_model
    results = {}
    graphs = [False, True] if torch.device(args.device).type == "cuda" else [False]
    for name in [args.model] + args.latency_model:
        for graphed in graphs:
            label = f"{name} +cuda-graphs" if graphed else name
            if time.monotonic() > stop:
                results[label] = {"skipped": "out of the stage's time"}
                continue
            try:
                target = load_model(name, dtype="bfloat16", device=args.device, quiet=True, cuda_graphs=graphed)
                results[label] = decode_latency(target, context=args.latency_context, tokens=args.latency_tokens,
                                                runs=args.latency_runs)
                log(f"latency {label}: {results[label]['ms_per_token']} ms/token, "
                    f"{results[label].get('times_bound')}x bound")
                del target
            except Exception as e:  # noqa: BLE001 -- one model's failure must not cost the others' timing
                results[label] = {"error": f"{type(e).__name__}: {e}"}
    return results


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


def train(kind: str, target, records: list[dict], work: Path, out: Path, args, stop: float) -> Path:
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
    if torch.device(args.device).type == "cuda":
        cmd.append("--cuda-graphs")          # the methods and vanilla, all on the graph-captured target
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
