"""Per-method metrics from result records: a pure function, so it is tested without any timing.

- tokens/s = total new tokens / total seconds (seconds = per-record median over repeats).
- speedup vs X = tokens/s of the method / tokens/s of X, both over the (question, turn) units they share.
- mean accepted length = total emitted tokens / total target forwards over all records (a token-weighted
  mean, not a mean of per-question values); it counts the bonus/recovered token, so vanilla = 1.00.
- acceptance rate per position d = total drafts accepted at depth d / total drafts that reached depth d.
- identical share = fraction of records whose token ids equal native vanilla's for the same (question, turn).
"""

from __future__ import annotations

from specdec.bench.records import REFERENCE, fill_identity

HF_REFERENCE = "hf_vanilla"
MAL_DEFINITION = ("total emitted tokens / total target forward passes (token-weighted over all records), "
                  "counting the bonus/recovered token: vanilla = 1.00")


def summarize(records: list[dict], methods: list[str]) -> dict:
    """records: results.jsonl lines; methods: names in report order (native methods, then baselines)."""
    records = fill_identity(records)
    categories = list(dict.fromkeys(r["category"] for r in records))
    by_method = {m: [r for r in records if r["method"] == m] for m in methods}
    out = {"reference": REFERENCE, "hf_reference": HF_REFERENCE, "mean_accepted_length_definition": MAL_DEFINITION,
           "categories": categories, "methods": {}}
    for m in methods:
        rows, cats = by_method[m], {}
        for c in categories:
            pick = lambda rs: [r for r in rs if r["category"] == c]  # noqa: E731
            cats[c] = metrics(pick(rows), pick(by_method.get(REFERENCE, [])), pick(by_method.get(HF_REFERENCE, [])))
        out["methods"][m] = {"overall": metrics(rows, by_method.get(REFERENCE, []), by_method.get(HF_REFERENCE, [])),
                             "per_category": cats}
    return out


def metrics(rows: list[dict], vanilla: list[dict], hf_vanilla: list[dict]) -> dict:
    same = [r["identical_to_vanilla"] for r in rows if r["identical_to_vanilla"] is not None]
    return {
        "units": len(rows), "new_tokens": sum(r["new_tokens"] for r in rows),
        "seconds": sum(r["seconds"] for r in rows), "tokens_per_s": rate(rows),
        "speedup_vs_vanilla": speedup(rows, vanilla), "speedup_vs_hf_vanilla": speedup(rows, hf_vanilla),
        "mean_accepted_length": mean_accepted_length(rows),
        "acceptance_per_position": acceptance_per_position(rows),
        "identical_share": sum(same) / len(same) if same else None,
    }


def rate(rows: list[dict]) -> float | None:
    seconds = sum(r["seconds"] for r in rows)
    return sum(r["new_tokens"] for r in rows) / seconds if rows and seconds > 0 else None


def speedup(rows: list[dict], reference: list[dict]) -> float | None:
    """tokens/s ratio over the (question, turn) units both lists hold; None if they share none."""
    unit = lambda r: (r["question_id"], r["turn"])  # noqa: E731
    common = {unit(r) for r in rows} & {unit(r) for r in reference}
    mine = rate([r for r in rows if unit(r) in common])
    ref = rate([r for r in reference if unit(r) in common])
    return mine / ref if mine is not None and ref else None


def mean_accepted_length(rows: list[dict]) -> float | None:
    counted = [r for r in rows if r.get("target_forwards")]
    forwards = sum(r["target_forwards"] for r in counted)
    return sum(r["emitted_tokens"] for r in counted) / forwards if forwards else None


def acceptance_per_position(rows: list[dict]) -> list[float]:
    accepted: list[int] = []
    reached: list[int] = []
    for r in rows:
        for d, (a, n) in enumerate(zip(r.get("accepted_per_depth") or [], r.get("reached_per_depth") or [])):
            if d == len(reached):
                accepted.append(0)
                reached.append(0)
            accepted[d] += a
            reached[d] += n
    return [a / n if n else 0.0 for a, n in zip(accepted, reached)]
