"""The worker: holds the frozen network, the cached activations below each site and the
rotations it is given; trains alignments and scores shards of (base, source) pairs.

Workers compute and return; they never write to the results folder. The driver writes every
artifact (whole, checksummed, never through a link), so a worker on another node needs only
to read the network, and a retried task returns the same result."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from service.spec import JobSpec
from service.task import build_task


@dataclass(frozen=True)
class AlignJob:
    """One alignment to train: a candidate at a site; plain data, so it crosses processes."""

    site_index: int
    model_index: int
    task_digest: str  # what the alignment is for (recorded in alignment.json)
    # A refit: pairs only among these inputs (a cell of the partition), from this rotation.
    cell: tuple[int, ...] | None = None
    init: object = None  # torch.Tensor [dim, rank]


@dataclass(frozen=True)
class ShardJob:
    """One shard to score: the design's pairs start..stop-1 for one candidate at one site
    (one column of the solver's data)."""

    site_index: int
    model_index: int
    start: int
    stop: int

    @property
    def name(self) -> str:
        return f"pairs-{self.start:06d}-{self.stop:06d}.npy"


def network_ref(where: str | Path) -> str:
    """How a worker finds the network: an absolute path when it is a folder here (the results
    folder is shared storage on a cluster), otherwise the name as given (a hub name, which a
    worker resolves itself)."""
    path = Path(where).expanduser()
    return str(path.resolve()) if path.exists() else str(where)


class Worker:
    """Loads the network once; the in-process executor holds one, the Ray executor one per
    actor. ``identity`` is the network the driver keyed its artifacts on: a worker that loads
    another (a folder that differs between nodes, a hub name that moved) refuses to work."""

    def __init__(self, spec_json: str, network: str, threads: int = 1, identity: str = "") -> None:
        import torch

        from intervention.network import NetworkError, load_network, network_digest, task_inputs
        from service.keys import network_identity

        torch.set_num_threads(threads)
        self.spec = JobSpec.model_validate_json(spec_json)
        self.task, self.models = build_task(self.spec)
        net = self.spec.network
        self.model, tokenizer = load_network(network, net.head, net.dtype)
        self.inputs = task_inputs(self.model, tokenizer, self.task)
        self.ids = self.inputs.encoded.ids
        self.weights = network_digest(self.model)  # once: every alignment records it
        if identity:
            mine = network_identity(self.weights, self.inputs.identity_tensor())
            if mine != identity:
                raise NetworkError(
                    f"the worker on {socket.gethostname()} loaded network {network!r} as "
                    f"{mine}, but the driver keyed this job on {identity}: the folder differs "
                    "between nodes (put it on shared storage) or the hub name now names "
                    "another network (pin it to a local copy)"
                )
        if torch.cuda.is_available():  # a GPU actor (num_gpus > 0) sees only its own device
            self.model.to("cuda")
        self.engines: dict[int, object] = {}

    def pid(self) -> int:
        """The process this worker runs in (a readiness check; tests kill one mid-run)."""
        return os.getpid()

    def engine(self, site_index: int):
        from intervention.engine import InterchangeEngine, Site

        if site_index not in self.engines:
            s = self.spec.sites[site_index]
            site = Site(s.layer, None if s.positions is None else tuple(s.positions))
            self.engines[site_index] = InterchangeEngine(
                self.model,
                self.inputs.encoded,
                site,
                2048,
                answer_ids=self.inputs.answer_ids,
                layers=self.spec.network.layers,
                spans=self.task.value_spans(s.variables()) if s.variables() else None,
                prompts=self.task.prompts(),
            )
        return self.engines[site_index]

    def align(self, job: AlignJob):
        """Train one alignment; returns the ``Alignment`` (the driver stores it)."""
        from intervention.das import DASSettings, train_alignment

        model = self.models[job.model_index]
        das = self.spec.das
        settings = DASSettings(
            rank=self.spec.sites[job.site_index].rank,
            steps=das.steps,
            batch_size=das.batch_size,
            lr=das.lr,
            seed=das.seed,
            held_out=das.held_out,
            # A refit inside a cell trains on all of its pairs: the cell is what it explains.
            trim=1.0 if job.cell is not None else self.spec.das_trim(),
        )
        return train_alignment(
            self.engine(job.site_index),
            lambda b, s: self.task.counterfactual_labels(model, b, s),
            model.name,
            job.task_digest,
            settings,
            weights=self.weights,
            pool=None if job.cell is None else np.asarray(job.cell),
            init=job.init,
        )

    def score(self, job: ShardJob, design, rotation) -> np.ndarray:
        """Successes of one candidate on pairs start..stop-1 of the design, at the job's site
        with that site's rotation; they depend only on those pairs, so any worker may score
        any shard."""
        import torch

        from intervention.iia import score_shard

        pairs = np.arange(job.start, job.stop, dtype=np.int64)
        model = self.models[job.model_index]
        with torch.no_grad():
            return score_shard(
                self.engine(job.site_index), self.task, model, rotation, design, pairs
            )
