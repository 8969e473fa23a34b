"""A repetitive workload for drafters that learn from earlier responses: structured extraction requests, the same
instruction over distinct trivia questions from the training data (never Spec-Bench), answered one after another.

    python scripts/suffix_workload.py OUT [--warm 24] [--eval 24] [--max-new-tokens 96] [--model smollm2-135m]

writes
    OUT/eval.jsonl   Spec-Bench style questions (category "extraction_json") for `specdec bench --data`;
    OUT/warm.jsonl   {"response": text} of the target's greedy answers to the warm-up questions (other
                     questions than the evaluated ones): suffix's `warm=` file and rest's datastore input alike.

Then (see docs/benchmarks.md):
    specdec datastore build --input OUT/warm.jsonl --out OUT/rest-ds
    specdec bench --data OUT/eval.jsonl --methods vanilla,pld,rest,suffix --method-option rest:datastore=OUT/rest-ds \
        --method-option suffix:warm=OUT/warm.jsonl --max-new-tokens 96 --out OUT/run
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

TRIVIA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "train" / "triviaqa_3000.jsonl"
INSTRUCTION = ('Answer the trivia question below as a JSON object with exactly these keys: "question" (the '
               'question, copied), "answer" (a short answer), "category" (one of: history, science, geography, '
               'arts, sport, other) and "confidence" (low, medium or high). Reply with the JSON object only.\n\n'
               'Question: {question}')


def questions(path: Path, n: int) -> list[str]:
    out, seen = [], set()
    for line in path.read_text(encoding="utf-8").splitlines():
        q = json.loads(line)["context"].removeprefix("Question: ").removesuffix("\nAnswer:").strip()
        if q and q not in seen:
            seen.add(q)
            out.append(q)
        if len(out) == n:
            break
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--warm", type=int, default=24)
    ap.add_argument("--eval", type=int, default=24)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--trivia", type=Path, default=TRIVIA)
    args = ap.parse_args()
    from specdec import SpeculativeDecoder, load_model

    qs = questions(args.trivia, args.warm + args.eval)
    warm, evaluated = qs[:args.warm], qs[args.warm:]
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "eval.jsonl", "w") as f:
        for i, q in enumerate(evaluated):
            f.write(json.dumps({"question_id": i, "category": "extraction_json",
                                "turns": [INSTRUCTION.format(question=q)]}) + "\n")
    decoder = SpeculativeDecoder(load_model(args.model, quiet=True))
    with open(args.out / "warm.jsonl", "w") as f:
        for q in warm:
            result = decoder.generate(INSTRUCTION.format(question=q), args.max_new_tokens)
            f.write(json.dumps({"response": result.text}) + "\n")
    print(f"wrote {args.out / 'eval.jsonl'} ({len(evaluated)} questions) and {args.out / 'warm.jsonl'} "
          f"({len(warm)} responses)")


if __name__ == "__main__":
    main()
