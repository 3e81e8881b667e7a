"""Distributed Alignment Search: a low-rank orthogonal rotation R (dim × rank, orthonormal
columns) at one site, trained so that patching h' = h_b + R Rᵀ (h_s − h_b) makes the frozen
network output the candidate's counterfactual label."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from intervention.engine import InterchangeEngine, Site


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

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_file({"rotation": self.rotation.contiguous()}, str(path / "rotation.safetensors"))
        meta = asdict(self)
        meta.pop("rotation")
        meta["site"] = {"layer": self.site.layer, "positions": list(self.site.positions or [])}
        (path / "alignment.json").write_text(json.dumps(meta, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path, task_digest: str, network_digest: str) -> Alignment:
        path = Path(path)
        meta = json.loads((path / "alignment.json").read_text())
        for what, saved, given in (
            ("task", meta["task_digest"], task_digest),
            ("network", meta["network_digest"], network_digest),
        ):
            if saved != given:
                raise AlignmentError(
                    f"the alignment in {path} was trained for another {what} (digest {saved}, "
                    f"this one is {given}); retrain it for this {what}"
                )
        rotation = load_file(str(path / "rotation.safetensors"))["rotation"]
        site = Site(meta["site"]["layer"], tuple(meta["site"]["positions"]) or None)
        meta.update(site=site, rotation=rotation)
        return cls(**meta)


def digest(*parts: object) -> str:
    """A short stable digest of JSON-able parts (tensors by their bytes)."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, torch.Tensor):
            h.update(part.detach().cpu().contiguous().numpy().tobytes())
        else:
            h.update(json.dumps(part, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def network_digest(model) -> str:
    return digest(*[p for _, p in sorted(model.state_dict().items())])


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
) -> Alignment:
    """Train R on pairs drawn from the training inputs; report IIA on fresh training pairs
    and on pairs of held-out inputs."""
    if not 1 <= settings.rank <= engine.dim:
        raise AlignmentError(
            f"rank {settings.rank} is invalid for a site of dimension {engine.dim}: choose "
            f"1..{engine.dim}"
        )
    started = time.perf_counter()
    n = len(engine.ids)
    train, held = split_inputs(n, settings.held_out, settings.seed)
    if len(train) < 2:
        raise AlignmentError(f"only {len(train)} training inputs; lower held_out")
    torch.manual_seed(settings.seed)
    layer = torch.nn.utils.parametrizations.orthogonal(
        torch.nn.Linear(engine.dim, settings.rank, bias=False)
    ).to(engine.device)
    opt = torch.optim.Adam(layer.parameters(), lr=settings.lr)
    rng = np.random.default_rng(settings.seed)
    for step in range(settings.steps):
        b = rng.choice(train, settings.batch_size)
        s = rng.choice(train, settings.batch_size)
        target = torch.as_tensor(cf_labels(b, s), device=engine.device)
        logits = engine.patched_logits(torch.as_tensor(b), torch.as_tensor(s), layer.weight.T)
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
        network_digest(engine.model),
        iia(train),
        iia(held),
        time.perf_counter() - started,
    )
