"""The engine's prefix path (each input's keys and values before the site cached once, a pair
runs only the tokens from the site on) against its full path (every pair runs every token
through the blocks above the site), in one run, on one thread.

The network is a 2-block, 64-wide GPT-2 classifier (random weights from a fixed seed: the
time does not depend on them) over the arithmetic task's 1000 six-token prompts; the site is
the residual stream after ``--layer`` (block 0) at the last token; one rank-``--rank``
rotation; ``--pairs`` ordered pairs (default: all 999,000) scored by ``successes`` with the
first candidate's counterfactual labels (computed beforehand, not timed). Both paths must give
identical successes (a float difference may flip an exact tie only: the count is printed).
The last line is ``prefix_speedup=<full seconds / prefix seconds>``.

Run:

    OMP_WAIT_POLICY=PASSIVE python bench/engine_prefix.py [--pairs 200000]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from intervention.engine import InterchangeEngine, Site  # noqa: E402
from intervention.iia import PairDesign  # noqa: E402
from intervention.network import TrainSettings, build_network  # noqa: E402
from intervention.tasks import arithmetic  # noqa: E402
from intervention.tokenizer import build_tokenizer, encode_fixed_length  # noqa: E402


def timed_successes(engine: InterchangeEngine, base, source, rotation, labels):
    start = time.perf_counter()
    out = engine.successes(base, source, rotation, labels)
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=None, help="default: all ordered pairs")
    parser.add_argument("--layer", type=int, default=0)
    parser.add_argument("--rank", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    task = arithmetic()
    prompts = task.prompts()
    tok = build_tokenizer(prompts)
    ids = encode_fixed_length(tok, prompts)
    settings = TrainSettings(n_layer=2, n_embd=64, n_head=4, seed=args.seed)
    model = build_network(settings, len(tok), ids.shape[1], len(task.classes), tok.pad_token_id)
    site = Site(args.layer, (ids.shape[1] - 1,))

    design = PairDesign.all_pairs(len(ids))
    base, source = design.base, design.source
    if args.pairs is not None and args.pairs < len(base):
        pick = np.random.default_rng(args.seed).choice(len(base), args.pairs, replace=False)
        base, source = base[pick], source[pick]
    labels = task.counterfactual_labels(task.candidates[0], base, source)

    prefix = InterchangeEngine(model, ids, site, batch_size=args.batch_size)
    full = InterchangeEngine(model, ids, site, batch_size=args.batch_size, prefix_cache=False)
    assert prefix.prefix_cached and not full.prefix_cached
    gen = torch.Generator().manual_seed(args.seed)
    rotation = torch.linalg.qr(torch.randn(prefix.dim, args.rank, generator=gen))[0]

    print(
        f"{len(base):,} pairs, {len(ids)} prompts of {ids.shape[1]} tokens, "
        f"{site.describe()}, rank {args.rank}, {args.threads} thread(s)",
        flush=True,
    )
    got_full, t_full = timed_successes(full, base, source, rotation, labels)
    print(f"full path:   {t_full:7.2f} s  ({len(base) / t_full:,.0f} pairs/s)", flush=True)
    got_prefix, t_prefix = timed_successes(prefix, base, source, rotation, labels)
    print(f"prefix path: {t_prefix:7.2f} s  ({len(base) / t_prefix:,.0f} pairs/s)", flush=True)
    print(f"successes differing: {int((got_full != got_prefix).sum())} of {len(base):,}")
    print(f"prefix_speedup={t_full / t_prefix:.2f}")


if __name__ == "__main__":
    main()
