"""Tasks from a data file: one row per input with its input variables' values and its prompt.

A data task is never enumerated: its inputs are exactly the file's rows, in file order (an
input's index is its row), and an input variable's domain is the sorted set of the values it
takes there. Candidates and the output are expressions, as for a custom task, and are checked
over the rows; an intervened value is a candidate's P on another row.

Files are JSON Lines (``.jsonl``: one object per line) or CSV (``.csv``: a header naming the
columns), chosen by the suffix. A column holds one kind of value (int, bool or str); in a CSV
file a column of integers is int, a column of true/false (any case) is bool, any other str.
The column ``prompt`` holds the prompt; the others are the input variables. Everything is checked
while reading, and every error names the file, the row and the fix.
"""

from __future__ import annotations

import csv
import itertools
import json
import keyword
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from intervention.causal_model import MAX_INPUTS, CausalModel
from intervention.expressions import FUNCTIONS, INT_MAX, INT_MIN
from intervention.tasks import (
    _PLACEHOLDER,
    Task,
    _renderer,
    candidate_models,
    check_classes,
    check_task,
)

PROMPT = "prompt"  # the column holding the prompt; every other column is an input variable
SUFFIXES = (".jsonl", ".csv")
NAME = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")
RESERVED = ("P", "O")  # the candidates' own variables; an input of that name would clash
CSV_INT = re.compile(r"\s*[+-]?\d+\s*")


class DataFileError(ValueError):
    """A data file that cannot be a task's inputs; the message names the file, row and fix."""


def read_rows(path: str | Path) -> tuple[dict[str, np.ndarray], list[str] | None]:
    """The input variables' values (one array per variable, int64, bool or str, in file order)
    and the prompts (None when the file has no ``prompt`` column) of a .jsonl or .csv file.

    Refused, naming file and row: a missing file, another suffix, invalid JSON, a row whose
    variables differ from the first row's, a value of another kind than its column's, two rows
    with the same values, fewer than 2 rows, more than MAX_INPUTS rows."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataFileError(
            f"{path}: a data file must end in .jsonl (one JSON object per line) or .csv (a "
            f"header, then one row per input); got {suffix or 'no suffix'!r}"
        )
    if not path.is_file():
        raise DataFileError(
            f"{path}: no such file (a relative path is read from the current working directory "
            f"{Path.cwd()}); give the path of the task's data file"
        )
    read = _read_jsonl if suffix == ".jsonl" else _read_csv
    columns, kinds, lines = read(path)
    return _finish(path, columns, kinds, lines)


def _where(path: Path, row: int, line: int) -> str:
    return f"{path}, row {row} (line {line})"


def _too_many(path: Path) -> DataFileError:
    return DataFileError(
        f"{path}: more than {MAX_INPUTS:,} rows, the most inputs a task holds (every stage keeps "
        "arrays over them); use fewer rows"
    )


def _check_names(path: Path, names: Sequence[str], where: str) -> None:
    repeated = sorted({n for n in names if list(names).count(n) > 1})
    if repeated:
        raise DataFileError(f"{where}: columns {repeated} repeat; name each column once")
    for name in names:
        if name == PROMPT:
            continue
        if not NAME.fullmatch(name) or keyword.iskeyword(name) or name in FUNCTIONS:
            raise DataFileError(
                f"{where}: column {name!r} cannot be an input variable's name: use letters, "
                "digits and _ (not starting with a digit, not a Python keyword or a function "
                f"of the expressions {sorted(FUNCTIONS)}), so expressions can read it"
            )
        if name in RESERVED:
            raise DataFileError(
                f"{where}: column {name!r} clashes with the candidates' variables P and O; "
                "rename the column"
            )
    if not [n for n in names if n != PROMPT]:
        raise DataFileError(
            f"{where}: no input variable columns, only {list(names)}; give each row its input "
            "variables' values"
        )


def _kind(value: object) -> str | None:
    # bool before int: True is an int to Python, but a different kind of value here.
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, str):
        return "str"
    return None


def _read_jsonl(path: Path) -> tuple[dict[str, list], dict[str, str], list[int]]:
    # The C scanner straight on each line: json.loads's Python wrappers cost more than parsing.
    # A line it does not take whole is parsed again by json.loads, for the error's words.
    scan = json.JSONDecoder().scan_once
    objects: list[dict] = []
    lines: list[int] = []
    with path.open(encoding="utf-8-sig") as f:
        for line_no, line in enumerate(f, 1):
            text = line.strip()
            if not text:
                continue  # blank lines (a trailing newline) are not rows
            if len(lines) >= MAX_INPUTS:
                raise _too_many(path)
            try:
                obj, end = scan(text, 0)
            except (StopIteration, ValueError):
                obj, end = None, -1
            if end != len(text) or type(obj) is not dict:
                obj = _parse_line(_where(path, len(lines) + 1, line_no), text)
            objects.append(obj)
            lines.append(line_no)
    if not objects:
        return {}, {}, lines
    names = list(objects[0])
    _check_names(path, names, _where(path, 1, lines[0]))
    first = objects[0].keys()
    for k, obj in enumerate(objects):
        if obj.keys() != first:
            raise _row_differs(_where(path, k + 1, lines[k]), names, list(obj))
    columns: dict[str, list] = {}
    kinds: dict[str, str] = {}
    for n in names:
        column = [obj[n] for obj in objects]
        kind = _value_kind(_where(path, 1, lines[0]), n, column[0])
        # One type per column (checked in C); only a column that fails is walked for the row.
        if set(map(type, column)) != {_TYPES[kind]} or (
            kind == "int" and not INT_MIN <= min(column) <= max(column) <= INT_MAX
        ):
            for k, value in enumerate(column):
                where = _where(path, k + 1, lines[k])
                got = _value_kind(where, n, value)
                if got != kind:
                    raise DataFileError(
                        f"{where}: {n} is {json.dumps(value)} (a {got}), but the column holds "
                        f"{kind} values (from row 1); give every value of a column one kind: "
                        "int, bool or str"
                    )
        columns[n], kinds[n] = column, kind
    return columns, kinds, lines


def _parse_line(where: str, text: str) -> dict:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataFileError(
            f"{where}: not valid JSON ({exc.msg} at column {exc.colno}); write one JSON "
            'object per line, e.g. {"X": 3, "Y": 7, "prompt": "3+7="}'
        ) from None
    if not isinstance(obj, dict):
        raise DataFileError(
            f"{where}: a JSON {type(obj).__name__}, not an object; write one object per "
            'line, e.g. {"X": 3, "Y": 7, "prompt": "3+7="}'
        )
    return obj


_TYPES = {"int": int, "bool": bool, "str": str}


def _value_kind(where: str, name: str, value: object) -> str:
    kind = _kind(value)
    if name == PROMPT and kind != "str":
        raise DataFileError(f"{where}: prompt is {value!r}, not a string; give the prompt's text")
    if kind is None:
        raise DataFileError(
            f"{where}: {name} is {json.dumps(value)}, a {type(value).__name__}; values must be "
            "integers, booleans (true/false) or strings"
        )
    if kind == "int" and not INT_MIN <= value <= INT_MAX:
        raise DataFileError(
            f"{where}: {name} = {value} is outside the 64-bit integer range the expressions "
            "compute in; use smaller numbers, or strings"
        )
    return kind


def _row_differs(where: str, names: list[str], got: list[str]) -> DataFileError:
    missing = [n for n in names if n not in got]
    extra = [n for n in got if n not in names]
    parts = []
    if missing:
        parts.append(f"lacks {missing}")
    if extra:
        parts.append(f"has {extra}, which the first row does not")
    return DataFileError(
        f"{where}: the row {' and '.join(parts)} (the first row has {names}); give every row "
        "the same variables"
    )


def _read_csv(path: Path) -> tuple[dict[str, list], dict[str, str], list[int]]:
    # utf-8-sig: a spreadsheet's byte-order mark is not part of the first column's name.
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise DataFileError(
                f"{path}: the file is empty; give a header naming the columns, then one row "
                "per input (at least 2)"
            )
        _check_names(path, header, f"{path}, header (line 1)")
        cells: list[list[str]] = [[] for _ in header]
        lines: list[int] = []
        for values in reader:
            if not values:
                continue  # a blank line is not a row
            row = len(lines) + 1
            if row > MAX_INPUTS:
                raise _too_many(path)
            if len(values) != len(header):
                missing = header[len(values) :]
                problem = (
                    f"lacks values for {missing}"
                    if missing
                    else f"has {len(values)} values for the header's {len(header)} columns"
                )
                raise DataFileError(
                    f"{_where(path, row, reader.line_num)}: the row {problem} (the header names "
                    f"{header}); give every row one value per column"
                )
            for column, value in zip(cells, values, strict=True):
                column.append(value)
            lines.append(reader.line_num)
    columns: dict[str, list] = {}
    kinds: dict[str, str] = {}
    for name, column in zip(header, cells, strict=True):
        kinds[name], columns[name] = _csv_column(path, name, column, lines)
    return columns, kinds, lines


def _csv_column(path: Path, name: str, column: list[str], lines: list[int]) -> tuple[str, list]:
    """A CSV column's kind and values: all integers → int, all true/false → bool, else str."""
    if name == PROMPT or not column:
        return "str", column
    if all(CSV_INT.fullmatch(v) for v in column):
        values = [int(v) for v in column]
        for row, value in enumerate(values, 1):
            if not INT_MIN <= value <= INT_MAX:
                _value_kind(_where(path, row, lines[row - 1]), name, value)
        return "int", values
    lowered = [v.strip().lower() for v in column]
    if all(v in ("true", "false") for v in lowered):
        return "bool", [v == "true" for v in lowered]
    return "str", column


def _finish(
    path: Path, columns: dict[str, list], kinds: dict[str, str], lines: list[int]
) -> tuple[dict[str, np.ndarray], list[str] | None]:
    n = len(lines)
    if n < 2:
        raise DataFileError(
            f"{path}: {n} row{'s' if n != 1 else ''}; a task needs at least 2 inputs for "
            "interchange pairs: give one row per input"
        )
    variables = [v for v in columns if v != PROMPT]
    seen: dict[tuple, int] = {}
    for k, key in enumerate(zip(*(columns[v] for v in variables), strict=True)):
        first = seen.setdefault(key, k)
        if first != k:
            shown = ", ".join(f"{v}={x!r}" for v, x in zip(variables, key, strict=True))
            raise DataFileError(
                f"{path}: rows {first + 1} (line {lines[first]}) and {k + 1} (line {lines[k]}) "
                f"have the same values ({shown}); an input is its values: keep one of them"
            )
    dtypes = {"int": np.int64, "bool": np.bool_, "str": np.str_}
    values = {v: np.array(columns[v], dtype=dtypes[kinds[v]]) for v in variables}
    prompts = columns.get(PROMPT)
    return values, prompts


def row_prompts(
    path: str | Path,
    values: Mapping[str, np.ndarray],
    prompts: Sequence[str] | None,
    template: str | None,
) -> list[str]:
    """The prompts of a data file's rows: rendered from ``template`` when given (a prompt
    column must then equal the rendering), else the file's ``prompt`` column."""
    if template is None:
        if prompts is None:
            raise DataFileError(
                f"{path}: no 'prompt' column and no template; give each row its prompt, or "
                "give task.data.template (e.g. '{X}+{Y}=') to render them"
            )
        return list(prompts)
    domains = {v: () for v in values}
    try:
        _renderer(template, domains)  # refuses a template naming no or unknown variables
    except ValueError as exc:
        raise DataFileError(
            f"{path}: {exc}; the file's input variables are {list(values)}"
        ) from None
    rendered = render_rows(template, values)
    if prompts is not None:
        for i, (given, made) in enumerate(zip(prompts, rendered, strict=True)):
            if given != made:
                raise DataFileError(
                    f"{path}, row {i + 1}: its prompt {given!r} differs from the template's "
                    f"rendering {made!r} of {template!r}; fix the row or the template, or drop "
                    "the prompt column (the template then renders every prompt)"
                )
    return rendered


def render_rows(template: str, values: Mapping[str, np.ndarray]) -> list[str]:
    """Every row's prompt from ``template``: the same text as rendering row by row, each
    placeholder replaced by str(value), built column-wise (1e5 rows in a fraction of a second)."""
    pieces = _PLACEHOLDER.split(template)  # literal, name, literal, name, ..., literal
    n = len(next(iter(values.values())))
    parts = [
        itertools.repeat(piece, n) if k % 2 == 0 else map(str, values[piece].tolist())
        for k, piece in enumerate(pieces)
    ]
    return list(map("".join, zip(*parts)))


class RowModel(CausalModel):
    """A candidate over given rows. Checked by running it on the rows, not on the product of its
    domains: that product may be far larger than the data, and hold combinations the data
    never has (a zero divisor, say) on which a correct candidate fails."""

    def __init__(
        self,
        name: str,
        inputs: Mapping[str, Sequence],
        mechanisms: Mapping[str, str],
        output: str | None = None,
        *,
        rows: Mapping[str, np.ndarray],
    ) -> None:
        self.rows = dict(rows)  # before the base class's checks, which run on it
        super().__init__(name, inputs, mechanisms, output)

    def _check_domains(self) -> None:
        self.run(self.rows)

    def input_space(self) -> dict[str, np.ndarray]:
        """The rows: a data task's inputs are exactly them."""
        return dict(self.rows)


def data_task(
    name: str,
    path: str | Path,
    output: str,
    candidates: Mapping[str, Mapping[str, str]],
    template: str | None = None,
    answer: str | None = None,
    classes: Sequence | None = None,
    fallback: str = "output",
) -> Task:
    """A task whose inputs are the rows of a .jsonl or .csv file (``read_rows``); ``output`` is
    the output mechanism over the input variables, ``candidates`` map names to {"P": ..., "O":
    ...}; the fallback computes P = the output, O = P. ``template``: prompts are rendered from
    it (a prompt column must agree); without it they are the file's. ``answer``: how an output
    value reads as a causal LM's answer, with {O}. ``classes``: the output values in class order
    (default: the sorted outputs over the rows).

    Refused as for a custom task, over the rows: a candidate that disagrees with the output, an
    output outside the classes, a counterfactual that cannot be computed or labelled."""
    values, prompts = read_rows(path)
    prompts = row_prompts(path, values, prompts, template)
    check_classes(name, classes)
    domains = {v: tuple(np.unique(x).tolist()) for v, x in values.items()}

    def model(model_name: str, mechanisms: dict[str, str]) -> RowModel:
        return RowModel(model_name, domains, mechanisms, "O", rows=values)

    models = candidate_models(candidates, model)
    base = model(fallback, {"P": output, "O": "P"})
    if classes is None:
        classes = sorted(set(np.asarray(base.run(values)["O"]).tolist()))
    task = Task(
        name,
        domains,
        _renderer(template, domains) if template is not None else _no_template(name),
        tuple(classes),
        tuple(models),
        base,
        rows=values,
        given_prompts=tuple(prompts),
        template=template,
        answer=answer,
    )
    check_task(task)
    return task


def _no_template(name: str) -> Callable[[Mapping[str, object]], str]:
    def render(values: Mapping[str, object]) -> str:
        raise ValueError(
            f"task {name} takes its prompts from its data file and has no template to render "
            f"{dict(values)}; give task.data.template to render prompts of other values"
        )

    return render
