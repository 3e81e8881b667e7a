"""The job spec: a TOML file validated by pydantic models. Unknown fields and wrong types are
errors that name the field; everything that crosses a process boundary is one of these."""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class SpecError(ValueError):
    """A spec that cannot run; the message names the field and the fix."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CustomTask(Strict):
    inputs: dict[str, list[int | bool | str]]
    template: str
    output: str
    classes: list[int | bool | str] | None = None


class TaskSpec(Strict):
    builtin: Literal["arithmetic", "boolean"] | None = None
    custom: CustomTask | None = None

    @model_validator(mode="after")
    def _one_kind(self):
        if (self.builtin is None) == (self.custom is None):
            raise ValueError(
                "give exactly one of task.builtin (arithmetic, boolean) or task.custom"
            )
        return self


class TrainSpec(Strict):
    n_layer: int = Field(2, ge=1)
    n_embd: int = Field(64, ge=8)
    n_head: int = Field(4, ge=1)
    epochs: int = Field(400, ge=1)
    batch_size: int = Field(100, ge=1)
    lr: float = Field(3e-3, gt=0)
    warmup_steps: int = Field(50, ge=0)
    seed: int = 0


class NetworkSpec(Strict):
    train: TrainSpec | None = None
    path: str | None = (
        None  # a local Hugging Face directory, or a hub name where a hub is reachable
    )
    accuracy_floor: float = Field(0.99, gt=0, le=1)

    @model_validator(mode="after")
    def _one_source(self):
        if (self.train is None) == (self.path is None):
            raise ValueError("give exactly one of network.train (a config) or network.path")
        return self


class CandidateSpec(Strict):
    P: str
    O: str  # noqa: E741 (the model's own variable name)


class SiteSpec(Strict):
    layer: int = Field(ge=-1)
    positions: list[int] | None = None
    rank: int = Field(32, ge=1)


class DASSpec(Strict):
    steps: int = Field(400, ge=1)
    batch_size: int = Field(256, ge=1)
    lr: float = Field(0.01, gt=0)
    seed: int = 0
    held_out: float = Field(0.2, ge=0, lt=1)


class PairSpec(Strict):
    design: Literal["all", "sampled"] = "sampled"
    partners: int = Field(20, ge=1)
    seed: int = 0


class SolveSpec(Strict):
    semantics: Literal["pairwise", "per-input"] = "per-input"
    scope: Literal["per-model", "global"] = "per-model"
    method: Literal["greedy", "ilp", "auto"] = "auto"
    floors: list[float] = [1.0, 0.99, 0.975, 0.95, 0.9, 0.8]
    time_limit: float = Field(20.0, gt=0)
    max_models: int | None = Field(None, ge=1)
    solver: str = "highs"

    @field_validator("floors")
    @classmethod
    def _floors(cls, floors: list[float]) -> list[float]:
        bad = [f for f in floors if not 0 < f <= 1]
        if bad or not floors:
            raise ValueError(f"floors must be non-empty and in (0, 1]; got {floors}")
        return floors


class ExecutionSpec(Strict):
    mode: Literal["local-ray", "in-process", "cluster"] = "local-ray"
    address: str | None = None
    workers: int = Field(2, ge=1)
    cpus_per_worker: float = Field(1, gt=0)
    gpus_per_worker: float = Field(0, ge=0)
    shard_size: int = Field(65536, ge=1)
    threads_per_worker: int = Field(1, ge=1)


NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class JobSpec(Strict):
    name: str
    results: str = "results"
    task: TaskSpec
    network: NetworkSpec
    candidates: list[str] | dict[str, CandidateSpec] | None = None
    fallback: str | None = None
    sites: list[SiteSpec] = Field(min_length=1)
    das: DASSpec = DASSpec()
    pairs: PairSpec = PairSpec()
    solve: SolveSpec = SolveSpec()
    execution: ExecutionSpec = ExecutionSpec()

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not NAME.match(name) or ".." in name:
            raise ValueError(
                f"name {name!r} must be a plain folder name (letters, digits, _ . -), so results "
                "stay inside the results folder"
            )
        return name

    @model_validator(mode="after")
    def _candidates_fit_task(self):
        if self.task.custom is not None and not isinstance(self.candidates, dict):
            raise ValueError("a custom task needs [candidates.NAME] tables with P and O")
        if self.task.builtin is not None and isinstance(self.candidates, dict):
            raise ValueError(
                "a built-in task brings its candidates: give candidates as a list of their "
                "names (or leave it out for all of them)"
            )
        return self

    def results_dir(self) -> Path:
        return Path(self.results) / self.name

    def digest(self, *fields: str) -> str:
        """A digest of the named parts of the spec: a stage's artifacts are keyed by the parts
        they depend on, so changing the solve never retrains a network."""
        data = self.model_dump(mode="json")
        picked = {f: data[f] for f in fields}
        return hashlib.sha256(json.dumps(picked, sort_keys=True).encode()).hexdigest()[:12]


def load_spec(path: str | Path) -> JobSpec:
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"no spec file at {path}")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path} is not valid TOML: {exc}") from None
    return parse_spec(data, str(path))


def parse_spec(data: dict, origin: str = "spec") -> JobSpec:
    try:
        return JobSpec.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = ".".join(str(x) for x in err["loc"]) or "(top level)"
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown field; remove it or check its spelling against examples/*.toml"
            lines.append(f"  {where}: {msg}")
        raise SpecError(f"{origin} is not a valid job spec:\n" + "\n".join(lines)) from None
