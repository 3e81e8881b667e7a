"""The job spec: a TOML file validated by pydantic models. Unknown fields and wrong types are
errors that name the field; everything that crosses a process boundary is one of these.

Everything that can be known from the spec alone is checked when it is loaded, before any
training or scoring: bounds on every number (finite, and no larger than a job can hold), the size
of the input space and of the pair design, the expressions of a custom task, sites against a
network trained from the spec, and combinations of settings the later stages refuse. What needs
the command line too (a cluster's address) is checked by ``require_address``."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from intervention.causal_model import MAX_INPUTS, count_inputs
from intervention.expressions import Expression, ExpressionError, kind_of
from intervention.iia import MAX_PAIRS, all_pairs_problem, sampled_problem
from intervention.tasks import BUILT_IN_INPUTS

# Upper bounds: past these a job does not run slowly, it exhausts memory or never ends.
MAX_BATCH = 65_536  # pairs (DAS) or prompts (training) whose activations one step holds
MAX_STEPS = 1_000_000  # DAS steps, training epochs
MAX_WORKERS = 4096  # scoring actors
MAX_RESOURCES = 1024  # CPUs or GPUs one worker asks Ray for
MAX_WIDTH = 16_384  # n_embd of a network trained from the spec
MAX_LAYERS = 256


class SpecError(ValueError):
    """A spec that cannot run; the message names the field and the fix."""


class Strict(BaseModel):
    # inf and nan are refused in every float field (time limits, rates, resources, floors).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


Value = int | bool | str


def _one_kind(values: list[Value], where: str) -> str:
    try:
        kind = kind_of(values)
    except ExpressionError as exc:
        raise ValueError(f"{where}: {exc}") from None
    repeated = sorted({repr(v) for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"{where} repeats {', '.join(repeated)}; list each value once")
    return kind


def _kind(text: str, kinds: dict[str, str | None], where: str) -> str | None:
    """Parse an expression and infer its kind, naming the spec field on failure."""
    try:
        expr = Expression.parse(text)
    except ExpressionError as exc:
        raise ValueError(f"{where}: {exc}") from None
    unknown = sorted(expr.names - set(kinds))
    if unknown:
        raise ValueError(
            f"{where}: {text!r} reads {unknown}, which are not among {sorted(kinds)}; use the "
            "task's input variables" + (" and P" if "P" in kinds else "")
        )
    try:
        return expr.kind(kinds)
    except ExpressionError as exc:
        raise ValueError(f"{where}: {exc}") from None


class CustomTask(Strict):
    inputs: dict[str, list[Value]]
    template: str
    output: str
    classes: list[Value] | None = None

    @model_validator(mode="after")
    def _enumerable(self):
        if not self.inputs:
            raise ValueError("task.custom.inputs: give at least one input variable and its values")
        for var, values in self.inputs.items():
            if not values:
                raise ValueError(f"task.custom.inputs.{var}: give at least one value")
            _one_kind(values, f"task.custom.inputs.{var}")
        # Counted, never built: a 20**8 space is refused here, not met as a MemoryError.
        n = count_inputs(self.inputs)
        if n > MAX_INPUTS:
            sizes = " x ".join(str(len(v)) for v in self.inputs.values())
            raise ValueError(
                f"task.custom.inputs: {sizes} = {n:,} inputs, more than the limit of "
                f"{MAX_INPUTS:,}; use fewer input variables or fewer values"
            )
        if n < 2:
            raise ValueError(
                "task.custom.inputs: the task has 1 input; interchange pairs need at least 2"
            )
        if self.classes is not None:
            if not self.classes:
                raise ValueError("task.custom.classes: give the classes, or leave it out")
            _one_kind(self.classes, "task.custom.classes")
        placeholders = set(re.findall(r"\{([A-Za-z_][A-Za-z_0-9]*)\}", self.template))
        if not placeholders:
            raise ValueError(
                f"task.custom.template {self.template!r} shows no input: use {{Name}} placeholders"
            )
        if placeholders - set(self.inputs):
            raise ValueError(
                f"task.custom.template names {sorted(placeholders - set(self.inputs))}, which "
                f"are not input variables {list(self.inputs)}"
            )
        _kind(self.output, self.kinds(), "task.custom.output")
        return self

    def kinds(self) -> dict[str, str | None]:
        return {v: kind_of(values) for v, values in self.inputs.items()}


class TaskSpec(Strict):
    builtin: Literal["arithmetic", "boolean"] | None = None
    custom: CustomTask | None = None

    # Before the fields: a spec giving both kinds hears that first, not a complaint about one.
    @model_validator(mode="before")
    @classmethod
    def _one_kind(cls, data):
        if isinstance(data, dict) and (data.get("builtin") is None) == (data.get("custom") is None):
            raise ValueError(
                "give exactly one of task.builtin (arithmetic, boolean) or task.custom"
            )
        return data

    def n_inputs(self) -> int:
        inputs = BUILT_IN_INPUTS[self.builtin] if self.builtin else self.custom.inputs
        return count_inputs(inputs)


class TrainSpec(Strict):
    n_layer: int = Field(2, ge=1, le=MAX_LAYERS)
    n_embd: int = Field(64, ge=8, le=MAX_WIDTH)
    n_head: int = Field(4, ge=1, le=MAX_WIDTH)
    epochs: int = Field(400, ge=1, le=MAX_STEPS)
    batch_size: int = Field(100, ge=1, le=MAX_BATCH)
    lr: float = Field(3e-3, gt=0, le=10)
    warmup_steps: int = Field(50, ge=0, le=MAX_STEPS)
    seed: int = 0
    threads: int = Field(1, ge=1, le=256)  # torch threads; the trained network depends on it

    @model_validator(mode="after")
    def _heads_divide_width(self):
        if self.n_embd % self.n_head:
            raise ValueError(
                f"network.train: n_embd = {self.n_embd} is not divisible by n_head = "
                f"{self.n_head}; each head takes an equal share of the width"
            )
        return self


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
    layer: int = Field(ge=-1, le=MAX_LAYERS)
    positions: list[int] | None = None
    rank: int = Field(32, ge=1, le=MAX_WIDTH * 64)

    @field_validator("positions")
    @classmethod
    def _positions(cls, positions: list[int] | None) -> list[int] | None:
        if positions is None:
            return None
        if not positions:
            raise ValueError("give at least one token position, or leave positions out for all")
        if any(p < 0 for p in positions) or len(set(positions)) != len(positions):
            raise ValueError(f"positions {positions} must be distinct token indices counted from 0")
        return positions


class DASSpec(Strict):
    steps: int = Field(400, ge=1, le=MAX_STEPS)
    batch_size: int = Field(256, ge=1, le=MAX_BATCH)
    lr: float = Field(0.01, gt=0, le=10)
    seed: int = 0
    held_out: float = Field(0.2, ge=0, lt=1)


class PairSpec(Strict):
    design: Literal["all", "sampled"] = "sampled"
    partners: int = Field(20, ge=1, le=MAX_INPUTS - 1)
    seed: int = 0


class SolveSpec(Strict):
    semantics: Literal["pairwise", "per-input"] = "per-input"
    scope: Literal["per-model", "global"] = "per-model"
    method: Literal["greedy", "ilp", "auto"] = "auto"
    floors: list[float] = [1.0, 0.99, 0.975, 0.95, 0.9, 0.8]
    time_limit: float = Field(20.0, gt=0, le=7 * 24 * 3600)
    max_models: int | None = Field(None, ge=1)
    solver: str = Field("highs", min_length=1)
    seed: int = 0
    # auto's deterministic work per floor (annealing moves or MILP nodes); None: from the size
    budget: int | None = Field(None, ge=1, le=10**12)

    @field_validator("floors")
    @classmethod
    def _floors(cls, floors: list[float]) -> list[float]:
        bad = [f for f in floors if not 0 < f <= 1]
        if bad or not floors:
            raise ValueError(f"floors must be non-empty and in (0, 1]; got {floors}")
        repeated = sorted({f for f in floors if floors.count(f) > 1}, reverse=True)
        if repeated:
            raise ValueError(f"floors repeat {repeated}; list each floor once")
        return floors

    @model_validator(mode="after")
    def _per_input_options(self):
        # The solver refuses this only when it solves, after training and scoring.
        if self.semantics == "pairwise" and self.max_models is not None:
            raise ValueError(
                "solve.max_models is supported for semantics = 'per-input' only; remove it or "
                "set solve.semantics = 'per-input'"
            )
        return self


class ExecutionSpec(Strict):
    mode: Literal["local-ray", "in-process", "cluster"] = "local-ray"
    address: str | None = None
    workers: int = Field(2, ge=1, le=MAX_WORKERS)
    cpus_per_worker: float = Field(1, gt=0, le=MAX_RESOURCES)
    gpus_per_worker: float = Field(0, ge=0, le=MAX_RESOURCES)
    shard_size: int = Field(65536, ge=1, le=MAX_PAIRS)
    threads_per_worker: int = Field(1, ge=1, le=MAX_RESOURCES)

    @field_validator("cpus_per_worker", "gpus_per_worker")
    @classmethod
    def _ray_quantity(cls, value: float) -> float:
        # Ray's own rule for resource requests, met here instead of when the actors start.
        if value > 1 and value != int(value):
            raise ValueError(
                f"{value} is fractional above 1; Ray takes whole numbers above 1 (fractions "
                "of one device below it)"
            )
        return value

    @model_validator(mode="after")
    def _address_fits_mode(self):
        if self.address is not None and not self.address.strip():
            raise ValueError("execution.address is empty; give HOST:PORT, or leave it out")
        if self.address is not None and self.mode != "cluster":
            raise ValueError(
                f"execution.address is used only with mode = 'cluster', but mode is "
                f"{self.mode!r}: set execution.mode = 'cluster' or remove the address"
            )
        return self


NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


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
        # fullmatch: match would let a trailing newline through ('$' matches before it).
        if not NAME.fullmatch(name) or ".." in name:
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
        if isinstance(self.candidates, list):
            if not self.candidates:
                raise ValueError("candidates is empty; name at least one, or leave it out for all")
            repeated = sorted({c for c in self.candidates if self.candidates.count(c) > 1})
            if repeated:
                raise ValueError(f"candidates repeat {repeated}; name each once")
        if isinstance(self.candidates, dict):
            self._check_custom_candidates()
        return self

    def _check_custom_candidates(self) -> None:
        if not self.candidates:
            raise ValueError("give at least one [candidates.NAME] table with P and O")
        fallback = self.fallback or "output"
        if fallback in self.candidates:
            raise ValueError(
                f"fallback {fallback!r} is also a candidate's name; rename one of them"
            )
        kinds = self.task.custom.kinds()
        for name, cand in self.candidates.items():
            p_kind = _kind(cand.P, kinds, f"candidates.{name}.P")
            _kind(cand.O, {**kinds, "P": p_kind}, f"candidates.{name}.O")
            if "P" not in Expression.parse(cand.O).names:
                raise ValueError(
                    f"candidates.{name}.O: {cand.O!r} does not read P, so intervening on P "
                    "changes nothing; write O in terms of P"
                )

    @model_validator(mode="after")
    def _design_fits_task(self):
        n = self.task.n_inputs()
        if self.solve.semantics == "pairwise" and self.pairs.design != "all":
            # The pairwise tensor needs every pair; found here, not after all the training.
            raise ValueError(
                "solve.semantics = 'pairwise' needs pairs.design = 'all'; set it, or use "
                "solve.semantics = 'per-input' with sampled partners"
            )
        problem = (
            all_pairs_problem(n)
            if self.pairs.design == "all"
            else sampled_problem(n, self.pairs.partners)
        )
        if problem:
            raise ValueError(f"pairs: {problem}")
        # DAS trains on the inputs not held out (split as intervention.das.split_inputs does).
        training = n - round(n * self.das.held_out)
        if training < 2:
            raise ValueError(
                f"das.held_out = {self.das.held_out} leaves {training} of the task's {n} inputs "
                "to train the alignments on; DAS needs at least 2: lower das.held_out"
            )
        return self

    @model_validator(mode="after")
    def _sites_fit_network(self):
        train = self.network.train
        if train is None:  # a loaded network's depth and width are known only once loaded
            return self
        for k, site in enumerate(self.sites):
            if site.layer > train.n_layer - 1:
                raise ValueError(
                    f"sites.{k}.layer = {site.layer}, but network.train.n_layer = "
                    f"{train.n_layer}: choose -1 (embeddings) to {train.n_layer - 1}"
                )
            if site.positions is not None and site.rank > len(site.positions) * train.n_embd:
                dim = len(site.positions) * train.n_embd
                raise ValueError(
                    f"sites.{k}.rank = {site.rank} exceeds the site's dimension {dim} "
                    f"(positions {site.positions} x n_embd {train.n_embd}); choose 1..{dim}"
                )
        return self

    def results_dir(self) -> Path:
        return Path(self.results) / self.name

    def digest(self, *fields: str) -> str:
        """A digest of the named parts of the spec, by the project's one digest function
        (``intervention.digest``). Artifact keys also cover what a spec names but does not
        hold (a built-in task's content, a network folder's weights): see ``service.keys``."""
        from intervention.digest import digest

        data = self.model_dump(mode="json")
        return digest({f: data[f] for f in fields})


def load_spec(path: str | Path) -> JobSpec:
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"no spec file at {path}")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path} is not valid TOML: {exc}") from None
    return parse_spec(data, str(path))


# Why a bound is there, added to pydantic's "Input should be less than or equal to N".
WHY_BOUNDED = {
    "batch_size": "one step holds the activations of that many examples",
    "partners": "the task has at most that many other inputs",
    "steps": "more steps than that never finish",
    "epochs": "more epochs than that never finish",
    "shard_size": "the most pairs a design may hold",
    "workers": "more actors than that overwhelm the Ray head",
}


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
            elif err["type"] == "finite_number":
                msg = "must be a finite number, not inf or nan"
            elif err["type"] in ("less_than_equal", "less_than") and err["loc"]:
                why = WHY_BOUNDED.get(str(err["loc"][-1]))
                msg += f" ({why})" if why else ""
            if err["type"] == "value_error":
                msg = msg.removeprefix("Value error, ")
                # Cross-field checks name their fields themselves.
                if not err["loc"] or msg.startswith(where):
                    lines.append(f"  {msg}")
                    continue
            lines.append(f"  {where}: {msg}")
        raise SpecError(f"{origin} is not a valid job spec:\n" + "\n".join(lines)) from None


def require_address(spec: JobSpec, address: str | None = None) -> str | None:
    """The Ray address a run of ``spec`` joins: ``address`` (the command line's ``--address``,
    or "auto" inside a submitted job), else ``execution.address``. ``mode = "cluster"`` with
    neither, and no ``RAY_ADDRESS`` in the environment (which Ray itself reads), is a SpecError,
    raised before any work: without it Ray would quietly start a local instance instead.

    Kept out of the spec model because the address may come from the command line: call this
    first, with the command line's address, wherever a spec is run."""
    chosen = address or spec.execution.address
    if spec.execution.mode == "cluster" and not chosen and not os.environ.get("RAY_ADDRESS"):
        raise SpecError(
            f"execution.mode = 'cluster' in spec {spec.name!r} needs the cluster's address: set "
            "execution.address = 'HEAD:6379' in the spec, pass --address HEAD:6379 to ccm run, "
            "or set RAY_ADDRESS (or use mode = 'local-ray' for Ray on this machine)"
        )
    return chosen
