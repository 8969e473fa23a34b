"""Target features over prompt + response: the target's final normed hidden state at every position (and,
for a fused EAGLE head, the residual streams of a few earlier layers: `extras`).

These are everything the objectives need: EAGLE regresses onto them, Medusa reads them, and the target's own
next-token distribution at any position is lm_head(feature), so teacher distributions are recomputed on the
fly instead of stored. Written in shards of `shard_size` sequences (float16), so an interrupted extraction
resumes at the first missing shard.
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
                     extra_layers: tuple[int, ...] = (),
                     progress: Callable[[int], None] | None = None) -> list[Sequence]:
    out_dir.mkdir(parents=True, exist_ok=True)
    rt = target.runtime
    for s, start in enumerate(range(0, len(records), shard_size)):
        path = out_dir / f"features-{s:05d}.safetensors"
        batch = records[start:start + shard_size]
        if not path.exists():
            seqs = [_one(rt, r, max_tokens, extra_layers) for r in batch]
            tmp = path.with_suffix(".tmp")
            save_file(_pack(seqs), str(tmp))
            tmp.rename(path)
        if progress:
            progress(len(batch))
    return load_features(out_dir)


@torch.inference_mode()
def _one(rt, record: dict, max_tokens: int, extra_layers: tuple[int, ...]) -> Sequence:
    ids = (record["prompt_ids"] + record["response_ids"])[:max_tokens]
    cache = rt.new_cache(len(ids))
    out = rt.forward(torch.tensor([ids], device=rt.device), cache, logits="none", hidden_layers=(-1, *extra_layers))
    half = lambda t: t[0].to(torch.float16).cpu()  # noqa: E731
    extras = torch.stack([half(out.hidden[i]) for i in extra_layers], dim=1) if extra_layers else None
    return Sequence(torch.tensor(ids), half(out.hidden[-1]), len(record["prompt_ids"]), extras)


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
