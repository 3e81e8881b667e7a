"""pyvene (optional extra) at this project's sites: its LowRankRotatedSpaceIntervention on the
residual stream after a block, over all positions, holding exactly a given rotation. Used to
check parity with pyvene and to time the authors' per-pair approach against the engine."""

from __future__ import annotations

import logging

import torch


def pyvene_rotated(model, layer: int, length: int, rotation: torch.Tensor):
    """An IntervenableModel rotating the block ``layer`` output over ``length`` positions
    (concatenated, as the engine's site) in the span of ``rotation`` [dim, rank]."""
    import pyvene as pv

    logging.getLogger().setLevel(logging.ERROR)  # pyvene warns about use_fast on every build
    config = pv.IntervenableConfig(
        {
            "layer": layer,
            "component": "block_output",
            "low_rank_dimension": rotation.shape[1],
            "unit": "pos",
            "max_number_of_units": length,
        },
        intervention_types=pv.LowRankRotatedSpaceIntervention,
        model_type=type(model),
    )
    intervenable = pv.IntervenableModel(config, model, use_fast=True)
    intervenable.disable_model_gradients()
    (intervention,) = intervenable.interventions.values()
    if isinstance(intervention, tuple | list):  # older pyvene: (intervention, hook)
        intervention = intervention[0]
    rotate = intervention.rotate_layer
    if tuple(rotate.weight.shape) != tuple(rotation.shape):
        raise ValueError(
            f"pyvene's rotation is {tuple(rotate.weight.shape)}, given {tuple(rotation.shape)}"
        )
    # The rotate layer is orthogonally parametrised; drop the parametrisation so the weight
    # is the given matrix bit for bit, not a re-orthogonalised copy of it.
    torch.nn.utils.parametrize.remove_parametrizations(rotate, "weight")
    with torch.no_grad():
        rotate.weight.copy_(rotation)
    return intervenable
