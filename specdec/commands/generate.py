"""`specdec generate`: one request, streamed to the terminal or printed as JSON, optionally vs vanilla.

The JSON is the engine's record of the request (GenerationStats.to_dict, as the Python API and the bench's
results.jsonl have it) with the text, model, method and rule beside it."""

from __future__ import annotations

import json
import sys

from specdec.config import SamplingParams


def run_generate(args) -> int:
    from specdec.drafters import make_drafter
    from specdec.engine import SpeculativeDecoder
    from specdec.models.load import load_model

    sampling = SamplingParams(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                              min_p=args.min_p, seed=args.seed)
    target = load_model(args.model, dtype=args.dtype, device=args.device, quiet=args.json,
                        cuda_graphs=args.cuda_graphs)
    drafter = make_drafter(args.method, target, dict(args.options))
    decoder = SpeculativeDecoder(target, drafter, rule=args.rule)
    prompt_ids = target.encode(args.prompt, chat=not args.no_chat)
    run = lambda dec, **kw: dec.generate(prompt_ids, args.max_new_tokens, sampling,  # noqa: E731
                                         stop=tuple(args.stop), **kw)
    vanilla = None
    if args.compare_vanilla:
        baseline = SpeculativeDecoder(target)
        baseline.generate(prompt_ids, min(8, args.max_new_tokens), sampling)   # warm-up, untimed
        vanilla = run(baseline)
    streamer = None if args.json else _Streamer(target)
    result = run(decoder, on_tokens=streamer)
    stats = result.stats
    report = {"text": result.text, "model": args.model, "method": args.method, "rule": args.rule,
              "finish_reason": result.finish_reason, "lossy": result.lossy,
              "load_seconds": target.load_seconds, **stats.to_dict()}
    if vanilla is not None:
        v = vanilla.stats
        report.update(vanilla_tokens_per_s=v.tokens_per_s,
                      speedup=stats.tokens_per_s / v.tokens_per_s if v.tokens_per_s else None,
                      identical_to_vanilla=vanilla.token_ids == result.token_ids)
    if args.json:
        print(json.dumps(report))
        return 0
    streamer.finish()
    line = (f"{stats.new_tokens} tokens in {stats.seconds:.2f} s: {stats.tokens_per_s:.1f} tokens/s | "
            f"method {args.method} | mean accepted length {stats.mean_accepted_length:.2f} "
            f"(tokens per target forward, incl. bonus)")
    if vanilla is not None:
        same = "identical to vanilla" if report["identical_to_vanilla"] else "differs from vanilla"
        line += (f" | vanilla {report['vanilla_tokens_per_s']:.1f} tokens/s | speedup {report['speedup']:.2f}x"
                 f" | output {same}")
    if result.lossy:
        line += " | LOSSY rule: output does not follow the target distribution"
    print(line, file=sys.stderr)
    return 0


class _Streamer:
    """Print new text as tokens arrive (decode everything so far and print the new characters)."""

    def __init__(self, target):
        self.target, self.ids, self.printed = target, [], 0

    def __call__(self, tokens: list[int]) -> None:
        self.ids += tokens
        text = self.target.decode(self.ids)
        if text.endswith("\ufffd"):      # an incomplete multi-byte character: wait for the rest
            return
        sys.stdout.write(text[self.printed:])
        sys.stdout.flush()
        self.printed = len(text)

    def finish(self) -> None:
        text = self.target.decode(self.ids)
        sys.stdout.write(text[self.printed:] + "\n")
        sys.stdout.flush()
