"""Print the README's command that contains WORD (first line of a ```bash block holding it): CI runs exactly
what the README tells a user to run, so the two cannot drift apart."""

import sys
from pathlib import Path

word = sys.argv[1]
in_block = False
for line in (Path(__file__).resolve().parent.parent / "README.md").read_text().splitlines():
    if line.startswith("```"):
        in_block = line.strip() == "```bash" and not in_block
        continue
    if in_block and word in line:
        print(line.strip())
        sys.exit(0)
sys.exit(f"no ```bash line of README.md contains {word!r}")
