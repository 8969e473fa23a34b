"""The training loop every objective (objective.py) shares: AdamW with warm-up + cosine decay, gradient clipping,
a tqdm bar, held-out evaluation every `eval_every` steps (logged to train_log.jsonl), and checkpoints.

A checkpoint holds the model, the optimiser, the step, the log and the random state; batches follow a seeded plan per epoch, so a
resumed run continues exactly where the interrupted one stopped (same batches, same parameters).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from specdec.errors import ConfigError
from specdec.train.batches import SequenceStore, batch_plan
from specdec.train.features import Sequence
from specdec.train.objective import Objective


@dataclass(frozen=True)
class LoopConfig:
    steps: int = 1000
    lr: float = 1e-3
    warmup: int = 50
    token_budget: int = 4096
    weight_decay: float = 0.0
    clip: float = 1.0
    eval_every: int = 200
    checkpoint_every: int = 100
    seed: int = 0
    keep_prompt: int | None = 256      # prompt tokens kept before each response (see batches.crop)
    bf16: bool = True                  # autocast matrix products to bfloat16 (AMX / tensor cores) when supported

    def check(self) -> None:
        for name in ("steps", "token_budget", "eval_every", "checkpoint_every"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ConfigError(f"training option {name}={v!r} is invalid; accepted: an integer >= 1")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"training option lr={self.lr!r} is invalid; accepted: a positive number")


def _lr_factor(step: int, cfg: LoopConfig) -> float:
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def train_loop(objective: Objective, train: list[Sequence], held_out: list[Sequence], out_dir: Path,
               cfg: LoopConfig, *, progress: bool = True, stop_after: int | None = None) -> list[dict]:
    """Train `objective.model` (resuming from out_dir/checkpoint.pt if present); return the log records.
    stop_after: end after this many steps of this call (to test resuming), checkpointing first."""
    cfg.check()
    if not train:
        raise ConfigError("no training sequences; accepted: at least one prompt with a response")
    model = objective.model
    device = _device(model)                          # batches follow the model (cpu or cuda)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    ckpt_path, log_path = out_dir / "checkpoint.pt", out_dir / "train_log.jsonl"
    out_dir.mkdir(parents=True, exist_ok=True)
    step, log = 0, []
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, weights_only=False, map_location="cpu")
        if ckpt["config"] != asdict(cfg) or ckpt["objective"] != objective.describe():
            raise ConfigError(f"checkpoint {str(ckpt_path)!r} belongs to a run with other settings; accepted: the "
                              f"same settings to resume, or a new --out directory")
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        step, log = ckpt["step"], ckpt["log"]
        torch.set_rng_state(ckpt["rng"])                  # objectives draw noise: same stream as unbroken
        if device.type == "cuda" and ckpt.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(ckpt["cuda_rng"], device)
    data = SequenceStore(train, cfg.keep_prompt, device)            # on the training device, gathered per step
    evaluation = SequenceStore(held_out, cfg.keep_prompt, device) if held_out else None
    lengths = data.lengths
    plan, epoch, pos = _position(lengths, cfg, step)
    bar = _bar(progress, cfg.steps, step)
    started, done_here, eval_s = time.perf_counter(), 0, 0.0
    while step < cfg.steps:
        if pos >= len(plan):
            epoch, pos = epoch + 1, 0
            plan = batch_plan(lengths, cfg.token_budget, cfg.seed, epoch)
        batch = data.batch(plan[pos])
        pos += 1
        for group in opt.param_groups:
            group["lr"] = cfg.lr * _lr_factor(step, cfg)
        model.train()
        with _autocast(cfg, device):
            loss, metrics = objective.loss(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.clip)
        opt.step()
        step += 1
        done_here += 1
        if bar is not None:
            bar.update(1)
            bar.set_postfix({k: f"{v:.3f}" for k, v in metrics.items()})
        if step % cfg.eval_every == 0 or step == cfg.steps:
            now = time.perf_counter()
            record = {"step": step, "seconds": round(now - started, 1),
                      "train_seconds": round(now - started - eval_s, 2),      # steps alone, evaluations left out
                      **{f"train_{k}": round(v, 4) for k, v in metrics.items()},
                      **evaluate(objective, evaluation, cfg)}
            eval_s += time.perf_counter() - now
            log.append(record)
            with log_path.open("a") as f:
                f.write(json.dumps(record) + "\n")
            if bar is not None:
                bar.write(json.dumps(record))
        if step % cfg.checkpoint_every == 0 or step == cfg.steps or (stop_after and done_here >= stop_after):
            _save(ckpt_path, model, opt, step, log, cfg, objective)
        if stop_after and done_here >= stop_after:
            break
    if bar is not None:
        bar.close()
    return log


def _position(lengths: list[int], cfg: LoopConfig, step: int):
    """The epoch plan and the index in it of batch number `step` (replays plans; they are cheap)."""
    epoch, plan = 0, batch_plan(lengths, cfg.token_budget, cfg.seed, 0)
    while step >= len(plan):
        step -= len(plan)
        epoch += 1
        plan = batch_plan(lengths, cfg.token_budget, cfg.seed, epoch)
    return plan, epoch, step


@torch.no_grad()
def evaluate(objective: Objective, held_out: list[Sequence] | SequenceStore | None, cfg: LoopConfig) -> dict:
    if not held_out:
        return {}
    objective.model.eval()
    device = _device(objective.model)
    if not isinstance(held_out, SequenceStore):
        held_out = SequenceStore(held_out, cfg.keep_prompt, device)
    batches = [held_out.batch(b) for b in batch_plan(held_out.lengths, cfg.token_budget, 0, 0)]
    with _autocast(cfg, device):
        return {f"held_out_{k}": round(v, 4) for k, v in objective.evaluate(batches).items()}


def _autocast(cfg: LoopConfig, device: torch.device):
    """bfloat16 autocast on a GPU with bf16 support, or a CPU with native bf16 matrix units (about 4x float32 on
    AMX); else a no-op."""
    import contextlib
    if cfg.bf16 and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if cfg.bf16 and device.type == "cpu" and _cpu_has_bf16():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def _save(path: Path, model, opt, step: int, log: list, cfg: LoopConfig, objective: Objective) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step, "log": log,
                "config": asdict(cfg), "objective": objective.describe(), "rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state(_device(model)) if _device(model).type == "cuda" else None}, tmp)
    tmp.replace(path)


def _device(model) -> torch.device:
    return next(model.parameters()).device


def _bar(progress: bool, total: int, initial: int):
    if not progress:
        return None
    from tqdm import tqdm
    return tqdm(total=total, initial=initial, desc="train", unit="step", dynamic_ncols=True)
