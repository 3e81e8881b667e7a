"""Where a Hugging Face decoder keeps what the engine needs: its blocks, its head, its context.

The engine never re-implements a family's forward pass: it calls the network's own base model
(so positions, masks, rotary embeddings, Gemma's scaled embeddings, sliding windows and
Pythia's parallel attention are whatever Hugging Face computes for a plain call) and only
(1) replaces the residual stream after block k through a hook and (2) skips blocks whose
output is already known. So an adapter is the path to the block list; adding a family is one
line, and any other decoder works from ``network.layers`` (a module path) alone. Every engine
checks its split forward against a plain forward before it scores anything.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from contextlib import contextmanager

import torch

# model_type -> the block list, relative to the model's base model (model.base_model).
FAMILIES: dict[str, str] = {
    "gpt2": "h",
    "gpt_neox": "layers",  # Pythia
    "llama": "layers",
    "mistral": "layers",
    "qwen2": "layers",
    "qwen3": "layers",
    "gemma": "layers",
    "gemma2": "layers",
    "gemma3_text": "layers",
}
HEADS = ("classifier", "causal-lm")


class AdapterError(ValueError):
    """A network the engine cannot split; the message says what to give."""


def decoder_blocks(model, layers: str | None = None) -> torch.nn.ModuleList:
    """The decoder's blocks in order: from ``layers`` (a module path from the top model, e.g.
    ``"model.layers"``) when given, else from the family's adapter."""
    if layers is not None:
        try:
            blocks = model.get_submodule(layers)
        except AttributeError:
            raise AdapterError(
                f"network.layers = {layers!r} names no module of this {type(model).__name__}; "
                "give the dotted path of its list of decoder blocks (print(model) shows it)"
            ) from None
    else:
        family = getattr(model.config, "model_type", None)
        if family not in FAMILIES:
            raise AdapterError(
                f"no adapter for model family {family!r} ({type(model).__name__}); the families "
                f"with one are {sorted(FAMILIES)}. For another decoder give network.layers, the "
                "dotted module path of its list of blocks (e.g. 'model.layers')"
            )
        blocks = model.base_model.get_submodule(FAMILIES[family])
    if not isinstance(blocks, torch.nn.ModuleList) or len(blocks) == 0:
        raise AdapterError(
            f"{layers or FAMILIES.get(model.config.model_type)!r} is a "
            f"{type(blocks).__name__}, not a non-empty list of decoder blocks"
        )
    return blocks


def head_of(model) -> str:
    """'classifier' (a sequence-classification head) or 'causal-lm' (a language-model head)."""
    name = type(model).__name__
    if name.endswith("ForSequenceClassification"):
        return "classifier"
    if name.endswith(("ForCausalLM", "LMHeadModel")):
        return "causal-lm"
    raise AdapterError(
        f"{name} has neither a sequence-classification nor a causal-LM head; load the network "
        "with one (AutoModelForSequenceClassification or AutoModelForCausalLM)"
    )


def context_length(model) -> int | None:
    """The most tokens the network's positions cover, where its config says."""
    config = model.config
    for name in ("max_position_embeddings", "n_positions"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


class Readout(torch.nn.Module):
    """The head, read at one token per input: a classifier's scores, or a causal LM's logits
    of the answer tokens only (a slice of the output embedding: never the whole vocabulary),
    with Gemma's final soft-capping where the config asks for it."""

    def __init__(self, model, head: str, answer_ids: Sequence[int] | None = None) -> None:
        super().__init__()
        self.head = head
        if head == "classifier":
            self.score = getattr(model, "score", None) or getattr(model, "classifier", None)
            if self.score is None:
                raise AdapterError(f"{type(model).__name__} has no score or classifier layer")
            self.n_classes = model.config.num_labels
            return
        if answer_ids is None:
            raise AdapterError("a causal LM is read through its answer tokens: give answer_ids")
        out = model.get_output_embeddings()
        if not isinstance(out, torch.nn.Linear):
            raise AdapterError(f"{type(model).__name__}'s output embedding is not a Linear layer")
        rows = torch.as_tensor(list(answer_ids), device=out.weight.device)
        self.register_buffer("weight", out.weight.detach()[rows], persistent=False)
        bias = None if out.bias is None else out.bias.detach()[rows]
        self.register_buffer("bias", bias, persistent=False)
        self.softcap = getattr(model.config, "final_logit_softcapping", None)
        self.n_classes = len(rows)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits [b, classes] (float32) from final-normed hidden states [b, width]."""
        if self.head == "classifier":
            return self.score(hidden).float()
        logits = torch.nn.functional.linear(hidden, self.weight, self.bias).float()
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits


class _Skipped(torch.nn.Module):
    """A block whose output is known: returns its input. Reads through to the block for the
    attributes a family's loop may ask of it (attention_type, layer_type)."""

    def __init__(self, block: torch.nn.Module) -> None:
        super().__init__()
        self.block = block

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("block"), name)

    def forward(self, hidden_states, *args, **kwargs):
        return hidden_states


Replace = Callable[[torch.Tensor], torch.Tensor]
# Per layer, the keys and values [b, heads, tokens, head width] of the tokens already read.
KeyValues = list[tuple[torch.Tensor, torch.Tensor]]


def _hidden(args, kwargs) -> torch.Tensor:
    return args[0] if args else kwargs["hidden_states"]


@contextmanager
def split_at(blocks: torch.nn.ModuleList, layer: int, replace: Replace, skip: str = "none"):
    """Within the block, a forward of the network has the residual stream after block
    ``layer`` (-1: the embedding output, the input to block 0) replaced by ``replace(h)``.
    ``skip``: "below" makes blocks 0..layer return their input (their output is given by
    ``replace``), "above" skips the blocks after ``layer`` (a run that only reads the site)."""
    skipped = range(0, layer + 1) if skip == "below" else range(layer + 1, len(blocks))
    originals = {i: blocks[i] for i in (skipped if skip != "none" else ())}
    for i in originals:
        blocks[i] = _Skipped(originals[i])
    try:
        if layer == -1:

            def pre(module, args, kwargs):
                h = replace(_hidden(args, kwargs))
                if args:
                    return (h, *args[1:]), kwargs
                return args, {**kwargs, "hidden_states": h}

            handle = blocks[0].register_forward_pre_hook(pre, with_kwargs=True)
        else:

            def post(module, args, output):
                if isinstance(output, tuple):  # decoders that return (hidden, extras...)
                    return (replace(output[0]), *output[1:])
                return replace(output)

            handle = blocks[layer].register_forward_hook(post)
        try:
            yield
        finally:
            handle.remove()
    finally:
        for i, block in originals.items():
            blocks[i] = block


def last_hidden(
    base_model,
    ids: torch.Tensor,
    mask: torch.Tensor,
    last: torch.Tensor,
    past: KeyValues | None = None,
):
    """The base model's final-normed hidden state at each input's last real token [b, width].
    With ``past`` (each layer's keys and values of the tokens before ``ids``), ``ids`` are the
    tokens after them, ``mask`` covers both and ``last`` counts from the first of ``ids``."""
    if past is None:
        out = base_model(input_ids=ids, attention_mask=mask, use_cache=False)
    else:
        # A fresh cache per call: the forward appends the new tokens' keys and values to it.
        cache = _cache_of(past)
        out = base_model(
            input_ids=ids,
            attention_mask=mask,
            use_cache=True,
            **{_cache_argument(base_model): cache},
        )
    h = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
    return h[torch.arange(len(ids), device=h.device), last.to(h.device)]


def _cache_argument(base_model) -> str:
    """The name a base model's forward takes its key/value cache by: ``cache`` in recent
    transformers (which deprecate ``past_key_values``), ``past_key_values`` before."""
    params = inspect.signature(base_model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _cache_of(past: KeyValues):
    # No config: every layer a plain full-length layer, also for a family's sliding-window
    # layers (their window is applied by the mask, from the config, on absolute positions; a
    # windowed cache layer would count only the tokens it keeps and misplace the positions).
    from transformers import DynamicCache

    return DynamicCache(ddp_cache_data=past)


@torch.no_grad()
def prefix_keys_values(base_model, ids: torch.Tensor, mask: torch.Tensor) -> KeyValues:
    """Every layer's keys and values of the tokens ``ids`` (a prefix of each prompt), from the
    base model's own forward: what a later forward of the tokens after them attends to."""
    cache = _cache_of([])
    base_model(
        input_ids=ids, attention_mask=mask, use_cache=True, **{_cache_argument(base_model): cache}
    )
    return [(layer.keys, layer.values) for layer in cache.layers]


def classifier_pad_id(model) -> int | None:
    """The pad token a sequence-classification head skips when it picks the token it reads
    (Hugging Face reads the rightmost token that is not this one); None where unset."""
    config = model.config
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    pad = getattr(text, "pad_token_id", None)
    return pad if isinstance(pad, int) else None


def classifier_reads(ids: torch.Tensor, pad_id: int) -> torch.Tensor:
    """The column a Hugging Face classifier head reads in each row: the rightmost token that
    is not ``pad_id`` (column 0 where every token is)."""
    columns = torch.arange(ids.shape[-1], device=ids.device)
    return (columns * (ids != pad_id)).argmax(-1)


@torch.no_grad()
def plain_logits(model, head: str, answer_ids, ids, mask, last) -> torch.Tensor:
    """The oracle: a plain forward of the whole network (its own head), read as the engine
    reads it: a classifier's logits, or a causal LM's answer-token logits at the last real
    token. A classifier whose config names no pad token cannot run a batch of more than one
    input through its own head (Hugging Face refuses), so its oracle is the base model's plain
    forward and its own score layer at each input's last real token."""
    if head == "classifier" and classifier_pad_id(model) is None:
        out = model.base_model(input_ids=ids, attention_mask=mask, use_cache=False)
        h = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
        h = h[torch.arange(len(ids), device=h.device), last.to(h.device)]
        score = getattr(model, "score", None) or getattr(model, "classifier", None)
        return score(h).float()
    logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
    if head == "classifier":
        return logits.float()
    rows = torch.arange(len(ids), device=logits.device)
    answers = torch.as_tensor(list(answer_ids), device=logits.device)
    return logits[rows, last.to(logits.device)][:, answers].float()


@torch.no_grad()
def predictions(
    model, readout: Readout, ids: torch.Tensor, mask: torch.Tensor, last: torch.Tensor, batch: int
) -> torch.Tensor:
    """The class the network predicts for each input (argmax of the readout)."""
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(ids), batch):
        sl = slice(start, start + batch)
        h = last_hidden(model.base_model, ids[sl].to(device), mask[sl].to(device), last[sl])
        out.append(readout(h).argmax(-1).cpu())
    return torch.cat(out)
