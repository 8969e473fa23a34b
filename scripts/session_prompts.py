"""Write the prompts file for a GPU session (scripts/gpu_session.py --prompts) that extends an earlier one.

The training records are the answered prompts in prompt-file order, and every 20th record is held out
(`split_held_out`). A run started from a drafter trained on the earlier records (`--init`) must keep that split,
or its held-out set would hold prompts the drafter was trained on. So the new file starts with the earlier
file's answered prompts in their order (the same records, the same held-out ones), followed by the prompts of
`load_prompts(--data, per_group=--per-group)` not in it, in load_prompts' group-interleaved order (a session that
stops generating at its deadline stays balanced).

    python scripts/session_prompts.py --previous prompts.jsonl.gz --responses responses.jsonl.gz \
        --data ../shared/data/train --per-group 3000 --out prompts-3000.jsonl.gz
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from specdec.train.prompts import load_prompts  # noqa: E402


def read_lines(path: str) -> list[dict]:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--previous", required=True, help="the earlier session's prompts file")
    ap.add_argument("--responses", required=True, help="the responses.jsonl answering it")
    ap.add_argument("--data", nargs="+", required=True)
    ap.add_argument("--per-group", type=int, required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    answered = {r["prompt"] for r in read_lines(args.responses)}
    first = [p for p in read_lines(args.previous) if p["text"] in answered]
    seen = {p["text"] for p in first}
    rest = [{"group": p.group, "text": p.text, "source": p.source}
            for p in load_prompts(args.data, per_group=args.per_group) if p.text not in seen]
    opener = gzip.open if args.out.endswith(".gz") else open
    with opener(args.out, "wt", encoding="utf-8") as f:
        for p in first + rest:
            f.write(json.dumps(p) + "\n")
    print(f"{len(first)} earlier answered prompts, then {len(rest)} new ones -> {args.out}")


if __name__ == "__main__":
    main()
