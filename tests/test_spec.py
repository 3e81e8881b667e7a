"""The job spec on bad input: every problem that can be known from the spec alone is a
SpecError at load time, naming the field and the fix, before any training or scoring."""

import math
from pathlib import Path

import pytest

from intervention.causal_model import MAX_INPUTS
from intervention.iia import MAX_ALL_PAIRS_INPUTS, MAX_PAIRS
from service.spec import MAX_BATCH, SpecError, load_spec, parse_spec, require_address

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _base(**change):
    spec = {
        "name": "t",
        "task": {"builtin": "arithmetic"},
        "network": {"train": {"n_layer": 2}},
        "sites": [{"layer": 0}],
    }
    return {**spec, **change}


def _custom(candidates=None, **custom):
    task = {"inputs": {"A": [0, 1, 2], "B": [0, 1, 2]}, "template": "{A}+{B}=", "output": "A + B"}
    return _base(
        task={"custom": {**task, **custom}},
        candidates=candidates or {"left": {"P": "A", "O": "P + B"}},
    )


def _refused(spec: dict, *pieces: str) -> str:
    with pytest.raises(SpecError) as info:
        parse_spec(spec)
    for piece in pieces:
        assert piece in str(info.value), (piece, str(info.value))
    return str(info.value)


@pytest.mark.unit
def test_a_huge_custom_space_is_refused_from_its_sizes_alone():
    domains = {f"V{i}": list(range(20)) for i in range(8)}
    _refused(
        _custom(
            inputs=domains, template="{V0}", output="V0", candidates={"c": {"P": "V0", "O": "P"}}
        ),
        "task.custom.inputs",
        f"25,600,000,000 inputs, more than the limit of {MAX_INPUTS:,}",
    )
    _refused(_custom(inputs={"A": [1]}, template="{A}", output="A"), "1 input", "at least 2")
    _refused(_custom(inputs={}), "at least one input variable")
    _refused(_custom(inputs={"A": [], "B": [1, 2]}), "task.custom.inputs.A: give at least one")


@pytest.mark.unit
@pytest.mark.parametrize(
    "section, field, value",
    [
        ("das", "batch_size", 1e9),
        ("network.train", "batch_size", MAX_BATCH + 1),
        ("pairs", "partners", 1e9),
        ("das", "steps", 10**9),
        ("execution", "workers", 10**6),
        ("execution", "shard_size", MAX_PAIRS + 1),
        ("solve", "time_limit", 1e12),
    ],
)
def test_sizes_have_upper_bounds(section, field, value):
    if section == "network.train":
        spec = _base(network={"train": {field: value}})
    else:
        spec = _base(**{section: {field: value}})
    _refused(spec, f"{section}.{field}: Input should be less than or equal to")


@pytest.mark.unit
@pytest.mark.parametrize(
    "section, field",
    [
        ("solve", "time_limit"),
        ("das", "lr"),
        ("das", "held_out"),
        ("execution", "cpus_per_worker"),
        ("execution", "gpus_per_worker"),
        ("network", "accuracy_floor"),
    ],
)
@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_no_float_field_takes_inf_or_nan(section, field, value):
    spec = _base(**{section: {field: value}})
    if section == "network":
        spec["network"] = {"train": {}, field: value}
    _refused(spec, f"{section}.{field}: must be a finite number, not inf or nan")


@pytest.mark.unit
def test_floors_are_finite_distinct_and_in_range():
    _refused(_base(solve={"floors": [1.0, math.nan]}), "solve.floors.1: must be a finite")
    _refused(_base(solve={"floors": [1.0, 0.9, 1.0]}), "floors repeat [1.0]; list each floor once")
    _refused(_base(solve={"floors": [0.0]}), "in (0, 1]")
    _refused(_base(solve={"floors": []}), "non-empty")


@pytest.mark.unit
@pytest.mark.parametrize("name", ["job\n", "job\nrm", "job ", "../x", ".hidden", "a/b", ""])
def test_names_are_plain_folder_names_to_the_end(name):
    _refused(_base(name=name), "plain folder name")


@pytest.mark.unit
def test_solve_settings_the_solver_would_refuse_only_after_training():
    # Sampled partners under pairwise semantics: the sparse pair tensor, which has no exact
    # program.
    assert parse_spec(_base(solve={"semantics": "pairwise"})).solve.semantics == "pairwise"
    _refused(
        _base(solve={"semantics": "pairwise", "method": "ilp"}),
        "solve.method = 'ilp' has no exact program over sampled partners",
    )
    _refused(
        _base(solve={"semantics": "pairwise", "max_models": 2}, pairs={"design": "all"}),
        "solve.max_models is supported for semantics = 'per-input' only",
    )
    spec = parse_spec(_base(solve={"semantics": "pairwise"}, pairs={"design": "all"}))
    assert spec.solve.semantics == "pairwise"
    assert parse_spec(_base(solve={"max_models": 2})).solve.max_models == 2
    _refused(
        _base(solve={"cells_per_model": 2}),
        "solve.cells_per_model = 2 needs semantics = 'pairwise' and scope = 'per-model'",
    )
    two = _base(solve={"semantics": "pairwise", "cells_per_model": 2}, pairs={"design": "all"})
    assert parse_spec(two).solve.cells_per_model == 2


@pytest.mark.unit
def test_pair_designs_fit_the_task():
    # arithmetic has 1000 inputs, boolean 64: partners are other inputs.
    _refused(_base(pairs={"partners": 1000}), "pairs: partners per input must be in 1..999")
    _refused(_base(task={"builtin": "boolean"}, pairs={"partners": 64}), "must be in 1..63 for 64")
    assert parse_spec(_base(task={"builtin": "boolean"}, pairs={"partners": 63}))
    wide = {"A": list(range(100)), "B": list(range(100))}  # 10,000 inputs
    _refused(
        {**_custom(inputs=wide), "pairs": {"design": "all"}},
        f"more than its limit of {MAX_ALL_PAIRS_INPUTS:,}",
        "pairs.design = 'sampled'",
    )
    big = {"A": list(range(1000)), "B": list(range(1000))}  # a million inputs
    _refused(
        {**_custom(inputs=big), "pairs": {"partners": 100}},
        f"more than the limit of {MAX_PAIRS:,}",
        "use at most 25 partners",
    )


@pytest.mark.unit
def test_das_keeps_enough_inputs_to_train_on():
    spec = _custom(inputs={"A": [0, 1], "B": [0, 1]})
    spec = {**spec, "pairs": {"partners": 3}}
    _refused({**spec, "das": {"held_out": 0.7}}, "leaves 1 of the task's 4 inputs", "lower das")
    assert parse_spec({**spec, "das": {"held_out": 0.5}}).das.held_out == 0.5


@pytest.mark.unit
def test_sites_fit_a_network_trained_from_the_spec():
    _refused(_base(sites=[{"layer": 2}]), "sites.0.layer = 2", "choose -1 (embeddings) to 1")
    _refused(_base(sites=[{"layer": 0}, {"layer": 5}]), "sites.1.layer = 5")
    _refused(
        _base(sites=[{"layer": 0, "positions": [1, 3], "rank": 129}]),
        "sites.0.rank = 129 exceeds the site's dimension 128",
    )
    _refused(_base(sites=[{"layer": 0, "positions": [2, 2]}]), "must be distinct; [2] repeat")
    _refused(_base(sites=[{"layer": 0, "positions": []}]), "at least one token position")
    _refused(_base(network={"train": {"n_embd": 30, "n_head": 4}}), "not divisible by n_head")
    # A loaded network's depth is unknown here: any layer passes to the engine's own check.
    loaded = parse_spec(_base(network={"path": "some/dir"}, sites=[{"layer": 40}]))
    assert loaded.sites[0].layer == 40
    assert parse_spec(_base(sites=[{"layer": 1, "positions": [1, 3], "rank": 128}]))


@pytest.mark.unit
def test_custom_task_expressions_are_checked_at_load_time():
    _refused(_custom(output="A + C"), "task.custom.output", "reads ['C']")
    _refused(_custom(output="(" * 300 + "A" + ")" * 300), "nested too deeply")
    _refused(_custom(output="A * 99999999999999999999999"), "outside the 64-bit range")
    _refused(_custom(template="{C}"), "task.custom.template names ['C']")
    _refused(_custom(template="no inputs"), "shows no input")
    _refused(
        _custom(candidates={"left": {"P": "A +", "O": "P + B"}}),
        "candidates.left.P",
        "not a valid expression",
    )
    _refused(
        _custom(candidates={"left": {"P": "A", "O": "A + B"}}),
        "candidates.left.O",
        "does not read P",
    )
    _refused(
        _custom(candidates={"output": {"P": "A", "O": "P + B"}}),
        "fallback 'output' is also a candidate's name",
    )
    _refused(_base(candidates=["(X+Y)+Z", "(X+Y)+Z"]), "candidates repeat ['(X+Y)+Z']")


@pytest.mark.unit
def test_custom_values_have_one_kind_and_strings_only_compare():
    _refused(_custom(inputs={"A": [0, 0, 1], "B": [0, 1]}), "inputs.A repeats 0")
    _refused(_custom(inputs={"A": [1, "1"], "B": [0, 1]}), "values mix ['int', 'str']")
    _refused(_custom(classes=[0, 1, 1]), "task.custom.classes repeats 1")
    words = {"OP": ["plus", "minus"], "X": [1, 2], "Y": [1, 2]}
    _refused(
        _custom(inputs=words, template="{X} {OP} {Y}", output="X + OP"),
        "applies '+' to strings",
        "OP holds strings",
    )
    spec = _custom(
        inputs=words,
        template="{X} {OP} {Y}",
        output="X + Y if OP == 'plus' else X - Y",
        candidates={"c": {"P": "Y if OP == 'plus' else -Y", "O": "X + P"}},
    )
    # Eight inputs: the default 20 partners are more than there are others to pair with.
    _refused(spec, "partners per input must be in 1..7 for 8 inputs, got 20")
    ok = parse_spec({**spec, "pairs": {"partners": 7}})
    assert ok.task.custom.inputs["OP"] == ["plus", "minus"]
    _refused(
        _custom(
            inputs=words,
            template="{X} {OP} {Y}",
            output="X",
            candidates={"c": {"P": "OP", "O": "P + X"}},
        ),
        "candidates.c.O",
        "P holds strings",
    )


@pytest.mark.unit
def test_resources_follow_rays_rules():
    _refused(_base(execution={"gpus_per_worker": 1.5}), "fractional above 1")
    _refused(_base(execution={"cpus_per_worker": 2.5}), "fractional above 1")
    spec = parse_spec(_base(execution={"gpus_per_worker": 0.25, "cpus_per_worker": 2}))
    assert spec.execution.gpus_per_worker == 0.25


@pytest.mark.unit
def test_cluster_mode_needs_an_address_from_the_spec_the_command_line_or_ray(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    # The spec alone may leave the address to the command line (ccm run --address, ccm submit).
    spec = parse_spec(_base(execution={"mode": "cluster"}))
    with pytest.raises(SpecError, match="needs the cluster's address.*--address HEAD:6379"):
        require_address(spec, None)
    assert require_address(spec, "10.0.0.1:6379") == "10.0.0.1:6379"
    assert require_address(spec, "auto") == "auto"  # what a submitted job's driver passes
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.2:6379")  # Ray reads it itself
    assert require_address(spec, None) is None
    with_address = parse_spec(_base(execution={"mode": "cluster", "address": "head:6379"}))
    assert require_address(with_address, None) == "head:6379"
    assert require_address(with_address, "other:6379") == "other:6379"
    # Other modes need nothing; an address there would silently join a cluster.
    assert require_address(parse_spec(_base(execution={"mode": "in-process"}))) is None
    _refused(
        _base(execution={"mode": "local-ray", "address": "head:6379"}),
        "execution.address is used only with mode = 'cluster'",
    )
    _refused(_base(execution={"mode": "cluster", "address": " "}), "execution.address is empty")


@pytest.mark.unit
def test_a_cluster_run_without_an_address_stops_before_any_work(tmp_path, monkeypatch):
    from service.pipeline import run

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    spec = parse_spec(_base(results=str(tmp_path / "results"), execution={"mode": "cluster"}))
    with pytest.raises(SpecError, match="needs the cluster's address"):
        run(spec, log=lambda line: None)
    assert not (tmp_path / "results").exists()  # not even the results folder was made


@pytest.mark.unit
def test_training_uses_the_specs_thread_count_whatever_the_machine():
    import torch

    from intervention.network import TrainSettings, train_network
    from intervention.tasks import arithmetic
    from intervention.tokenizer import build_tokenizer, encode_fixed_length

    task = arithmetic()
    prompts = task.prompts()[:40]
    tokenizer = build_tokenizer(prompts)
    ids = encode_fixed_length(tokenizer, prompts)
    labels = torch.as_tensor(task.labels()[:40])
    settings = TrainSettings(n_layer=1, n_embd=16, n_head=2, epochs=10, threads=1)
    seen: list[int] = []
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # the caller's (machine-dependent) setting
    try:
        train_network(
            ids,
            labels,
            len(task.classes),
            len(tokenizer),
            tokenizer.pad_token_id,
            settings,
            log=lambda line: seen.append(torch.get_num_threads()),
        )
        assert seen == [1]  # trained with the settings' thread count ...
        assert torch.get_num_threads() == 2  # ... and the caller's is given back
    finally:
        torch.set_num_threads(before)
    assert parse_spec(_base()).network.train.threads == 1
    _refused(_base(network={"train": {"threads": 0}}), "network.train.threads")


@pytest.mark.unit
def test_the_examples_still_load():
    for path in sorted(EXAMPLES.glob("*.toml")):
        assert load_spec(path).name


@pytest.mark.unit
def test_toml_inf_and_huge_numbers_from_a_file(tmp_path):
    path = tmp_path / "spec.toml"
    path.write_text(
        'name = "t"\n[task]\nbuiltin = "arithmetic"\n[network.train]\n[[sites]]\nlayer = 0\n'
        "[solve]\ntime_limit = inf\n[das]\nbatch_size = 1e9\n"
    )
    with pytest.raises(SpecError) as info:
        load_spec(path)
    text = str(info.value)
    assert "solve.time_limit: must be a finite number" in text
    assert f"das.batch_size: Input should be less than or equal to {MAX_BATCH}" in text


# -- bring your own network: data tasks, answers, heads, named positions ---------------------


def _rows_file(path, rows=None):
    import json

    rows = rows or [
        {"X": x, "Y": y, "W": w, "prompt": f"{x}+{y} {w}"}
        for x in range(1, 4)
        for y in range(1, 4)
        for w in ("a", "b")
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _small_custom(**custom):
    return {**_custom(**custom), "pairs": {"partners": 5}}  # 9 inputs: fewer partners


def _data(path, candidates=None, **data):
    spec = _base(
        task={"data": {"path": str(path), "output": "X + Y", **data}},
        candidates=candidates or {"left": {"P": "X", "O": "P + Y"}},
    )
    return {**spec, "pairs": {"partners": 5}}


@pytest.mark.unit
def test_a_data_task_is_read_when_the_spec_loads(tmp_path, monkeypatch):
    from service.task import build_task

    path = _rows_file(tmp_path / "rows.jsonl")
    spec = parse_spec(_data(path, answer=" {O}"))
    assert spec.task.n_inputs() == 18
    assert spec.task.input_names() == ["X", "Y", "W"]
    assert spec.task.kinds() == {"X": "int", "Y": "int", "W": "str"}
    task, candidates = build_task(spec)
    assert task.n_inputs == 18 and [c.name for c in candidates] == ["left"]
    assert task.prompts()[:2] == ["1+1 a", "1+1 b"] and task.answers()[0] == " 2"
    # A relative path is read from the working directory.
    monkeypatch.chdir(tmp_path)
    assert parse_spec(_data("rows.jsonl")).task.n_inputs() == 18
    # Exactly one kind of task.
    _refused(
        {**_data(path), "task": {"builtin": "arithmetic", "data": {"path": "x", "output": "X"}}},
        "give exactly one of task.builtin (arithmetic, boolean), task.custom or task.data",
    )
    _refused(_base(task={}), "give exactly one of")


@pytest.mark.unit
def test_a_bad_data_file_stops_the_spec(tmp_path):
    _refused(_data(tmp_path / "none.jsonl"), "task.data.path:", "none.jsonl: no such file")
    _refused(_data(tmp_path / "rows.txt"), "task.data.path:", "must end in .jsonl")
    rows = [{"X": 1, "Y": 1, "prompt": "a"}, {"X": 1, "Y": 1, "prompt": "b"}]
    dup = _rows_file(tmp_path / "dup.jsonl", rows)
    _refused(_data(dup), "task.data.path:", "rows 1 (line 1) and 2 (line 2) have the same values")
    path = _rows_file(tmp_path / "rows.jsonl")
    _refused(
        _data(path, template="{X} + {Y} {W}"),
        "task.data.template:",
        "row 1: its prompt '1+1 a' differs from the template's rendering '1 + 1 a'",
    )
    _refused(_data(path, template="{Q}"), "task.data.template:", "names ['Q']")
    assert parse_spec(_data(path, template="{X}+{Y} {W}")).task.data.template
    _refused(_data(path, output="X + Q"), "task.data.output", "reads ['Q']")
    _refused(_data(path, output="X + W"), "task.data.output", "applies '+' to strings")
    _refused(_data(path, classes=[1, "a"]), "task.data.classes", "values mix")
    _refused(_data(path, classes=[]), "task.data.classes: give the classes")
    _refused(_data(path, extra=1), "task.data.extra: unknown field")


@pytest.mark.unit
def test_data_task_candidates_are_checked_against_the_files_columns(tmp_path):
    path = _rows_file(tmp_path / "rows.jsonl")
    _refused(_data(path, candidates={"c": {"P": "W", "O": "P + Y"}}), "candidates.c.O", "P holds")
    _refused(_data(path, candidates={"c": {"P": "Q", "O": "P"}}), "candidates.c.P", "reads ['Q']")
    _refused(_data(path, candidates={"c": {"P": "X", "O": "X + Y"}}), "does not read P")
    _refused(
        _data(path, candidates={"output": {"P": "X", "O": "P + Y"}}),
        "fallback 'output' is also a candidate's name",
    )
    _refused({**_data(path), "candidates": ["left"]}, "a data task needs [candidates.NAME] tables")
    # Pair designs count the rows.
    _refused({**_data(path), "pairs": {"partners": 18}}, "partners per input must be in 1..17")


@pytest.mark.unit
def test_answer_templates_in_each_place(tmp_path):
    spec = parse_spec(_base(task={"builtin": "arithmetic", "answer": " {O}"}))
    assert spec.task.answer_template() == " {O}"
    _refused(
        _base(task={"builtin": "arithmetic", "answer": "="}),
        "task.answer: answer template '=' does not show the output value",
    )
    _refused(_small_custom(answer="{O}{A}"), "task.custom.answer", "other than {O}")
    assert parse_spec(_small_custom(answer="<{O}>")).task.answer_template() == "<{O}>"
    path = _rows_file(tmp_path / "rows.jsonl")
    _refused(_data(path, answer="}{O}"), "task.data.answer", "other than {O}")
    custom = _small_custom()
    custom["task"] = {**custom["task"], "answer": " {O}"}
    _refused(custom, "task.answer is for a built-in task", "task.custom.answer")


@pytest.mark.unit
def test_network_heads_dtypes_and_layers(tmp_path):
    loaded = parse_spec(
        _base(
            network={"path": "some/dir", "head": "classifier", "dtype": "bfloat16"},
            sites=[{"layer": 3}],
        )
    )
    assert (loaded.network.head, loaded.network.dtype, loaded.network.layers) == (
        "classifier",
        "bfloat16",
        None,
    )
    defaults = parse_spec(_base())
    assert (defaults.network.head, defaults.network.dtype) == ("auto", "auto")
    assert (defaults.network.train.head, defaults.network.train.family) == ("classifier", "gpt2")
    _refused(_base(network={"path": "d", "head": "lm"}), "network.head")
    _refused(_base(network={"path": "d", "dtype": "float64"}), "network.dtype")
    layers = parse_spec(_base(network={"path": "d", "layers": "model.decoder.layers"}))
    assert layers.network.layers == "model.decoder.layers"
    _refused(_base(network={"path": "d", "layers": "model/layers"}), "is not a module path")
    _refused(_base(network={"path": "d", "layers": ""}), "is not a module path")
    _refused(_base(network={"train": {}, "layers": "h"}), "network.layers is for a loaded")
    _refused(_base(network={"train": {}, "head": "classifier"}), "network.train.head")
    _refused(_base(network={"train": {"family": "t5"}}), "network.train.family")
    llama = parse_spec(_base(network={"train": {"family": "llama"}}))
    assert llama.network.train.family == "llama"
    assert defaults.network.train.tokenizer == "auto"
    assert "tokenizer" not in defaults.network.train.model_dump()  # digests stay unchanged
    chars = parse_spec(_base(network={"train": {"tokenizer": "char"}}))
    assert chars.network.train.model_dump()["tokenizer"] == "char"
    _refused(_base(network={"train": {"tokenizer": "bpe"}}), "network.train.tokenizer")
    _refused(
        _base(network={"train": {"family": "llama", "n_embd": 12, "n_head": 4}}),
        "family = 'llama' needs an even head width",
    )


@pytest.mark.unit
def test_a_causal_lm_needs_an_answer_template(tmp_path):
    lm = {"train": {"head": "causal-lm"}}
    _refused(
        _base(network=lm),
        "network.train.head = 'causal-lm' reads the classes from answer tokens",
        "give task.answer",
    )
    assert parse_spec(_base(network=lm, task={"builtin": "arithmetic", "answer": " {O}"}))
    _refused(_small_custom() | {"network": lm}, "give task.custom.answer")
    path = _rows_file(tmp_path / "rows.jsonl")
    loaded = {"path": "d", "head": "causal-lm"}
    _refused(_data(path) | {"network": loaded}, "network.head = 'causal-lm'", "task.data.answer")
    assert parse_spec(_data(path, answer=" {O}") | {"network": loaded})
    # "auto" on a loaded network: its head is known only once loaded.
    assert parse_spec(_base(network={"path": "d"}))


@pytest.mark.unit
def test_named_positions_are_input_variables(tmp_path):
    def site(positions, **more):
        return [{"layer": 0, "positions": positions, **more}]

    spec = parse_spec(_base(sites=site([0, -1, "X", "Y:first", "Z:last"])))
    assert spec.sites[0].positions == [0, -1, "X", "Y:first", "Z:last"]
    assert spec.sites[0].variables() == ["X", "Y", "Z"]
    assert parse_spec(_base(sites=site(["last"]))).sites[0].positions == ["last"]
    _refused(
        _base(sites=site(["X", "Q"])),
        "sites.0.positions name ['Q'], which are not input variables",
        "['X', 'Y', 'Z']",
    )
    _refused(_small_custom() | {"sites": site(["X"])}, "name one of ['A', 'B']")
    path = _rows_file(tmp_path / "rows.jsonl")
    assert parse_spec(_data(path) | {"sites": site(["W:last"])}).sites[0].variables() == ["W"]
    _refused(_base(sites=site(["X:middle"])), "position 'X:middle' is not a token index")
    _refused(_base(sites=site(["1x"])), "is not a token index, 'last'")
    _refused(_base(sites=site([True])), "hold a boolean")
    _refused(_base(sites=site(["last", -1])), "must be distinct", "-1 and 'last' are the same")
    _refused(_base(sites=site(["X", "X"])), "['X'] repeat")
    _refused(_base(sites=site(["X", "X:last"])), "name ['X'] whole and one of its tokens")
    assert parse_spec(_base(sites=site(["X:first", "X:last"])))


@pytest.mark.unit
def test_the_rank_check_counts_positions_only_when_their_number_is_known():
    from service.spec import split_position

    # n_embd 64: one position is 64 dimensions.
    _refused(
        _base(sites=[{"layer": 0, "positions": ["X:last", "last"], "rank": 129}]),
        "sites.0.rank = 129 exceeds the site's dimension 128",
    )
    # A whole variable's width is known only once tokenised: no check here.
    spec = parse_spec(_base(sites=[{"layer": 0, "positions": ["X"], "rank": 129}]))
    assert spec.sites[0].fixed_count() is None
    assert (
        parse_spec(_base(sites=[{"layer": 0, "positions": [0, "X:first"]}])).sites[0].fixed_count()
        == 2
    )
    assert split_position("X") == ("X", None) and split_position("Y:last") == ("Y", "last")
    with pytest.raises(ValueError, match="not an input variable's name"):
        split_position("last")


@pytest.mark.unit
def test_new_fields_at_their_defaults_leave_dumps_and_digests_as_they_were(tmp_path):
    spec = parse_spec(_base())
    data = spec.model_dump(mode="json")
    assert data["task"] == {"builtin": "arithmetic", "custom": None}
    assert set(data["network"]) == {"train", "path", "accuracy_floor"}
    assert "head" not in data["network"]["train"] and "family" not in data["network"]["train"]
    lm = parse_spec(
        _base(
            task={"builtin": "arithmetic", "answer": " {O}"},
            network={"train": {"head": "causal-lm", "family": "llama"}},
        )
    )
    dumped = lm.model_dump(mode="json")
    assert dumped["network"]["train"]["head"] == "causal-lm"
    assert dumped["task"]["answer"] == " {O}"
    assert lm.digest("network") != spec.digest("network")
    # A dump parses back to the same spec (workers receive specs this way).
    assert parse_spec(dumped) == lm
    path = _rows_file(tmp_path / "rows.jsonl")
    data_spec = parse_spec(_data(path, template="{X}+{Y} {W}"))
    assert parse_spec(data_spec.model_dump(mode="json")) == data_spec
