"""The same small job in-process and on the embedded local Ray (wall-time ratio, target
<= 1.15), and IIA scoring with 1 vs 2 actors. One network is trained first and shared, so the
runs differ only in execution. Run inside a network namespace that allows Ray to bind.

    python bench/ray_overhead.py [--partners 20]

Last line: `ray_vs_in_process=<ratio> scoring_2_vs_1_actors=<ratio>`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from service.pipeline import JobContext, build_task, network_stage, prepare_results, run  # noqa: E402
from service.spec import load_spec  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "arithmetic-small.toml"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--partners", type=int, default=20)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ccm-ray-bench-"))
    spec = load_spec(EXAMPLE)
    spec = spec.model_copy(update={"results": str(work / "net")})
    ctx = JobContext(spec, prepare_results(spec), log=lambda s: None)
    *_, network_dir = network_stage(ctx, build_task(spec)[0])

    def job(tag: str, **execution):
        s = spec.model_copy(
            update={
                "results": str(work / tag),
                "network": spec.network.model_copy(
                    update={"train": None, "path": str(network_dir)}
                ),
                "pairs": spec.pairs.model_copy(update={"partners": args.partners}),
                "execution": spec.execution.model_copy(update={"shard_size": 4000, **execution}),
            }
        )
        started = time.perf_counter()
        report = run(s, log=lambda m: None)
        wall = time.perf_counter() - started
        t = report["timings"]
        print(
            f"{tag:>12}: wall {wall:6.1f} s, align {t['align_seconds']:6.1f} s, "
            f"score {t['score_seconds']:6.1f} s",
            flush=True,
        )
        return wall, t["score_seconds"]

    inproc, _ = job("in-process", mode="in-process")
    ray2, score2 = job("ray-2", mode="local-ray", workers=2)
    _, score1 = job("ray-1", mode="local-ray", workers=1)
    print(f"ray_vs_in_process={ray2 / inproc:.3f} scoring_2_vs_1_actors={score1 / score2:.3f}")


if __name__ == "__main__":
    main()
