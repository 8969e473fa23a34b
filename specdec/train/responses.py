"""The target's own greedy responses to training prompts (self-distillation data), cached as JSONL.

Drafters learn to predict what *this* target says, so the training text is the target's own output rather than
the dataset's reference answers. Generation is batched with transformers (left padding, prompts sorted by
length within windows of 8 batches, so a run stopped early has answered the first prompts of its list) because
our runtime decodes one sequence at a time; each finished batch is appended to the JSONL file,
so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch

from specdec.train.prompts import Prompt


def _done(path: Path) -> dict[str, dict]:
    if not path.exists():
        return {}
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue                # a line cut by an interruption: regenerate it
        out[rec["prompt"]] = rec
    return out


def generate_responses(target, prompts: list[Prompt], out_path: Path, *, max_new_tokens: int = 160,
                       max_prompt_tokens: int = 768, batch_size: int | None = None, generate: bool = True,
                       progress: Callable[[int], None] | None = None,
                       stop: Callable[[], bool] | None = None) -> list[dict]:
    """Records {group, source, prompt, prompt_ids, response_ids} for every prompt, reusing those in out_path
    (generate=False: only those, generating nothing). Generation runs on the target's device; batch_size
    defaults to 16 on a CPU and 128 on a GPU. stop() is asked before each batch: True ends generation there
    (a time-boxed run returns the records answered so far)."""
    from transformers import AutoModelForCausalLM

    out_path.parent.mkdir(parents=True, exist_ok=True)
    done = _done(out_path)
    todo = []
    for p in prompts:
        if p.text in done or not generate:
            continue
        ids = target.encode(p.text)
        if len(ids) <= max_prompt_tokens:
            todo.append((p, ids))
    if progress:
        progress(len(prompts) - len(todo))
    if todo:
        device = target.runtime.device
        batch_size = batch_size or (128 if device.type == "cuda" else 16)
        model = AutoModelForCausalLM.from_pretrained(target.info["hf_dir"], dtype=torch.float32).to(device)
        model.eval()
        pad = target.tokenizer.pad_token_id if target.tokenizer.pad_token_id is not None else 0
        eos = sorted(target.eos_token_ids)
        window = 8 * batch_size          # sorted by length within windows: a stopped run answered a prefix
        todo = [x for i in range(0, len(todo), window) for x in sorted(todo[i:i + window], key=lambda x: len(x[1]))]
        with out_path.open("a", encoding="utf-8") as f:
            for b in range(0, len(todo), batch_size):
                if stop is not None and stop():
                    break
                batch = todo[b:b + batch_size]
                recs = _generate_batch(model, batch, pad, eos, max_new_tokens)
                for rec in recs:
                    f.write(json.dumps(rec) + "\n")
                    done[rec["prompt"]] = rec
                f.flush()
                if progress:
                    progress(len(batch))
    return [done[p.text] for p in prompts if p.text in done]


@torch.inference_mode()
def _generate_batch(model, batch: list[tuple[Prompt, list[int]]], pad: int, eos: list[int],
                    max_new_tokens: int) -> list[dict]:
    width = max(len(ids) for _, ids in batch)
    input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    for i, (_, ids) in enumerate(batch):                          # left padding
        input_ids[i, width - len(ids):] = torch.tensor(ids)
        attention[i, width - len(ids):] = 1
    device = next(model.parameters()).device
    out = model.generate(input_ids=input_ids.to(device), attention_mask=attention.to(device),
                         max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=eos, pad_token_id=pad)
    recs = []
    for i, (p, ids) in enumerate(batch):
        new = out[i, width:].cpu().tolist()
        for j, tok in enumerate(new):
            if tok in eos:
                new = new[:j + 1]                                 # keep the EOS: drafters should predict it too
                break
        recs.append({"group": p.group, "source": p.source, "prompt": p.text, "prompt_ids": ids,
                     "response_ids": new})
    return recs
