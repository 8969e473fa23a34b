"""DIR/throughput.png: output tokens/s against concurrency (log2 axis), one line per label; where a level has
several rounds, a bar from its lowest to its highest round."""

from __future__ import annotations

from pathlib import Path

from specdec.bench.serving.report import rounds, throughput


def plot_throughput(data: dict, path: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    levels = sorted({lv["concurrency"] for run in data["runs"] for lv in run["levels"]})
    for run in data["runs"]:
        tps, per_round = sorted(throughput(run).items()), rounds(run)
        spread = [[t - min(per_round[c]) for c, t in tps], [max(per_round[c]) - t for c, t in tps]]
        ax.errorbar([c for c, _ in tps], [t for _, t in tps], yerr=spread, marker="o", capsize=3,
                    label=run["label"])
    ax.set_xscale("log", base=2)
    ax.set_xticks(levels, [str(c) for c in levels])
    ax.minorticks_off()
    ax.set_xlabel("concurrent clients (closed loop)")
    ax.set_ylabel("output tokens/s")
    ax.set_ylim(bottom=0)
    ax.set_title("Serving throughput by concurrency")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
