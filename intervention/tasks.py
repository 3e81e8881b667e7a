"""The built-in tasks: their input spaces, prompts, labels, candidate models and fallback.

An input's index is its row everywhere: inputs are enumerated once, the last input variable
varying fastest (arithmetic: index = (X-1)*100 + (Y-1)*10 + (Z-1), as the authors' data).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from intervention.causal_model import CausalModel, CausalModelError, require_enumerable

# Combinations of (base input, intervened value) checked when a custom task is built, so that a
# counterfactual that divides by zero or leaves the classes is refused before any training.
MAX_CHECKED_COUNTERFACTUALS = 4_000_000


@dataclass(frozen=True)
class Task:
    """A task: input variables and domains, how an input reads as a prompt, the label of an
    input (an index into ``classes``), the candidates and the fallback.

    The inputs are every combination of the domains (built-in and custom tasks), or exactly the
    given ``rows`` (a task from a data file, where the domains are the values the rows take).
    ``prompts`` holds the prompts when they are given rather than rendered (a data file's)."""

    name: str
    inputs: Mapping[str, tuple]
    render: Callable[[Mapping[str, object]], str]
    classes: tuple
    candidates: tuple[CausalModel, ...]
    fallback: CausalModel
    intervened: str = "P"  # the intermediate variable every candidate exposes
    # Given inputs, one array per input variable, instead of the product of the domains.
    rows: Mapping[str, np.ndarray] | None = field(default=None, repr=False)
    # Given prompts, one per input (a data file's), instead of rendering them.
    given_prompts: tuple[str, ...] | None = field(default=None, repr=False)
    # The prompt template with {Name} placeholders, when prompts are rendered from one: it makes
    # value spans exact (``value_spans``).
    template: str | None = None
    # How an output value reads as the answer string of a causal LM, with {O} for the value.
    answer: str | None = None
    values: dict[str, np.ndarray] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.rows is None:
            values = self.fallback.input_space()
        else:
            values = {v: np.asarray(self.rows[v]) for v in self.inputs if v in self.rows}
            if list(values) != list(self.inputs) or len(self.rows) != len(self.inputs):
                raise ValueError(
                    f"task {self.name}: rows hold {list(self.rows)}, the task's inputs are "
                    f"{list(self.inputs)}; give one array per input variable"
                )
            lengths = {len(x) for x in values.values()}
            if len(lengths) != 1:
                raise ValueError(f"task {self.name}: row arrays differ in length {sorted(lengths)}")
        object.__setattr__(self, "values", values)
        n = len(next(iter(values.values())))
        if self.given_prompts is not None and len(self.given_prompts) != n:
            raise ValueError(
                f"task {self.name}: {len(self.given_prompts)} prompts for {n} inputs; give one "
                "prompt per input"
            )
        if self.template is not None:
            _renderer(self.template, self.inputs)  # only the task's inputs as placeholders
        if self.answer is not None:
            check_answer(self.answer)
        names = [m.name for m in (*self.candidates, self.fallback)]
        if len(set(names)) != len(names):
            raise ValueError(f"task {self.name}: candidate names repeat: {names}")
        for model in (*self.candidates, self.fallback):
            if tuple(model.inputs) != tuple(self.inputs):
                raise ValueError(
                    f"task {self.name}: candidate {model.name!r} has inputs {list(model.inputs)}, "
                    f"the task has {list(self.inputs)}; candidates must read the task's inputs"
                )
            if self.intervened not in model.graph:
                raise ValueError(
                    f"task {self.name}: candidate {model.name!r} has no variable "
                    f"{self.intervened!r} to intervene on"
                )

    @property
    def n_inputs(self) -> int:
        return len(next(iter(self.values.values())))

    def prompts(self) -> list[str]:
        """One prompt per input, in input order."""
        if self.given_prompts is not None:
            return list(self.given_prompts)
        # tolist once per variable: .item() per cell costs more than the rendering itself.
        columns = [(v, self.values[v].tolist()) for v in self.inputs]
        return [self.render({v: col[i] for v, col in columns}) for i in range(self.n_inputs)]

    def prompt(self, i: int) -> str:
        """The prompt of input ``i`` alone (error messages name one input)."""
        if self.given_prompts is not None:
            return self.given_prompts[i]
        return self.render(_row(self, i))

    def answers(self) -> list[str]:
        """The answer string of every class, in class order: ``answer`` with {O} replaced by the
        class's value (a causal LM reads the class from the answer's token)."""
        if self.answer is None:
            raise ValueError(
                f"task {self.name} has no answer template, so a causal LM cannot read its "
                "classes: give one with {O} for the output value (task.answer for a built-in "
                'task, task.custom.answer or task.data.answer), e.g. " {O}"'
            )
        return [self.answer.replace("{O}", str(c)) for c in self.classes]

    def value_spans(self, names: Sequence[str] | None = None) -> list[dict[str, tuple[int, int]]]:
        """Per input, the character span [start, end) of each input variable's value in that
        input's prompt (of the variables ``names``, all input variables by default).

        With a template the spans follow from it and are exact. Without one a value's text
        ``str(value)`` must occur exactly once in the prompt; otherwise its place is ambiguous
        (or absent) and this is a ValueError naming the input and the fix. Computed on each
        call, never on construction: only a site that names a variable needs them."""
        names = list(self.inputs) if names is None else list(names)
        unknown = [v for v in names if v not in self.inputs]
        if unknown:
            raise ValueError(
                f"task {self.name}: {unknown} are not input variables; its inputs are "
                f"{list(self.inputs)}"
            )
        columns = {v: self.values[v].tolist() for v in self.inputs}
        if self.template is not None:
            return self._template_spans(names, columns)
        return self._searched_spans(names, columns)

    def _template_spans(
        self, names: list[str], columns: dict[str, list]
    ) -> list[dict[str, tuple[int, int]]]:
        pieces = _PLACEHOLDER.split(self.template)  # literal, name, literal, name, ..., literal
        shown = pieces[1::2]
        for v in names:
            if shown.count(v) != 1:
                where = "does not appear in" if v not in shown else "appears more than once in"
                raise ValueError(
                    f"task {self.name}: input variable {v} {where} the template "
                    f"{self.template!r}, so it has no one place in the prompt; name a variable "
                    "the template shows once"
                )
        # Offsets as arrays, piece by piece: one pass per piece, not per input and piece.
        pos = np.zeros(self.n_inputs, dtype=np.int64)
        spans = {}
        for k, piece in enumerate(pieces):
            if k % 2 == 0:
                pos = pos + len(piece)
                continue
            width = np.fromiter(map(len, map(str, columns[piece])), np.int64, self.n_inputs)
            spans[piece] = list(zip(pos.tolist(), (pos + width).tolist(), strict=True))
            pos = pos + width
        return [dict(zip(names, row, strict=True)) for row in zip(*(spans[v] for v in names))]

    def _searched_spans(
        self, names: list[str], columns: dict[str, list]
    ) -> list[dict[str, tuple[int, int]]]:
        fix = "give the task a template (task.data.template in a spec) so positions are exact"
        spans = []
        for i, prompt in enumerate(self.prompts()):
            row = {}
            for v in names:
                text = str(columns[v][i])
                start = prompt.find(text) if text else -1
                if start < 0:
                    raise ValueError(
                        f"task {self.name}, input {i}: the value {text!r} of {v} does not occur "
                        f"in the prompt {prompt!r}, so {v} has no tokens there; {fix}"
                    )
                if prompt.find(text, start + 1) >= 0:
                    count = sum(prompt.startswith(text, k) for k in range(len(prompt)))
                    raise ValueError(
                        f"task {self.name}, input {i}: the value {text!r} of {v} occurs {count} "
                        f"times in the prompt {prompt!r}, so its place is ambiguous; {fix}"
                    )
                row[v] = (start, start + len(text))
            spans.append(row)
        return spans

    def label_index(self, outputs: np.ndarray) -> np.ndarray:
        """Map output values to class indices; an output outside the classes is an error."""
        lookup = {c: k for k, c in enumerate(self.classes)}
        flat = [lookup.get(x) for x in np.asarray(outputs).ravel().tolist()]
        if any(k is None for k in flat):
            bad = next(x for x, k in zip(np.asarray(outputs).ravel().tolist(), flat) if k is None)
            raise ValueError(
                f"task {self.name}: output {bad!r} is not one of its classes "
                f"{list(self.classes)}; add it to the classes (task.custom.classes or "
                "task.data.classes in a spec), or leave them out to take them from the task's "
                "outputs"
            )
        return np.asarray(flat, dtype=np.int64).reshape(np.shape(outputs))

    def labels(self) -> np.ndarray:
        """The class index of every input, from the fallback (the task's own output)."""
        return self.label_index(self.fallback.run(self.values)[self.fallback.output])

    def counterfactual_labels(
        self, model: CausalModel, base: np.ndarray, source: np.ndarray
    ) -> np.ndarray:
        """Class indices of II_model(base, source) for arrays of input indices."""
        # The intervened variable over all inputs once; pairs then only gather and re-run.
        on_all = model.run(self.values)[self.intervened]
        base_values = {v: x[base] for v, x in self.values.items()}
        out = model.run(base_values, fixed={self.intervened: on_all[source]})[model.output]
        return self.label_index(out)


ARITHMETIC_INPUTS = {"X": tuple(range(1, 11)), "Y": tuple(range(1, 11)), "Z": tuple(range(1, 11))}
BOOLEAN_INPUTS = {v: (True, False) for v in ("X", "Y", "OP1", "OP2", "OP3", "B")}


def arithmetic() -> Task:
    """`X+Y+Z=` with X, Y, Z in 1..10: 1000 inputs, 28 classes (the sums 3..30)."""
    inputs = ARITHMETIC_INPUTS
    shapes = {
        "(X+Y)+Z": ("X + Y", "P + Z"),
        "(X+Z)+Y": ("X + Z", "P + Y"),
        "X+(Y+Z)": ("Y + Z", "P + X"),
        "(X)+Y+Z": ("X", "P + Y + Z"),
        "X+(Y)+Z": ("Y", "X + P + Z"),
        "X+Y+(Z)": ("Z", "X + Y + P"),
    }
    candidates = tuple(
        CausalModel(name, inputs, {"P": p, "O": o}, "O") for name, (p, o) in shapes.items()
    )
    fallback = CausalModel("(X+Y+Z)", inputs, {"P": "X + Y + Z", "O": "P"}, "O")
    template = "{X}+{Y}+{Z}="  # renders exactly the prompts the f-string always gave
    return Task(
        "arithmetic",
        inputs,
        _renderer(template, inputs),
        tuple(range(3, 31)),
        candidates,
        fallback,
        template=template,
    )


# Boolean task encoding: OP* is True for Not, False for the identity I; B is True for And.
_OP = "xor(OP{k}, {x})"  # Op applied to a value: Not flips it, I keeps it
_X2 = _OP.format(k=2, x="X")
_Y3 = _OP.format(k=3, x="Y")


def _combine(b: str, left: str, right: str) -> str:
    return f"(({left}) and ({right})) if {b} else (({left}) or ({right}))"


def boolean() -> Task:
    """`Op1(Op2(X) B Op3(Y))=` with X, Y in {True, False}, Op in {Not, I}, B in {And, Or}:
    64 inputs, 2 classes; twelve one-intermediate candidates and the fallback O."""
    inputs = BOOLEAN_INPUTS
    q = _combine("B", _X2, _Y3)
    full = f"xor(OP1, {q})"
    v, w, b_flip = f"xor(OP1, {_X2})", f"xor(OP1, {_Y3})", "xor(B, OP1)"
    copies = {
        name: (name, full.replace(f"OP{name[-1]}" if name.startswith("OP") else name, "P"))
        for name in ("OP1", "OP2", "OP3")
    }
    shapes = {
        **copies,
        "X": ("X", f"xor(OP1, {_combine('B', _OP.format(k=2, x='P'), _Y3)})"),
        "Y": ("Y", f"xor(OP1, {_combine('B', _X2, _OP.format(k=3, x='P'))})"),
        "B": ("B", f"xor(OP1, {_combine('P', _X2, _Y3)})"),
        "X'": (_X2, f"xor(OP1, {_combine('B', 'P', _Y3)})"),
        "Y'": (_Y3, f"xor(OP1, {_combine('B', _X2, 'P')})"),
        "Q": (q, "xor(OP1, P)"),
        "V": (v, _combine(b_flip, "P", w)),
        "W": (w, _combine(b_flip, v, "P")),
        "B'": (b_flip, _combine("P", v, w)),
    }
    candidates = tuple(
        CausalModel(name, inputs, {"P": p, "O": o}, "O") for name, (p, o) in shapes.items()
    )
    fallback = CausalModel("O", inputs, {"P": full, "O": "P"}, "O")

    def render(x: Mapping[str, object]) -> str:
        op = {True: "Not", False: "I"}
        b = "And" if x["B"] else "Or"
        return f"{op[x['OP1']]}({op[x['OP2']]}({x['X']}) {b} {op[x['OP3']]}({x['Y']}))="

    return Task("boolean", inputs, render, (False, True), candidates, fallback)


BUILT_IN: dict[str, Callable[[], Task]] = {"arithmetic": arithmetic, "boolean": boolean}
# Their input domains without building them: the spec counts inputs from these.
BUILT_IN_INPUTS: dict[str, Mapping[str, tuple]] = {
    "arithmetic": ARITHMETIC_INPUTS,
    "boolean": BOOLEAN_INPUTS,
}


_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z_0-9]*)\}")


def _renderer(template: str, inputs: Mapping[str, tuple]) -> Callable[[Mapping[str, object]], str]:
    # Only {Name} placeholders: str.format would let spec text reach attributes of values.
    names = _PLACEHOLDER.findall(template)
    unknown = sorted(set(names) - set(inputs))
    if unknown:
        raise ValueError(
            f"prompt template {template!r} names {unknown}, which are not input variables "
            f"{list(inputs)}"
        )
    if not names:
        raise ValueError(f"prompt template {template!r} shows no input: use {{Name}} placeholders")
    return lambda values: _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), template)


def check_answer(template: str) -> None:
    """Refuse an answer template that is not text with {O} (the output value) and no other
    placeholder or brace: a causal LM's answers are rendered from it, one per class."""
    rest = template.replace("{O}", "")
    if "{O}" not in template or "{" in rest or "}" in rest:
        problem = (
            "does not show the output value"
            if "{O}" not in template
            else "has a placeholder or brace other than {O}"
        )
        raise ValueError(
            f"answer template {template!r} {problem}: write the answer text with {{O}} where "
            'the output value goes, e.g. " {O}" or "<{O}>"'
        )


def candidate_models(
    candidates: Mapping[str, Mapping[str, str]],
    make: Callable[[str, dict[str, str]], CausalModel],
) -> list[CausalModel]:
    """The candidate models of a spec's [candidates.NAME] tables, each built by ``make``."""
    models = []
    for cand_name, mechanisms in candidates.items():
        missing = sorted({"P", "O"} - set(mechanisms))
        if missing:
            raise ValueError(
                f"candidate {cand_name!r} needs mechanisms for P and O; missing {missing}"
            )
        models.append(make(cand_name, dict(mechanisms)))
    return models


def custom_task(
    name: str,
    inputs: Mapping[str, Sequence],
    template: str,
    output: str,
    candidates: Mapping[str, Mapping[str, str]],
    fallback: str = "output",
    classes: Sequence | None = None,
    answer: str | None = None,
) -> Task:
    """A task from a spec: input variables with finite domains, a prompt template with {Name}
    placeholders, the output mechanism (an expression over the inputs) and candidates, each a
    mapping {"P": expression, "O": expression}; the fallback computes P = the output, O = P.
    ``answer`` (optional): how an output value reads as a causal LM's answer, with {O}.

    Refused before anything is built: more than MAX_INPUTS inputs, or fewer than 2. Refused once
    built: a candidate that disagrees with the output, an output outside ``classes``, and (for
    spaces up to MAX_CHECKED_COUNTERFACTUALS combinations) a counterfactual that cannot be
    computed or labelled, so that it fails here and not in the middle of scoring."""
    domains = {v: tuple(d) for v, d in inputs.items()}
    if not domains:
        raise ValueError(f"task {name}: give at least one input variable")
    n = require_enumerable(domains, f"task {name}")
    if n < 2:
        raise ValueError(
            f"task {name}: the input space has {n} input; interchange pairs need at least 2 "
            "(give an input variable more than one value)"
        )
    check_classes(name, classes)
    render = _renderer(template, domains)
    models = candidate_models(
        candidates, lambda cand, mechs: CausalModel(cand, domains, mechs, "O")
    )
    base = CausalModel(fallback, domains, {"P": output, "O": "P"}, "O")
    if classes is None:
        classes = sorted(set(np.asarray(base.run(base.input_space())["O"]).tolist()))
    task = Task(
        name,
        domains,
        render,
        tuple(classes),
        tuple(models),
        base,
        template=template,
        answer=answer,
    )
    check_task(task)
    return task


def check_classes(name: str, classes: Sequence | None) -> None:
    if classes is not None and len(set(classes)) != len(classes):
        raise ValueError(f"task {name}: classes {list(classes)} repeat a value; list each once")


def check_task(task: Task) -> None:
    """Refuse, before any training, a candidate that disagrees with the task's output on some
    input, an output outside the classes, or a counterfactual that cannot be computed or
    labelled (``_check_counterfactuals``), over the task's inputs."""
    expected = task.fallback.run(task.values)[task.fallback.output]
    for model in task.candidates:
        agree = np.asarray(model.run(task.values)[model.output] == expected)
        if not agree.all():
            i = int(np.argmin(agree))
            raise ValueError(
                f"candidate {model.name!r} disagrees with the task's output on input "
                f"{task.prompt(i)!r}: without an intervention a candidate must compute the task"
            )
    task.labels()  # an output outside explicit classes is named here, not during training
    for model in task.candidates:
        _check_counterfactuals(task, model)


def _check_counterfactuals(task: Task, model: CausalModel) -> None:
    """Run ``model`` on every input with the intervened variable set to each value it takes on
    some input: the counterfactuals any pair design can ask for."""
    on_all = model.run(task.values)[task.intervened]
    seen = np.unique(on_all)
    n = task.n_inputs
    if n * len(seen) > MAX_CHECKED_COUNTERFACTUALS:
        return  # too many to run here; scoring still names any failing pair
    base = np.repeat(np.arange(n), len(seen))
    fixed = np.tile(seen, n)
    base_values = {v: x[base] for v, x in task.values.items()}
    try:
        out = model.run(base_values, fixed={task.intervened: fixed})[model.output]
    except CausalModelError as exc:
        raise CausalModelError(
            f"candidate {model.name!r}, with {task.intervened} set to its value on another "
            f"input (an interchange): {exc}"
        ) from None
    inside = np.isin(out, np.asarray(task.classes))
    if not inside.all():
        k = int(np.argmin(inside))
        raise ValueError(
            f"candidate {model.name!r}: with {task.intervened} set to {fixed[k].item()!r} (its "
            f"value on another input), its output on input {task.prompt(int(base[k]))!r} "
            f"is {out[k].item()!r}, which is not one of the task's classes {list(task.classes)}; "
            "add it to the classes or change the candidate"
        )


def _row(task: Task, i: int) -> dict[str, object]:
    return {v: task.values[v][i].item() for v in task.inputs}
