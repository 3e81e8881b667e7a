"""The authors' greedy against PAPER.md's expected numbers (tests/golden/paper_greedy.json).

Prints each row (reproduced / expected) and `rows_matching=<k>/<total>` last.

    python bench/greedy_golden.py
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from solver import PairwiseIIA
from solver.greedy import greedy_partition

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = json.loads((ROOT / "tests" / "golden" / "paper_greedy.json").read_text())


def main() -> None:
    data = PairwiseIIA.load(ROOT / "examples" / "data" / "arithmetic_layer7_r256.npz")
    rows = [
        (name, None if name == "all" else [name], GOLDEN["floors"], expected)
        for name, expected in GOLDEN["table"].items()
    ]
    rows += [
        (" + ".join(p["candidates"]), p["candidates"], p["floors"], p["strengths"])
        for p in GOLDEN["pairs"]
    ]
    matching = 0
    started = time.perf_counter()
    for name, candidates, floors, expected in rows:
        w = data.candidates(candidates).weights
        got = [int((greedy_partition(w, f) >= 0).sum()) for f in floors]
        matching += got == expected
        print(f"{name:>22}: {got} {'==' if got == expected else '!='} paper {expected}")
    print(f"{time.perf_counter() - started:.1f} s for {len(rows)} rows")
    print(f"rows_matching={matching}/{len(rows)}")


if __name__ == "__main__":
    main()
