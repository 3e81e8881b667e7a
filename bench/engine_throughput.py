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

``--families`` (or ``--shape``) instead times decoder families on random weights built from
their transformers configs (``--shape tiny``: 4 blocks × 128 wide, MLP 512, 4 heads, 2 KV
heads; ``gpt2-small``: GPT-2 small's 12 × 768, vocabulary 50257; ``llama-0.5b``: a Llama of
Qwen-2.5-0.5B's shape, 24 × 896, MLP 4864, 14 heads, 2 KV heads, vocabulary 151936, tied
embeddings, 494M parameters), with a causal-LM head read at the answer tokens " 3" .. " 30"
(``--head classifier`` for a sequence-classification head), on the arithmetic task's 1000
prompts, at the residual stream after the middle block, all 6 positions, rank 32. Per family,
each rate is the best over its batch sizes of a run of about ``--seconds``, and every rate
includes the counterfactual labels and the argmax comparison (a shard's whole work):

- engine: ``score_shard`` on shards of a sampled pair design (the workers' call), batch size
  from ``--batch-sizes``;
- pyvene batched: one ``IntervenableModel`` call per batch of pairs (base and source each
  through the full network), at the best of ``--pyvene-batch-sizes``;
- pyvene per pair: the authors' batch of 2 (one unordered pair, both directions).

A markdown table, then ``speedup_vs_pyvene_batched=<geometric mean over families>``.
``--device cuda --dtype bfloat16`` runs the same on a GPU (bench/gpu_check.sh).

``--full-graph`` then also times the whole pairwise graph of one candidate: all 999,000
ordered pairs (``PairDesign.all_pairs(1000)``) through ``score_design`` with a rotation from a
quick ``train_alignment`` (rank 32, 200 steps), with 1 and with 2 threads (the speed-up line
stays last).

Run:

    OMP_WAIT_POLICY=PASSIVE python bench/engine_throughput.py [--full-graph]
    OMP_WAIT_POLICY=PASSIVE python bench/engine_throughput.py --families
    python bench/engine_throughput.py --shape llama-0.5b --device cuda --dtype bfloat16
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import gc  # noqa: E402
import importlib.metadata  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from intervention.das import DASSettings, train_alignment  # noqa: E402
from intervention.engine import InterchangeEngine, Site  # noqa: E402
from intervention.iia import PairDesign, score_design, score_shard  # noqa: E402
from intervention.network import (  # noqa: E402
    accuracy,
    load_network,
    save_network,
    train_network,
)
from intervention.prompts import answer_token_ids, encode_prompts  # noqa: E402
from intervention.pyvene_bridge import pyvene_rotated, pyvene_supports  # noqa: E402
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


# -- decoder families on random weights ---------------------------------------------------------

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# layers, width, MLP width, heads, KV heads, vocabulary (None: the task's tokenizer, rounded up)
SHAPES = {
    "tiny": dict(layers=4, width=128, mlp=512, heads=4, kv_heads=2, vocab=None, family=None),
    "gpt2-small": dict(
        layers=12, width=768, mlp=3072, heads=12, kv_heads=12, vocab=50257, family="gpt2"
    ),
    "llama-0.5b": dict(
        layers=24, width=896, mlp=4864, heads=14, kv_heads=2, vocab=151936, family="llama"
    ),
}


def _gpt2(sh, common):
    import transformers as tf

    config = tf.GPT2Config(
        n_layer=sh["layers"],
        n_embd=sh["width"],
        n_inner=sh["mlp"],
        n_head=sh["heads"],
        n_positions=1024,
        bos_token_id=1,
        eos_token_id=1,
        **common,
    )
    return config, tf.GPT2LMHeadModel, tf.GPT2ForSequenceClassification


def _neox(sh, common):
    import transformers as tf

    config = tf.GPTNeoXConfig(
        num_hidden_layers=sh["layers"],
        hidden_size=sh["width"],
        intermediate_size=sh["mlp"],
        num_attention_heads=sh["heads"],
        max_position_embeddings=2048,
        use_parallel_residual=True,
        rotary_pct=0.25,
        bos_token_id=1,
        eos_token_id=1,
        **common,
    )
    return config, tf.GPTNeoXForCausalLM, tf.GPTNeoXForSequenceClassification


def _llama_like(config_class, lm, classifier, **extra):
    def make(sh, common):
        config = config_class(
            num_hidden_layers=sh["layers"],
            hidden_size=sh["width"],
            intermediate_size=sh["mlp"],
            num_attention_heads=sh["heads"],
            num_key_value_heads=sh["kv_heads"],
            head_dim=sh["width"] // sh["heads"],
            max_position_embeddings=2048,
            tie_word_embeddings=sh["vocab"] is not None and sh["vocab"] > 100_000,
            **extra,
            **common,
        )
        return config, lm, classifier

    return make


def _family_configs():
    import transformers as tf

    return {
        "gpt2": _gpt2,
        "gpt_neox": _neox,
        "llama": _llama_like(
            tf.LlamaConfig, tf.LlamaForCausalLM, tf.LlamaForSequenceClassification
        ),
        "qwen2": _llama_like(
            tf.Qwen2Config, tf.Qwen2ForCausalLM, tf.Qwen2ForSequenceClassification
        ),
        "qwen3": _llama_like(
            tf.Qwen3Config, tf.Qwen3ForCausalLM, tf.Qwen3ForSequenceClassification
        ),
        "mistral": _llama_like(
            tf.MistralConfig, tf.MistralForCausalLM, tf.MistralForSequenceClassification
        ),
        "gemma2": _llama_like(
            tf.Gemma2Config,
            tf.Gemma2ForCausalLM,
            tf.Gemma2ForSequenceClassification,
            final_logit_softcapping=30.0,
        ),
        "gemma3_text": _llama_like(
            tf.Gemma3TextConfig, tf.Gemma3ForCausalLM, tf.Gemma3TextForSequenceClassification
        ),
    }


FAMILY_CONFIGS = _family_configs()


def build_family_model(family, shape, head, n_classes, vocab, device, dtype, seed):
    """A randomly initialised decoder of ``family`` at ``shape``, on ``device`` in ``dtype``."""
    sh = SHAPES[shape]
    vocab = sh["vocab"] or vocab
    common = dict(vocab_size=vocab, pad_token_id=0, num_labels=n_classes)
    config, lm, classifier = FAMILY_CONFIGS[family](sh, common)
    torch.manual_seed(seed)
    with torch.device(device):  # initialised where it runs: a 0.5B model in seconds on a GPU
        model = (lm if head == "causal-lm" else classifier)(config)
    return model.to(dtype=dtype).eval()


def _timed(step, seconds: float, device: str):
    """Calls of ``step() -> pairs`` for about ``seconds`` (at least one, after a warm-up):
    pairs per second."""
    step()
    pairs, calls = 0, 0
    _sync(device)
    started = time.perf_counter()
    while calls < 1 or time.perf_counter() - started < seconds:
        pairs += step()
        calls += 1
    _sync(device)
    return pairs / (time.perf_counter() - started)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def family_rates(family, args, task, tok, enc, answer_ids) -> dict:
    """One row of the family table: the engine's and pyvene's rates on one network."""
    candidate = task.candidates[0]
    dtype = DTYPES[args.dtype]
    n_classes = len(task.classes)
    vocab = 64 * math.ceil(len(tok) / 64)
    started = time.perf_counter()
    model = build_family_model(
        family, args.shape, args.head, n_classes, vocab, args.device, dtype, args.seed
    )
    params = sum(p.numel() for p in model.parameters())
    layer = len(model.base_model.get_submodule("h" if family == "gpt2" else "layers")) // 2
    engine = InterchangeEngine(
        model, enc, Site(layer), batch_size=args.batch_sizes[0], answer_ids=answer_ids
    )
    build = time.perf_counter() - started
    gen = torch.Generator().manual_seed(args.seed)
    rotation = torch.linalg.qr(torch.randn(engine.dim, RANK, generator=gen))[0]
    rotation = rotation.to(device=args.device, dtype=dtype).contiguous()
    n = enc.n

    # The engine: score_shard on shards of a sampled design, as a worker runs them.
    design = PairDesign.sampled(n, max(1, min(n - 1, 400)), args.seed)
    engine_rates = {}
    for size in args.batch_sizes:
        engine.batch_size = size
        step = _engine_step(engine, task, candidate, rotation, design, 2 * size)
        engine_rates[size] = _timed(step, args.seconds / len(args.batch_sizes), args.device)
    engine_batch = max(engine_rates, key=engine_rates.get)

    # pyvene: one call per batch of pairs, every pair through the whole network twice.
    intervenable = pyvene_rotated(model, layer, enc.length, rotation)
    positions = list(range(enc.length))
    rng = np.random.default_rng(args.seed + 1)
    ids = enc.ids.to(args.device)
    last = enc.last.to(args.device)

    def pyvene_successes(base, source):
        labels = task.counterfactual_labels(candidate, base, source)
        return pyvene_readout(base, source).argmax(-1).cpu().numpy() == labels

    def pyvene_readout(base, source):
        b = torch.as_tensor(base, device=args.device)
        s = torch.as_tensor(source, device=args.device)
        with torch.no_grad():
            _, out = intervenable(
                {"input_ids": ids[b]},
                [{"input_ids": ids[s]}],
                {"sources->base": positions},
                subspaces=[[list(range(RANK))] * len(base)],
            )
        logits = out.logits
        if answer_ids is not None:
            rows = torch.arange(len(base), device=logits.device)
            logits = logits[rows, last[b]][:, answer_ids]
        return logits.float()

    def pyvene_step(size):
        def step():
            base = rng.integers(0, n, size)
            source = (base + rng.integers(1, n, size)) % n
            pyvene_successes(base, source)
            return size

        return step

    pv_rates = {
        size: _timed(pyvene_step(size), args.seconds / len(args.pyvene_batch_sizes), args.device)
        for size in args.pyvene_batch_sizes
    }
    pv_batch = max(pv_rates, key=pv_rates.get)
    per_pair = _timed(pyvene_step(2), args.seconds / 2, args.device)

    # The same pairs through both: the largest difference of their logits (float32: rounding;
    # bfloat16: its precision), and how many predicted classes agree.
    base = rng.integers(0, n, 512)
    source = (base + rng.integers(1, n, 512)) % n
    with torch.no_grad():
        ours = engine.patched_logits(torch.as_tensor(base), torch.as_tensor(source), rotation)
    theirs = pyvene_readout(base, source)
    diff = (ours - theirs).abs().max().item()
    agree = (ours.argmax(-1) == theirs.argmax(-1)).float().mean().item()
    row = dict(
        family=family,
        model=type(model).__name__,
        params=params,
        layer=layer,
        engine=engine_rates[engine_batch],
        engine_batch=engine_batch,
        pyvene=pv_rates[pv_batch],
        pyvene_batch=pv_batch,
        per_pair=per_pair,
        agree=agree,
        diff=diff,
        pyvene_path="table" if pyvene_supports(model) else "generic",
        build=build,
    )
    log(
        f"{family}: {type(model).__name__} {params / 1e6:.1f}M params, built in {build:.1f} s; "
        "engine "
        + ", ".join(f"{k}: {v:,.0f}" for k, v in engine_rates.items())
        + "; pyvene "
        + ", ".join(f"{k}: {v:,.0f}" for k, v in pv_rates.items())
        + f", per pair {per_pair:,.0f} pairs/s; max |engine - pyvene| logit {diff:.2g}, "
        f"argmax agrees on {agree:.3f}"
    )
    return row


def _engine_step(engine, task, candidate, rotation, design, shard_size):
    """One shard of the design per call, round and round."""
    shards = design.shards(shard_size)
    count = iter(range(10**9))

    def step():
        shard = shards[next(count) % len(shards)]
        score_shard(engine, task, candidate, rotation, design, shard)
        return len(shard)

    return step


def families_main(args, parser) -> None:
    if args.shape is None:
        args.shape = "tiny"
    preset = SHAPES[args.shape]["family"]
    if args.families:
        families = args.families
        if preset is not None and families != [preset]:
            parser.error(f"--shape {args.shape} is a {preset} shape; leave --families out")
    else:
        families = [preset] if preset is not None else list(FAMILY_CONFIGS)
    gpu = args.device.startswith("cuda")
    if gpu and not torch.cuda.is_available():
        sys.exit(f"--device {args.device}: torch {torch.__version__} sees no CUDA device")
    if args.seconds is None:
        args.seconds = 3.0 if gpu else 2.0
    if args.batch_sizes == parser.get_default("batch_sizes"):
        args.batch_sizes = [4096, 16384, 65536] if gpu else [256, 1024]
    if args.pyvene_batch_sizes is None:
        args.pyvene_batch_sizes = [256, 1024, 4096] if gpu else [128, 512]
    torch.set_num_threads(args.threads)
    name = torch.cuda.get_device_name(args.device) if gpu else f"cpu, {args.threads} thread(s)"
    sh = SHAPES[args.shape]
    log(
        f"torch {torch.__version__}, {name}; shape {args.shape} ({sh['layers']} blocks x "
        f"{sh['width']}, MLP {sh['mlp']}), {args.dtype}, {args.head} head"
    )
    task = dataclasses.replace(arithmetic(), answer=" {O}")
    prompts = task.prompts()
    answers = task.answers()
    tok = build_tokenizer([*prompts, *answers])
    enc = encode_prompts(tok, prompts)
    answer_ids = None
    if args.head == "causal-lm":
        answer_ids = answer_token_ids(tok, answers, task.classes)
    rows = []
    for f in families:
        rows.append(family_rates(f, args, task, tok, enc, answer_ids))
        gc.collect()
        if gpu:
            torch.cuda.empty_cache()

    print()
    print(
        f"Pairs per second, {name}, {args.dtype}, shape {args.shape}, {args.head} head, "
        f"site: residual stream after the middle block, all {enc.length} positions, rank {RANK}; "
        "labels and argmax included in every rate."
    )
    print()
    print(
        "| family | model | params | engine (batch) | pyvene batched (batch) | pyvene per pair "
        "| engine / pyvene batched | engine / per pair | max Δ logit | argmax agrees |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['family']} | {r['model']} | {r['params'] / 1e6:.1f}M "
            f"| {r['engine']:,.0f} ({r['engine_batch']}) "
            f"| {r['pyvene']:,.0f} ({r['pyvene_batch']}, {r['pyvene_path']}) "
            f"| {r['per_pair']:,.0f} | {r['engine'] / r['pyvene']:.1f}x "
            f"| {r['engine'] / r['per_pair']:.0f}x | {r['diff']:.1e} | {r['agree']:.3f} |"
        )
    geo = math.exp(np.mean([math.log(r["engine"] / r["pyvene"]) for r in rows]))
    print()
    print(f"speedup_vs_pyvene_batched={geo:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/ccm_bench/arithmetic_gpt2"))
    parser.add_argument("--authors-pairs", type=int, default=1000, help="unordered pairs")
    parser.add_argument("--pairs", type=int, default=400_000, help="ordered pairs, engine")
    parser.add_argument("--full-forward-pairs", type=int, default=100_000)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1024, 2048, 4096, 8192])
    parser.add_argument("--full-graph", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    family = parser.add_argument_group("decoder families on random weights (see above)")
    family.add_argument(
        "--families",
        nargs="*",
        choices=sorted(FAMILY_CONFIGS),
        metavar="FAMILY",
        help=f"time these families (none named: all of {', '.join(FAMILY_CONFIGS)})",
    )
    family.add_argument(
        "--shape",
        choices=sorted(SHAPES),
        help="tiny (the default with --families), or a preset that names its family",
    )
    family.add_argument("--head", choices=["causal-lm", "classifier"], default="causal-lm")
    family.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    family.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    family.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="length of each timed run (default: 2 on cpu, 3 on a gpu)",
    )
    family.add_argument("--pyvene-batch-sizes", type=int, nargs="+", default=None)
    family.add_argument("--threads", type=int, default=1, help="torch threads on cpu")
    args = parser.parse_args()
    if args.families is not None or args.shape is not None:
        families_main(args, parser)
        return
    if args.device != "cpu" or args.dtype != "float32":
        parser.error("--device and --dtype apply to --families / --shape runs")

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
