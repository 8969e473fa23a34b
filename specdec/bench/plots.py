"""PNG plots of a summary: speedup by category (grouped bars) and acceptance rate per draft position."""

from __future__ import annotations

from pathlib import Path


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_speedups(summary: dict, path: Path) -> None:
    """Grouped bars: one group per category (plus overall), one bar per method, height = speedup vs vanilla."""
    plt = _pyplot()
    cats = summary["categories"] + ["overall"]
    methods = list(summary["methods"])
    fig, ax = plt.subplots(figsize=(max(6.0, 1.4 * len(cats)), 4.0))
    width = 0.8 / max(1, len(methods))
    for i, name in enumerate(methods):
        m = summary["methods"][name]
        values = [m["per_category"][c]["speedup_vs_vanilla"] for c in summary["categories"]]
        values = [v or 0.0 for v in values + [m["overall"]["speedup_vs_vanilla"]]]
        ax.bar([j + (i - (len(methods) - 1) / 2) * width for j in range(len(cats))], values, width, label=name)
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_xticks(range(len(cats)), cats, rotation=20)
    ax.set_ylabel("speedup vs native vanilla (x)")
    ax.set_title(f"Spec-Bench speedup: {summary['model']}")
    ax.legend(fontsize=8)
    _save(fig, path, plt)


def plot_acceptance(summary: dict, path: Path) -> None:
    """One line per drafting method: P(draft token at depth d accepted | depth d reached)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    depth = 0
    for name, m in summary["methods"].items():
        rates = m["overall"]["acceptance_per_position"]
        if rates:
            ax.plot(range(1, len(rates) + 1), rates, marker="o", label=name)
            depth = max(depth, len(rates))
    if depth:
        ax.set_xticks(range(1, depth + 1))
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no drafting method in this run", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("draft position (depth)")
    ax.set_ylabel("acceptance rate")
    ax.set_ylim(0, 1.05)
    ax.set_title(f"Acceptance rate per draft position: {summary['model']}")
    _save(fig, path, plt)


def _save(fig, path: Path, plt) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
