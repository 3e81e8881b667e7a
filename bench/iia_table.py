"""Which small network and site make the paper's phenomenon appear?

For each task (arithmetic, boolean) this trains a small GPT-2 classifier (or loads it from a
cache directory), aligns every candidate and the fallback by DAS at a grid of sites (layers ×
token-position sets) and prints the held-out IIA table: one row per site, one column per
candidate (the fallback last), plus ``base=`` columns, the no-intervention baseline (how often
the candidate's counterfactual label equals the base input's own label on the same held-out
pairs: an alignment that does nothing scores this much).

For the chosen site(s) it then scores k sampled partners per input (``PairDesign.sampled``),
folds the successes into the per-input matrix and solves the per-input frontier for all
candidates together and for each candidate alone, so one sees whether combining candidates
explains more inputs than any single one.

Run (one thread; about 6 min for arithmetic, 5 min for boolean on a shared 2-core machine):

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/iia_table.py --task arithmetic
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/iia_table.py --task boolean

Options override the recommended network, grid and frontier site, e.g.
``--layers 0 1 --positions all 5 3,4,5 --rank 16 --n-layer 3 --n-embd 64``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from intervention.das import DASSettings, digest, split_inputs, train_alignment  # noqa: E402
from intervention.engine import InterchangeEngine, Site  # noqa: E402
from intervention.iia import PairDesign, per_input_from_successes, score_design  # noqa: E402
from intervention.network import (  # noqa: E402
    TrainSettings,
    accuracy,
    load_network,
    save_network,
    train_network,
)
from intervention.tasks import BUILT_IN  # noqa: E402
from intervention.tokenizer import build_tokenizer, encode_fixed_length  # noqa: E402
from solver import Solver  # noqa: E402

FLOORS = [1.0, 0.99, 0.95, 0.9, 0.8]


@dataclass
class Plan:
    """A task's network, site grid and frontier site(s)."""

    train: TrainSettings
    sites: list[tuple[int, tuple[int, ...] | None]]  # (layer, positions); None: all positions
    rank: int
    steps: int
    frontier_sites: list[tuple[int, tuple[int, ...] | None]] = field(default_factory=list)


# The recommendations of bench/IIA_TABLE.md (see there for the measurements behind them).
PLANS = {
    # Every small GPT-2 tried computes the whole sum at the last position in block 0, so the
    # only sites where candidates compete are the embeddings with a rank bottleneck.
    "arithmetic": Plan(
        train=TrainSettings(),
        sites=[(-1, None), (-1, (0, 2, 4)), (0, None), (0, (0, 2, 4)), (0, (5,)), (0, (3,))],
        rank=4,
        steps=200,
        frontier_sites=[(-1, None)],
    ),
    "boolean": Plan(
        train=TrainSettings(),
        sites=[(-1, None), (0, None), (0, (12,))],
        rank=8,
        steps=150,
        frontier_sites=[(0, None)],
    ),
}


def parse_positions(text: str) -> tuple[int, ...] | None:
    return None if text == "all" else tuple(int(p) for p in text.split(","))


def show_positions(p: tuple[int, ...] | None) -> str:
    return "all" if p is None else ",".join(map(str, p))


def parse_site(text: str) -> tuple[int, tuple[int, ...] | None]:
    layer, _, pos = text.partition(":")
    return int(layer), parse_positions(pos or "all")


def get_network(task, settings: TrainSettings, cache: Path, log):
    """Train the task's network with ``settings`` or load it from the cache."""
    prompts = task.prompts()
    labels = torch.as_tensor(task.labels())
    where = cache / f"{task.name}-{digest(asdict(settings))}"
    meta = where / "accuracy.json"
    if meta.exists():
        model, tokenizer = load_network(where)
        info = json.loads(meta.read_text())
        log(f"network: loaded {where} (accuracy {info['accuracy']:.4f})")
    else:
        tokenizer = build_tokenizer(prompts)
        ids = encode_fixed_length(tokenizer, prompts)
        trained = train_network(
            ids, labels, len(task.classes), len(tokenizer), tokenizer.pad_token_id, settings
        )
        model = trained.model
        info = {
            "accuracy": trained.accuracy,
            "epochs_run": trained.epochs_run,
            "seconds": round(trained.seconds, 1),
            "settings": asdict(settings),
        }
        save_network(model, tokenizer, where)
        meta.write_text(json.dumps(info) + "\n")
        log(
            f"network: trained {settings.n_layer}x{settings.n_embd} seed {settings.seed} in "
            f"{trained.seconds:.0f} s, {trained.epochs_run} epochs, accuracy {trained.accuracy:.4f}"
        )
    ids = encode_fixed_length(tokenizer, prompts)
    acc = accuracy(model, ids, labels)
    if acc < 0.99:
        log(f"WARNING: network accuracy {acc:.4f} < 0.99; IIA would measure noise")
    return model, ids


def baseline(task, model, pool: np.ndarray, rng: np.random.Generator) -> float:
    """Share of pairs whose counterfactual label is the base's own label (no-op alignment)."""
    b, s = rng.choice(pool, 2048), rng.choice(pool, 2048)
    own = task.labels()[b]
    return float((task.counterfactual_labels(model, b, s) == own).mean())


def align_site(task, models, engine, das: DASSettings):
    """Train one alignment per model at the engine's site; held-out IIA and rotations."""
    out = []
    for model in models:
        a = train_alignment(
            engine,
            lambda b, s, m=model: task.counterfactual_labels(m, b, s),
            model.name,
            "bench",
            das,
        )
        out.append((model, a))
    return out


def short(name: str, width: int = 8) -> str:
    return name[:width]


def iia_table(task, net, ids, plan: Plan, das: DASSettings, log):
    models = [*task.candidates, task.fallback]
    _, held = split_inputs(task.n_inputs, das.held_out, das.seed)
    rng = np.random.default_rng(123)
    base = [baseline(task, m, held, rng) for m in models]
    head = f"{'layer':>5} {'positions':<10}" + "".join(f" {short(m.name):>8}" for m in models)
    print(f"\n== {task.name}: held-out IIA, rank {das.rank}, {das.steps} steps ==")
    print(head + "   seconds")
    print(f"{'base':>5} {'(no-op)':<10}" + "".join(f" {v:8.3f}" for v in base))
    rotations = {}
    for layer, pos in plan.sites:
        started = time.perf_counter()
        engine = InterchangeEngine(net, ids, Site(layer, pos), batch_size=2048)
        if das.rank > engine.dim:
            continue
        aligned = align_site(task, models, engine, das)
        rotations[(layer, pos)] = (engine, aligned)
        row = "".join(f" {a.held_out_iia:8.3f}" for _, a in aligned)
        print(
            f"{layer:>5} {show_positions(pos):<10}{row}   {time.perf_counter() - started:5.0f}",
            flush=True,
        )
    return rotations, dict(zip([m.name for m in models], base))


def frontier_report(task, engine, aligned, partners: int, log):
    """Per-input frontier at one site: all candidates together vs each candidate alone."""
    models = [m for m, _ in aligned]
    names = [m.name for m in models]
    design = PairDesign.sampled(task.n_inputs, partners, seed=0)
    started = time.perf_counter()
    succ = score_design(engine, task, [(m, a.rotation) for m, a in aligned], design)
    data = per_input_from_successes(design, succ, names, task.fallback.name)
    solver = Solver(semantics="per-input", time_limit=10)
    cands = [m.name for m in task.candidates]
    a = data.iia
    print(
        f"\n-- {task.name} frontier at {engine.site.describe()}, k={partners} partners "
        f"(scored in {time.perf_counter() - started:.0f} s) --"
    )
    print(
        "mean per-input IIA: " + ", ".join(f"{n} {a[:, i].mean():.3f}" for i, n in enumerate(names))
    )
    best = a[:, : len(cands)].argmax(axis=1)
    print(
        "inputs whose best candidate is it (ties to the first): "
        + ", ".join(f"{n} {int((best == i).sum())}" for i, n in enumerate(cands))
    )
    rows = {"all candidates": None, **{n: [n] for n in cands}}
    print(
        f"{'strength (of ' + str(task.n_inputs) + ')':<22}" + "".join(f" λ={f:<5}" for f in FLOORS)
    )
    together = None
    singles = []
    for label, subset in rows.items():
        front = solver.frontier(data, FLOORS, candidates=subset)
        print(f"{label:<22}" + "".join(f" {s:>7}" for s in front.strengths), flush=True)
        if subset is None:
            together = front
        else:
            singles.append(front.strengths)
    best_single = np.max(np.array(singles), axis=0)
    print(f"{'best single':<22}" + "".join(f" {s:>7}" for s in best_single))
    gain = np.array(together.strengths) - best_single
    print(f"{'gain of combining':<22}" + "".join(f" {g:>+7}" for g in gain))
    for r in together.results:
        cells = {k: v for k, v in r.cell_sizes.items() if v}
        print(f"  λ={r.floor}: cells {cells}")
    return together


def run_task(name: str, args, log) -> None:
    task = BUILT_IN[name]()
    plan = PLANS[name]
    overrides = {
        k: getattr(args, k)
        for k in ("n_layer", "n_embd", "n_head", "seed", "epochs", "lr", "weight_decay")
        if getattr(args, k) is not None
    }
    plan = replace(
        plan,
        train=replace(plan.train, **overrides),
        sites=[
            (layer, pos)
            for layer in (args.layers or sorted({s[0] for s in plan.sites}))
            for pos in [parse_positions(p) for p in args.positions]
        ]
        if args.positions is not None
        else [s for s in plan.sites if args.layers is None or s[0] in args.layers],
        rank=args.rank or plan.rank,
        steps=args.steps or plan.steps,
        frontier_sites=[parse_site(s) for s in args.frontier]
        if args.frontier is not None
        else plan.frontier_sites,
    )
    if args.no_frontier:
        plan.frontier_sites = []
    started = time.perf_counter()
    net, ids = get_network(task, plan.train, Path(args.cache), log)
    log(f"{name}: network {plan.train}")
    das = DASSettings(rank=plan.rank, steps=plan.steps)
    if not args.no_table:
        rotations, _ = iia_table(task, net, ids, plan, das, log)
    else:
        rotations = {}
    for layer, pos in plan.frontier_sites:
        if (layer, pos) in rotations:
            engine, aligned = rotations[(layer, pos)]
        else:
            engine = InterchangeEngine(net, ids, Site(layer, pos), batch_size=2048)
            aligned = align_site(task, [*task.candidates, task.fallback], engine, das)
            print(
                f"\nheld-out IIA at {engine.site.describe()}: "
                + ", ".join(f"{m.name} {a.held_out_iia:.3f}" for m, a in aligned)
            )
        frontier_report(task, engine, aligned, args.partners, log)
    log(f"{name}: done in {time.perf_counter() - started:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=["arithmetic", "boolean", "both"], default="both")
    parser.add_argument("--cache", default="/tmp/ccm-nets")
    parser.add_argument("--layers", type=int, nargs="+")
    parser.add_argument("--positions", nargs="+", help="sets like all 5 3 1,3 0,2,4")
    parser.add_argument("--rank", type=int)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--frontier", nargs="+", help="sites LAYER:POSITIONS, e.g. 0:all 1:3,4")
    parser.add_argument("--no-frontier", action="store_true")
    parser.add_argument("--no-table", action="store_true")
    parser.add_argument("--partners", type=int, default=20)
    parser.add_argument("--n-layer", dest="n_layer", type=int)
    parser.add_argument("--n-embd", dest="n_embd", type=int)
    parser.add_argument("--n-head", dest="n_head", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--weight-decay", dest="weight_decay", type=float)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    Path(args.cache).mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        print(f"# {msg}", file=sys.stderr, flush=True)

    for name in ["arithmetic", "boolean"] if args.task == "both" else [args.task]:
        run_task(name, args, log)


if __name__ == "__main__":
    main()
