"""Parity with pyvene 0.1.8, the library the authors ran DAS and their pairwise graphs with.

pyvene's ``LowRankRotatedSpaceIntervention`` at ``block_output`` of layer ℓ with ``unit="pos"``
and ``max_number_of_units = length`` gathers the residual stream after block ℓ at the given
positions, flattens it to [batch, positions × hidden] (``bsd_to_b_sd``, position-major, as the
engine's ``reshape``) and patches h_b + (R_Sᵀ(h_s − h_b)) R_Sᵀ with an embed_dim × rank rotation:
exactly the engine's site (all positions concatenated). The authors' configuration
(``src/arithmetic_das_training.py``: ``"component": "block_output", "unit": "pos",
"max_number_of_units": 6``, ``use_fast=True``) is the one used here. The same rotation is
copied into pyvene's rotate layer and the patched logits are compared pair by pair.
"""

import pytest
import torch

pv = pytest.importorskip("pyvene")

from intervention.engine import InterchangeEngine, Site  # noqa: E402
from intervention.pyvene_bridge import pyvene_rotated  # noqa: E402

torch.set_num_threads(1)

PAIRS = 400
RANK = 8
TOLERANCE = 1e-4


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
