"""The interchange engine: read every input's site activations once, then score batches of
(base, source) pairs by patching h' = h_b + R Rᵀ (h_s − h_b) and running the network on.

A site is the residual stream after block ``layer`` of a Hugging Face decoder (``-1``: the
embedding output, the input to block 0), at token positions resolved per input (see
``intervention.prompts``), concatenated into one vector of size positions × width. The network
runs through its own forward (``intervention.adapters``): while the residual streams below the
site fit in ``cache_bytes`` they are cached and the blocks below the site are skipped; past it
each batch recomputes its bases' prefix, and only the sources' site vectors are kept.

In a causal decoder a patch at positions p0.. leaves every earlier position unchanged in every
block. So, for prompts of one length, each input's keys and values of its tokens before the
earliest site position are computed once (when they fit in what ``cache_bytes`` leaves) and a
pair runs only the tokens p0.. through the network's forward, attending to them: for a site at
the last token, one position instead of the whole prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from intervention.adapters import (
    KeyValues,
    Readout,
    classifier_pad_id,
    classifier_reads,
    decoder_blocks,
    head_of,
    last_hidden,
    plain_logits,
    prefix_keys_values,
    split_at,
)
from intervention.prompts import Encoded, Position, PromptError, resolve_positions

DEFAULT_CACHE_BYTES = 2 << 30
# The split forward must be the network: checked on a few inputs before any scoring.
SELF_CHECK_INPUTS = 8
SELF_CHECK_TOLERANCE = {torch.float32: 1e-4, torch.float64: 1e-8}
# Half precision: two correct runs of one network in other batch shapes round differently, so
# the check asks the same argmax wherever the plain forward's top two logits are further apart
# than this share of its largest logit, and logits within a quarter of it (a split that loses
# a block, its norm or its mask is far off both).
SELF_CHECK_TIE = 2**-5
SELF_CHECK_SCALE = 0.25


class SiteError(ValueError):
    """A site that does not exist in the network; the message gives the valid range."""


@dataclass(frozen=True)
class Site:
    layer: int
    positions: tuple[Position, ...] | None = None  # None: every token position

    def describe(self) -> str:
        where = "all positions" if self.positions is None else f"positions {list(self.positions)}"
        block = "embeddings" if self.layer == -1 else f"block {self.layer}"
        return f"residual stream after {block}, {where}"


class InterchangeEngine:
    """Holds a frozen decoder (classifier or causal LM), the encoded prompts of every input of
    a task and their site activations; scores pairs in batches.

    ``inputs``: an ``Encoded`` (or token ids of prompts of one length). ``answer_ids``: a causal
    LM's answer token per class. ``layers``: the block list's module path for a family with no
    adapter. ``spans`` / ``prompts``: each input's value spans and prompt, for named positions
    and errors that show the prompt. ``prefix_cache``: allow the cached keys and values of the
    tokens before the site (``prefix_cached`` says whether the engine uses them: only for
    prompts of one length, within the memory budget, and where the network's forward with them
    passes the self-check)."""

    def __init__(
        self,
        model,
        inputs: Encoded | torch.Tensor,
        site: Site,
        batch_size: int = 1024,
        *,
        answer_ids: Sequence[int] | None = None,
        layers: str | None = None,
        spans=None,
        prompts: Sequence[str] | None = None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        prefix_cache: bool = True,
    ) -> None:
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.encoded = inputs if isinstance(inputs, Encoded) else Encoded.unpadded(inputs)
        self.blocks = decoder_blocks(model, layers)
        n_layer = len(self.blocks)
        if not -1 <= site.layer < n_layer:
            raise SiteError(
                f"layer {site.layer} is out of range: this network has {n_layer} blocks, so a "
                f"site's layer is -1 (embeddings) to {n_layer - 1}"
            )
        try:
            rows = resolve_positions(self.encoded, site.positions, spans, prompts)
        except PromptError as exc:
            raise SiteError(str(exc)) from None
        if site.positions is None:  # every position, all prompts of one length: name them
            site = Site(site.layer, tuple(rows[0].tolist()))
        self.site = site
        self.head = head_of(model)
        self.answer_ids = None if answer_ids is None else list(answer_ids)
        self.readout = Readout(model, self.head, self.answer_ids)
        # Everything lives where the network does: a GPU actor keeps its cache on the GPU.
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        self.ids = self.encoded.ids.to(self.device)
        self.mask = self.encoded.mask.to(self.device)
        self.last = self.encoded.last.to(self.device)
        self.rows = rows.to(self.device)  # [n, P]: each input's site positions
        self.batch_size = batch_size
        self.hidden = int(model.config.hidden_size)
        self.dim = rows.shape[1] * self.hidden
        element = torch.finfo(self.dtype).bits // 8
        full = self.encoded.n * self.encoded.length * self.hidden * element
        self.cache: torch.Tensor | None = None  # [n, length, width] when it fits
        self.cached = full <= cache_bytes
        self.sources = self._prefix()  # [n, P, width]: every input's site vectors
        # The tokens before ``start`` are never patched: their keys and values, per layer
        # ([n, heads, start, head width]; None for a layer skipped below a cached site).
        self.start = 0
        self.past: list[tuple[torch.Tensor, torch.Tensor] | None] | None = None
        if prefix_cache:
            self._cache_past(cache_bytes - (full if self.cached else 0))
        self._self_check()

    @property
    def prefix_cached(self) -> bool:
        """Whether pairs run only the tokens from the earliest site position on."""
        return self.past is not None

    @property
    def n_inputs(self) -> int:
        return self.encoded.n

    # -- the network split at the site ------------------------------------------------------

    @torch.no_grad()
    def _prefix(self) -> torch.Tensor:
        """Each input's site vectors (and, when cached, its whole residual stream there),
        from one forward that skips every block above the site."""
        vectors, streams = [], []
        seen: dict[str, torch.Tensor] = {}

        def capture(h: torch.Tensor) -> torch.Tensor:
            seen["h"] = h
            return h

        for batch in torch.arange(self.n_inputs, device=self.device).split(self.batch_size):
            with split_at(self.blocks, self.site.layer, capture, skip="above"):
                self.model.base_model(
                    input_ids=self.ids[batch], attention_mask=self.mask[batch], use_cache=False
                )
            h = seen["h"]
            vectors.append(self._gather(h, self.rows[batch]))
            if self.cached:
                streams.append(h)
        if self.cached:
            self.cache = torch.cat(streams)
        return torch.cat(vectors)

    def _gather(self, h: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return h.gather(1, rows[..., None].expand(-1, -1, self.hidden))

    def _skip(self) -> str:
        return "below" if self.cached and self.site.layer >= 0 else "none"

    @torch.no_grad()
    def _cache_past(self, budget: int) -> None:
        """Keep every input's keys and values of its tokens before the earliest site position,
        where that applies and fits in ``budget`` bytes."""
        # Padded prompts put their real tokens at other columns (and the padding's keys in the
        # prefix), so only prompts of one length share a prefix of unchanged columns.
        if self.encoded.padded:
            return
        start = int(self.rows.min())
        if start < 1:
            return
        # Blocks below a cached site are skipped, so their layers' keys are never read.
        first = self.site.layer + 1 if self._skip() == "below" else 0
        try:
            probe = prefix_keys_values(
                self.model.base_model, self.ids[:1, :start], self.mask[:1, :start]
            )
        except Exception:  # a forward that takes no cache: the full path needs none
            return
        if len(probe) != len(self.blocks):
            return
        per_input = sum(k.nbytes + v.nbytes for k, v in probe[first:])
        if per_input * self.n_inputs > budget:
            return
        # Filled in place, batch by batch: never a second copy of the whole cache.
        past = [
            None if i < first else tuple(t.new_empty((self.n_inputs, *t.shape[1:])) for t in kv)
            for i, kv in enumerate(probe)
        ]
        for batch in torch.arange(self.n_inputs, device=self.device).split(self.batch_size):
            kv = prefix_keys_values(
                self.model.base_model, self.ids[batch, :start], self.mask[batch, :start]
            )
            for layer, got in zip(past, kv):
                if layer is not None:
                    layer[0][batch], layer[1][batch] = got
        self.past, self.start = past, start

    def _past_of(self, base: torch.Tensor) -> KeyValues:
        """The bases' cached keys and values, per layer; a skipped layer gets a stand-in of the
        prefix's length (never attended to: the model reads positions and mask sizes from
        layer 0's length, so every layer must have it)."""
        stand_in = self.sources.new_zeros(()).expand(len(base), 1, self.start, 1)
        return [
            (stand_in, stand_in) if kv is None else (kv[0][base], kv[1][base]) for kv in self.past
        ]

    def _run(self, base: torch.Tensor, replace) -> torch.Tensor:
        """Logits of the bases with the site's stream replaced by ``replace(h_base)``; on the
        prefix path ``replace`` sees (and returns) only the positions from ``self.start`` on."""
        start = self.start
        skip = self._skip()
        if skip == "below":
            given = self.cache[base, start:]
            inner = replace
            replace = lambda h: inner(given)  # noqa: E731 (the skipped blocks' output is known)
        past = self._past_of(base) if self.past is not None else None
        with split_at(self.blocks, self.site.layer, replace, skip=skip):
            h = last_hidden(
                self.model.base_model,
                self.ids[base, start:],
                self.mask[base],
                self.last[base] - start,
                past,
            )
        return self.readout(h)

    # -- interventions ----------------------------------------------------------------------

    def patched_logits(
        self, base: torch.Tensor, source: torch.Tensor, rotation: torch.Tensor
    ) -> torch.Tensor:
        """Logits with the site of each base input patched towards its source inside the
        span of ``rotation`` [dim, rank] (orthonormal columns). Differentiable in ``rotation``."""
        base, source = base.to(self.device), source.to(self.device)
        rows = self.rows[base] - self.start  # columns of the stream the run sees
        vs = self.sources[source]

        def patch(h: torch.Tensor) -> torch.Tensor:
            vb = self._gather(h, rows)
            delta = (vs - vb).reshape(len(base), self.dim).to(rotation.dtype)
            moved = ((delta @ rotation) @ rotation.T).reshape(vb.shape).to(h.dtype)
            index = rows[..., None].expand(-1, -1, self.hidden)
            return h.scatter(1, index, vb + moved)

        return self._run(base, patch)

    @torch.no_grad()
    def successes(
        self,
        base: np.ndarray,
        source: np.ndarray,
        rotation: torch.Tensor,
        labels: np.ndarray,
    ) -> np.ndarray:
        """s(b, s) = 1 where the patched network's argmax equals the counterfactual label;
        depends only on the pairs given, never on batch boundaries or the worker."""
        out = np.empty(len(base), dtype=bool)
        rotation = rotation.to(self.device)
        for start in range(0, len(base), self.batch_size):
            stop = start + self.batch_size
            b = torch.as_tensor(base[start:stop])
            s = torch.as_tensor(source[start:stop])
            pred = self.patched_logits(b, s, rotation).argmax(-1).cpu().numpy()
            out[start:stop] = pred == labels[start:stop]
        return out

    @torch.no_grad()
    def base_logits(self, inputs: Sequence[int] | None = None) -> torch.Tensor:
        """Unpatched logits through the split network (a check that it is the network)."""
        idx = torch.arange(self.n_inputs) if inputs is None else torch.as_tensor(inputs)
        return torch.cat(
            [self._run(b.to(self.device), lambda h: h) for b in idx.split(self.batch_size)]
        )

    def _self_check(self) -> None:
        """Refuse to score with a split forward that is not the network's plain forward: a
        decoder whose blocks take or return something the split does not expect shows here,
        not as a wrong IIA."""
        pad = classifier_pad_id(self.model) if self.head == "classifier" else None
        if pad is not None:
            # The head reads the rightmost token that is not its pad token: that must be each
            # prompt's last real token, or the network was trained on another token than the
            # one the engine reads.
            reads = classifier_reads(self.ids, pad)
            wrong = (reads != self.last).nonzero()
            if len(wrong):
                i = int(wrong[0])
                raise SiteError(
                    f"this {type(self.model).__name__} reads token {int(reads[i])} of input {i} "
                    f"(the last that is not its config's pad_token_id {pad}), but the input's "
                    f"last real token is {int(self.last[i])}: the prompts are padded with another "
                    "id than the config's pad_token_id, or a prompt holds that token; set "
                    "config.pad_token_id to the tokenizer's pad token"
                )
        idx = torch.linspace(0, self.n_inputs - 1, min(SELF_CHECK_INPUTS, self.n_inputs))
        idx = idx.round().long().unique().to(self.device)
        want = plain_logits(
            self.model, self.head, self.answer_ids, self.ids[idx], self.mask[idx], self.last[idx]
        )
        if self.past is not None:
            # The prefix path is a speed-up, never a requirement: a family whose forward does
            # not take the cached keys as asked scores through the full path instead.
            try:
                got = self.base_logits(idx)
                agrees = got.shape == want.shape and self._agrees(got, want)[0]
            except Exception:
                agrees = False
            if not agrees:
                self.past, self.start = None, 0
        got = self.base_logits(idx)
        if got.shape != want.shape:
            raise SiteError(
                f"the network's head gives {tuple(want.shape)} logits, the engine's readout "
                f"{tuple(got.shape)}; check the head (classifier or causal-lm)"
            )
        agrees, diff = self._agrees(got, want)
        if not agrees:
            raise SiteError(
                f"the split forward of this {type(self.model).__name__} differs from its plain "
                f"forward by {diff:.3g} in the logits at layer {self.site.layer}: its blocks take "
                "or return something the engine does not pass through; give network.layers "
                "the path of its blocks, or add an adapter for its family"
            )

    def _agrees(self, got: torch.Tensor, want: torch.Tensor) -> tuple[bool, float]:
        """Whether the split forward's logits are the plain forward's (within rounding), and
        the largest difference."""
        tol = SELF_CHECK_TOLERANCE.get(self.dtype)
        diff = (got - want).abs().max().item()
        flipped = got.argmax(-1) != want.argmax(-1)
        if tol is None:  # half precision: rounding may flip a near tie, and moves logits
            scale = want.abs().amax(-1).clamp_min(torch.finfo(torch.float32).tiny)
            top2 = want.topk(min(2, want.shape[-1]), dim=-1).values
            gap = top2[:, 0] - top2[:, -1]
            flipped &= gap > SELF_CHECK_TIE * scale
            tol = SELF_CHECK_SCALE * scale.max().item()
        return diff <= tol and not bool(flipped.any()), diff
