"""summary.md: a Markdown table of speedups (methods x categories, plus overall columns) with machine line,
command and roofline. Pure: renders the summary.json dict."""

from __future__ import annotations

from specdec.bench.machine import machine_line

TAU = "mean accepted length (tokens per target forward, counting the bonus token; vanilla = 1.00)"


def render_markdown(summary: dict) -> str:
    lines = [f"# specdec bench: {summary['model']}", "",
             f"Machine: {machine_line(summary['machine'])}  ", f"Command: `{summary['machine']['command']}`", "",
             "Speedup = tokens/s of the method / tokens/s of native vanilla decoding on the same questions, "
             "measured interleaved in the same run (seconds: median over repeats). "
             f"Mean accepted length: {summary['mean_accepted_length_definition']}.", ""]
    lines += _table(summary) + [""] + _roofline(summary.get("roofline"))
    notes = summary.get("notes") or []
    if notes:
        lines += ["", "Notes:"] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def _table(summary: dict) -> list[str]:
    cats = summary["categories"]
    head = [*cats, "overall speedup", "speedup vs hf_vanilla", "tokens/s", TAU, "identical to vanilla"]
    rows = [f"| method | {' | '.join(head)} |", "|---" * (len(head) + 1) + "|"]
    for name, m in summary["methods"].items():
        o = m["overall"]
        cells = [_x(m["per_category"][c]["speedup_vs_vanilla"]) for c in cats]
        cells += [_x(o["speedup_vs_vanilla"]), _x(o["speedup_vs_hf_vanilla"]), _num(o["tokens_per_s"], 1),
                  _num(o["mean_accepted_length"], 2), _pct(o["identical_share"])]
        rows.append(f"| {name} | {' | '.join(cells)} |")
    return rows


def _roofline(r: dict | None) -> list[str]:
    if not r or not r.get("bound_tokens_per_s"):
        return []
    frac = r["vanilla_fraction_of_bound"]
    return [f"Roofline: memory bandwidth {r['bandwidth_gb_per_s']:.1f} GB/s (best timed sum over a large float32 "
            f"tensor), {r['weight_bytes_per_token'] / 1e6:.1f} MB of weights read per token -> bound "
            f"{r['bound_tokens_per_s']:.1f} tokens/s; native vanilla reaches {_num(r['vanilla_tokens_per_s'], 1)} "
            f"tokens/s = {_pct(frac)} of the bound."]


def _x(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}x"


def _num(v: float | None, digits: int) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.0f}%"
