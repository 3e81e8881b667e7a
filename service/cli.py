"""The ``ccm`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from solver import (
    Frontier,
    IIADataError,
    Partition,
    PartitionCheckError,
    Solver,
    SolverConfigError,
    load_iia,
)
from solver.api import DEFAULT_TIME_LIMIT, METHODS, SCOPES, SEMANTICS

PAPER_FLOORS = "1.0,0.95,0.9,0.8,0.7,0.6"


class CLIError(Exception):
    """A usage problem: printed as one line, exit status 2."""


def _floors(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise CLIError(
            f"--floors takes comma-separated numbers such as 1.0,0.95,0.9; got {text!r}"
        ) from None


def _names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [x.strip() for x in text.split(",") if x.strip()]
    if not names:
        raise CLIError("--candidates names no model; give NAME,NAME,...")
    return names


def _writable(path: str | None, flag: str) -> Path | None:
    # Checked before solving, so a long sweep never ends in a file it cannot write.
    if path is None:
        return None
    p = Path(path)
    if not p.parent.exists():
        raise CLIError(f"{flag} {path}: folder {p.parent} does not exist; create it first")
    if p.is_dir():
        raise CLIError(f"{flag} {path} is a folder; give a file name")
    return p


def _row(p: Partition) -> str:
    c = p.certificate
    gap = "-" if c.gap is None else f"{c.gap:.4f}"
    bound = "-" if c.bound is None else f"{c.bound:.0f}"
    cells = ", ".join(
        f"{name} {size} ({p.cell_iia[name]:.3f})" for name, size in p.cell_sizes.items() if size
    )
    return (
        f"{p.floor:>6.3f} {p.strength:>8d} {bound:>6} {gap:>7} {c.status:>10} {c.seconds:>7.1f}  "
        f"{cells or '(all to the fallback)'}"
    )


HEADER = (
    f"{'floor':>6} {'strength':>8} {'bound':>6} {'gap':>7} {'status':>10} {'seconds':>7}  cells"
)


def cmd_solve(args: argparse.Namespace) -> int:
    json_path = _writable(args.json, "--json")
    plot_path = _writable(args.plot, "--plot")
    floors = _floors(args.floors)
    candidates = _names(args.candidates)
    data = load_iia(args.data)
    solver = Solver(
        semantics=args.semantics,
        scope=args.scope,
        method=args.method,
        solver=args.solver,
        time_limit=args.time_limit,
        max_models=args.max_models,
        min_cell=args.min_cell,
        seed=args.seed,
    )
    _, models, fallback = solver.prepare(data, candidates, args.fallback)
    print(
        f"{args.semantics} semantics, {args.scope} floor, method {args.method}, "
        f"{data.n_inputs} inputs, candidates {list(models)}, fallback {fallback}"
    )
    print(HEADER)
    done: list[Partition] = []

    def report(p: Partition) -> None:
        done.append(p)
        print(_row(p), flush=True)

    try:
        combined = solver.frontier(
            data, floors, candidates=models, fallback=args.fallback, progress=report
        )
    except BaseException:
        # Whatever stopped the sweep, the floors already solved are kept.
        if json_path is not None and done:
            partial = Frontier(solver.semantics, solver.scope, models, fallback, tuple(done))
            _write_json(json_path, partial, {}, complete=False)
            print(f"wrote the {len(done)} finished floors to {json_path}", file=sys.stderr)
        raise
    singles: dict[str, Frontier] = {}
    if plot_path is not None and len(models) > 1:
        single_limit = max(1.0, (args.time_limit or DEFAULT_TIME_LIMIT) / len(models))
        single_solver = Solver(
            semantics=args.semantics,
            scope=args.scope,
            method=args.method,
            solver=args.solver,
            time_limit=single_limit,
            max_models=args.max_models,
            min_cell=args.min_cell,
            seed=args.seed,
        )
        for name in models:
            singles[name] = single_solver.frontier(
                data, floors, candidates=[name], fallback=args.fallback
            )
            print(f"single {name}: {singles[name].strengths}", flush=True)
    if json_path is not None:
        _write_json(json_path, combined, singles, complete=True)
        print(f"wrote {json_path}")
    if plot_path is not None:
        from service.plots import plot_frontier

        plot_frontier(combined, singles, plot_path, data.n_inputs)
        print(f"wrote {plot_path}")
    return 0


def _write_json(
    path: Path, combined: Frontier, singles: dict[str, Frontier], complete: bool
) -> None:
    out = combined.to_dict()
    out["complete"] = complete
    if singles:
        out["singles"] = {
            name: [
                {"floor": r.floor, "strength": r.strength, "status": r.certificate.status}
                for r in f.results
            ]
            for name, f in singles.items()
        }
    path.write_text(json.dumps(out, indent=1) + "\n")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ccm", description="Combine causal models: which candidate explains which inputs."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser(
        "solve",
        help="partition inputs among candidates over a sweep of faithfulness floors",
        description="Solve the strength-faithfulness frontier of an IIA file (.npz).",
    )
    s.add_argument("data", help="IIA file: pairwise (weights or twice_w) or per-input (iia)")
    s.add_argument("--semantics", choices=SEMANTICS, default="pairwise")
    s.add_argument("--scope", choices=SCOPES, default="per-model")
    s.add_argument("--method", choices=METHODS, default="auto")
    s.add_argument(
        "--floors", default=PAPER_FLOORS, help=f"comma-separated (default {PAPER_FLOORS})"
    )
    s.add_argument("--candidates", help="NAME,NAME,...: a subset of the file's models")
    s.add_argument(
        "--fallback", help="the model that takes unexplained inputs (overrides the file's)"
    )
    s.add_argument("--max-models", type=int, help="per-input only: use at most K models")
    s.add_argument("--min-cell", type=int, default=1, help="per-input only: inputs per used model")
    s.add_argument(
        "--time-limit", type=float, help=f"seconds per floor (auto default {DEFAULT_TIME_LIMIT:g})"
    )
    s.add_argument("--solver", default="highs", help="highs (default), cbc, or a PuLP solver name")
    s.add_argument("--seed", type=int, default=0, help="seed of the randomised searches")
    s.add_argument("--json", help="write the results here")
    s.add_argument("--plot", help="draw the frontier here (PNG), with each candidate alone")
    s.set_defaults(func=cmd_solve)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (CLIError, IIADataError, SolverConfigError, ValueError) as exc:
        print(f"ccm {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except PartitionCheckError as exc:
        print(
            f"ccm {args.command}: internal error, a solver returned an invalid partition: {exc}",
            file=sys.stderr,
        )
        return 3


if __name__ == "__main__":
    sys.exit(main())
