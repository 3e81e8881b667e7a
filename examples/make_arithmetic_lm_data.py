"""Writes examples/data/arithmetic-lm.jsonl, the data file of examples/arithmetic-lm-data.toml:
600 rows of X+Y+Z (X, Y, Z in 1..10, drawn without repeats by a fixed seed), each with its
values and its prompt written with spaces ("10 + 3 + 5 ="). The network of
examples/arithmetic-lm.toml reads characters and drops whitespace, so these prompts read as the
same tokens as the ones it was trained on; the template in the spec makes the value spans
exact. Run from the repository root: python examples/make_arithmetic_lm_data.py
"""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parent / "data" / "arithmetic-lm.jsonl"
TEMPLATE = "{X} + {Y} + {Z} ="
VALUES = range(1, 11)


def rows(n: int = 600, seed: int = 0) -> list[dict]:
    space = list(itertools.product(VALUES, repeat=3))
    chosen = random.Random(seed).sample(space, n)
    return [
        {"X": x, "Y": y, "Z": z, "prompt": TEMPLATE.format(X=x, Y=y, Z=z)} for x, y, z in chosen
    ]


def text(n: int = 600, seed: int = 0) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows(n, seed))


if __name__ == "__main__":
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(text())
    print(f"wrote {OUT} ({len(rows())} rows)")
