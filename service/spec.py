"""The job spec: a TOML file validated by pydantic models. Unknown fields and wrong types are
errors that name the field; everything that crosses a process boundary is one of these.

Everything that can be known from the spec alone is checked when it is loaded, before any
training or scoring: bounds on every number (finite, and no larger than a job can hold), the size
of the input space and of the pair design, the expressions of a custom task, a data task's file
(read and checked row by row), sites against the task and a network trained from the spec, and
combinations of settings the later stages refuse. What needs
the command line too (a cluster's address) is checked by ``require_address``."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    WrapSerializer,
    WrapValidator,
    field_validator,
    model_serializer,
    model_validator,
)

from intervention.causal_model import MAX_INPUTS, count_inputs
from intervention.data_tasks import read_rows, row_prompts
from intervention.expressions import Expression, ExpressionError, kind_of
from intervention.iia import MAX_PAIRS, all_pairs_problem, sampled_problem
from intervention.tasks import BUILT_IN_INPUTS, check_answer

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


def _answer(template: str | None) -> str | None:
    if template is not None:
        check_answer(template)
    return template


def _drop_defaults(data: dict, defaults: dict) -> dict:
    # Fields added after specs were first digested are left out of a dump at their defaults:
    # a spec that does not use them keeps its digests (and artifact keys) and its dump still
    # fits the code that reads it (TrainSettings(**train)).
    return {k: v for k, v in data.items() if k not in defaults or v != defaults[k]}


class CustomTask(Strict):
    inputs: dict[str, list[Value]]
    template: str
    output: str
    classes: list[Value] | None = None
    answer: str | None = None  # causal LMs: how an output value reads as the answer, e.g. " {O}"

    @field_validator("answer")
    @classmethod
    def _check_answer(cls, answer: str | None) -> str | None:
        return _answer(answer)

    @model_serializer(mode="wrap")
    def _dump(self, handler):
        return _drop_defaults(handler(self), {"answer": None})

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


KINDS = {"i": "int", "b": "bool", "U": "str"}  # numpy dtype kinds of read_rows' arrays


class DataTask(Strict):
    """A task whose inputs are the rows of a data file, never enumerated."""

    # A .jsonl (one object per line) or .csv (a header, then rows) file: one row per input with
    # its input variables' values and, unless template is given, its "prompt". A relative path
    # is read from the current working directory (like network.path), not the spec's folder.
    path: str = Field(min_length=1)
    output: str  # the task's output mechanism, an expression over the input variables
    # Causal LMs: how an output value reads as the answer string, with {O}, e.g. " {O}".
    answer: str | None = None
    # When given, prompts are rendered from it ({Name} placeholders); a "prompt" column must then
    # equal the rendering. It also makes the token positions of a named variable exact.
    template: str | None = None
    classes: list[Value] | None = None  # the output values in class order (default: sorted)
    _kinds: dict[str, str] = PrivateAttr(default_factory=dict)
    _n_rows: int = PrivateAttr(0)

    @field_validator("answer")
    @classmethod
    def _check_answer(cls, answer: str | None) -> str | None:
        return _answer(answer)

    @model_validator(mode="after")
    def _readable(self):
        # The file is read and checked here, at load time, so a bad row stops the job before
        # any work; nothing is kept but its size and the kinds of its columns.
        try:
            values, prompts = read_rows(self.path)
        except ValueError as exc:
            raise ValueError(f"task.data.path: {exc}") from None
        try:
            row_prompts(self.path, values, prompts, self.template)
        except ValueError as exc:
            raise ValueError(f"task.data.template: {exc}") from None
        self._kinds = {v: KINDS[x.dtype.kind] for v, x in values.items()}
        self._n_rows = len(next(iter(values.values())))
        if self.classes is not None:
            if not self.classes:
                raise ValueError("task.data.classes: give the classes, or leave it out")
            _one_kind(self.classes, "task.data.classes")
        _kind(self.output, self.kinds(), "task.data.output")
        return self

    def kinds(self) -> dict[str, str | None]:
        """The kind of each input variable (a column of the file): int, bool or str."""
        return dict(self._kinds)

    def n_rows(self) -> int:
        return self._n_rows


class TaskSpec(Strict):
    builtin: Literal["arithmetic", "boolean"] | None = None
    custom: CustomTask | None = None
    data: DataTask | None = None
    # A built-in task's answer template for causal LMs, with {O} for the output value, e.g.
    # " {O}" (custom and data tasks give theirs as task.custom.answer / task.data.answer).
    answer: str | None = None

    @field_validator("answer")
    @classmethod
    def _check_answer(cls, answer: str | None) -> str | None:
        return _answer(answer)

    # Before the fields: a spec giving two kinds hears that first, not a complaint about one.
    @model_validator(mode="before")
    @classmethod
    def _one_kind(cls, data):
        kinds = ("builtin", "custom", "data")
        if isinstance(data, dict) and sum(data.get(k) is not None for k in kinds) != 1:
            raise ValueError(
                "give exactly one of task.builtin (arithmetic, boolean), task.custom or task.data"
            )
        return data

    @model_validator(mode="after")
    def _answer_where_it_belongs(self):
        if self.answer is not None and self.builtin is None:
            own = "task.custom.answer" if self.custom is not None else "task.data.answer"
            raise ValueError(
                f"task.answer is for a built-in task; give this task's answer as {own}"
            )
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler):
        return _drop_defaults(handler(self), {"data": None, "answer": None})

    def n_inputs(self) -> int:
        if self.data is not None:
            return self.data.n_rows()
        inputs = BUILT_IN_INPUTS[self.builtin] if self.builtin else self.custom.inputs
        return count_inputs(inputs)

    def input_names(self) -> list[str]:
        """The task's input variables, in order."""
        if self.data is not None:
            return list(self.data.kinds())
        return list(BUILT_IN_INPUTS[self.builtin] if self.builtin else self.custom.inputs)

    def kinds(self) -> dict[str, str | None]:
        """The kind of each input variable (int, bool or str)."""
        if self.data is not None:
            return self.data.kinds()
        if self.custom is not None:
            return self.custom.kinds()
        return {v: kind_of(d) for v, d in BUILT_IN_INPUTS[self.builtin].items()}

    def answer_template(self) -> str | None:
        """The task's answer template, wherever the spec gives it; None without one."""
        if self.data is not None:
            return self.data.answer
        if self.custom is not None:
            return self.custom.answer
        return self.answer

    def answer_field(self) -> str:
        """Where this kind of task takes its answer template in a spec."""
        if self.data is not None:
            return "task.data.answer"
        return "task.custom.answer" if self.custom is not None else "task.answer"


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
    # "classifier": a sequence-classification head over the classes; "causal-lm": a language
    # model trained to write the answer (the task's answer template) after the prompt.
    head: Literal["classifier", "causal-lm"] = "classifier"
    family: Literal["gpt2", "llama"] = "gpt2"  # the architecture trained
    # How the tokenizer built here splits prompts: "word" (whole numbers and words), "char"
    # (every character; digits one per token), "auto": char for a causal LM, word otherwise.
    tokenizer: Literal["auto", "word", "char"] = "auto"

    @model_validator(mode="after")
    def _heads_divide_width(self):
        if self.n_embd % self.n_head:
            raise ValueError(
                f"network.train: n_embd = {self.n_embd} is not divisible by n_head = "
                f"{self.n_head}; each head takes an equal share of the width"
            )
        if self.family == "llama" and (self.n_embd // self.n_head) % 2:
            # Rotary position embeddings rotate pairs of a head's dimensions.
            raise ValueError(
                f"network.train: family = 'llama' needs an even head width, but n_embd / n_head "
                f"= {self.n_embd // self.n_head}; change n_embd or n_head"
            )
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler):
        defaults = {"head": "classifier", "family": "gpt2", "tokenizer": "auto"}
        return _drop_defaults(handler(self), defaults)


MODULE_PATH = re.compile(r"[A-Za-z_][A-Za-z_0-9]*(\.[A-Za-z_0-9]+)*")


class PlantSpec(Strict):
    """A combination planted by interchange intervention training (``intervention.plant``):
    each region's inputs are trained to behave as its candidate at the planted site."""

    # candidate name -> the inputs it is planted on, an expression over the input variables
    regions: dict[str, str] = Field(min_length=1)
    layer: int = Field(0, ge=0, le=MAX_LAYERS)  # the planted site: after this block ...
    positions: list[int | str] = ["last"]  # ... at these positions
    dims: int = Field(16, ge=1, le=MAX_WIDTH * 64)  # the planted coordinates: the first dims
    steps: int = Field(2000, ge=1, le=MAX_STEPS)  # at most; stops once target is reached
    pairs_per_region: int = Field(128, ge=1, le=MAX_BATCH)
    task_batch: int = Field(128, ge=1, le=MAX_BATCH)
    lr: float = Field(3e-3, gt=0, le=10)
    weight: float = Field(1.0, gt=0, le=1000)  # task loss + weight · IIT loss
    held_out: float = Field(0.1, gt=0, lt=1)  # share of ordered pairs that only measure
    target: float = Field(0.99, gt=0, le=1)  # stop once every region reaches it
    # Refuse to align a plant whose held-out IIT accuracy is below this in some region: the
    # truth to recover would not be there.
    iit_floor: float = Field(0.95, gt=0, le=1)

    @field_validator("regions")
    @classmethod
    def _parse(cls, regions: dict[str, str]) -> dict[str, str]:
        for name, text in regions.items():
            try:
                Expression.parse(text)
            except ExpressionError as exc:
                raise ValueError(f"network.plant.regions[{name!r}]: {exc}") from None
        return regions


class NetworkSpec(Strict):
    train: TrainSpec | None = None
    # Train the network with a planted combination (needs network.train, a classifier).
    plant: PlantSpec | None = None
    path: str | None = (
        None  # a local Hugging Face directory, or a hub name where a hub is reachable
    )
    accuracy_floor: float = Field(0.99, gt=0, le=1)
    # How a loaded network (path) reads its classes: "classifier" (a sequence-classification
    # head, one logit per class) or "causal-lm" (the next-token logits of the answers, which
    # needs the task's answer template); "auto": from the config's architectures.
    head: Literal["auto", "classifier", "causal-lm"] = "auto"
    # The dtype the network is loaded and run in; "auto": the checkpoint's own.
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    # A loaded network of a family with no adapter: the module path of its decoder blocks
    # (e.g. "model.layers"); None: the family's adapter finds them.
    layers: str | None = None

    @model_validator(mode="after")
    def _one_source(self):
        if (self.train is None) == (self.path is None):
            raise ValueError("give exactly one of network.train (a config) or network.path")
        if self.train is not None and self.head != "auto":
            raise ValueError(
                f"network.head = {self.head!r} is for a loaded network (network.path); a "
                "network trained here takes network.train.head"
            )
        if self.train is not None and self.layers is not None:
            raise ValueError(
                "network.layers is for a loaded network (network.path) of a family with no "
                "adapter; a network trained here has its family's (network.train.family)"
            )
        if self.plant is not None and (self.train is None or self.train.head != "classifier"):
            raise ValueError(
                "network.plant trains the network here: give network.train with head = "
                "'classifier' (a loaded network's combination is what the job finds, not plants)"
            )
        if self.layers is not None and not MODULE_PATH.fullmatch(self.layers):
            raise ValueError(
                f"network.layers = {self.layers!r} is not a module path: give the attribute "
                "path of the decoder blocks, names joined by dots, e.g. 'model.layers'"
            )
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler):
        return _drop_defaults(
            handler(self), {"head": "auto", "dtype": "auto", "layers": None, "plant": None}
        )


class CandidateSpec(Strict):
    P: str
    O: str  # noqa: E741 (the model's own variable name)


POSITION_NAME = re.compile(r"([A-Za-z_][A-Za-z_0-9]*)(?::(first|last))?")


def split_position(position: str) -> tuple[str, Literal["first", "last"] | None]:
    """A named position's input variable and which of its tokens it takes: "first", "last", or
    None for all of them ("X" -> ("X", None), "X:last" -> ("X", "last")). Not for "last"."""
    match = POSITION_NAME.fullmatch(position)
    if match is None or position == "last":
        raise ValueError(
            f"position {position!r} is not an input variable's name (optionally with :first or "
            ":last)"
        )
    return match.group(1), match.group(2)  # type: ignore[return-value]


class SiteSpec(Strict):
    layer: int = Field(ge=-1, le=MAX_LAYERS)
    # Token positions; None: all. Each is an int (the k-th real token of the prompt, negative
    # from the end: -1 is the last), "last" (the last real token), or an input variable's name
    # (the tokens its value occupies; "X:first" / "X:last" for one of them). "last" always means
    # the last token, never a variable of that name.
    positions: list[int | str] | None = None
    rank: int = Field(32, ge=1, le=MAX_WIDTH * 64)

    @field_validator("positions", mode="before")
    @classmethod
    def _no_booleans(cls, positions):
        # pydantic would read true as the position 1.
        if isinstance(positions, list) and any(isinstance(p, bool) for p in positions):
            raise ValueError(
                f"positions {positions} hold a boolean; give token indices, 'last' or input "
                "variable names"
            )
        return positions

    @field_validator("positions")
    @classmethod
    def _positions(cls, positions: list[int | str] | None) -> list[int | str] | None:
        if positions is None:
            return None
        if not positions:
            raise ValueError("give at least one token position, or leave positions out for all")
        for p in positions:
            if isinstance(p, str) and p != "last" and not POSITION_NAME.fullmatch(p):
                raise ValueError(
                    f"position {p!r} is not a token index, 'last' or an input variable's name "
                    "(optionally with :first or :last, e.g. 'X:last')"
                )
        same = ["last" if p == -1 else p for p in positions]  # -1 is the last token too
        repeated = list(dict.fromkeys(p for p, q in zip(positions, same) if same.count(q) > 1))
        if repeated:
            raise ValueError(
                f"positions {positions} must be distinct; {repeated} repeat (-1 and 'last' are "
                "the same token): name each once"
            )
        named = [split_position(p) for p in positions if isinstance(p, str) and p != "last"]
        whole = {v for v, which in named if which is None}
        overlap = sorted({v for v, which in named if which is not None and v in whole})
        if overlap:
            raise ValueError(
                f"positions {positions} name {overlap} whole and one of its tokens again; give "
                "the variable or the tokens you want of it"
            )
        return positions

    def variables(self) -> list[str]:
        """The input variables the positions name, in order, each once."""
        names = [
            split_position(p)[0] for p in self.positions or [] if isinstance(p, str) and p != "last"
        ]
        return list(dict.fromkeys(names))

    def fixed_count(self) -> int | None:
        """How many token positions the site holds when known from the spec alone; None when a
        whole variable is named (its width is known only once its value is tokenised) or all
        positions are taken."""
        if self.positions is None:
            return None
        if any(isinstance(p, str) and p != "last" and ":" not in p for p in self.positions):
            return None
        return len(self.positions)


class DASSpec(Strict):
    steps: int = Field(400, ge=1, le=MAX_STEPS)
    batch_size: int = Field(256, ge=1, le=MAX_BATCH)
    lr: float = Field(0.01, gt=0, le=10)
    seed: int = 0
    held_out: float = Field(0.2, ge=0, lt=1)
    # Share of each batch's pairs that trains (the lowest-loss ones; intervention.das). None:
    # 0.3 for a planted network (a little above its share of explainable pairs), else 1.0.
    trim: float | None = Field(None, gt=0, le=1)
    # Alternate after the first solve: refit each candidate on the pairs inside its cell,
    # rescore, re-solve, until the partition is stable or this many rounds have run. None: 2
    # for a planted network, else 0 (the paper's procedure: one fit on every input's pairs).
    refit_rounds: int | None = Field(None, ge=0, le=100)
    refit_floor: float = Field(0.95, gt=0, le=1)  # the floor whose partition the refits follow

    @model_serializer(mode="wrap")
    def _dump(self, handler):
        return _drop_defaults(
            handler(self), {"trim": None, "refit_rounds": None, "refit_floor": 0.95}
        )


class PairSpec(Strict):
    design: Literal["all", "sampled"] = "sampled"
    partners: int = Field(20, ge=1, le=MAX_INPUTS - 1)
    seed: int = 0


def _floors_or_auto(value, handler):
    # "auto" passes as it is; anything else is validated as the list of floats it was before,
    # so its errors keep their plain locations (solve.floors.1) and its dumps stay the same.
    if value == "auto":
        return value
    if isinstance(value, str):
        raise ValueError(f"floors must be a list of numbers or 'auto', got {value!r}")
    return handler(value)


# list[float] | Literal["auto"]
Floors = Annotated[
    list[float],
    WrapValidator(_floors_or_auto),
    WrapSerializer(lambda value, handler: value if isinstance(value, str) else handler(value)),
]


class SolveSpec(Strict):
    semantics: Literal["pairwise", "per-input"] = "per-input"
    scope: Literal["per-model", "global"] = "per-model"
    method: Literal["greedy", "ilp", "auto"] = "auto"
    # "auto": the solver chooses them (solver.Solver.frontier): per-input, the breakpoints
    # of the strength-faithfulness curve; pairwise, 1.0 down to 0.5 in steps of 0.01.
    floors: Floors = [1.0, 0.99, 0.975, 0.95, 0.9, 0.8]
    time_limit: float = Field(20.0, gt=0, le=7 * 24 * 3600)
    max_models: int | None = Field(None, ge=1)
    # Pairwise, per-model floors: a model may hold up to this many disjoint cells, each
    # meeting the floor on its own.
    cells_per_model: int = Field(1, ge=1, le=64)
    solver: str = Field("highs", min_length=1)
    seed: int = 0
    # auto's deterministic work per floor (annealing moves or MILP nodes); None: from the size
    budget: int | None = Field(None, ge=1, le=10**12)
    # What a pair counts: "mean" = ½(s(i←j) + s(j←i)) (the paper's), "both" = 1 only where both
    # directions succeed ("Bucketing the Good Apples").
    edge: Literal["mean", "both"] = "mean"
    # With sampled partners: solve on each per-input IIA's Wilson lower bound at this
    # confidence (e.g. 0.95) instead of its estimate; None: on the estimates.
    confidence: float | None = Field(None, gt=0, lt=1)

    @field_validator("floors")
    @classmethod
    def _floors(cls, floors: list[float] | str) -> list[float] | str:
        if isinstance(floors, str):
            return floors  # "auto", the only string the type admits
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
        if self.cells_per_model > 1 and (self.semantics != "pairwise" or self.scope != "per-model"):
            raise ValueError(
                f"solve.cells_per_model = {self.cells_per_model} needs semantics = 'pairwise' "
                "and scope = 'per-model' (per-input cells that each meet the floor meet it "
                "together, and a global floor pools every cell); set it to 1 or change "
                "solve.semantics / solve.scope"
            )
        if self.floors == "auto" and self.method == "greedy":
            raise ValueError(
                "solve.floors = 'auto' needs a method that gives a bound (the greedy cannot "
                "tell a breakpoint from a miss): set solve.method = 'auto' or 'ilp', or list "
                "the floors"
            )
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler):
        # digests stay as they were
        return _drop_defaults(
            handler(self), {"edge": "mean", "confidence": None, "cells_per_model": 1}
        )


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
    # The same job run beside the main one on a network that cannot hold the answer:
    # "random-init", the same architecture with random weights.
    controls: list[Literal["random-init"]] = []
    das: DASSpec = DASSpec()
    pairs: PairSpec = PairSpec()
    solve: SolveSpec = SolveSpec()
    execution: ExecutionSpec = ExecutionSpec()

    @model_validator(mode="before")
    @classmethod
    def _planted_defaults(cls, data):
        """``task.candidates`` is read as ``candidates``; a planted network's job without
        ``[[sites]]`` aligns at the planted site with the planted rank."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        task = data.get("task")
        if isinstance(task, dict) and "candidates" in task:
            if data.get("candidates") is not None:
                raise ValueError("give candidates once: in [task] or at the top, not both")
            task = dict(task)
            data["candidates"] = task.pop("candidates")
            data["task"] = task
        network = data.get("network")
        plant = network.get("plant") if isinstance(network, dict) else None
        if isinstance(plant, dict):
            # Per-input IIA averages an input's successes over partners from every region, and
            # a cross-region interchange fails, so it sits near the share of same-region
            # partners and cannot see the regions (bench/planted.py): a planted job defaults
            # to the paper's pairwise semantics over every pair.
            pairs = dict(data.get("pairs") or {})
            solve = dict(data.get("solve") or {})
            pairs.setdefault("design", "all")
            solve.setdefault("semantics", "pairwise")
            data["pairs"], data["solve"] = pairs, solve
        if "sites" not in data and isinstance(plant, dict):
            data["sites"] = [
                {
                    "layer": plant.get("layer", 0),
                    "positions": plant.get("positions", ["last"]),
                    "rank": plant.get("dims", 16),
                }
            ]
        return data

    @model_serializer(mode="wrap")
    def _dump(self, handler):
        return _drop_defaults(handler(self), {"controls": []})

    def das_trim(self) -> float:
        """The DAS trim this job uses (das.trim, or its default: 0.3 planted, else 1.0)."""
        if self.das.trim is not None:
            return self.das.trim
        return 0.3 if self.network.plant is not None else 1.0

    def refit_rounds(self) -> int:
        """The refit rounds this job runs (das.refit_rounds, or 2 planted, else 0)."""
        if self.das.refit_rounds is not None:
            return self.das.refit_rounds
        return 2 if self.network.plant is not None else 0

    @model_validator(mode="after")
    def _plant_fits_task(self):
        plant = self.network.plant
        if plant is None:
            return self
        for cand, text in plant.regions.items():
            where = f"network.plant.regions[{cand!r}]"
            kind = _kind(text, self.task.kinds(), where)  # names and operations checked
            if kind not in ("bool", None):
                raise ValueError(
                    f"{where} = {text!r} gives {kind} values, not a condition; write a "
                    "comparison such as 'X <= 5'"
                )
        aligned = self.candidates
        if aligned is None and self.task.builtin is not None:  # all of the task's own
            from intervention.tasks import BUILT_IN

            aligned = [m.name for m in BUILT_IN[self.task.builtin]().candidates]
        if aligned is not None:
            missing = [c for c in plant.regions if c not in aligned]
            if missing:
                raise ValueError(
                    f"network.plant.regions plant {missing}, which are not among the job's "
                    f"candidates {list(aligned)}; add them to candidates or fix the names"
                )
        if self.refit_rounds() > 0 and (
            self.pairs.design != "all" or self.solve.semantics != "pairwise"
        ):
            raise ValueError(
                "das.refit_rounds refits each candidate inside its cell of the pairwise "
                "partition, which needs pairs.design = 'all' and solve.semantics = 'pairwise'; "
                "set those, or das.refit_rounds = 0"
            )
        return self

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
        if self.task.builtin is None and not isinstance(self.candidates, dict):
            kind = "custom" if self.task.custom is not None else "data"
            raise ValueError(f"a {kind} task needs [candidates.NAME] tables with P and O")
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
        kinds = self.task.kinds()
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
        if (
            self.solve.semantics == "pairwise"
            and self.pairs.design != "all"
            and self.solve.method == "ilp"
        ):
            # Sampled partners give the sparse pair tensor; found here, not after training.
            raise ValueError(
                "solve.method = 'ilp' has no exact program over sampled partners (the sparse "
                "pair tensor): use solve.method = 'auto' (search and proven bound) or 'greedy', "
                "or pairs.design = 'all'"
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
    def _confidence_needs_sampling(self):
        from service.confidence import confidence_problem

        problem = confidence_problem(self.solve.semantics, self.pairs.design, self.solve.confidence)
        if problem:
            raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _sites_fit_task(self):
        names = self.task.input_names()
        for k, site in enumerate(self.sites):
            unknown = [v for v in site.variables() if v not in names]
            if unknown:
                raise ValueError(
                    f"sites.{k}.positions name {unknown}, which are not input variables of the "
                    f"task; name one of {names}, or give token indices or 'last'"
                )
        return self

    @model_validator(mode="after")
    def _head_has_answers(self):
        train = self.network.train
        if train is not None and train.head == "causal-lm":
            which = "network.train.head = 'causal-lm'"
        elif self.network.head == "causal-lm":
            which = "network.head = 'causal-lm'"
        else:  # head = "auto" on a loaded network: its head is known only once loaded
            return self
        if self.task.answer_template() is None:
            raise ValueError(
                f"{which} reads the classes from answer tokens, but the task has no answer "
                f"template: give {self.task.answer_field()}, with {{O}} for the output value "
                '(e.g. " {O}")'
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
            # A whole variable's width is known only once tokenised: such a site is checked
            # when its positions are resolved, not here.
            count = site.fixed_count()
            if count is not None and site.rank > count * train.n_embd:
                dim = count * train.n_embd
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
