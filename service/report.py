"""The job report: JSON, the frontier PNG, the partition map PNG, and a rule per cell."""

from __future__ import annotations

import json
from pathlib import Path

from service.rules import cell_rule
from solver import Frontier


def build_report(
    spec_digest: str,
    accuracy: float,
    alignment_table: list[dict],
    combined: Frontier,
    singles: dict[str, Frontier],
    task,
    site_descriptions: list[str],
) -> dict:
    """Everything a reader needs, as plain JSON-able data. The fallback is named (it takes
    the inputs no candidate explains); it has no IIA of its own here, since none is used."""
    values = task.values
    frontier = []
    for p in combined.results:
        entry = p.to_dict()
        entry["rules"] = {}
        for m, name in enumerate(p.models):
            member = p.assignment == m
            if member.any():
                rule = cell_rule(values, member)
                entry["rules"][name] = {"rule": rule.text, "accuracy": round(rule.accuracy, 4)}
        frontier.append(entry)
    return {
        "spec_digest": spec_digest,
        "task": task.name,
        "n_inputs": task.n_inputs,
        "network_accuracy": accuracy,
        "sites": site_descriptions,
        "alignment_iia": alignment_table,
        "semantics": combined.semantics,
        "floor_scope": combined.floor_scope,
        "models": list(combined.models),
        "fallback": task.fallback.name,
        "frontier": frontier,
        "singles": {
            name: [
                {"floor": r.floor, "strength": r.strength, "status": r.certificate.status}
                for r in f.results
            ]
            for name, f in singles.items()
        },
    }


def write_report(report: dict, combined: Frontier, singles, task, store) -> list[Path]:
    """``report.json``, ``frontier.png`` and ``partition.png``, each written whole through the
    job's results folder (``service.artifacts.ResultsFolder``): checksummed, never through a
    link."""
    from service.plots import plot_frontier, plot_partition

    # The map shows the strongest partition that still meets the highest floor with a
    # non-trivial cell: the first result with any candidate cell, else the last.
    chosen = next((p for p in combined.results if p.strength > 0), combined.results[-1])
    paths = [
        store.write_text("report.json", json.dumps(report, indent=1) + "\n"),
        store.write_with(
            "frontier.png", lambda p: plot_frontier(combined, singles, p, task.n_inputs)
        ),
        store.write_with("partition.png", lambda p: plot_partition(chosen, task, p)),
    ]
    store.flush()
    return paths


def format_report(report: dict) -> str:
    """The report as a table for a terminal."""
    lines = [
        f"task {report['task']} ({report['n_inputs']} inputs), network accuracy "
        f"{report['network_accuracy']:.4f}, {report['semantics']} semantics, "
        f"{report['floor_scope']} floor; fallback {report['fallback']}",
        "alignment IIA (held out):",
    ]
    for row in report["alignment_iia"]:
        lines.append(f"  site {row['site']}  {row['candidate']:>12}  {row['held_out_iia']:.3f}")
    lines.append(f"{'floor':>6} {'strength':>8} {'bound':>6} {'status':>10}  cells (rule)")
    for r in report["frontier"]:
        c = r["certificate"]
        bound = "-" if c["bound"] is None else f"{c['bound']:.0f}"
        cells = "; ".join(
            f"{name} {size} [{r['rules'][name]['rule']}]"
            for name, size in r["cell_sizes"].items()
            if size
        )
        lines.append(
            f"{r['floor']:>6.3f} {r['strength']:>8d} {bound:>6} {c['status']:>10}  "
            f"{cells or '(all to the fallback)'}"
        )
    for name, rows in report["singles"].items():
        lines.append(f"single {name}: " + " ".join(str(x["strength"]) for x in rows))
    return "\n".join(lines)
