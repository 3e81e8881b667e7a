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
    _refused(
        _base(solve={"semantics": "pairwise"}),
        "solve.semantics = 'pairwise' needs pairs.design = 'all'",
    )
    _refused(
        _base(solve={"semantics": "pairwise", "max_models": 2}, pairs={"design": "all"}),
        "solve.max_models is supported for semantics = 'per-input' only",
    )
    spec = parse_spec(_base(solve={"semantics": "pairwise"}, pairs={"design": "all"}))
    assert spec.solve.semantics == "pairwise"
    assert parse_spec(_base(solve={"max_models": 2})).solve.max_models == 2


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
