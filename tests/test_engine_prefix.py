"""The engine's prefix path against its full path.

For prompts of one length the engine computes each input's keys and values of its tokens
before the earliest site position once, and a pair runs only the tokens from there on through
the network's own forward. Every family of ``tests/test_families.py`` (both heads), at a site
on the last token, on a middle token and on two tokens, at the embeddings and after a middle
block: the prefix path is taken, and its patched logits, their gradient in the rotation and
its successes equal those of an engine that runs every token (``prefix_cache=False``).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from test_families import FAMILY_MODELS, HEADS, TOKENIZER, answer_ids_of, build_family

import intervention.adapters as adapters
from intervention.engine import InterchangeEngine, Site
from intervention.prompts import encode_prompts

torch.set_num_threads(1)

TOLERANCE = 1e-5  # fp32, max |prefix - full| over the logits (measured: about 1e-6)
MOVED = 1e-3
PAIRS = 60
RANK = 4

# 54 prompts of 6 tokens each (no padding), which differ at positions 0, 1, 3 and 5, so a
# patch at any of those moves the logits.
PROMPTS = [
    f"{d} {n} saw {b} then {c}"
    for d, n, b, c in itertools.product(
        ("the", "a", "my"), ("cat", "dog", "pet"), "xyz", ("one", "two")
    )
]
LENGTH = 6
# (positions, the earliest of them): the last token, a middle one, two far apart.
SITES = (((-1,), LENGTH - 1), ((3,), 3), ((1, "last"), 1))


def encoded():
    enc = encode_prompts(TOKENIZER, PROMPTS)
    assert not enc.padded and enc.length == LENGTH
    return enc


def balanced_labels(logits: torch.Tensor) -> np.ndarray:
    """Labels the argmax matches on even pairs and misses on odd ones."""
    pred = logits.argmax(-1).numpy()
    hit = np.arange(len(pred)) % 2 == 0
    return np.where(hit, pred, (pred + 1) % logits.shape[-1])


def compare(prefix: InterchangeEngine, full: InterchangeEngine, seed: int, where: str):
    """Patched logits, their gradient in R and successes: the prefix path equals the full."""
    gen = torch.Generator().manual_seed(seed)
    n = prefix.n_inputs
    base = torch.randint(0, n, (PAIRS,), generator=gen)
    source = (base + torch.randint(1, n, (PAIRS,), generator=gen)) % n
    rotation = torch.linalg.qr(torch.randn(prefix.dim, RANK, generator=gen))[0]
    grads, logits = [], []
    for engine in (prefix, full):
        r = rotation.clone().requires_grad_(True)
        out = engine.patched_logits(base, source, r)
        (out * torch.linspace(-1, 1, out.shape[-1])).sum().backward()
        grads.append(r.grad)
        logits.append(out.detach())
    diff = (logits[0] - logits[1]).abs().max().item()
    assert diff <= TOLERANCE, f"{where}: max |prefix - full| = {diff:.3g}"
    assert torch.equal(logits[0].argmax(-1), logits[1].argmax(-1)), where
    grad_diff = (grads[0] - grads[1]).abs().max().item()
    assert grad_diff <= 10 * TOLERANCE * max(1.0, grads[1].abs().max().item()), where
    # Not two no-ops agreeing: the patch moved most pairs' logits.
    moved = (logits[1] - full.base_logits(base)).abs().amax(-1)
    assert (moved > MOVED).float().mean().item() >= 0.5, f"{where}: moved {moved}"
    labels = balanced_labels(logits[1])
    b, s = base.numpy(), source.numpy()
    assert np.array_equal(
        prefix.successes(b, s, rotation, labels), full.successes(b, s, rotation, labels)
    ), where


@pytest.mark.integration
@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("family", list(FAMILY_MODELS))
def test_prefix_path_equals_the_full_path(family, head):
    model, _ = build_family(family, head)
    enc = encoded()
    answer_ids = answer_ids_of() if head == "causal-lm" else None
    for layer, (positions, start) in itertools.product((-1, 1), SITES):
        where = f"{type(model).__name__} layer {layer} positions {positions}"
        engines = [
            InterchangeEngine(
                model, enc, Site(layer, positions), batch_size=16, answer_ids=answer_ids, **kw
            )
            for kw in ({}, {"prefix_cache": False})
        ]
        prefix, full = engines
        assert prefix.prefix_cached and prefix.start == start, where
        assert not full.prefix_cached and full.start == 0, where
        # The residual stream below a site after a block is cached too: the blocks below it
        # are skipped and keep no keys.
        assert prefix.cached and (prefix.past[0] is None) == (layer >= 0), where
        compare(prefix, full, seed=10 * layer + start, where=where)


@pytest.mark.integration
def test_prefix_path_on_the_task_network(task_ids, random_net):
    """The arithmetic task's GPT-2 (6-token prompts), the site at the last token after each
    block (at the embeddings, at Z: the last token is '=' in every prompt)."""
    _, _, ids = task_ids
    for layer in (-1, 0, 2):
        site = Site(layer, (4,) if layer == -1 else (5,))
        prefix = InterchangeEngine(random_net, ids, site, batch_size=256)
        full = InterchangeEngine(random_net, ids, site, batch_size=256, prefix_cache=False)
        assert prefix.prefix_cached and prefix.start == site.positions[0]
        compare(prefix, full, seed=layer + 3, where=f"layer {layer}")


@pytest.mark.integration
def test_prefix_path_without_the_residual_stream():
    """A budget too small for the residual stream but enough for the keys and values of one
    token (grouped-query attention: half the width per layer): every block runs, on the
    tokens from the site on."""
    model, _ = build_family("llama", "causal-lm")
    enc = encoded()
    site = Site(1, (1, "last"))
    stream = enc.ids.numel() * model.config.hidden_size * 4
    kw = dict(site=site, batch_size=16, answer_ids=answer_ids_of(), cache_bytes=stream - 1)
    prefix = InterchangeEngine(model, enc, **kw)
    full = InterchangeEngine(model, enc, prefix_cache=False, **kw)
    assert not prefix.cached and not full.cached
    assert prefix.prefix_cached and prefix.start == 1
    assert all(p is not None for p in prefix.past)  # every block runs: each keeps its keys
    compare(prefix, full, seed=5, where="llama without the residual stream")


@pytest.mark.unit
def test_prefix_path_only_where_it_applies_and_fits(task_ids, random_net):
    _, _, ids = task_ids
    site = Site(1, (4, 5))
    # Padded prompts keep the full path (their real tokens are at other columns).
    padded = encode_prompts(TOKENIZER, ["bob saw x", "the cat saw y then one"])
    model, _ = build_family("gpt2", "classifier")
    assert padded.padded
    assert not InterchangeEngine(model, padded, Site(1, ("last",))).prefix_cached
    # A site at the first token: nothing before it.
    assert not InterchangeEngine(random_net, ids, Site(1, (0, 5))).prefix_cached
    # The budget is shared with the residual stream, which comes first.
    stream = ids.numel() * random_net.config.n_embd * 4
    both = InterchangeEngine(random_net, ids, site)
    assert both.cached and both.prefix_cached
    # Keys and values of block 2 only (blocks 0 and 1 are skipped), 4 tokens, 32 wide.
    kv = sum(k.nbytes + v.nbytes for k, v in (p for p in both.past if p is not None))
    assert kv == len(ids) * 2 * 4 * 32 * 4
    exact = InterchangeEngine(random_net, ids, site, cache_bytes=stream + kv)
    assert exact.cached and exact.prefix_cached
    short = InterchangeEngine(random_net, ids, site, cache_bytes=stream + kv - 1)
    assert short.cached and not short.prefix_cached
    nothing = InterchangeEngine(random_net, ids, site, cache_bytes=0)
    assert not nothing.cached and not nothing.prefix_cached


@pytest.mark.integration
@pytest.mark.parametrize("how", ["wrong", "refused"])
def test_a_forward_that_fails_the_prefix_path_falls_back(monkeypatch, task_ids, random_net, how):
    """A forward that reads the cached keys wrongly (here: zeroed) fails the self-check, one
    that refuses them raises; either way the engine scores through the full path."""
    _, _, ids = task_ids
    make = adapters._cache_of

    def broken(past):
        if how == "refused" and past:
            raise TypeError("this forward takes no cache")
        return make([(k * 0, v * 0) for k, v in past])

    full = InterchangeEngine(random_net, ids, Site(0, (5,)), prefix_cache=False)
    monkeypatch.setattr(adapters, "_cache_of", broken)
    engine = InterchangeEngine(random_net, ids, Site(0, (5,)))
    assert not engine.prefix_cached and engine.start == 0 and engine.past is None
    assert torch.equal(engine.base_logits(), full.base_logits())


def bf16_prefix_agreement(device: str) -> tuple[bool, float]:
    """A Llama-shaped causal LM in bfloat16 on ``device``, site at the last token after a
    middle block: whether the prefix path was taken, and the share of pairs whose argmax it
    shares with the full path where the full path's top two are not a near tie."""
    model, _ = build_family("llama", "causal-lm")
    model = model.to(device=device, dtype=torch.bfloat16)
    enc = encoded()
    kw = dict(site=Site(1, ("last",)), batch_size=16, answer_ids=answer_ids_of())
    prefix = InterchangeEngine(model, enc, **kw)
    full = InterchangeEngine(model, enc, prefix_cache=False, **kw)
    gen = torch.Generator().manual_seed(3)
    base = torch.randint(0, enc.n, (200,), generator=gen)
    source = torch.randint(0, enc.n, (200,), generator=gen)
    rotation = torch.linalg.qr(torch.randn(prefix.dim, RANK, generator=gen))[0]
    rotation = rotation.to(device=device, dtype=torch.bfloat16)
    with torch.no_grad():
        got = prefix.patched_logits(base, source, rotation)
        want = full.patched_logits(base, source, rotation)
    top2 = want.topk(2, dim=-1).values
    clear = (top2[:, 0] - top2[:, 1]) > 0.05 * want.abs().amax(-1).clamp_min(1e-3)
    agree = got.argmax(-1)[clear] == want.argmax(-1)[clear]
    return prefix.prefix_cached, agree.float().mean().item()


@pytest.mark.integration
def test_bf16_prefix_path_on_cpu():
    assert bf16_prefix_agreement("cpu") == (True, 1.0)


@pytest.mark.gpu
def test_bf16_prefix_path_on_cuda():
    assert bf16_prefix_agreement("cuda") == (True, 1.0)
