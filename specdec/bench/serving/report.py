"""DIR/summary.md from results.json: one table with a row per label and concurrency, then output tokens/s as
a pivot (labels x concurrency) and, with a baseline label, each label's ratio to it at each concurrency. Where a
level was measured in several rounds, the pivot adds the lowest and highest round, and a ratio between two labels
measured interleaved (one `--compare` run) adds the lowest and highest of its rounds' paired ratios."""

from __future__ import annotations

import json
from pathlib import Path

COLUMNS = ("label", "C", "requests", "errors", "output tok/s", "req/s", "TTFT p50 / p99 ms", "ITL p50 / p99 ms",
           "TPOT p50 / p99 ms", "E2E p50 / p99 ms", "mean accepted length", "draft tokens / pass")


def summary_markdown(data: dict) -> str:
    lines = ["# Serving benchmark", "", *_machines(data), "", *_main_table(data), "", *_pivot(data), "", NOTE, ""]
    return "\n".join(lines)


NOTE = ("Output tokens/s: completion tokens of successful requests over each level's wall time, C clients in a "
        "closed loop. TTFT: time to first token; ITL: gap between content chunks (a speculative server sends "
        "several tokens a chunk); TPOT: (E2E - TTFT) / (tokens - 1). Mean accepted length: tokens emitted "
        "per target forward pass, bonus/recovered token included (vanilla = 1.00), from the server's "
        "`usage.speculative`; - where the server sends none. With several rounds: a level's output tokens/s pools "
        "its rounds (tokens over summed wall time), [lowest, highest] are single rounds; a ratio to the baseline "
        "measured in the same interleaved run is the pooled ratio, [lowest, highest] the ratios of single rounds, "
        "each of two measurements taken back to back.")


def write_summary(out: Path, data: dict) -> Path:
    path = out / "summary.md"
    path.write_text(summary_markdown(data))
    return path


def _machines(data: dict) -> list[str]:
    return [_run_line(run) for run in data["runs"]]


def _run_line(run: dict) -> str:
    """- **label**: model at URL (request settings; where tokens were counted); machine, date; `command`"""
    m, s = run.get("machine") or {}, run.get("settings") or {}
    counted = " and ".join(sorted({lv["token_source"] for lv in run["levels"] if lv.get("token_source")})) or "-"
    request = (f"{s.get('endpoint')}, {'stream' if s.get('stream') else 'no stream'}, max_tokens "
               f"{s.get('max_tokens')}, temperature {s.get('temperature')}, extra {json.dumps(s.get('extra') or {})}; "
               f"tokens counted from {counted}")
    return (f"- **{run['label']}**: {s.get('model')} at {s.get('base_url')} ({request}); {m.get('cpu', '?')}, "
            f"{m.get('cores', '?')} cores, {m.get('date', '?')}; `{run.get('command', '')}`")


def _row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _main_table(data: dict) -> list[str]:
    lines = [_row(COLUMNS), _row(["---"] * len(COLUMNS))]
    for run in data["runs"]:
        for lv in run["levels"]:
            spec = lv.get("speculative") or {}
            errors = ", ".join(f"{k}: {v}" for k, v in lv["errors"].items()) or "0"
            lines.append(_row([run["label"], lv["concurrency"], lv["requests"], errors,
                               f"{lv['output_tokens_per_s']:.1f}", f"{lv['requests_per_s']:.2f}",
                               _pair(lv["ttft_ms"]), _pair(lv["itl_ms"]), _pair(lv["tpot_ms"]), _pair(lv["e2e_ms"]),
                               _num(spec.get("mean_accepted_length")), _num(spec.get("draft_tokens_per_pass"))]))
    return lines


def _pair(p: dict | None) -> str:
    return f"{p['p50']:.1f} / {p['p99']:.1f}" if p else "-"


def _num(x) -> str:
    return "-" if x is None else f"{x:.2f}"


def throughput(run: dict) -> dict[int, float]:
    return {lv["concurrency"]: lv["output_tokens_per_s"] for lv in run["levels"]}


def rounds(run: dict) -> dict[int, list[float]]:
    """Each level's per-round output tokens/s (one round for runs without rounds)."""
    return {lv["concurrency"]: lv.get("rounds") or [lv["output_tokens_per_s"]] for lv in run["levels"]}


def paired(run: dict, base: dict) -> bool:
    """Whether two runs were measured interleaved, round by round (the same `--compare` run)."""
    a, b = run.get("interleaved"), base.get("interleaved")
    return bool(a and b and a["id"] == b["id"] and a["rounds"] > 1)


def _tps_cell(value: float, per_round: list[float]) -> str:
    return f"{value:.1f}" + (f" [{min(per_round):.1f}, {max(per_round):.1f}]" if len(per_round) > 1 else "")


def _pivot(data: dict) -> list[str]:
    levels = sorted({lv["concurrency"] for run in data["runs"] for lv in run["levels"]})
    head = ["label"] + [f"C={c}" for c in levels]
    lines = ["Output tokens/s by concurrency:", "", _row(head), _row(["---"] * len(head))]
    for run in data["runs"]:
        tps, per_round = throughput(run), rounds(run)
        lines.append(_row([run["label"]] + [_tps_cell(tps[c], per_round[c]) if c in tps else "-" for c in levels]))
    return lines + ["", *_ratios(data, levels)]


def _ratios(data: dict, levels: list[int]) -> list[str]:
    name = data.get("baseline")
    if not name:
        return []
    base_run = next((r for r in data["runs"] if r["label"] == name), None)
    if base_run is None:
        return [f"Baseline {name!r} is not measured in this directory yet; no ratios."]
    head = ["label"] + [f"C={c}" for c in levels]
    lines = [f"Output tokens/s relative to {name}:", "", _row(head), _row(["---"] * len(head))]
    for run in data["runs"]:
        cells = [_ratio_cell(run, base_run, c) for c in levels]
        lines.append(_row([run["label"]] + cells))
    return lines


def _ratio_cell(run: dict, base_run: dict, c: int) -> str:
    """The pooled ratio at level c; for a run measured interleaved with the baseline, also the lowest and highest
    ratio of single rounds."""
    tps, base = throughput(run), throughput(base_run)
    if c not in tps or not base.get(c):
        return "-"
    cell = f"{tps[c] / base[c]:.2f}x"
    if run is base_run or not paired(run, base_run):
        return cell
    mine, theirs = rounds(run)[c], rounds(base_run)[c]
    if len(mine) == len(theirs) > 1 and all(theirs):
        ratios = [a / b for a, b in zip(mine, theirs)]
        cell += f" [{min(ratios):.2f}, {max(ratios):.2f}]"
    return cell
