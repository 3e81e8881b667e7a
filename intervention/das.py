"""Distributed Alignment Search: a low-rank orthogonal rotation R (dim × rank, orthonormal
columns) at one site, trained so that patching h' = h_b + R Rᵀ (h_s − h_b) makes the frozen
network output the candidate's counterfactual label."""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load, save

from intervention.digest import digest  # noqa: F401  (bench imports it from here)
from intervention.engine import InterchangeEngine, Site
from intervention.network import network_digest

ROTATION_FILE = "rotation.safetensors"
META_FILE = "alignment.json"


class AlignmentError(ValueError):
    """An alignment that cannot be trained or used as asked; the message names the fix."""


@dataclass(frozen=True)
class DASSettings:
    rank: int = 32
    steps: int = 400
    batch_size: int = 256
    lr: float = 0.01
    seed: int = 0
    held_out: float = 0.2  # share of inputs whose pairs only measure, never train
    # Share of each batch's pairs that trains: the lowest-loss ones. 1.0 is plain DAS. Below
    # it the loss tolerates pairs the candidate cannot explain: on a network that implements
    # the candidate on a region only, the cross-region pairs (which no rotation satisfies)
    # would otherwise pull the rotation away from the region's (PLANT-NOTES: within-region
    # IIA 0.998 with 0.3, 0.3-0.5 with 1.0). Choose it a little above the share of pairs the
    # candidate can explain.
    trim: float = 1.0


@dataclass(frozen=True)
class Alignment:
    """A trained rotation with what it was trained for."""

    rotation: torch.Tensor  # [dim, rank], orthonormal columns
    candidate: str
    site: Site
    task_digest: str
    network_digest: str
    train_iia: float
    held_out_iia: float
    seconds: float

    def to_files(self) -> dict[str, bytes]:
        """The alignment as the files that hold it: the rotation (safetensors) and its metadata
        (JSON). Whoever stores them decides where and how (the service writes them atomically
        and records their checksums)."""
        meta = asdict(self)
        meta.pop("rotation")
        meta["site"] = {"layer": self.site.layer, "positions": list(self.site.positions or [])}
        return {
            ROTATION_FILE: save({"rotation": self.rotation.contiguous()}),
            META_FILE: (json.dumps(meta, indent=1) + "\n").encode(),
        }

    @classmethod
    def from_files(
        cls, files: dict[str, bytes], task_digest: str, network_digest: str
    ) -> Alignment:
        """The alignment from its two files' bytes; refuses one trained for another task or
        network."""
        meta = json.loads(files[META_FILE])
        for what, saved, given in (
            ("task", meta["task_digest"], task_digest),
            ("network", meta["network_digest"], network_digest),
        ):
            if saved != given:
                raise AlignmentError(
                    f"the alignment was trained for another {what} (digest {saved}, this one is "
                    f"{given}); retrain it for this {what}"
                )
        rotation = load(files[ROTATION_FILE])["rotation"]
        site = Site(meta["site"]["layer"], tuple(meta["site"]["positions"]) or None)
        meta.update(site=site, rotation=rotation)
        return cls(**meta)

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        for name, data in self.to_files().items():
            # Whole or absent: a temp file beside the target, then a rename (which also
            # replaces a link rather than writing through it).
            tmp = path / f".{name}.tmp{os.getpid()}"
            tmp.write_bytes(data)
            os.replace(tmp, path / name)

    @classmethod
    def load(cls, path: str | Path, task_digest: str, network_digest: str) -> Alignment:
        path = Path(path)
        files = {name: (path / name).read_bytes() for name in (ROTATION_FILE, META_FILE)}
        try:
            return cls.from_files(files, task_digest, network_digest)
        except AlignmentError as exc:
            raise AlignmentError(f"{path}: {exc}") from None


def split_inputs(n: int, held_out: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    k = int(round(n * held_out))
    return np.sort(order[k:]), np.sort(order[:k])


def train_alignment(
    engine: InterchangeEngine,
    cf_labels,  # (base idx array, source idx array) -> class index array
    candidate: str,
    task_digest: str,
    settings: DASSettings = DASSettings(),
    log=None,
    weights: str | None = None,
    *,
    pool: np.ndarray | None = None,
    init: torch.Tensor | None = None,
) -> Alignment:
    """Train R on pairs drawn from the training inputs; report IIA on fresh training pairs
    and on pairs of held-out inputs. ``weights``: the network's digest where the caller holds
    it (digesting a billion weights per alignment would cost more than training it).

    ``pool``: draw pairs only among these inputs (a cell of a partition; its own held-out
    share then measures); ``init``: start from this rotation [dim, rank] (a refit)."""
    if not 1 <= settings.rank <= engine.dim:
        raise AlignmentError(
            f"rank {settings.rank} is invalid for a site of dimension {engine.dim}: choose "
            f"1..{engine.dim}"
        )
    if not 0 < settings.trim <= 1:
        raise AlignmentError(f"trim {settings.trim} must be in (0, 1]: the share that trains")
    started = time.perf_counter()
    members = np.arange(engine.n_inputs) if pool is None else np.asarray(pool, dtype=np.int64)
    train, held = split_inputs(len(members), settings.held_out, settings.seed)
    train, held = members[train], members[held]
    if len(train) < 2:
        raise AlignmentError(f"only {len(train)} training inputs; lower held_out")
    torch.manual_seed(settings.seed)
    layer = torch.nn.utils.parametrizations.orthogonal(
        torch.nn.Linear(engine.dim, settings.rank, bias=False)
    ).to(engine.device)
    if init is not None:
        if tuple(init.shape) != (engine.dim, settings.rank):
            raise AlignmentError(
                f"the initial rotation has shape {tuple(init.shape)}; this site needs "
                f"({engine.dim}, {settings.rank})"
            )
        with torch.no_grad():  # the parametrization's right inverse keeps it orthogonal
            layer.weight = init.T.to(engine.device, torch.float32)
    keep = max(1, math.ceil(settings.trim * settings.batch_size))
    opt = torch.optim.Adam(layer.parameters(), lr=settings.lr)
    rng = np.random.default_rng(settings.seed)
    for step in range(settings.steps):
        b = rng.choice(train, settings.batch_size)
        s = rng.choice(train, settings.batch_size)
        target = torch.as_tensor(cf_labels(b, s), device=engine.device)
        logits = engine.patched_logits(torch.as_tensor(b), torch.as_tensor(s), layer.weight.T)
        if keep < len(b):  # trimmed: only the best-fitting pairs of the batch train
            losses = torch.nn.functional.cross_entropy(logits, target, reduction="none")
            loss = losses.topk(keep, largest=False).values.mean()
        else:
            loss = torch.nn.functional.cross_entropy(logits, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if log is not None and (step + 1) % 100 == 0:
            log(f"{candidate}: step {step + 1}, loss {loss.item():.4f}")
    rotation = layer.weight.detach().T.contiguous().cpu()

    def iia(pool: np.ndarray) -> float:
        if len(pool) < 2:
            return float("nan")
        b, s = rng.choice(pool, 2048), rng.choice(pool, 2048)
        return float(engine.successes(b, s, rotation, cf_labels(b, s)).mean())

    return Alignment(
        rotation,
        candidate,
        engine.site,
        task_digest,
        weights or network_digest(engine.model),
        iia(train),
        iia(held),
        time.perf_counter() - started,
    )
