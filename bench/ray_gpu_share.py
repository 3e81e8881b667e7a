"""One job's IIA scoring on the embedded local Ray: 4 actors sharing one GPU (0.25 each)
against 1 actor holding it, through the service's own ``RayExecutor`` and ``Worker`` (each
actor loads the network once, moves it to its GPU and scores shards of (base, source) pairs).

The job is ``examples/arithmetic-small.toml`` with its network replaced by an untrained GPT-2
(``--layers`` × ``--width``, saved to a temporary folder and loaded by the workers through
``network.path``), its site moved to the middle block (all 6 positions, rank 32), the
all-pairs design (999,000 ordered pairs per candidate) and random orthonormal rotations for
its 6 candidates instead of DAS, so that only the scoring is timed. Each pool first scores one
small shard per in-flight slot (the engines' caches; not timed). Both pools must give the
same successes, pair for pair.

    python bench/ray_gpu_share.py             # needs CUDA; stops at once without it
    python bench/ray_gpu_share.py --dry-run   # CPU: the same job's set-up and two shards
                                              # in-process, no Ray, no GPU

Last line: ``gpu_share_4_vs_1_actors=<1-actor scoring seconds / 4-actor scoring seconds>``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from intervention.iia import PairDesign  # noqa: E402
from intervention.network import TrainSettings, build_network, save_network  # noqa: E402
from intervention.tokenizer import build_tokenizer, encode_fixed_length  # noqa: E402
from service.spec import load_spec  # noqa: E402
from service.task import build_task  # noqa: E402
from service.worker import ShardJob  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "arithmetic-small.toml"
RANK = 32


def log(msg: str) -> None:
    print(msg, flush=True)


def make_job(args, work: Path):
    """The spec (network from a saved untrained GPT-2), the task, the design and rotations."""
    spec = load_spec(EXAMPLE)
    task, models = build_task(spec)
    prompts = task.prompts()
    tok = build_tokenizer(prompts)
    ids = encode_fixed_length(tok, prompts)
    settings = TrainSettings(n_layer=args.layers, n_embd=args.width, n_head=args.width // 64 or 1)
    model = build_network(settings, len(tok), ids.shape[1], len(task.classes), tok.pad_token_id)
    network = save_network(model, tok, work / "network")
    spec = spec.model_copy(
        update={
            "results": str(work / "results"),
            "network": spec.network.model_copy(update={"train": None, "path": str(network)}),
            "sites": [spec.sites[0].model_copy(update={"layer": args.layers // 2, "rank": RANK})],
            "pairs": spec.pairs.model_copy(update={"design": "all"}),
            "execution": spec.execution.model_copy(
                update={"mode": "local-ray", "shard_size": args.shard_size}
            ),
        }
    )
    design = PairDesign.all_pairs(len(prompts))
    if args.pairs:
        keep = np.random.default_rng(0).permutation(len(design))[: args.pairs]
        keep.sort()
        design = PairDesign(design.n_inputs, design.base[keep], design.source[keep])
    dim = ids.shape[1] * args.width
    gen = torch.Generator().manual_seed(0)
    rotations = {
        (0, m): torch.linalg.qr(torch.randn(dim, RANK, generator=gen))[0].contiguous()
        for m in range(len(models))
    }
    jobs = [
        ShardJob(0, m, int(s[0]), int(s[-1]) + 1)
        for m in range(len(models))
        for s in design.shards(args.shard_size)
    ]
    return spec, network, design, rotations, jobs


def score(executor, jobs, design, rotations, warm: int) -> tuple[float, np.ndarray]:
    """Scoring seconds of ``jobs`` (after ``warm`` small warm-up shards) and the successes in
    job order."""
    small = [ShardJob(0, 0, 0, min(256, len(design)))] * warm
    for _ in executor.score(small, design, rotations):
        pass
    started = time.perf_counter()
    results = dict(executor.score(jobs, design, rotations))
    seconds = time.perf_counter() - started
    return seconds, np.concatenate([results[job] for job in jobs])


def pool(spec, network, workers: int, gpus: float):
    from service.ray_exec import IN_FLIGHT, RayExecutor

    spec = spec.model_copy(
        update={
            "execution": spec.execution.model_copy(
                update={"workers": workers, "gpus_per_worker": gpus}
            )
        }
    )
    started = time.perf_counter()
    executor = RayExecutor(spec, network, "", log, None)
    log(f"{workers} actor(s) x {gpus:g} GPU ready in {time.perf_counter() - started:.1f} s")
    return executor, IN_FLIGHT * len(executor.actors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="CPU, in-process, no Ray")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--shard-size", type=int, default=65536)
    parser.add_argument("--pairs", type=int, default=0, help="score this many (0: all pairs)")
    args = parser.parse_args()
    if not args.dry_run and not torch.cuda.is_available():
        sys.exit(
            f"ray_gpu_share: torch {torch.__version__} sees no CUDA device; this bench needs "
            "one GPU (--dry-run checks the set-up on the CPU)"
        )
    work = Path(tempfile.mkdtemp(prefix="ccm-gpu-share-"))
    spec, network, design, rotations, jobs = make_job(args, work)
    log(
        f"job: {len(rotations)} candidates x {len(design):,} pairs = "
        f"{len(rotations) * len(design):,} scored in {len(jobs)} shards of <= "
        f"{args.shard_size:,}; GPT-2 {args.layers} x {args.width} (untrained), site block "
        f"{spec.sites[0].layer}, all positions, rank {RANK}"
    )

    if args.dry_run:
        from service.executors import InProcessExecutor

        torch.set_num_threads(1)
        executor = InProcessExecutor(spec, network, "", log)
        small = [ShardJob(0, m, 0, 512) for m in (0, 1)]
        seconds, got = score(executor, small, design, rotations, warm=1)
        log(
            f"dry run: 2 shards of 512 pairs in-process on the CPU in {seconds:.2f} s "
            f"(IIA {got.mean():.3f}); the GPU run starts Ray with 4 x 0.25 and 1 x 1 GPU actors"
        )
        return

    import ray

    from service.ray_exec import WORKER_ENV

    ray.init(log_to_driver=False, runtime_env={"env_vars": WORKER_ENV})
    try:
        log(f"ray: {ray.cluster_resources()}")
        four, warm = pool(spec, network, 4, 0.25)
        try:
            shared, s4 = score(four, jobs, design, rotations, warm)
        finally:
            four.close()
        log(f"4 actors x 0.25 GPU: scoring {shared:.2f} s ({len(s4) / shared:,.0f} pairs/s)")
        one, warm = pool(spec, network, 1, 1.0)
        try:
            alone, s1 = score(one, jobs, design, rotations, warm)
        finally:
            one.close()
        log(f"1 actor x 1 GPU:     scoring {alone:.2f} s ({len(s1) / alone:,.0f} pairs/s)")
    finally:
        ray.shutdown()
    same = np.array_equal(s1, s4)
    log(f"same successes pair for pair: {same} (IIA {s1.mean():.4f})")
    if not same:
        sys.exit("the 4-actor and 1-actor pools disagree")
    print(f"gpu_share_4_vs_1_actors={alone / shared:.2f}")


if __name__ == "__main__":
    main()
