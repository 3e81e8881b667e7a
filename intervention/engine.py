"""The interchange engine: cache the network below the site once, then score batches of
(base, source) pairs by patching h' = h_b + R Rᵀ (h_s − h_b) and running only the layers above.

Sites are the residual stream of a GPT-2 classifier: ``layer = -1`` is the embedding output
(the input to block 0) and ``layer = k`` the output of block k, at the given token positions
(all positions by default), concatenated into one vector of size positions × hidden.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers.masking_utils import create_causal_mask


class SiteError(ValueError):
    """A site that does not exist in the network; the message gives the valid range."""


@dataclass(frozen=True)
class Site:
    layer: int
    positions: tuple[int, ...] | None = None  # None: every token position

    def describe(self) -> str:
        where = "all positions" if self.positions is None else f"positions {list(self.positions)}"
        block = "embeddings" if self.layer == -1 else f"block {self.layer}"
        return f"residual stream after {block}, {where}"


class InterchangeEngine:
    """Holds a frozen GPT-2 sequence classifier, the token ids of every input of a task, and the
    site activations of every input; scores pairs in batches."""

    def __init__(self, model, ids: torch.Tensor, site: Site, batch_size: int = 1024) -> None:
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.transformer = model.transformer
        n_layer = len(self.transformer.h)
        if not -1 <= site.layer < n_layer:
            raise SiteError(
                f"layer {site.layer} is out of range: this network has {n_layer} blocks, so a "
                f"site's layer is -1 (embeddings) to {n_layer - 1}"
            )
        length = ids.shape[1]
        positions = tuple(range(length)) if site.positions is None else tuple(site.positions)
        bad = [p for p in positions if not 0 <= p < length]
        if bad or not positions or len(set(positions)) != len(positions):
            raise SiteError(
                f"positions {list(positions)} are invalid for prompts of {length} tokens: give "
                f"distinct positions in 0..{length - 1}"
            )
        self.site = Site(site.layer, positions)
        # Everything lives where the network does: a GPU actor keeps its cache on the GPU.
        self.device = next(model.parameters()).device
        self.positions = torch.tensor(positions, device=self.device)
        self.ids = ids.to(self.device)
        self.batch_size = batch_size
        self.hidden = self.transformer.config.n_embd
        self.dim = len(positions) * self.hidden
        self.cache = self._prefix(self.ids)

    # -- the network split at the site ------------------------------------------------------

    def _positions_and_mask(self, h: torch.Tensor):
        position_ids = torch.arange(h.shape[1], device=h.device).unsqueeze(0)
        mask = create_causal_mask(
            config=self.transformer.config,
            inputs_embeds=h,
            attention_mask=None,
            cache=None,
            position_ids=position_ids,
        )
        return position_ids, mask

    @torch.no_grad()
    def _prefix(self, ids: torch.Tensor) -> torch.Tensor:
        """Site activations [n, length, hidden] of every input, computed once."""
        chunks = []
        for batch in ids.split(self.batch_size):
            positions = torch.arange(batch.shape[1], device=self.device)
            h = self.transformer.wte(batch) + self.transformer.wpe(positions)
            position_ids, mask = self._positions_and_mask(h)
            for block in self.transformer.h[: self.site.layer + 1]:
                h = block(h, None, mask, position_ids=position_ids)
            chunks.append(h)
        return torch.cat(chunks)

    def suffix(self, h: torch.Tensor) -> torch.Tensor:
        """Logits of the classifier from site activations [b, length, hidden]."""
        position_ids, mask = self._positions_and_mask(h)
        for block in self.transformer.h[self.site.layer + 1 :]:
            h = block(h, None, mask, position_ids=position_ids)
        # No padding in a task's prompts: the classifier reads the last position.
        return self.model.score(self.transformer.ln_f(h[:, -1]))

    # -- interventions ----------------------------------------------------------------------

    def patched_logits(
        self, base: torch.Tensor, source: torch.Tensor, rotation: torch.Tensor
    ) -> torch.Tensor:
        """Logits with the site of each base input patched towards its source inside the
        span of ``rotation`` [dim, rank] (orthonormal columns). Differentiable in ``rotation``."""
        base, source = base.to(self.device), source.to(self.device)
        hb, hs = self.cache[base], self.cache[source]
        vb = hb[:, self.positions].reshape(len(base), self.dim)
        vs = hs[:, self.positions].reshape(len(base), self.dim)
        patched = vb + ((vs - vb) @ rotation) @ rotation.T
        h = hb.clone()
        h[:, self.positions] = patched.reshape(len(base), len(self.positions), self.hidden)
        return self.suffix(h)

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
        for start in range(0, len(base), self.batch_size):
            stop = start + self.batch_size
            b = torch.as_tensor(base[start:stop])
            s = torch.as_tensor(source[start:stop])
            pred = self.patched_logits(b, s, rotation.to(self.device)).argmax(-1).cpu().numpy()
            out[start:stop] = pred == labels[start:stop]
        return out

    @torch.no_grad()
    def base_logits(self, inputs: Sequence[int] | None = None) -> torch.Tensor:
        """Unpatched logits (a check that the split network is the network)."""
        idx = torch.arange(len(self.ids)) if inputs is None else torch.as_tensor(inputs)
        return torch.cat([self.suffix(self.cache[b]) for b in idx.split(self.batch_size)])
