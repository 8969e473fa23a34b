"""Write the reports of a finished run into --out: summary.json, summary.md and two PNG plots."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from specdec.bench.machine import machine_info
from specdec.bench.plots import plot_acceptance, plot_speedups
from specdec.bench.questions import default_data_path
from specdec.bench.report_md import render_markdown
from specdec.bench.roofline import measure_bandwidth, roofline, weight_bytes_per_token
from specdec.bench.summary import summarize


def write_reports(cfg, target, records: list[dict], names: list[str], notes: list[str]) -> dict:
    """cfg: BenchConfig; target: the LoadedModel; records: this run's results; names: methods in report order."""
    summary = {"model": cfg.model, "machine": machine_info(cfg.dtype, cfg.device, list(cfg.argv)),
               "settings": _settings(cfg, names), "notes": list(notes), **summarize(records, names)}
    vanilla_tps = summary["methods"]["vanilla"]["overall"]["tokens_per_s"]
    bandwidth = measure_bandwidth(cfg.bandwidth_bytes, device=target.runtime.device)
    summary["roofline"] = roofline(bandwidth, weight_bytes_per_token(target.runtime), vanilla_tps)
    out = Path(cfg.out)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    (out / "summary.md").write_text(render_markdown(summary))
    plot_speedups(summary, out / "speedup_by_category.png")
    plot_acceptance(summary, out / "acceptance_by_position.png")
    return summary


def _settings(cfg, names: list[str]) -> dict:
    return {
        "methods": names, "method_options": cfg.method_options, "assistant": cfg.assistant,
        "data": str(cfg.data or default_data_path()), "categories": list(cfg.categories or []) or "all",
        "per_category": cfg.per_category, "max_new_tokens": cfg.max_new_tokens, "sampling": asdict(cfg.sampling),
        "repeats": cfg.repeats, "warmup": cfg.warmup, "batch_size": 1, "chat_template": True,
        "seconds": "wall-clock per request incl. prefill, median over repeats",
    }
