"""Interchange-intervention throughput: the project's engine against the authors' approach.

All on the same network (the demo-like 2-layer, 64-wide GPT-2 trained on arithmetic, cached
under ``--cache``), the same site (residual stream after block 0, all 6 positions
concatenated, d = 384), the same rank-32 rotation, one thread:

- authors: pyvene 0.1.8 used as the authors' ``src/construct_graph.py`` uses it: one
  ``IntervenableModel`` call per unordered pair {i, j}, a batch of the two directions
  (i ← j, j ← i), base and source each through the full network, argmax per pair. The
  counterfactual labels are computed in bulk beforehand and NOT timed (favours the baseline;
  the authors also ran a pyvene causal model, a DataLoader and sklearn per pair).
- full-forward engine: batched; each batch runs the sources through the whole network with a
  hook that keeps the site, then the bases through the whole network with a hook that patches
  h' = h_b + R Rᵀ (h_s − h_b); labels from the task, timed.
- engine: ``InterchangeEngine.successes`` (site activations of the 1000 inputs cached once,
  only the blocks above the site per pair), labels from ``task.counterfactual_labels``, timed;
  batch size picked from ``--batch-sizes`` on a short trial.

Rates are ordered pairs per second. The last line is ``speedup_vs_authors=<engine / authors>``.

``--full-graph`` then also times the whole pairwise graph of one candidate: all 999,000
ordered pairs (``PairDesign.all_pairs(1000)``) through ``score_design`` with a rotation from a
quick ``train_alignment`` (rank 32, 200 steps), with 1 and with 2 threads (the speed-up line
stays last).

Run:

    OMP_WAIT_POLICY=PASSIVE python bench/engine_throughput.py [--full-graph]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import importlib.metadata  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from intervention.das import DASSettings, train_alignment  # noqa: E402
from intervention.engine import InterchangeEngine, Site  # noqa: E402
from intervention.iia import PairDesign, score_design  # noqa: E402
from intervention.network import (  # noqa: E402
    accuracy,
    load_network,
    save_network,
    train_network,
)
from intervention.pyvene_bridge import pyvene_rotated  # noqa: E402
from intervention.tasks import arithmetic  # noqa: E402
from intervention.tokenizer import build_tokenizer, encode_fixed_length  # noqa: E402

RANK = 32


def log(msg: str) -> None:
    print(msg, flush=True)


def network(task, cache: Path):
    """The demo-like network: trained once with the default settings, then loaded."""
    prompts = task.prompts()
    labels = torch.as_tensor(task.labels())
    if (cache / "config.json").exists():
        model, tokenizer = load_network(cache)
        ids = encode_fixed_length(tokenizer, prompts)
        log(f"network: loaded from {cache}, accuracy {accuracy(model, ids, labels):.4f}")
        return model, ids
    tokenizer = build_tokenizer(prompts)
    ids = encode_fixed_length(tokenizer, prompts)
    trained = train_network(ids, labels, len(task.classes), len(tokenizer), tokenizer.pad_token_id)
    save_network(trained.model, tokenizer, cache)
    log(
        f"network: trained in {trained.seconds:.1f} s ({trained.epochs_run} epochs), accuracy "
        f"{trained.accuracy:.4f}, saved to {cache}"
    )
    return trained.model.eval(), ids


# -- the authors' approach: pyvene, one call per unordered pair --------------------------------


def authors_rate(model, ids, task, candidate, rotation, n_pairs: int, seed: int):
    """Ordered pairs per second of pyvene called once per unordered pair (2 directions)."""
    intervenable = pyvene_rotated(model, 0, ids.shape[1], rotation)
    version = importlib.metadata.version("pyvene")
    rng = np.random.default_rng(seed)
    i = rng.integers(0, len(ids), n_pairs)
    j = (i + rng.integers(1, len(ids), n_pairs)) % len(ids)  # i != j
    # Labels of both directions, in bulk and untimed.
    labels = task.counterfactual_labels(candidate, np.r_[i, j], np.r_[j, i])
    labels = np.stack([labels[:n_pairs], labels[n_pairs:]], axis=1)
    positions = list(range(ids.shape[1]))
    subspaces = [[list(range(rotation.shape[1]))] * 2]
    hits = 0
    with torch.no_grad():
        for k in range(3):  # warm-up
            intervenable(
                {"input_ids": ids[[i[k], j[k]]]},
                [{"input_ids": ids[[j[k], i[k]]]}],
                {"sources->base": positions},
                subspaces=subspaces,
            )
        started = time.perf_counter()
        for k in range(n_pairs):
            _, out = intervenable(
                {"input_ids": ids[[i[k], j[k]]]},
                [{"input_ids": ids[[j[k], i[k]]]}],
                {"sources->base": positions},
                subspaces=subspaces,
            )
            hits += int((out.logits.argmax(-1).numpy() == labels[k]).sum())
        seconds = time.perf_counter() - started
    rate = 2 * n_pairs / seconds
    log(
        f"authors (pyvene {version}, one call per unordered pair, batch of 2): {n_pairs} "
        f"unordered pairs = {2 * n_pairs} ordered in {seconds:.2f} s -> {rate:,.0f} pairs/s "
        f"(IIA {hits / (2 * n_pairs):.3f})"
    )
    return rate


# -- full-forward engine: batched, both inputs through the whole network, hooks ----------------


class _Keep:
    """Forward hook that keeps a module's output."""

    def __call__(self, module, args, output):
        self.h = output


class _Patch:
    """Forward hook that patches a module's output towards ``hs`` inside span(R)."""

    def __init__(self, hs: torch.Tensor, rotation: torch.Tensor) -> None:
        self.hs, self.rotation = hs, rotation

    def __call__(self, module, args, output):
        n, r = output.shape[0], self.rotation
        vb = output.reshape(n, -1)
        vs = self.hs.reshape(n, -1)
        return (vb + ((vs - vb) @ r) @ r.T).reshape(output.shape)


@torch.no_grad()
def full_forward_successes(model, ids, layer, rotation, base, source, labels, batch_size):
    block = model.transformer.h[layer]
    out = np.empty(len(base), dtype=bool)
    for start in range(0, len(base), batch_size):
        stop = start + batch_size
        b = torch.as_tensor(base[start:stop])
        s = torch.as_tensor(source[start:stop])
        keep = _Keep()
        handle = block.register_forward_hook(keep)
        try:
            model(input_ids=ids[s])  # the source through the whole network
        finally:
            handle.remove()
        handle = block.register_forward_hook(_Patch(keep.h, rotation))
        try:
            logits = model(input_ids=ids[b]).logits  # the patched base, whole network
        finally:
            handle.remove()
        out[start:stop] = logits.argmax(-1).numpy() == labels[start:stop]
    return out


# -- the engine ---------------------------------------------------------------------------------


def random_pairs(n_inputs: int, n: int, seed: int):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, n_inputs, n)
    source = (base + rng.integers(1, n_inputs, n)) % n_inputs
    return base, source


def timed_engine(engine, task, candidate, rotation, base, source):
    started = time.perf_counter()
    labels = task.counterfactual_labels(candidate, base, source)
    labelled = time.perf_counter()
    hits = engine.successes(base, source, rotation, labels)
    done = time.perf_counter()
    return done - started, hits, labelled - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/ccm_bench/arithmetic_gpt2"))
    parser.add_argument("--authors-pairs", type=int, default=1000, help="unordered pairs")
    parser.add_argument("--pairs", type=int, default=400_000, help="ordered pairs, engine")
    parser.add_argument("--full-forward-pairs", type=int, default=100_000)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1024, 2048, 4096, 8192])
    parser.add_argument("--full-graph", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    log(f"torch {torch.__version__}, threads {torch.get_num_threads()}, cpus {os.cpu_count()}")
    task = arithmetic()
    candidate = task.candidates[0]
    model, ids = network(task, args.cache)
    site = Site(0)
    started = time.perf_counter()
    engine = InterchangeEngine(model, ids, site, batch_size=args.batch_sizes[0])
    log(
        f"site: {engine.site.describe()}, d = {engine.dim}, rank {RANK}, candidate "
        f"{candidate.name}; engine cache of {len(ids)} inputs built in "
        f"{time.perf_counter() - started:.3f} s (one-off, not in the rates)"
    )
    gen = torch.Generator().manual_seed(args.seed)
    rotation = torch.linalg.qr(torch.randn(engine.dim, RANK, generator=gen))[0].contiguous()

    # 1. the authors' approach
    authors = authors_rate(model, ids, task, candidate, rotation, args.authors_pairs, args.seed)

    # 2. the engine: pick the batch size on a short trial, then time the large run
    trial_base, trial_source = random_pairs(len(ids), 3 * max(args.batch_sizes), args.seed + 1)
    trial = {}
    for size in args.batch_sizes:
        engine.batch_size = size
        timed_engine(engine, task, candidate, rotation, trial_base[:size], trial_source[:size])
        seconds, _, _ = timed_engine(engine, task, candidate, rotation, trial_base, trial_source)
        trial[size] = len(trial_base) / seconds
    best = max(trial, key=trial.get)
    log(
        "engine batch-size trial (pairs/s): "
        + ", ".join(f"{k}: {v:,.0f}" for k, v in trial.items())
        + f" -> {best}"
    )
    engine.batch_size = best
    base, source = random_pairs(len(ids), args.pairs, args.seed + 2)
    seconds, hits, label_seconds = timed_engine(engine, task, candidate, rotation, base, source)
    rate = len(base) / seconds
    log(
        f"engine (InterchangeEngine.successes + counterfactual labels, batch {best}): "
        f"{len(base):,} pairs in {seconds:.2f} s (labels {label_seconds:.2f} s) -> "
        f"{rate:,.0f} pairs/s (IIA {hits.mean():.3f})"
    )

    # 3. the full-forward engine, same batch size
    fb, fs = base[: args.full_forward_pairs], source[: args.full_forward_pairs]
    started = time.perf_counter()
    labels = task.counterfactual_labels(candidate, fb, fs)
    full_hits = full_forward_successes(model, ids, 0, rotation, fb, fs, labels, best)
    full_seconds = time.perf_counter() - started
    full_rate = len(fb) / full_seconds
    agree = np.array_equal(full_hits, hits[: len(fb)])
    log(
        f"full-forward engine (hooks, batch {best}): {len(fb):,} pairs in {full_seconds:.2f} s "
        f"-> {full_rate:,.0f} pairs/s (successes identical to the engine's: {agree})"
    )

    if args.full_graph:
        full_graph(engine, task, candidate)

    log(f"engine vs full-forward engine: {rate / full_rate:.2f}x")
    log(f"speedup_vs_authors={rate / authors:.1f}")


def full_graph(engine, task, candidate) -> None:
    """All 999,000 ordered pairs of one candidate through ``score_design``, 1 and 2 threads."""
    started = time.perf_counter()
    alignment = train_alignment(
        engine,
        lambda b, s: task.counterfactual_labels(candidate, b, s),
        candidate.name,
        "bench",
        DASSettings(rank=RANK, steps=200),
    )
    log(
        f"full graph: DAS {candidate.name} (rank {RANK}, 200 steps) in "
        f"{time.perf_counter() - started:.1f} s, train IIA {alignment.train_iia:.3f}, held-out "
        f"IIA {alignment.held_out_iia:.3f}"
    )
    design = PairDesign.all_pairs(len(engine.ids))
    results = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        started = time.perf_counter()
        (s,) = score_design(engine, task, [(candidate, alignment.rotation)], design)
        seconds = time.perf_counter() - started
        results[threads] = s
        log(
            f"full graph: {len(design):,} ordered pairs, {threads} thread(s), batch "
            f"{engine.batch_size}: {seconds:.1f} s wall ({len(design) / seconds:,.0f} pairs/s), "
            f"IIA {s.mean():.4f}"
        )
    torch.set_num_threads(1)
    log(f"full graph: 1- and 2-thread successes identical: {np.array_equal(*results.values())}")


if __name__ == "__main__":
    main()
