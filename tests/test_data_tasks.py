"""Tasks from data files: rows read and checked with errors naming file, row and fix; a data
task equals the custom task on the same inputs; answers and the character spans of values."""

import csv
import itertools
import json
import time

import numpy as np
import pytest

from intervention import data_tasks
from intervention.data_tasks import data_task, read_rows
from intervention.tasks import arithmetic, boolean, check_answer, custom_task

pytestmark = pytest.mark.unit

SUM = {
    "(X+Y)+Z": {"P": "X + Y", "O": "P + Z"},
    "X+(Y+Z)": {"P": "Y + Z", "O": "X + P"},
    "(X)+Y+Z": {"P": "X", "O": "P + Y + Z"},
}
DOMAINS = {"X": [1, 2, 3, 11], "Y": [1, 5, 12], "Z": [0, 1]}


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _csv(path, header, rows):
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _refused(path, *pieces, **kwargs):
    with pytest.raises(ValueError) as info:
        if kwargs:
            data_task("t", path, **kwargs)
        else:
            read_rows(path)
    for piece in pieces:
        assert piece in str(info.value), (piece, str(info.value))
    return str(info.value)


def _sum_rows():
    rows = []
    for x, y, z in itertools.product(*DOMAINS.values()):
        rows.append({"X": x, "Y": y, "Z": z, "prompt": f"{x}+{y}+{z}="})
    return rows


# -- reading ---------------------------------------------------------------------------------


def test_rows_are_read_with_one_kind_per_column(tmp_path):
    path = _jsonl(
        tmp_path / "r.jsonl",
        [
            {"A": 3, "B": True, "C": "x", "prompt": "3 T x"},
            {"A": -4, "B": False, "C": "yy", "prompt": "-4 F yy"},
        ],
    )
    values, prompts = read_rows(path)
    assert list(values) == ["A", "B", "C"]
    assert values["A"].dtype == np.int64 and values["A"].tolist() == [3, -4]
    assert values["B"].dtype == np.bool_ and values["B"].tolist() == [True, False]
    assert values["C"].dtype.kind == "U" and values["C"].tolist() == ["x", "yy"]
    assert prompts == ["3 T x", "-4 F yy"]


def test_csv_columns_take_their_kind_from_all_their_cells(tmp_path):
    path = _csv(
        tmp_path / "r.csv",
        ["N", "B", "S", "M", "prompt"],
        [
            ["1", "True", "a", "1", "p1"],
            ["-2", "FALSE", "b", "x", "p2"],
            ["30", "true", "7", "2", "p3"],
        ],
    )
    values, prompts = read_rows(path)
    assert values["N"].tolist() == [1, -2, 30] and values["N"].dtype == np.int64
    assert values["B"].tolist() == [True, False, True]
    assert values["S"].tolist() == ["a", "b", "7"]
    assert values["M"].tolist() == ["1", "x", "2"]  # one non-integer makes the column strings
    assert prompts == ["p1", "p2", "p3"]
    # A spreadsheet's byte-order mark is not part of the first name.
    (tmp_path / "bom.csv").write_bytes("\ufeffA,prompt\n1,a\n2,b\n".encode())
    assert list(read_rows(tmp_path / "bom.csv")[0]) == ["A"]
    # Without a prompt column the prompts are None (a template must render them).
    values, prompts = read_rows(_csv(tmp_path / "np.csv", ["A"], [["1"], ["2"]]))
    assert prompts is None and values["A"].tolist() == [1, 2]


def test_a_missing_file_or_another_suffix_is_refused(tmp_path):
    _refused(tmp_path / "nothing.jsonl", "nothing.jsonl: no such file", "current working directory")
    other = tmp_path / "rows.txt"
    other.write_text('{"A": 1}\n')
    _refused(other, "rows.txt", "must end in .jsonl", "or .csv", "'.txt'")
    _refused(tmp_path / "rows", "no suffix")


def test_invalid_json_and_non_objects_name_their_row(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"A": 1, "prompt": "1"}\n\n{"A": 2, "prompt": "2"\n')
    # The blank line is not a row: row 2 is on line 3.
    _refused(path, "r.jsonl, row 2 (line 3): not valid JSON", "one JSON object per line")
    path.write_text('{"A": 1, "prompt": "1"}\n[1, 2]\n')
    _refused(path, "row 2 (line 2): a JSON list, not an object")
    path.write_text('{"A": 1, "prompt": "1"} {"A": 2}\n{"A": 2, "prompt": "2"}\n')
    _refused(path, "row 1 (line 1): not valid JSON (Extra data")


def test_rows_must_hold_the_first_rows_variables(tmp_path):
    rows = [
        {"X": 1, "Y": 2, "prompt": "a"},
        {"X": 2, "Y": 2, "prompt": "b"},
        {"X": 3, "prompt": "c"},
    ]
    _refused(_jsonl(tmp_path / "m.jsonl", rows), "m.jsonl, row 3 (line 3)", "lacks ['Y']")
    rows[2] = {"X": 3, "Y": 1, "W": 0, "prompt": "c"}
    _refused(
        _jsonl(tmp_path / "e.jsonl", rows),
        "row 3 (line 3)",
        "has ['W'], which the first row does not",
        "give every row the same variables",
    )
    short = _csv(tmp_path / "s.csv", ["X", "Y", "prompt"], [["1", "2", "a"], ["2", "3"]])
    _refused(short, "s.csv, row 2 (line 3)", "lacks values for ['prompt']")
    long = _csv(tmp_path / "l.csv", ["X", "prompt"], [["1", "a"], ["2", "b", "extra"]])
    _refused(long, "row 2 (line 3)", "has 3 values for the header's 2 columns")


def test_values_of_the_wrong_kind_are_refused(tmp_path):
    rows = [{"X": 1, "prompt": "a"}, {"X": 2, "prompt": "b"}, {"X": "3", "prompt": "c"}]
    _refused(
        _jsonl(tmp_path / "k.jsonl", rows),
        'row 3 (line 3): X is "3" (a str), but the column holds int values (from row 1)',
        "one kind: int, bool or str",
    )
    rows[2] = {"X": True, "prompt": "c"}  # a bool is not an int here
    _refused(_jsonl(tmp_path / "b.jsonl", rows), "X is true (a bool)")
    rows[2] = {"X": 2.5, "prompt": "c"}
    _refused(_jsonl(tmp_path / "f.jsonl", rows), "X is 2.5, a float", "integers, booleans")
    rows[2] = {"X": None, "prompt": "c"}
    _refused(_jsonl(tmp_path / "n.jsonl", rows), "X is null")
    rows[2] = {"X": 2**70, "prompt": "c"}
    _refused(_jsonl(tmp_path / "big.jsonl", rows), "outside the 64-bit integer range")
    rows[2] = {"X": 3, "prompt": 3}
    _refused(_jsonl(tmp_path / "p.jsonl", rows), "row 3 (line 3): prompt is 3, not a string")
    huge = _csv(tmp_path / "h.csv", ["X"], [["1"], [str(2**70)]])
    _refused(huge, "h.csv, row 2 (line 3): X = ", "64-bit")


def test_column_names_must_be_usable_input_variables(tmp_path):
    for name, piece in [
        ("my var", "cannot be an input variable's name"),
        ("and", "Python keyword"),
        ("xor", "cannot be an input variable's name"),
        ("P", "clashes with the candidates' variables P and O"),
    ]:
        path = _jsonl(tmp_path / "c.jsonl", [{name: 1, "prompt": "a"}, {name: 2, "prompt": "b"}])
        _refused(path, f"column {name!r}", piece)
    only = _jsonl(tmp_path / "o.jsonl", [{"prompt": "a"}, {"prompt": "b"}])
    _refused(only, "no input variable columns")
    _refused(_csv(tmp_path / "d.csv", ["X", "X"], [["1", "2"]]), "columns ['X'] repeat")


def test_duplicate_rows_name_both(tmp_path):
    rows = [{"X": 1, "Y": "a"}, {"X": 2, "Y": "a"}, {"X": 1, "Y": "b"}, {"X": 2, "Y": "a"}]
    _refused(
        _jsonl(tmp_path / "d.jsonl", rows),
        "d.jsonl: rows 2 (line 2) and 4 (line 4) have the same values (X=2, Y='a')",
        "keep one of them",
    )
    # The prompt does not make an input: the values do.
    rows = [{"X": 1, "prompt": "one"}, {"X": 1, "prompt": "uno"}]
    _refused(_jsonl(tmp_path / "p.jsonl", rows), "rows 1 (line 1) and 2 (line 2)")


def test_too_few_or_too_many_rows(tmp_path, monkeypatch):
    empty = tmp_path / "e.jsonl"
    empty.write_text("\n\n")
    _refused(empty, "e.jsonl: 0 rows", "at least 2 inputs")
    _refused(_jsonl(tmp_path / "one.jsonl", [{"X": 1, "prompt": "1"}]), "1 row;", "at least 2")
    (tmp_path / "e.csv").write_text("")
    _refused(tmp_path / "e.csv", "e.csv: the file is empty", "give a header")
    _refused(_csv(tmp_path / "h.csv", ["X", "prompt"], []), "h.csv: 0 rows")
    monkeypatch.setattr(data_tasks, "MAX_INPUTS", 5)
    many = [{"X": i, "prompt": str(i)} for i in range(6)]
    _refused(_jsonl(tmp_path / "m.jsonl", many), "more than 5 rows", "use fewer rows")
    csv_many = _csv(tmp_path / "m.csv", ["X"], [[str(i)] for i in range(6)])
    _refused(csv_many, "more than 5 rows")
    assert len(read_rows(_jsonl(tmp_path / "five.jsonl", many[:5]))[1]) == 5


def test_a_hundred_thousand_rows_load(tmp_path):
    n = 100_000
    path = tmp_path / "big.jsonl"
    path.write_text(
        "".join(
            f'{{"X": {i}, "Y": {i % 7}, "S": "{"ab"[i % 2]}", "prompt": "{i} {i % 7}"}}\n'
            for i in range(n)
        )
    )
    start = time.perf_counter()
    values, prompts = read_rows(path)
    read = time.perf_counter() - start
    task = data_task("big", path, "Y", {"c": {"P": "Y", "O": "P"}})
    built = time.perf_counter() - start
    print(f"\n1e5 rows: read in {read:.2f} s, task built and checked in {built:.2f} s")
    assert values["X"].shape == (n,) and values["S"].dtype.kind == "U" and len(prompts) == n
    assert task.n_inputs == n and task.prompts()[12345] == "12345 4"
    assert task.inputs["Y"] == tuple(range(7))
    assert task.labels()[:8].tolist() == [0, 1, 2, 3, 4, 5, 6, 0]


# -- the task --------------------------------------------------------------------------------


def test_data_files_round_trip_into_the_custom_tasks_labels(tmp_path):
    custom = custom_task("t", DOMAINS, "{X}+{Y}+{Z}=", "X + Y + Z", SUM)
    classes = custom.classes
    rows = _sum_rows()
    # A shuffled subset: the data task's inputs are exactly its rows, in file order.
    order = np.random.default_rng(0).permutation(len(rows))[:17]
    jsonl = _jsonl(tmp_path / "rows.jsonl", [rows[i] for i in order])
    csv_path = _csv(
        tmp_path / "rows.csv",
        ["X", "Y", "Z", "prompt"],
        [[rows[i][k] for k in ("X", "Y", "Z", "prompt")] for i in order],
    )
    for path in (jsonl, csv_path):
        task = data_task("t", path, "X + Y + Z", SUM, classes=classes)
        assert task.n_inputs == len(order)
        assert task.prompts() == [custom.prompts()[i] for i in order]
        assert task.labels().tolist() == custom.labels()[order].tolist()
        base, source = np.meshgrid(np.arange(len(order)), np.arange(len(order)))
        base, source = base.ravel(), source.ravel()
        for mine, theirs in zip(task.candidates, custom.candidates, strict=True):
            got = task.counterfactual_labels(mine, base, source)
            want = custom.counterfactual_labels(theirs, order[base], order[source])
            assert got.tolist() == want.tolist(), mine.name
        # Domains are the values the rows take, sorted; values are the rows.
        assert task.inputs["X"] == tuple(sorted({rows[i]["X"] for i in order}))
        assert task.values["Y"].tolist() == [rows[i]["Y"] for i in order]
    # Every row of the product, in its order: the same task as the custom one.
    full = data_task("t", _jsonl(tmp_path / "all.jsonl", rows), "X + Y + Z", SUM)
    assert full.classes == custom.classes
    assert full.labels().tolist() == custom.labels().tolist()


def test_only_the_rows_are_run_never_the_product_of_their_domains(tmp_path):
    # Y - X + 1 is never 0 on these rows, but is on (X=2, Y=1) of the product.
    rows = [{"X": 1, "Y": 1, "prompt": "1 1"}, {"X": 2, "Y": 2, "prompt": "2 2"}]
    path = _jsonl(tmp_path / "r.jsonl", rows)
    cands = {"c": {"P": "X // (Y - X + 1)", "O": "P"}}
    task = data_task("t", path, "X // (Y - X + 1)", cands)
    assert task.labels().tolist() == [0, 1]
    with pytest.raises(ValueError, match="by zero"):
        custom_task("t", {"X": [1, 2], "Y": [1, 2]}, "{X} {Y}", "X // (Y - X + 1)", cands)


def test_bool_and_str_columns_in_expressions(tmp_path):
    rows = [
        {"A": a, "B": b, "OP": op, "prompt": f"{a} {op} {b}"}
        for a in (True, False)
        for b in (True, False)
        for op in ("and", "or")
    ]
    path = _jsonl(tmp_path / "b.jsonl", rows)
    output = "(A and B) if OP == 'and' else (A or B)"
    task = data_task(
        "b", path, output, {"c": {"P": "A", "O": "(P and B) if OP == 'and' else (P or B)"}}
    )
    assert task.classes == (False, True)
    assert task.labels().tolist() == [
        int(r["A"] and r["B"] if r["OP"] == "and" else r["A"] or r["B"]) for r in rows
    ]


def test_templates_render_prompts_and_must_match_a_prompt_column(tmp_path):
    rows = _sum_rows()[:6]
    path = _jsonl(tmp_path / "r.jsonl", rows)
    task = data_task("t", path, "X + Y + Z", SUM, template="{X}+{Y}+{Z}=")
    assert task.prompts() == [r["prompt"] for r in rows] and task.template == "{X}+{Y}+{Z}="
    bare = [{k: v for k, v in r.items() if k != "prompt"} for r in rows]
    no_prompts = _jsonl(tmp_path / "bare.jsonl", bare)
    task = data_task("t", no_prompts, "X + Y + Z", SUM, template="{X} plus {Y} plus {Z} is")
    assert task.prompts()[0] == "1 plus 1 plus 0 is"
    _refused(
        path,
        "r.jsonl, row 1: its prompt '1+1+0=' differs from the template's rendering '1 + 1 + 0 ='",
        "drop the prompt column",
        output="X + Y + Z",
        candidates=SUM,
        template="{X} + {Y} + {Z} =",
    )
    _refused(
        no_prompts,
        "no 'prompt' column and no template",
        "task.data.template",
        output="X + Y + Z",
        candidates=SUM,
    )
    _refused(path, "names ['W']", output="X", candidates=SUM, template="{W}")


def test_candidates_are_checked_over_the_rows(tmp_path):
    path = _jsonl(tmp_path / "r.jsonl", _sum_rows())
    _refused(
        path,
        "candidate 'bad' disagrees with the task's output on input '1+1+1='",
        output="X + Y + Z",
        candidates={"bad": {"P": "X", "O": "P + Y"}},
    )
    # An interchange leaves the classes: P = X of row 2 in row 1 gives 2 + 1 + 0 = 3.
    two = [
        {"X": 1, "Y": 1, "Z": 0, "prompt": "1+1+0="},
        {"X": 2, "Y": 5, "Z": 0, "prompt": "2+5+0="},
    ]
    _refused(
        _jsonl(tmp_path / "two.jsonl", two),
        "candidate '(X)+Y+Z': with P set to 2 (its value on another input), its output on input "
        "'1+1+0=' is 3, which is not one of the task's classes [2, 7]",
        output="X + Y + Z",
        candidates={"(X)+Y+Z": SUM["(X)+Y+Z"]},
    )
    _refused(
        path,
        "output 2 is not one of its classes [999]",
        "task.data.classes",
        output="X + Y + Z",
        candidates=SUM,
        classes=[999],
    )
    _refused(path, "missing ['O']", output="X + Y + Z", candidates={"c": {"P": "X"}})
    _refused(path, "repeat a value", output="X + Y + Z", candidates=SUM, classes=[3, 3])


# -- answers and spans -----------------------------------------------------------------------


def test_answers_render_each_class_in_order(tmp_path):
    path = _jsonl(tmp_path / "r.jsonl", _sum_rows()[:4])
    task = data_task("t", path, "X + Y + Z", SUM, answer="<{O}>")
    assert task.answers() == [f"<{c}>" for c in task.classes] and task.answer == "<{O}>"
    with pytest.raises(ValueError, match="has no answer template.*task.data.answer"):
        arithmetic().answers()
    custom = custom_task("c", DOMAINS, "{X}+{Y}+{Z}=", "X + Y + Z", SUM, answer=" {O}")
    assert custom.answers()[:2] == [" 2", " 3"]
    for bad, piece in [
        ("no value", "does not show the output value"),
        ("{O} {X}", "placeholder or brace other than {O}"),
        ("{O}}", "other than {O}"),
        ("{o}", "does not show"),
    ]:
        with pytest.raises(ValueError, match="answer template"):
            check_answer(bad)
        _refused(path, piece, output="X + Y + Z", candidates=SUM, answer=bad)


def test_value_spans_are_exact_with_a_template():
    task = arithmetic()
    assert task.template == "{X}+{Y}+{Z}="
    assert task.prompts()[:2] == ["1+1+1=", "1+1+2="] and task.prompts()[-1] == "10+10+10="
    spans = task.value_spans()
    prompts = task.prompts()
    for i in range(task.n_inputs):
        for v in "XYZ":
            start, end = spans[i][v]
            assert prompts[i][start:end] == str(task.values[v][i])
    assert spans[-1] == {"X": (0, 2), "Y": (3, 5), "Z": (6, 8)}
    assert task.value_spans(["Z"])[-1] == {"Z": (6, 8)}
    with pytest.raises(ValueError, match=r"\['W'\] are not input variables"):
        task.value_spans(["W"])
    twice = custom_task("c", {"A": [1, 2], "B": [3]}, "{A}{A}{B}", "A", {"c": {"P": "A", "O": "P"}})
    with pytest.raises(ValueError, match="A appears more than once in the template"):
        twice.value_spans()
    assert twice.value_spans(["B"])[1] == {"B": (2, 3)}
    hidden = custom_task("c", {"A": [1, 2], "B": [3]}, "{A}=", "A", {"c": {"P": "A", "O": "P"}})
    with pytest.raises(ValueError, match="B does not appear in the template"):
        hidden.value_spans()


def test_value_spans_by_search_without_a_template(tmp_path):
    rows = [
        {"X": 12, "W": "cat", "prompt": "a cat ate 12"},
        {"X": 7, "W": "dog", "prompt": "7 dogs"},
    ]
    task = data_task("t", _jsonl(tmp_path / "r.jsonl", rows), "X", {"c": {"P": "X", "O": "P"}})
    assert task.template is None
    assert task.value_spans() == [{"X": (10, 12), "W": (2, 5)}, {"X": (0, 1), "W": (2, 5)}]
    rows[1]["prompt"] = "7 dogs, 7 cats"
    task = data_task("t", _jsonl(tmp_path / "a.jsonl", rows), "X", {"c": {"P": "X", "O": "P"}})
    with pytest.raises(ValueError) as info:
        task.value_spans()
    for piece in ["input 1", "'7' of X occurs 2 times", "'7 dogs, 7 cats'", "task.data.template"]:
        assert piece in str(info.value)
    assert task.value_spans(["W"])[1] == {"W": (2, 5)}
    rows[1]["prompt"] = "seven dogs"
    task = data_task("t", _jsonl(tmp_path / "n.jsonl", rows), "X", {"c": {"P": "X", "O": "P"}})
    with pytest.raises(ValueError, match="'7' of X does not occur in the prompt 'seven dogs'"):
        task.value_spans()
    # Overlapping occurrences count: '11' in '111' is ambiguous.
    rows = [{"X": 11, "prompt": "111"}, {"X": 2, "prompt": "2"}]
    task = data_task("t", _jsonl(tmp_path / "o.jsonl", rows), "X", {"c": {"P": "X", "O": "P"}})
    with pytest.raises(ValueError, match="occurs 2 times"):
        task.value_spans()
    # The boolean task has no template: X's True often reads twice in a prompt.
    with pytest.raises(ValueError, match="occurs 2 times"):
        boolean().value_spans(["X"])
