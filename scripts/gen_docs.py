#!/usr/bin/env python3
"""Rewrite the generated parts of the docs from the code's tables: the settings and exit-code tables in
docs/usage.md (between their markers) and .env.example. `--check` only says whether they are current."""

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from etl.docgen import env_example, replace_blocks  # noqa: E402

TARGETS = {REPO / "docs" / "usage.md": replace_blocks, REPO / ".env.example": lambda _old: env_example()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if a file is out of date; write nothing")
    check = parser.parse_args().check
    stale = []
    for path, generate in TARGETS.items():
        old = path.read_text(encoding="utf-8")
        new = generate(old)
        if new != old:
            stale.append(path.relative_to(REPO))
            if not check:
                path.write_text(new, encoding="utf-8")
    if stale:
        print(("out of date: " if check else "rewrote: ") + ", ".join(map(str, stale)))
    return 1 if stale and check else 0


if __name__ == "__main__":
    sys.exit(main())
