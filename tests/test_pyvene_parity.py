"""Parity with pyvene 0.1.8, the library the authors ran DAS and their pairwise graphs with.

pyvene's ``LowRankRotatedSpaceIntervention`` at ``block_output`` of layer ℓ with ``unit="pos"``
and ``max_number_of_units = length`` gathers the residual stream after block ℓ at the given
positions, flattens it to [batch, positions × hidden] (``bsd_to_b_sd``, position-major, as the
engine's ``reshape``) and patches h_b + (R_Sᵀ(h_s − h_b)) R_Sᵀ with an embed_dim × rank rotation:
exactly the engine's site (all positions concatenated). The authors' configuration
(``src/arithmetic_das_training.py``: ``"component": "block_output", "unit": "pos",
"max_number_of_units": 6``, ``use_fast=True``) is the one used here. The same rotation is
copied into pyvene's rotate layer and the patched logits are compared pair by pair.

Then every family of ``tests/test_families.py`` (both heads, prompts of different lengths padded
on either side, each pair with its own positions): through pyvene's ``block_output`` where its
table knows the model class, and through its generic component (``model.layers[k].output``,
``intervention.pyvene_bridge``) where it does not (Qwen3, Gemma 3, the classifier heads of
GPT-NeoX, Mistral and Gemma 2). Layer -1 is pyvene's ``block_input`` of block 0.
"""

import pytest
import torch

pv = pytest.importorskip("pyvene")

from test_families import (  # noqa: E402
    FAMILY_MODELS,
    HEADS,
    PROMPTS,
    SPANS,
    TOKENIZER,
    answer_ids_of,
    build_family,
    pairs_of,
    read_logits,
    sites_differ,
)

from intervention.engine import InterchangeEngine, Site  # noqa: E402
from intervention.prompts import encode_prompts  # noqa: E402
from intervention.pyvene_bridge import pyvene_logits, pyvene_rotated, pyvene_supports  # noqa: E402

torch.set_num_threads(1)

PAIRS = 400
RANK = 8
TOLERANCE = 1e-4
FAMILY_TOLERANCE = 1e-5  # measured: under 1e-6 on every family
# The model classes pyvene 0.1.8's table names (block_output); the rest use the generic path.
IN_PYVENE_TABLE = {
    "GPT2LMHeadModel",
    "GPT2ForSequenceClassification",
    "GPTNeoXForCausalLM",
    "LlamaForCausalLM",
    "LlamaForSequenceClassification",
    "Qwen2ForCausalLM",
    "Qwen2ForSequenceClassification",
    "MistralForCausalLM",
    "Gemma2ForCausalLM",
}


@pytest.mark.integration
@pytest.mark.parametrize("layer", [0, 2])
def test_engine_patched_logits_equal_pyvene(task_ids, random_net, layer):
    _, _, ids = task_ids
    length = ids.shape[1]
    engine = InterchangeEngine(random_net, ids, Site(layer), batch_size=128)
    gen = torch.Generator().manual_seed(100 + layer)
    rotation = torch.linalg.qr(torch.randn(engine.dim, RANK, generator=gen))[0].contiguous()
    base = torch.randint(0, len(ids), (PAIRS,), generator=gen)
    source = torch.randint(0, len(ids), (PAIRS,), generator=gen)

    intervenable = pyvene_rotated(random_net, layer, length, rotation)
    positions = list(range(length))
    with torch.no_grad():
        _, patched = intervenable(
            {"input_ids": ids[base]},
            [{"input_ids": ids[source]}],
            {"sources->base": ([[positions] * PAIRS], [[positions] * PAIRS])},
            subspaces=[[list(range(RANK))] * PAIRS],
        )
        ref = patched.logits
        got = engine.patched_logits(base, source, rotation)

    diff = (got - ref).abs().max().item()
    print(f"layer {layer}: max |engine - pyvene| over {PAIRS} pairs = {diff:.3e}")
    assert diff <= TOLERANCE
    assert torch.equal(got.argmax(-1), ref.argmax(-1))
    # The patch is not a no-op: the logits move away from the unpatched base's.
    with torch.no_grad():
        plain = random_net(input_ids=ids[base]).logits
    assert (got - plain).abs().max().item() > 100 * TOLERANCE


@pytest.mark.integration
@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("family", list(FAMILY_MODELS))
def test_engine_equals_pyvene_on_every_family(family, head):
    model, _ = build_family(family, head)
    name = type(model).__name__
    assert pyvene_supports(model) == (name in IN_PYVENE_TABLE), (
        f"pyvene's table changed for {name}: update IN_PYVENE_TABLE"
    )
    answer_ids = answer_ids_of() if head == "causal-lm" else None
    positions = (0, "B", "last")
    for side, layer in (("left", -1), ("left", 1), ("left", 2), ("right", 1)):
        enc = encode_prompts(TOKENIZER, PROMPTS, pad_side=side)
        engine = InterchangeEngine(
            model, enc, Site(layer, positions), answer_ids=answer_ids, spans=SPANS
        )
        base, source = pairs_of(enc.n, layer + 2)
        gen = torch.Generator().manual_seed(layer + 2)
        rotation = torch.linalg.qr(torch.randn(engine.dim, RANK, generator=gen))[0]
        # Each pair at its own positions: pyvene's fast path would write every pair's patch
        # at the first pair's positions (intervention.pyvene_bridge), so not use_fast.
        intervenable = pyvene_rotated(model, layer, len(positions), rotation, use_fast=False)
        logits = pyvene_logits(intervenable, enc.ids, enc.mask, engine.rows, base, source, RANK)
        if answer_ids is not None:  # pyvene returns every position's vocabulary
            logits = logits[torch.arange(len(base)), enc.last[base]][:, answer_ids]
        with torch.no_grad():
            got = engine.patched_logits(base, source, rotation)
            plain = read_logits(model, enc.ids[base], enc.mask[base], enc.last[base], answer_ids)
        where = f"{name} ({side} padding) layer {layer}"
        diff = (got - logits.float()).abs().max().item()
        assert diff <= FAMILY_TOLERANCE, f"{where}: max |engine - pyvene| = {diff:.3g}"
        assert torch.equal(got.argmax(-1), logits.argmax(-1)), where
        differs = sites_differ(enc, engine.rows, layer, base, source)
        assert differs.float().mean() >= 0.6
        assert ((logits - plain).abs().amax(-1)[differs] > 1e-3).all(), f"{where}: no move"
