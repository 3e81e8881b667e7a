"""Regenerate paper_greedy.json from the reference text (never edit the JSON by hand).

Reads the "Expected numbers" section of shared/reference/PAPER.md: the greedy strength table
(all six candidates and each single), the two listed pairs, and the per-cell sizes at
λ = 0.9 and 1.0.  Usage: python tests/golden/make_paper_greedy.py [PAPER.md]
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_PAPER = HERE.parents[2] / "shared" / "reference" / "PAPER.md"
CANDIDATES = ["(X+Y)+Z", "(X+Z)+Y", "X+(Y+Z)", "(X)+Y+Z", "X+(Y)+Z", "X+Y+(Z)"]


def parse(text: str) -> dict:
    section = text[text.index("## Expected numbers") :]
    lines = section.splitlines()
    header = next(line for line in lines if line.startswith("| candidates"))
    floors = [float(x.replace("λ=", "")) for x in header.strip("|").split("|")[1:]]
    table = {}
    for line in lines:
        if line.startswith("| ") and not line.startswith(("| candidates", "|---")):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            name = "all" if cells[0] == "all six" else cells[0]
            table[name] = [int(c) for c in cells[1:]]
    pairs = []
    for match in re.finditer(
        r"\{([^}]*)\}\s+([\d /]+)", section.split("Pairs of one", 1)[1].split("\n\n")[0]
    ):
        names = [n.strip() for n in match.group(1).split(",")]
        strengths = [int(s) for s in match.group(2).split("/") if s.strip()]
        pairs.append(
            {
                "candidates": names,
                "floors": [1.0, 0.95, 0.9, 0.8][: len(strengths)],
                "strengths": strengths,
            }
        )
    cells = {}
    for floor_text, body in re.findall(
        r"At λ = ([\d.]+) the [^:]*?(?:partition is|order is) (.*?)(?:;|\n)", section
    ):
        sizes = dict(
            (m.group(1).strip(), int(m.group(2))) for m in re.finditer(r"([()XYZ+]+) (\d+)", body)
        )
        cells[floor_text] = {k: v for k, v in sizes.items() if k in CANDIDATES}
    return {"floors": floors, "table": table, "pairs": pairs, "cells": cells}


def main() -> None:
    paper = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_PAPER
    out = HERE / "paper_greedy.json"
    out.write_text(json.dumps(parse(paper.read_text()), indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
