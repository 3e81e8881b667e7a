"""A planted combination: a network trained here by interchange intervention training (IIT,
Geiger et al. 2022) to implement different candidates on different regions of the inputs, so
that the truth a combination should recover is known.

The loss is the task's cross-entropy plus, for each region, the cross-entropy of the patched
network against that region's candidate's counterfactual label on (base, source) pairs drawn
inside the region. The patch replaces the first ``dims`` coordinates of the site vector (the
residual stream after block ``layer`` at the site's positions) of the base by the source's:
the planted subspace. Inputs in no region are trained on the task loss only.

Measured on 2 CPU cores (``PLANT-NOTES``): a 2-block, 64-wide GPT-2 on arithmetic reaches task
and held-out IIT accuracy ≥ 0.99 in both regions in about 1000 steps (~2 minutes, 1 thread).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from intervention.expressions import Expression, ExpressionError

# The network's regions map: input index -> the region's index, or NO_REGION.
NO_REGION = -1
MAX_LISTED = 5  # inputs named in an overlap error


class PlantError(ValueError):
    """A plant that cannot be trained as asked; the message names the fix."""


@dataclass(frozen=True)
class PlantSettings:
    """What to plant and how. Defaults are the recipe measured on 2 cores (PLANT-NOTES)."""

    regions: Mapping[str, str]  # candidate name -> region expression over the input variables
    layer: int = 0  # the site: residual stream after this block ...
    positions: tuple = ("last",)  # ... at these positions (the classifier's read position)
    dims: int = 16  # planted coordinates: the first `dims` of the site vector
    steps: int = 2000  # at most; training stops once every region reaches `target`
    pairs_per_region: int = 128  # IIT pairs per region per step
    task_batch: int = 128
    lr: float = 3e-3
    warmup: int = 100
    weight: float = 1.0  # λ: task loss + λ · IIT loss
    held_out: float = 0.1  # share of ordered pairs never trained on, that measure IIT accuracy
    target: float = 0.99  # stop once task and held-out IIT accuracy reach this in every region
    evaluate_every: int = 100
    seed: int = 0
    threads: int = 1


@dataclass(frozen=True)
class RegionReport:
    candidate: str
    region: str  # its expression
    n_inputs: int
    task_accuracy: float
    iit_accuracy: float  # on held-out pairs inside the region


@dataclass(frozen=True)
class PlantReport:
    regions: list[RegionReport]
    steps: int
    seconds: float
    unassigned: int  # inputs in no region (trained on the task only)
    history: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "regions": [r.__dict__ for r in self.regions],
            "steps": self.steps,
            "seconds": round(self.seconds, 1),
            "unassigned": self.unassigned,
            "history": self.history,
        }


def region_of_inputs(
    values: Mapping[str, np.ndarray], regions: Mapping[str, str], fallback: str = "the fallback"
) -> np.ndarray:
    """Each input's region index (order of ``regions``), ``NO_REGION`` where it is in none.
    A region over unknown variables, a region that is not a condition, and regions that
    overlap are refused, naming the region or the inputs."""
    n = len(next(iter(values.values())))
    region = np.full(n, NO_REGION, dtype=np.int64)
    for r, (candidate, text) in enumerate(regions.items()):
        try:
            expr = Expression.parse(text)
        except ExpressionError as exc:
            raise PlantError(f"network.plant.regions[{candidate!r}]: {exc}") from None
        unknown = sorted(expr.names - set(values))
        if unknown:
            raise PlantError(
                f"network.plant.regions[{candidate!r}] = {text!r} reads {unknown}, which are not "
                f"input variables of the task; write it over {list(values)}"
            )
        inside = np.broadcast_to(np.asarray(expr(values)), (n,))
        if inside.dtype != bool:
            raise PlantError(
                f"network.plant.regions[{candidate!r}] = {text!r} is not a condition (it gives "
                f"{inside.dtype} values); write a comparison such as 'X <= 5'"
            )
        both = np.flatnonzero(inside & (region != NO_REGION))
        if len(both):
            other = list(regions)[region[both[0]]]
            shown = ", ".join(_describe(values, i) for i in both[:MAX_LISTED])
            raise PlantError(
                f"network.plant.regions overlap: {len(both)} inputs are in both {other!r} and "
                f"{candidate!r} (e.g. {shown}); make the regions disjoint (inputs in no region "
                f"go to {fallback})"
            )
        region[inside] = r
    empty = [c for r, c in enumerate(regions) if not (region == r).any()]
    if empty:
        raise PlantError(
            f"network.plant.regions: no input lies in the region of {empty}; widen it or drop it"
        )
    return region


def _describe(values: Mapping[str, np.ndarray], i: int) -> str:
    return "{" + ", ".join(f"{v}={x[i].item()!r}" for v, x in values.items()) + "}"


def _held(base: np.ndarray, source: np.ndarray, n: int, share: float) -> np.ndarray:
    """Whether an ordered pair is held out: a fixed hash of (base, source), so the split
    depends on the pair alone, never on the order pairs are drawn in."""
    key = (base.astype(np.uint64) * np.uint64(n) + source.astype(np.uint64)) * np.uint64(
        0x9E3779B97F4A7C15
    )
    return (key >> np.uint64(40)).astype(np.float64) / float(1 << 24) < share


def _draw_pairs(rng, members: np.ndarray, k: int, n: int, share: float, held: bool):
    """k ordered pairs of distinct inputs inside ``members``, from the held-out side of the
    split or the training side."""
    bs, ss = [], []
    have = 0
    for _ in range(1000):
        if have >= k:
            break
        b = rng.choice(members, 4 * k)
        s = rng.choice(members, 4 * k)
        keep = (b != s) & (_held(b, s, n, share) == held)
        bs.append(b[keep])
        ss.append(s[keep])
        have += int(keep.sum())
    else:
        side = "held-out" if held else "training"
        raise PlantError(
            f"a region of {len(members)} inputs has too few {side} pairs; widen the region or "
            "change network.plant.held_out"
        )
    return np.concatenate(bs)[:k], np.concatenate(ss)[:k]


class _Patcher:
    """The classifier's logits with the first ``dims`` coordinates of the site vector of each
    base replaced by its source's, differentiable in the network's weights (the engine's
    patch, h' = h_b + R Rᵀ (h_s − h_b), with R the first ``dims`` unit vectors)."""

    def __init__(self, model, encoded, rows: torch.Tensor, layer: int, dims: int) -> None:
        from intervention.adapters import decoder_blocks

        self.model, self.encoded, self.rows, self.layer = model, encoded, rows, layer
        self.blocks = decoder_blocks(model)
        self.hidden = int(model.config.hidden_size)
        self.dims = dims

    def _gather(self, h, rows):
        return h.gather(1, rows[..., None].expand(-1, -1, self.hidden))

    def site_vectors(self, idx: torch.Tensor) -> torch.Tensor:
        from intervention.adapters import split_at

        seen = {}

        def capture(h):
            seen["h"] = h
            return h

        with split_at(self.blocks, self.layer, capture, skip="above"):
            self.model.base_model(
                input_ids=self.encoded.ids[idx], attention_mask=self.encoded.mask[idx]
            )
        return self._gather(seen["h"], self.rows[idx]).flatten(1)

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        return self.model(
            input_ids=self.encoded.ids[idx], attention_mask=self.encoded.mask[idx]
        ).logits

    def patched(self, base: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        from intervention.adapters import split_at

        vs = self.site_vectors(source)
        rows = self.rows[base]

        def patch(h):
            vb = self._gather(h, rows).flatten(1)
            v = torch.cat([vs[:, : self.dims], vb[:, self.dims :]], dim=1)
            index = rows[..., None].expand(-1, -1, self.hidden)
            return h.scatter(1, index, v.reshape(len(base), -1, self.hidden))

        with split_at(self.blocks, self.layer, patch):
            return self.logits(base)


def plant(
    model,
    encoded,
    rows: torch.Tensor,
    labels: np.ndarray,
    region: np.ndarray,
    counterfactual: Sequence,
    settings: PlantSettings,
    log=None,
) -> PlantReport:
    """Train ``model`` (in place) on the task and, on each region, on its candidate's
    counterfactual labels under interchanges of the planted subspace.

    ``rows``: each input's site positions [n, P]; ``region``: each input's region index
    (``region_of_inputs``); ``counterfactual[r](base, source)``: region r's candidate's
    counterfactual class indices for index arrays."""
    dim = rows.shape[1] * int(model.config.hidden_size)
    if not 1 <= settings.dims <= dim:
        raise PlantError(
            f"network.plant.dims = {settings.dims} does not fit the site's {dim} coordinates; "
            f"choose 1..{dim}"
        )
    previous = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    try:
        return _plant(model, encoded, rows, labels, region, counterfactual, settings, log)
    finally:
        torch.set_num_threads(previous)


def _plant(model, encoded, rows, labels, region, counterfactual, settings, log) -> PlantReport:
    started = time.perf_counter()
    n = encoded.n
    names = list(settings.regions)
    members = [np.flatnonzero(region == r) for r in range(len(names))]
    for name, m in zip(names, members):
        if len(m) < 2:
            raise PlantError(
                f"network.plant.regions[{name!r}] holds {len(m)} input; a region needs at "
                "least 2 to interchange between"
            )
    patcher = _Patcher(model, encoded, rows, settings.layer, settings.dims)
    y = torch.as_tensor(labels, dtype=torch.long)
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, betas=(0.9, 0.98))

    def schedule(step: int) -> float:  # warm-up, then cosine decay to a tenth of lr
        if step < settings.warmup:
            return (step + 1) / settings.warmup
        t = (step - settings.warmup) / max(1, settings.steps - settings.warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    cf = [lambda b, s, r=r: np.asarray(counterfactual[r](b, s)) for r in range(len(names))]
    history: list[dict] = []
    step = 0
    for step in range(1, settings.steps + 1):
        model.train()
        batch = torch.as_tensor(rng.choice(n, settings.task_batch))
        loss = torch.nn.functional.cross_entropy(patcher.logits(batch), y[batch])
        iit = 0.0
        for r, m in enumerate(members):
            b, s = _draw_pairs(rng, m, settings.pairs_per_region, n, settings.held_out, False)
            target = torch.as_tensor(cf[r](b, s), dtype=torch.long)
            logits = patcher.patched(torch.as_tensor(b), torch.as_tensor(s))
            iit = iit + torch.nn.functional.cross_entropy(logits, target)
        loss = loss + settings.weight * iit / len(members)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % settings.evaluate_every == 0 or step == settings.steps:
            reports = _evaluate(patcher, y, members, cf, names, settings, n)
            history.append(
                {
                    "step": step,
                    "loss": round(loss.item(), 4),
                    **{f"{r.candidate} task": r.task_accuracy for r in reports},
                    **{f"{r.candidate} iit": r.iit_accuracy for r in reports},
                }
            )
            if log is not None:
                log(
                    f"plant: step {step}, loss {loss.item():.3f}, "
                    + ", ".join(
                        f"{r.candidate} task {r.task_accuracy:.3f} IIT {r.iit_accuracy:.3f}"
                        for r in reports
                    )
                )
            if all(min(r.task_accuracy, r.iit_accuracy) >= settings.target for r in reports):
                break
    model.eval()
    reports = _evaluate(patcher, y, members, cf, names, settings, n)
    return PlantReport(
        reports,
        step,
        time.perf_counter() - started,
        int((region == NO_REGION).sum()),
        history,
    )


@torch.no_grad()
def _evaluate(patcher, y, members, cf, names, settings, n, pairs: int = 2048):
    """Task accuracy on each region's inputs and IIT accuracy on held-out pairs inside it."""
    patcher.model.eval()
    rng = np.random.default_rng(settings.seed + 1)  # the same pairs at every evaluation
    out = []
    for r, m in enumerate(members):
        idx = torch.as_tensor(m)
        task = float((patcher.logits(idx).argmax(-1) == y[idx]).float().mean())
        b, s = _draw_pairs(rng, m, pairs, n, settings.held_out, True)
        pred = patcher.patched(torch.as_tensor(b), torch.as_tensor(s)).argmax(-1).numpy()
        iit = float((pred == cf[r](b, s)).mean())
        out.append(
            RegionReport(
                names[r], settings.regions[names[r]], len(m), round(task, 4), round(iit, 4)
            )
        )
    patcher.model.train()
    return out
