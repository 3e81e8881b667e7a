"""What each stage reads, as the content its artifact's key is a digest of.

A key covers everything a stage reads and nothing else: the task's actual content (not the
name of a built-in task), the network's weights (not the folder it was loaded from), the
spec parts the stage uses, and the code's ``ARTIFACT_VERSION``. So changing a candidate's
mechanism re-aligns that candidate alone, retraining nothing; changing the accuracy floor or
the solve recomputes no artifact at all.

| stage      | reads                                                                    |
|------------|--------------------------------------------------------------------------|
| network    | the prompts, the labels, the classes, ``network.train``                   |
| alignment  | the network (weights, config, token ids), the input space, the classes,   |
|            | the intervened variable, the candidate's mechanisms, the site, ``das``    |
| successes  | the alignment, its rotation, the pair design, ``execution.shard_size``    |
| IIA        | the successes of every candidate, their names                             |
"""

from __future__ import annotations

import types

from service.artifacts import key


def _code(code: types.CodeType) -> dict:
    """A callable mechanism's code, as data (nested functions included)."""
    consts = [_code(c) if isinstance(c, types.CodeType) else repr(c) for c in code.co_consts]
    return {
        "bytecode": code.co_code,
        "names": list(code.co_names),
        "varnames": list(code.co_varnames),
        "consts": consts,
    }


def _mechanism(mech) -> dict:
    text = getattr(mech, "text", None)
    if text is not None:  # an expression: its text is all it computes
        return {"expression": text}
    closure = [repr(cell.cell_contents) for cell in getattr(mech, "__closure__", None) or ()]
    name = f"{getattr(mech, '__module__', '?')}.{getattr(mech, '__qualname__', '?')}"
    code = getattr(mech, "__code__", None)
    return {"callable": name, "code": None if code is None else _code(code), "closure": closure}


def model_content(model) -> dict:
    """A candidate causal model: its variables, domains, parents and mechanisms."""
    nodes = model.graph.nodes
    return {
        "name": model.name,
        "inputs": {v: list(nodes[v]["domain"]) for v in model.inputs},
        "output": model.output,
        "mechanisms": {
            v: {
                "parents": model.parents(v),
                "domain": None if nodes[v]["domain"] is None else list(nodes[v]["domain"]),
                **_mechanism(nodes[v]["mechanism"]),
            }
            for v in model.order
        },
    }


def counterfactual_content(task) -> dict:
    """What a candidate's counterfactual labels read besides the candidate: the input space
    (rows in order: a data task's rows themselves), the classes and the variable intervened
    on."""
    content = {
        "inputs": {v: list(domain) for v, domain in task.inputs.items()},
        "classes": list(task.classes),
        "intervened": task.intervened,
    }
    if task.rows is not None:
        # A data task's inputs are its rows, not the product of its columns' values: a row
        # corrected under the same prompt changes its counterfactuals.
        from intervention.digest import digest

        content["rows"] = digest(*[task.values[v] for v in task.inputs])
    return content


def network_key(task, train: dict) -> str:
    """A network trained here: its training data (prompts, labels, classes) and settings. The
    accuracy floor is not read by training, so it is not in the key."""
    return key(
        "network",
        prompts=task.prompts(),
        labels=task.labels(),
        classes=list(task.classes),
        train=train,
    )


def network_identity(weights: str, ids) -> str:
    """What the later stages see of a network: its weights and config (``weights``, from
    ``intervention.network.network_digest``) and the token ids of the task's prompts (the
    tokenizer's part)."""
    from intervention.digest import digest

    return digest(weights, ids)


def alignment_key(network: str, task, model, site: dict, das: dict) -> str:
    return key(
        "alignment",
        network=network,
        task=counterfactual_content(task),
        model=model_content(model),
        site=site,
        das=das,
    )


def successes_key(alignment: str, rotation, design: dict, shard_size: int) -> str:
    from intervention.digest import digest

    return key(
        "successes",
        alignment=alignment,
        rotation=digest(rotation),
        design=design,
        shard_size=shard_size,
    )


def iia_key(successes: list[str], names: list[str], design: dict, edge: str = "mean") -> str:
    # The paper's edge keeps the key it always had; another edge is other data.
    extra = {} if edge == "mean" else {"edge": edge}
    return key("iia", successes=successes, names=names, design=design, **extra)


def report_key(iia: str, solve: dict, accuracy_floor: float) -> str:
    return key("report", iia=iia, solve=solve, accuracy_floor=accuracy_floor)
