"""A data task of n rows through the whole in-process pipeline, with a sampled pair design:
peak memory and time at n = 10⁴ (the baseline) and n = 10⁵, each in its own process.

The network is a random-init 2-block GPT-2 classifier (this measures the pipeline's memory and
time, not what the network computes; the accuracy floor is set low on purpose). Five input
variables of ten values give 10⁵ distinct rows; two candidates, one site, 2 partners per input.

    python bench/data_scale.py            # both sizes, a markdown table with the ratios
    python bench/data_scale.py --n 100000 # one size, one JSON line (what each subprocess runs)
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

VARIABLES = ("A", "B", "C", "D", "E")

SPEC = """
name = "scale"
results = "{results}"
[task.data]
path = "{data}"
output = "A + B + C + D + E"
template = "{{A}}+{{B}}+{{C}}+{{D}}+{{E}}="
classes = {classes}
[candidates.first]
P = "A + B"
O = "P + C + D + E"
[candidates.last]
P = "E"
O = "A + B + C + D + P"
[network]
path = "{network}"
accuracy_floor = 1e-6
[[sites]]
layer = 0
positions = ["last"]
rank = 4
[das]
steps = 20
[pairs]
design = "sampled"
partners = 2
[solve]
floors = [0.5]
time_limit = 10
[execution]
mode = "in-process"
shard_size = 65536
"""


def one(n: int) -> dict:
    import torch

    from intervention.network import TrainSettings, build_network, save_network
    from intervention.tokenizer import build_tokenizer
    from service.pipeline import run
    from service.spec import load_spec

    torch.set_num_threads(1)
    folder = Path(tempfile.mkdtemp(prefix="ccm-scale-"))
    rows = itertools.islice(itertools.product(range(10), repeat=len(VARIABLES)), n)
    with (folder / "inputs.jsonl").open("w") as f:
        for row in rows:
            f.write(json.dumps(dict(zip(VARIABLES, row))) + "\n")
    tokenizer = build_tokenizer(["0+1+2+3+4+5+6+7+8+9="])
    model = build_network(TrainSettings(n_layer=2, n_embd=64), len(tokenizer), 10, 46, 0)
    save_network(model, tokenizer, folder / "net")
    spec_path = folder / "spec.toml"
    spec_path.write_text(
        SPEC.format(
            results=folder / "out",
            data=folder / "inputs.jsonl",
            network=folder / "net",
            classes=list(range(46)),
        )
    )
    started = time.perf_counter()
    report = run(load_spec(spec_path), log=lambda line: None)
    seconds = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "n": n,
        "seconds": round(seconds, 1),
        "peak_mib": round(peak_mib),
        "pairs_per_candidate": 2 * n * 2,
        "strength": report["frontier"][0]["strength"],
        "timings": report["timings"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, help="one size in this process (JSON line out)")
    args = parser.parse_args()
    if args.n:
        print(json.dumps(one(args.n)))
        return
    results = []
    for n in (10_000, 100_000):
        out = subprocess.run(
            [sys.executable, __file__, "--n", str(n)], capture_output=True, text=True, check=True
        )
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    base = results[0]
    print("| n | pairs per candidate | seconds | peak RSS MiB | time ratio | memory ratio |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['n']:,} | {r['pairs_per_candidate']:,} | {r['seconds']} | {r['peak_mib']} | "
            f"{r['seconds'] / base['seconds']:.1f}x | {r['peak_mib'] / base['peak_mib']:.2f}x |"
        )
    for r in results:
        print(f"n={r['n']}: stages {r['timings']}")


if __name__ == "__main__":
    main()
