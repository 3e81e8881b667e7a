"""pyvene (optional extra) at this project's sites: its LowRankRotatedSpaceIntervention on the
residual stream after a block (or, for layer -1, block 0's input), at a site's positions
concatenated, holding exactly a given rotation. Used to check parity with pyvene and to time
the authors' per-pair approach against the engine.

pyvene 0.1.8 names the residual stream ``block_output`` for the model classes in its table
(``pyvene_supports``: GPT-2, GPT-NeoX's causal LM, Llama, Mistral's causal LM, Gemma,
Gemma 2's causal LM, Qwen2, OLMo, ...). For any other decoder (Qwen3, Gemma 3, the classifier
heads of Mistral, Gemma 2 and GPT-NeoX, ...) the bridge names the block module itself
(``model.layers[k].output``, pyvene's generic form), built from the engine's block list, and
gives pyvene the intervention ready made, since pyvene cannot size it for a class it does not
know.
"""

from __future__ import annotations

import logging

import torch

from intervention.adapters import decoder_blocks


def pyvene_supports(model) -> bool:
    """Whether pyvene's table names this model class's components (``block_output``)."""
    from pyvene.models.intervenable_modelcard import type_to_module_mapping

    return type(model) in type_to_module_mapping


def _blocks_path(model, layers: str | None) -> str:
    """The dotted path of the model's block list, as pyvene's generic components name it."""
    blocks = decoder_blocks(model, layers)
    for name, module in model.named_modules():
        if module is blocks:
            return name
    raise ValueError(f"the block list of this {type(model).__name__} is not one of its modules")


def pyvene_rotated(
    model,
    layer: int,
    length: int,
    rotation: torch.Tensor,
    *,
    layers: str | None = None,
    use_fast: bool = True,
):
    """An IntervenableModel rotating the residual stream after block ``layer`` (-1: block 0's
    input, the embedding output) over ``length`` positions (concatenated, as the engine's site)
    in the span of ``rotation`` [dim, rank]. ``layers``: the block list's path, for a decoder
    outside the adapters' families (always used through pyvene's generic component).

    ``use_fast`` (the authors' setting) is only right when every pair of a call has the same
    positions: pyvene 0.1.8's fast path gathers each example at its own positions but writes
    the patched vectors back at the first example's (``scatter_neurons``:
    ``tensor_input[_batch_idx, unit_locations[0], ...]``). Prompts of different lengths (padded,
    or named positions that move) need ``use_fast=False``."""
    import pyvene as pv

    logging.getLogger().setLevel(logging.ERROR)  # pyvene warns about use_fast on every build
    rank = rotation.shape[1]
    representation = {
        "low_rank_dimension": rank,
        "unit": "pos",
        "max_number_of_units": length,
    }
    block, hook = (0, "input") if layer == -1 else (layer, "output")
    if pyvene_supports(model) and layers is None:
        representation |= {"layer": block, "component": f"block_{hook}"}
    else:
        path = _blocks_path(model, layers)
        width = int(model.config.hidden_size)
        representation |= {
            "layer": block,
            "component": f"{path}[{block}].{hook}",
            "intervention": pv.LowRankRotatedSpaceIntervention(
                embed_dim=width * length, low_rank_dimension=rank
            ),
        }
    config = pv.IntervenableConfig(
        representation,
        intervention_types=pv.LowRankRotatedSpaceIntervention,
        model_type=type(model),
    )
    intervenable = pv.IntervenableModel(config, model, use_fast=use_fast)
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
    intervenable.set_device(rotation.device, set_model=False)
    rotate.to(dtype=rotation.dtype)
    with torch.no_grad():
        rotate.weight.copy_(rotation)
    return intervenable


def pyvene_logits(
    intervenable,
    ids: torch.Tensor,
    mask: torch.Tensor,
    rows: torch.Tensor,
    base: torch.Tensor,
    source: torch.Tensor,
    rank: int,
) -> torch.Tensor:
    """The model's output logits (its own head, every position) for the bases with the site
    patched from the sources: one pyvene call, each pair with its own positions (``rows``
    [n, P], the engine's resolved site)."""
    with torch.no_grad():
        _, out = intervenable(
            {"input_ids": ids[base], "attention_mask": mask[base]},
            [{"input_ids": ids[source], "attention_mask": mask[source]}],
            {"sources->base": ([rows[source].tolist()], [rows[base].tolist()])},
            subspaces=[[list(range(rank))] * len(base)],
        )
    return out.logits
