"""DIR/results.json: every configuration measured into one directory, one run per label.

{"format": "specdec bench serve", "baseline": LABEL or null,
 "runs": [{"label", "machine", "command", "settings", "levels": [level stats, one per concurrency]}]}

A run with a new label is appended; a run with a label already there replaces it (a re-measurement), so
several configurations and peers end up in one report."""

from __future__ import annotations

import json
from pathlib import Path

from specdec.errors import ConfigError

FORMAT = "specdec bench serve"


def load_results(out: Path) -> dict:
    path = out / "results.json"
    if not path.exists():
        return {"format": FORMAT, "baseline": None, "runs": []}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("runs"), list):
        raise ConfigError(f"{str(path)!r} is not a results file of specdec bench serve; accepted: an --out "
                          f"directory without results.json or one written by specdec bench serve")
    return data


def add_run(data: dict, run: dict, baseline: str | None) -> dict:
    runs = [r for r in data["runs"] if r["label"] != run["label"]] + [run]
    return {**data, "baseline": baseline or data.get("baseline"), "runs": runs}


def save_results(out: Path, data: dict) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(path)
    return path
