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
from solver.edges import EDGES

PAPER_FLOORS = "1.0,0.95,0.9,0.8,0.7,0.6"


class CLIError(Exception):
    """A usage problem: printed as one line, exit status 2."""


def _floors(text: str) -> list[float] | str:
    if text.strip() == "auto":
        return "auto"
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise CLIError(
            f"--floors takes comma-separated numbers such as 1.0,0.95,0.9, or auto; got {text!r}"
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
    if flag == "--plot":
        from service.plots import check_plot_path  # matplotlib only when a plot is asked for

        try:
            check_plot_path(p)
        except ValueError as exc:
            raise CLIError(f"--plot {exc}") from None
    return p


def _row(p: Partition) -> str:
    c = p.certificate
    gap = "-" if c.gap is None else f"{c.gap:.4f}"
    bound = "-" if c.bound is None else f"{c.bound:.0f}"
    if p.cell is None:
        cells = ", ".join(
            f"{name} {size} ({p.cell_iia[name]:.3f})" for name, size in p.cell_sizes.items() if size
        )
    else:  # several cells per model: each cell's size, and the weakest cell's IIA
        cells = ", ".join(
            f"{name} {'+'.join(str(c['size']) for c in held)} ({p.cell_iia[name]:.3f})"
            for name, held in p.to_dict()["cells"].items()
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
    if floors == "auto" and args.method == "greedy":
        raise CLIError(
            "--floors auto needs a method that gives a bound (the greedy cannot tell a "
            "breakpoint from a miss): use --method auto or --method ilp, or list the floors"
        )
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
        budget=args.budget,
        edge=args.edge,
        cells_per_model=args.cells_per_model,
    )
    _, models, fallback = solver.prepare(data, candidates, args.fallback)
    print(
        f"{args.semantics} semantics, {args.scope} floor, {args.edge} edges, method {args.method}, "
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
            partial = Frontier(
                solver.semantics, solver.scope, models, fallback, tuple(done), solver.edge
            )
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
            budget=args.budget,
            edge=args.edge,
            cells_per_model=args.cells_per_model,
        )
        for name in models:
            singles[name] = single_solver.frontier(
                data, combined.floors, candidates=[name], fallback=args.fallback
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


def cmd_run(args: argparse.Namespace) -> int:
    from service.pipeline import run
    from service.report import format_report
    from service.spec import load_spec

    spec = load_spec(args.spec)
    if args.results is not None:
        spec = spec.model_copy(update={"results": args.results})
    report = run(spec, address=args.address, resume=args.resume)
    print(format_report(report))
    print(f"report: {spec.results_dir() / 'report.json'}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from service.report import format_report

    path = Path(args.results_dir)
    path = path / "report.json" if path.is_dir() else path
    if not path.is_file():
        raise CLIError(f"no report at {path}; run the job first (ccm run SPEC)")
    print(format_report(json.loads(path.read_text())))
    return 0


# -- jobs on a Ray cluster (service.jobs) -----------------------------------------------------


def _job_call(fn, *args, **kwargs):
    from service.jobs import JobError, redact

    try:
        return fn(*args, **kwargs)
    except JobError as exc:
        raise CLIError(str(exc)) from None
    except (ValueError, OSError) as exc:
        # Whatever Ray or requests raised may quote the address, credentials and all.
        raise CLIError(redact(str(exc))) from None


def cmd_submit(args: argparse.Namespace) -> int:
    from service import jobs

    job_id = _job_call(
        jobs.submit, args.spec, args.address, results=args.results, python=args.python
    )
    print(job_id)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from service import jobs

    info = _job_call(jobs.info, args.job_id, args.address)
    message = info["message"].strip().splitlines()
    print(f"{info['job_id']} {info['status']}" + (f": {message[0]}" if message else ""))
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    from service import jobs

    def stream() -> None:
        for chunk in jobs.logs(args.job_id, args.address, follow=args.follow):
            print(chunk, end="", flush=True)

    _job_call(stream)
    return 0


def cmd_result(args: argparse.Namespace) -> int:
    from service import jobs
    from service.report import format_report

    report = _job_call(jobs.result, args.job_id, args.address)
    print(json.dumps(report, indent=1) if args.json else format_report(report))
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    from service import jobs

    final = _job_call(jobs.cancel, args.job_id, args.address, timeout=args.timeout)
    print(f"{args.job_id} {final}")
    return 0


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
        "--floors",
        default=PAPER_FLOORS,
        help=f"comma-separated (default {PAPER_FLOORS}), or auto: per-input, the frontier's "
        "breakpoints (to 0.001, at most 64 solves); pairwise, 1.0 down to 0.5 by 0.01",
    )
    s.add_argument("--candidates", help="NAME,NAME,...: a subset of the file's models")
    s.add_argument(
        "--fallback", help="the model that takes unexplained inputs (overrides the file's)"
    )
    s.add_argument("--max-models", type=int, help="per-input only: use at most K models")
    s.add_argument("--min-cell", type=int, default=1, help="per-input only: inputs per used model")
    s.add_argument(
        "--cells-per-model",
        type=int,
        default=1,
        metavar="K",
        help="pairwise, per-model floors: a model may hold up to K disjoint cells, each meeting "
        "the floor on its own (the JSON then carries 'cell' per input)",
    )
    s.add_argument(
        "--time-limit", type=float, help=f"seconds per floor (auto default {DEFAULT_TIME_LIMIT:g})"
    )
    s.add_argument("--solver", default="highs", help="highs (default), cbc, or a PuLP solver name")
    s.add_argument("--seed", type=int, default=0, help="seed of the randomised searches")
    s.add_argument(
        "--budget",
        type=int,
        help="auto's work per floor: annealing moves (pairwise) or MILP nodes (per-input); "
        "the default follows from the instance's size, so seed + budget repeat exactly",
    )
    s.add_argument(
        "--edge",
        choices=EDGES,
        default="mean",
        help="what a pair counts: mean = ½(s(i←j) + s(j←i)) (the paper's), both = 1 only where "
        "both directions succeed (pairwise weights in {0, ½, 1})",
    )
    s.add_argument("--json", help="write the results here")
    s.add_argument("--plot", help="draw the frontier here (PNG), with each candidate alone")
    s.set_defaults(func=cmd_solve)

    r = sub.add_parser("run", help="run a job spec: network, alignments, IIA, frontier, report")
    r.add_argument("spec", help="the job spec (TOML), e.g. examples/arithmetic.toml")
    r.add_argument("--address", help="a Ray cluster to join (default: the spec's, else embedded)")
    r.add_argument("--resume", action="store_true", help="finish an interrupted run's shards")
    r.add_argument("--results", help="override the spec's results folder")
    r.set_defaults(func=cmd_run)

    rep = sub.add_parser("report", help="print a finished job's report as a table")
    rep.add_argument("results_dir", help="the job's results folder (or its report.json)")
    rep.set_defaults(func=cmd_report)

    address_help = "the cluster's job server (default: RAY_ADDRESS, else http://127.0.0.1:8265)"
    sb = sub.add_parser("submit", help="submit a job spec to a Ray cluster; prints the job id")
    sb.add_argument("spec", help="the job spec (TOML); validated here before it is sent")
    sb.add_argument("--address", help=address_help)
    sb.add_argument("--results", help="override the spec's results folder (as seen by the job)")
    sb.add_argument(
        "--python", help="the interpreter that runs the job on the cluster (default: this one)"
    )
    sb.set_defaults(func=cmd_submit)
    st = sub.add_parser("status", help="a submitted job's status")
    st.add_argument("job_id")
    st.add_argument("--address", help=address_help)
    st.set_defaults(func=cmd_status)
    lg = sub.add_parser("logs", help="a submitted job's logs")
    lg.add_argument("job_id")
    lg.add_argument("--follow", action="store_true", help="stream them until the job ends")
    lg.add_argument("--address", help=address_help)
    lg.set_defaults(func=cmd_logs)
    rs = sub.add_parser("result", help="a finished job's report (table, or --json)")
    rs.add_argument("job_id")
    rs.add_argument("--json", action="store_true", help="print the report as JSON")
    rs.add_argument("--address", help=address_help)
    rs.set_defaults(func=cmd_result)
    cc = sub.add_parser("cancel", help="stop a submitted job; returns once it has stopped")
    cc.add_argument("job_id")
    cc.add_argument("--timeout", type=float, default=30.0, help="seconds to wait (default 30)")
    cc.add_argument("--address", help=address_help)
    cc.set_defaults(func=cmd_cancel)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (CLIError, IIADataError, SolverConfigError, ValueError, OSError) as exc:
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
