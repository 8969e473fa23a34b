"""`specdec models [list|pull NAME]` and `specdec methods`."""

from __future__ import annotations

from specdec.errors import ModelNotFoundError
from specdec.models.cache_dir import cache_root
from specdec.models.fetch import cached_path, is_cached, pull
from specdec.models.registry import REGISTRY


def run_models(args) -> int:
    if args.action == "pull":
        if args.name not in REGISTRY:
            raise ModelNotFoundError(f"unknown registry model {args.name!r}; accepted: {', '.join(sorted(REGISTRY))}")
        path = pull(REGISTRY[args.name], recheck=True)
        print(f"{args.name}: {path} (sha256 verified)")
        return 0
    print(f"cache: {cache_root()}  (set SPECDEC_CACHE to move it)")
    for e in REGISTRY.values():
        state = "cached" if is_cached(e) else "not cached"
        default = " (default)" if e.default else ""
        print(f"{e.name:19s} {state:11s} {e.size / 1e6:8.1f} MB  {e.license:11s} {e.description}{default}")
        if e.note:
            print(f"{'':19s} {e.note}")
        if is_cached(e):
            print(f"{'':19s} {cached_path(e)}")
    return 0


def run_methods(args) -> int:
    from specdec.drafters import DESCRIPTIONS, method_names
    from specdec.verify import RULE_HELP, VERIFY_RULES
    print("methods (--method):")
    for name in method_names():
        print(f"  {name:12s} {DESCRIPTIONS.get(name, '')}")
    print("  A+B[+...]    several drafters at once, their drafts merged into one tree (e.g. eagle+pld; "
          "options as -o B.KEY=VALUE)")
    print("verification rules (--rule):")
    for name in sorted(VERIFY_RULES):
        print(f"  {name:12s} {RULE_HELP[name]}")
    return 0
