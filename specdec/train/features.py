"""Target features over prompt + response: the target's final normed hidden state at every position (and,
for a fused EAGLE head, the residual streams of a few earlier layers: `extras`).

These are everything the objectives need: EAGLE regresses onto them, Medusa reads them, and the target's own
next-token distribution at any position is lm_head(feature), so teacher distributions are recomputed on the
fly instead of stored. Written in shards of `shard_size` sequences (float16), so an interrupted extraction
resumes at the first missing shard.

Within a shard, sequences of similar length run together, right-padded, at most `batch_tokens` padded tokens per
pass: attention is causal, so a sequence's positions never see the padding after it, and its features are those
of a pass of its own up to the rounding of a larger matrix product. That is for GPUs, where one sequence per
pass leaves the device idle between kernel launches (5,614 sequences took 100-110 s on an H200). A CPU is busy
with one sequence already, and padding only adds work: 64 sequences of the default target took 8.9 s one per
pass and 9.2 s in passes of 4,096 tokens (2 cores), so on a CPU the default stays
one per pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor


@dataclass
class Sequence:
    tokens: Tensor          # [t] int64, prompt then response
    features: Tensor        # [t, hidden] float16
    prompt_len: int
    extras: Tensor | None = None    # [t, extra layers, hidden] float16: residual streams of the extra layers


def extract_features(target, records: list[dict], out_dir: Path, *, max_tokens: int = 1280, shard_size: int = 64,
                     extra_layers: tuple[int, ...] = (), batch_tokens: int | None = None,
                     progress: Callable[[int], None] | None = None) -> list[Sequence]:
    """batch_tokens: padded tokens per target pass (default: 65536 on a GPU; 1, one sequence per pass, on a CPU)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rt = target.runtime
    if batch_tokens is None:
        batch_tokens = 65536 if rt.device.type == "cuda" else 1
    for s, start in enumerate(range(0, len(records), shard_size)):
        path = out_dir / f"features-{s:05d}.safetensors"
        batch = records[start:start + shard_size]
        if not path.exists():
            seqs = _shard(rt, batch, max_tokens, extra_layers, batch_tokens)
            tmp = path.with_suffix(".tmp")
            save_file(_pack(seqs), str(tmp))
            tmp.rename(path)
        if progress:
            progress(len(batch))
    return load_features(out_dir)


def _shard(rt, records: list[dict], max_tokens: int, extra_layers: tuple[int, ...],
           batch_tokens: int) -> list[Sequence]:
    """The records' sequences in record order, computed in length-sorted passes of at most batch_tokens."""
    ids = [(r["prompt_ids"] + r["response_ids"])[:max_tokens] for r in records]
    out: list[Sequence | None] = [None] * len(ids)
    group: list[int] = []
    for i in sorted(range(len(ids)), key=lambda j: len(ids[j])) + [None]:
        if group and (i is None or len(ids[i]) * (len(group) + 1) > batch_tokens):
            for j, (feats, extras) in zip(group, _forward(rt, [ids[j] for j in group], extra_layers)):
                out[j] = Sequence(torch.tensor(ids[j]), feats, len(records[j]["prompt_ids"]), extras)
            group = []
        if i is not None:
            group.append(i)
    return out


@torch.inference_mode()
def _forward(rt, seqs: list[list[int]], extra_layers: tuple[int, ...]) -> list[tuple[Tensor, Tensor | None]]:
    """One right-padded pass over seqs -> per sequence (features [t, hidden], extras [t, layers, hidden] or None),
    float16 on the CPU."""
    width = max(len(s) for s in seqs)
    ids = torch.zeros(len(seqs), width, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s)
    cache = rt.new_cache(width, batch=len(seqs))
    hidden = rt.forward(ids.to(rt.device), cache, logits="none", hidden_layers=(-1, *extra_layers)).hidden
    final = hidden[-1].to(torch.float16).cpu()
    extras = (torch.stack([hidden[i] for i in extra_layers], dim=2).to(torch.float16).cpu()
              if extra_layers else None)                                  # [batch, width, layers, hidden]
    return [(final[i, :len(s)], None if extras is None else extras[i, :len(s)]) for i, s in enumerate(seqs)]


def _pack(seqs: list[Sequence]) -> dict[str, Tensor]:
    lengths = torch.tensor([len(s.tokens) for s in seqs])
    packed = {"tokens": torch.cat([s.tokens for s in seqs]).to(torch.int32),
              "features": torch.cat([s.features for s in seqs]),
              "offsets": torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)]),
              "prompt_lens": torch.tensor([s.prompt_len for s in seqs])}
    if seqs[0].extras is not None:
        packed["extras"] = torch.cat([s.extras for s in seqs])
    return packed


def load_features(out_dir: Path) -> list[Sequence]:
    seqs = []
    for path in sorted(out_dir.glob("features-*.safetensors")):
        d = load_file(str(path))
        off = d["offsets"].tolist()
        extras = d.get("extras")
        for i, p in enumerate(d["prompt_lens"].tolist()):
            part = slice(off[i], off[i + 1])
            seqs.append(Sequence(d["tokens"][part].long(), d["features"][part], p,
                                 None if extras is None else extras[part]))
    return seqs


def split_held_out(items: list, every: int = 20) -> tuple[list, list]:
    """(train, held out): every `every`-th item is held out (a fixed split, stable across resumes). Applied to
    records and to their sequences alike, so both sides name the same prompts."""
    return ([s for i, s in enumerate(items) if i % every != every - 1],
            [s for i, s in enumerate(items) if i % every == every - 1])
