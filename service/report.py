"""The job report: JSON, the frontier PNG, the partition map PNG, and a rule per cell."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from service.rules import partition_rules
from solver import Frontier, PairwiseIIA, SparsePairwiseIIA


def build_report(
    spec_digest: str,
    accuracy: float,
    alignment_table: list[dict],
    combined: Frontier,
    singles: dict[str, Frontier],
    task,
    site_descriptions: list[str],
    *,
    columns: list[dict] | None = None,
    data=None,
    site_frontiers: Mapping[str, Frontier] | None = None,
) -> dict:
    """Everything a reader needs, as plain JSON-able data. The fallback is named (it takes
    the inputs no candidate explains); it has no IIA of its own here, since none is used.

    ``models`` (and the cells, rules and singles) name the solver's columns: a candidate at a
    site. ``columns`` says which (``name``, ``site``, ``site_label``, ``candidate`` and the
    artifact keys); with it and the solver's ``data``, ``site_iia`` gives per site and
    candidate the held-out alignment IIA and the mean per-input IIA, and ``sites_frontier``
    each site's own frontier (its columns only) from ``site_frontiers``.

    Per frontier point, ``rules`` holds a rule for every non-empty cell and for the
    fallback's inputs (under the fallback's name), read off one decision tree over the input
    variables (``service.rules``), and ``tree`` that tree's depth and accuracies."""
    values = task.values
    frontier = []
    for p in combined.results:
        entry = p.to_dict()
        # One tree for the whole partition; the fallback's inputs are a class of their own,
        # named as the report names the fallback (suffixed should a column share its name).
        fallback = task.fallback.name
        fallback = fallback if fallback not in p.models else f"{fallback} (fallback)"
        labels = np.where(p.assignment >= 0, p.assignment, len(p.models))
        tree = partition_rules(values, labels, [*p.models, fallback])
        entry["rules"] = {name: tree.rule_dict(name) for name in tree.rules}
        entry["tree"] = tree.tree_dict()
        frontier.append(entry)
    report = {
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
    if columns is not None:
        report["columns"] = columns
        report["site_iia"] = site_iia(columns, alignment_table, data)
    if site_frontiers is not None and columns is not None:
        index = {c["site_label"]: c["site"] for c in columns}
        report["sites_frontier"] = {
            label: {
                "site": index[label],
                "description": site_descriptions[index[label]],
                "columns": list(f.models),
                "frontier": [
                    {
                        "floor": r.floor,
                        "strength": r.strength,
                        "bound": r.certificate.bound,
                        "status": r.certificate.status,
                        "cell_sizes": r.cell_sizes,
                    }
                    for r in f.results
                ],
            }
            for label, f in site_frontiers.items()
        }
    return report


def site_iia(columns: list[dict], alignment_table: list[dict], data) -> dict:
    """Per site label, per candidate: its column, the alignment's held-out IIA (DAS's own
    split) and the mean per-input IIA over the pair design (what the solver reads; for
    pairwise data, each input's mean over its pairs), so the sites can be compared side by
    side before any solve."""
    held = {(r["site"], r["candidate"]): r["held_out_iia"] for r in alignment_table}
    matrix = None
    if data is not None:
        pairwise = isinstance(data, PairwiseIIA | SparsePairwiseIIA)
        matrix = data.to_per_input() if pairwise else data
    out: dict[str, dict] = {}
    for c in columns:
        mean = None
        if matrix is not None:
            mean = round(float(np.mean(matrix.iia[:, matrix.models.index(c["name"])])), 6)
        out.setdefault(c["site_label"], {})[c["candidate"]] = {
            "column": c["name"],
            "held_out_iia": held.get((c["site"], c["candidate"])),
            "mean_iia": mean,
        }
    return out


def write_report(
    report: dict,
    combined: Frontier,
    singles,
    task,
    store,
    site_frontiers: Mapping[str, Frontier] | None = None,
    controls: Mapping[str, Frontier] | None = None,
) -> list[Path]:
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
            "frontier.png",
            lambda p: plot_frontier(
                combined, singles, p, task.n_inputs, sites=site_frontiers, controls=controls
            ),
        ),
        store.write_with("partition.png", lambda p: plot_partition(chosen, task, p)),
    ]
    store.flush()
    return paths


def format_report(report: dict) -> str:
    """The report as a table for a terminal."""
    lines = [
        f"task {report['task']} ({report['n_inputs']} inputs), network accuracy "
        f"{report['network_accuracy']:.4f}"
        + (f" ({report['network_correct']} right)" if "network_correct" in report else "")
        + f", {report['semantics']} semantics, "
        f"{report['floor_scope']} floor; fallback {report['fallback']}",
        "alignment IIA (held out):",
    ]
    for row in report["alignment_iia"]:
        # rank and baseline: absent from reports written before they were added
        extra = f"  rank {row['rank']}" if "rank" in row else ""
        if row.get("baseline") is not None:
            extra += f", no intervention {row['baseline']:.3f}"
        lines.append(
            f"  site {row['site']}  {row['candidate']:>12}  {row['held_out_iia']:.3f}{extra}"
        )
    lines.append(f"{'floor':>6} {'strength':>8} {'bound':>6} {'status':>10}  cells (rule)")
    n = report["n_inputs"]
    for r in report["frontier"]:
        c = r["certificate"]
        bound = "-" if c["bound"] is None else f"{c['bound']:.0f}"
        cells = "; ".join(
            f"{name} {size} [{_rule(r['rules'][name])}]"
            for name, size in r["cell_sizes"].items()
            if size
        )
        lines.append(
            f"{r['floor']:>6.3f} {r['strength']:>8d} {bound:>6} {c['status']:>10}  "
            f"{cells or '(all to the fallback)'}"
        )
        # Reports written before the rules came from one tree have no "tree" entry.
        if "tree" in r:
            t = r["tree"]
            left = n - r["strength"]
            name = report["fallback"]
            name = name if name not in r["cell_sizes"] else f"{name} (fallback)"
            fb = r["rules"].get(name) if left else None
            lines.append(
                f"{'':>33}  tree depth {t['depth']}, accuracy {t['accuracy']:.3f}, "
                f"cross-validated {_num(t['cv_accuracy'])}"
                + (f"; fallback {left} [{_rule(fb)}]" if fb else "")
            )
    lines.extend(_interval_lines(report))
    lines.extend(_truth_lines(report))
    for name, rows in report["singles"].items():
        lines.append(f"single {name}: " + " ".join(str(x["strength"]) for x in rows))
    # Reports written before sites were columns lack these tables; they print as before.
    by_site = report.get("site_iia") or {}
    if by_site:
        lines.append("IIA per site (held-out alignment / mean per-input):")
        for label, cands in by_site.items():
            cells = ", ".join(
                f"{cand} {_num(v['held_out_iia'])}/{_num(v['mean_iia'])}"
                for cand, v in cands.items()
            )
            lines.append(f"  {label}: {cells}")
    frontiers = report.get("sites_frontier") or {}
    if len(frontiers) > 1:  # with one site it is the combined frontier above
        for label, entry in frontiers.items():
            strengths = " ".join(str(r["strength"]) for r in entry["frontier"])
            lines.append(f"site {label} alone: {strengths}")
    return "\n".join(lines)


def _truth_lines(report: dict) -> list[str]:
    """A planted network's recovery per floor and each round's, and every control's
    frontier; nothing for a report without them."""
    lines = []
    if "plant" in report:
        regions = "; ".join(
            f"{r['candidate']} on {r['region']}" for r in report["plant"].get("regions", [])
        )
        lines.append(f"planted: {regions}")
        for r in report.get("rounds", []):
            rec = r.get("recovery", {})
            lines.append(
                f"  round {r['round']}: cells {r['cells']}, recovered {_num(rec.get('recovered'))}"
            )
        for r in report["frontier"]:
            rec = r["recovery"]
            cells = ", ".join(
                f"{name} precision {_num(c['precision'])} recall {_num(c['recall'])}"
                for name, c in rec["cells"].items()
            )
            lines.append(f"  floor {r['floor']:g}: recovered {rec['recovered']:.3f} ({cells})")
    for name, control in (report.get("controls") or {}).items():
        strengths = " ".join(str(r["strength"]) for r in control["frontier"])
        lines.append(
            f"control {name} (network accuracy {control['network_accuracy']:.3f}): "
            f"strength {strengths}"
        )
    return lines


def _rule(rule: dict) -> str:
    """A cell's rule with how well it holds: precision and recall where the report has them
    (the rules from one tree); older reports' rules print as they did."""
    if "precision" in rule:
        return f"{rule['rule']}; precision {rule['precision']:.2f}, recall {rule['recall']:.2f}"
    return rule["rule"]


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _interval_lines(report: dict) -> list[str]:
    """The intervals note and, with sampled partners, each frontier point's cells' Wilson
    lower bounds (min/mean over the cell's inputs); nothing for reports without them."""
    intervals = report.get("intervals")
    if not intervals:
        return []
    lines = [intervals["note"]]
    if intervals.get("confidence") is None:
        return lines
    if intervals.get("per_cell"):  # pairwise over sampled partners: one bound per cell
        lines.append(f"cell IIA lower bounds at {intervals['confidence']:g} (scored pairs):")
        key, shown = "cell_lower_bounds", lambda b: f"{b['lower']:.3f} ({b['pairs']})"
    else:
        lines.append(f"lower bounds at {intervals['confidence']:g} per cell (min/mean):")
        key, shown = "lower_bounds", lambda b: f"{b['min']:.3f}/{b['mean']:.3f}"
    for r in report["frontier"]:
        cells = "; ".join(f"{name} {shown(b)}" for name, b in r.get(key, {}).items())
        lines.append(f"  floor {r['floor']:.3f}: {cells or '-'}")
    return lines
