"""The demo tables of README.md and bench/RESULTS.md, rendered from a finished job's report.

    python bench/demo_table.py results/arithmetic/report.json           # print the table
    python bench/demo_table.py results/arithmetic/report.json --update  # rewrite the blocks
    python bench/demo_table.py results/arithmetic/report.json --check   # exit 1 if one differs

Each document holds the table between ``<!-- demo:NAME -->`` and ``<!-- /demo:NAME -->``, NAME
being the job's name. The blocks are never edited by hand: ``make demo`` writes the report and
``make demo-table`` rewrites them; ``tests/test_demo_golden.py`` reruns the job and compares.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = (REPO / "README.md", REPO / "bench" / "RESULTS.md")


def render(report: dict) -> str:
    """The frontier of the combination beside the best single candidate, one row per floor;
    for a planted network, what it recovered, round by round, beside its control."""
    if "plant" in report:
        return render_planted(report)
    singles = report["singles"]
    lines = [
        f"{report['task']}, {report['n_inputs']} inputs, network accuracy "
        f"{report['network_accuracy']:.4f}, {report['semantics']} semantics, "
        f"{report['floor_scope']} floor",
        "",
        "| floor | combined | bound | status | best single | cells |",
        "|---|---|---|---|---|---|",
    ]
    for k, row in enumerate(report["frontier"]):
        best_name, best = max(
            ((name, rows[k]["strength"]) for name, rows in singles.items()),
            key=lambda item: item[1],
        )
        cert = row["certificate"]
        bound = "–" if cert["bound"] is None else f"{cert['bound']:g}"
        cells = ", ".join(f"{name} {size}" for name, size in row["cell_sizes"].items() if size)
        lines.append(
            f"| {row['floor']:g} | {row['strength']} | {bound} | {cert['status']} | "
            f"{best} ({best_name}) | {cells} |"
        )
    return "\n".join(lines)


def _cells(recovery: dict) -> str:
    return ", ".join(
        f"{name} {c['assigned']} (precision {_num(c['precision'])}, recall {_num(c['recall'])})"
        for name, c in recovery["cells"].items()
    )


def _num(x) -> str:
    return "–" if x is None else f"{x:.3f}"


def render_planted(report: dict) -> str:
    """A planted job: the plant, each refit round's partition and recovery, the final
    frontier with recovery, and the control's frontier."""
    plant = report["plant"]
    regions = "; ".join(
        f"{r['candidate']} on {r['region']} ({r['n_inputs']} inputs, task "
        f"{r['task_accuracy']:.3f}, IIT {r['iit_accuracy']:.3f})"
        for r in plant["regions"]
    )
    lines = [
        f"{report['task']}, {report['n_inputs']} inputs, network accuracy "
        f"{report['network_accuracy']:.4f}, {report['semantics']} semantics, "
        f"{report['floor_scope']} floor",
        f"planted in {plant['steps']} steps: {regions}",
        "",
        "| round | floor | strength | recovered | cells (precision, recall) |",
        "|---|---|---|---|---|",
    ]
    for r in report.get("rounds", []):
        rec = r.get("recovery")
        lines.append(
            f"| {r['round']} | {r['floor']:g} | {r['strength']} | "
            f"{_num(rec and rec['recovered'])} | {_cells(rec) if rec else ''} |"
        )
    control = report.get("controls", {}).get("random-init")
    lines += [
        "",
        "| floor | combined | bound | status | recovered | random-init control |",
        "|---|---|---|---|---|---|",
    ]
    for k, row in enumerate(report["frontier"]):
        cert = row["certificate"]
        bound = "–" if cert["bound"] is None else f"{cert['bound']:g}"
        shown = "–" if control is None else f"{control['frontier'][k]['strength']}"
        lines.append(
            f"| {row['floor']:g} | {row['strength']} | {bound} | {cert['status']} | "
            f"{_num(row['recovery']['recovered'])} | {shown} |"
        )
    return "\n".join(lines)


def _pattern(name: str) -> re.Pattern:
    return re.compile(
        rf"(<!-- demo:{re.escape(name)} -->\n)(.*?)(\n<!-- /demo:{re.escape(name)} -->)", re.S
    )


def block(text: str, name: str) -> str | None:
    """The table a document shows for the job NAME, or None when it has no such block."""
    found = _pattern(name).search(text)
    return None if found is None else found.group(2)


def replace_block(text: str, name: str, table: str) -> str:
    return _pattern(name).sub(lambda m: m.group(1) + table + m.group(3), text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", help="a finished job's report.json")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--update", action="store_true", help="rewrite the documents' blocks")
    action.add_argument("--check", action="store_true", help="exit 1 if a block differs")
    args = parser.parse_args(argv)

    path = Path(args.report)
    if not path.is_file():
        print(f"no report at {path}: run the job first (make demo)", file=sys.stderr)
        return 2
    report = json.loads(path.read_text())
    name = report.get("name") or path.parent.name
    table = render(report)
    if not (args.update or args.check):
        print(table)
        return 0
    holders = [d for d in DOCUMENTS if block(d.read_text(), name) is not None]
    if not holders:
        print(f"no <!-- demo:{name} --> block in {[str(d) for d in DOCUMENTS]}", file=sys.stderr)
        return 2
    stale = [d for d in holders if block(d.read_text(), name) != table]
    for doc in stale if args.update else []:
        doc.write_text(replace_block(doc.read_text(), name, table))
    for doc in holders:
        verdict = ("updated" if args.update else "differs") if doc in stale else "matches"
        print(f"{doc.relative_to(REPO)}: {verdict}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
