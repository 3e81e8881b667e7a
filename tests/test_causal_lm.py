"""Causal LMs trained here: a character-level tokenizer with the answers as whole tokens, a
Llama or GPT-2 trained on next-token prediction of the answer over padded prompts of different
lengths, a job on one end to end (sites at "last" and at a variable's token), and the inputs
refused before any training: an answer of several tokens, two classes on one token, an answer
the prompts contain, a site that does not resolve, a prompt longer than the network's context.

One network (a 2-block, 32-wide Llama on X+Y= with X in 1..9 and Y in 1..12) is trained once
for the module by a job's own network stage; the job's sites have full rank, so their IIA is
known exactly: swapping X's token embedding is the input with X replaced, and swapping the
last token's state after the last block is the source's whole answer."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from service.spec import SpecError, parse_spec

X = list(range(1, 10))  # one digit
Y = list(range(1, 13))  # one or two digits: "3+4=" is 4 tokens, "3+12=" is 5
CANDIDATES = {"(X)+Y": {"P": "X", "O": "P + Y"}, "whole": {"P": "X + Y", "O": "P"}}
WIDTH = 32
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _spec(root: Path, name: str = "lm", **parts):
    data = {
        "name": name,
        "results": str(root),
        "task": {
            "custom": {
                "inputs": {"X": X, "Y": Y},
                "template": "{X}+{Y}=",
                "output": "X + Y",
                "answer": "<{O}>",
            }
        },
        "candidates": CANDIDATES,
        "network": {
            "train": {
                "head": "causal-lm",
                "family": "llama",
                "n_layer": 2,
                "n_embd": WIDTH,
                "n_head": 4,
                "epochs": 200,
                "lr": 0.01,
                "batch_size": 36,
                "warmup_steps": 20,
            }
        },
        "sites": [
            {"layer": -1, "positions": ["X:last"], "rank": WIDTH},
            {"layer": 1, "positions": ["last"], "rank": WIDTH},
        ],
        "das": {"steps": 10},
        "pairs": {"design": "sampled", "partners": 5},
        "solve": {"semantics": "per-input", "floors": [1.0, 0.9], "time_limit": 5},
        "execution": {"mode": "in-process"},
    }
    return parse_spec({**data, **parts})


def _custom(**fields) -> dict:
    task = _spec(Path("."), "x").task.custom.model_dump()
    return {"custom": {**task, **fields}}


@pytest.fixture(scope="module")
def lm_job(tmp_path_factory):
    """The job, run once: (spec, report, log lines, seconds)."""
    from service.pipeline import run

    spec = _spec(tmp_path_factory.mktemp("lm"))
    logs: list[str] = []
    started = time.perf_counter()
    report = run(spec, log=logs.append)
    return spec, report, logs, time.perf_counter() - started


def _network_dir(spec) -> Path:
    (folder,) = spec.results_dir().glob("network-*")
    return folder


@pytest.mark.unit
def test_word_level_tokenizer_keeps_its_ids():
    """The default level reads words, with the ids the golden demo's network was trained on:
    [PAD], [UNK], then the prompts' words sorted; extra words it already holds add nothing."""
    from intervention.tasks import arithmetic
    from intervention.tokenizer import SPECIAL, build_tokenizer

    prompts = arithmetic().prompts()
    tok = build_tokenizer(prompts)
    words = ["+", "1", "10", "2", "3", "4", "5", "6", "7", "8", "9", "="]
    assert sorted(tok.get_vocab(), key=tok.get_vocab().get) == [*SPECIAL, *words]
    assert tok("10+3+5=")["input_ids"] == [4, 2, 6, 2, 8, 13]
    assert build_tokenizer(prompts, extra=[" 10", "3"]).get_vocab() == tok.get_vocab()
    grown = build_tokenizer(prompts, extra=[" 30"])  # a new word joins the sorted words
    assert grown(" 30")["input_ids"] == [grown.get_vocab()["30"]] and len(grown) == len(tok) + 1


@pytest.mark.unit
def test_char_level_tokenizer_splits_digits_and_keeps_answers_whole(tmp_path):
    from transformers import AutoTokenizer

    from intervention.tokenizer import TokenizerError, build_tokenizer

    prompts = ["10+3+5=", "1+3+5=", "2+2+2="]
    tok = build_tokenizer(prompts, extra=["<18>", "<9>", " 6"], level="char")
    assert tok.convert_ids_to_tokens(tok("10+3+5=")["input_ids"]) == list("10+3+5=")
    assert len(tok("1+3+5=")["input_ids"]) == 6
    assert [len(tok(a)["input_ids"]) for a in ("<18>", " <9>", " 6")] == [1, 1, 1]
    assert tok(" 6")["input_ids"] == tok("6")["input_ids"]  # a one-character answer is its char
    # A network folder's tokenizer reads the same after a save and a load.
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    for text in [*prompts, "<18>", "<9>"]:
        assert again(text)["input_ids"] == tok(text)["input_ids"]
    # An answer the prompts contain would change how they read as a whole token.
    with pytest.raises(TokenizerError, match="'10'.*occurs in the prompt '10\\+3\\+5='"):
        build_tokenizer(prompts, extra=["10"], level="char")
    with pytest.raises(ValueError, match="level 'byte'"):
        build_tokenizer(prompts, level="byte")


@pytest.mark.unit
def test_the_data_example_reads_the_first_examples_network_and_its_own_rows(monkeypatch):
    """examples/arithmetic-lm-data.toml names the folder examples/arithmetic-lm.toml trains
    (a digest of its task and training), and its data file is what its script writes."""
    import importlib.util

    from service.keys import network_key
    from service.spec import load_spec
    from service.task import build_task

    first = load_spec(EXAMPLES / "arithmetic-lm.toml")
    key = network_key(build_task(first)[0], first.network.train.model_dump(mode="json"))
    monkeypatch.chdir(EXAMPLES.parent)  # the data file's path is read from the repo root
    second = load_spec(EXAMPLES / "arithmetic-lm-data.toml")
    assert second.network.path == f"results/{first.name}/network-{key}"
    script = EXAMPLES / "make_arithmetic_lm_data.py"
    module_spec = importlib.util.spec_from_file_location("make_data", script)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    assert (EXAMPLES.parent / second.task.data.path).read_text() == module.text()


@pytest.mark.integration
def test_gpt2_causal_lm_learns_a_variable_length_task():
    """GPT-2's LM head, next-token loss at the last real token of right-padded prompts: it
    solves the task, its accuracy is task_accuracy's, and a seed gives one network."""
    from intervention.network import (
        TrainSettings,
        network_digest,
        task_accuracy,
        task_inputs,
        train_on,
        training_data,
    )
    from intervention.tasks import custom_task

    task = custom_task("t", {"X": X, "Y": Y}, "{X}+{Y}=", "X + Y", CANDIDATES, answer="<{O}>")
    settings = TrainSettings(
        n_embd=WIDTH, epochs=300, lr=0.01, batch_size=36, warmup_steps=20, head="causal-lm"
    )
    data = training_data(task, settings)
    assert data.level == "char" and data.encoded.padded
    assert sorted(set(data.encoded.lengths.tolist())) == [4, 5]
    started = time.perf_counter()
    trained = train_on(data, settings)
    seconds = time.perf_counter() - started
    assert type(trained.model).__name__ == "GPT2LMHeadModel"
    assert trained.accuracy == 1.0, trained
    inputs = task_inputs(trained.model, data.tokenizer, task)
    assert task_accuracy(trained.model, inputs, task.labels()) == (1.0, task.n_inputs)
    assert seconds < 60, f"training took {seconds:.0f} s"
    short = TrainSettings(**{**settings.__dict__, "epochs": 2})
    first, second = train_on(data, short), train_on(data, short)
    assert network_digest(first.model) == network_digest(second.model)


@pytest.mark.integration
def test_llama_classifier_on_padded_prompts():
    """family = "llama" trains a sequence classifier too; prompts whose word counts differ are
    padded, and its accuracy read at the last real token (the engine's) is its own."""
    from intervention.network import (
        TrainSettings,
        task_accuracy,
        task_inputs,
        train_on,
        training_data,
    )
    from intervention.tasks import custom_task

    words = ["a", "a a", "a a a", "b", "b b"]
    task = custom_task(
        "w", {"L": words, "R": words}, "{L} ; {R} ?", "L == R", {"same": {"P": "L", "O": "P == R"}}
    )
    settings = TrainSettings(n_embd=WIDTH, epochs=200, batch_size=25, family="llama")
    data = training_data(task, settings)
    assert data.level == "word" and data.encoded.padded and data.answer_ids is None
    trained = train_on(data, settings)
    assert type(trained.model).__name__ == "LlamaForSequenceClassification"
    assert trained.accuracy == 1.0
    inputs = task_inputs(trained.model, data.tokenizer, task)
    assert task_accuracy(trained.model, inputs, task.labels())[0] == 1.0


@pytest.mark.integration
def test_job_on_a_causal_lm_with_padded_prompts(lm_job):
    """The whole job: a Llama trained here to 100%, sites at X's token and the last token on
    padded prompts, and full-rank alignments whose IIA is exactly what they must be."""
    spec, report, logs, seconds = lm_job
    folder = _network_dir(spec)
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert config["max_position_embeddings"] == 5  # the longest prompt, "9+12="
    assert any("llama causal LM on char-level tokens" in line for line in logs)
    assert report["n_inputs"] == len(X) * len(Y)
    assert report["network_accuracy"] == 1.0
    iia = {
        (label, cand): row["mean_iia"]
        for label, by_candidate in report["site_iia"].items()
        for cand, row in by_candidate.items()
    }
    # X's token embedding swapped whole: the input with X replaced, which the network solves.
    assert iia[("embeddings", "(X)+Y")] == 1.0
    # The last token's state after the last block swapped whole: the source's answer.
    assert iia[("block 1", "whole")] == 1.0
    # Crossed, each agrees only where the pair shares the other operand's value.
    assert iia[("embeddings", "whole")] < 0.3 and iia[("block 1", "(X)+Y")] < 0.3
    top = report["frontier"][0]
    assert top["floor"] == 1.0 and top["strength"] == report["n_inputs"]
    assert seconds < 120, f"the job took {seconds:.0f} s"


@pytest.mark.integration
def test_the_trained_folder_as_network_path(lm_job, tmp_path):
    """The trained folder as network.path: head (causal LM) and tokenizer come back from the
    folder and it solves the task again; prompts longer than its context are refused, naming
    the prompt, before any alignment."""
    from service.pipeline import JobContext, build_task, network_stage, prepare_results, run

    spec, _, _, _ = lm_job
    folder = str(_network_dir(spec))
    loaded = _spec(tmp_path, "loaded", network={"path": folder})
    net = network_stage(
        JobContext(loaded, prepare_results(loaded), log=lambda s: None), build_task(loaded)[0]
    )
    assert net.inputs.head == "causal-lm" and net.inputs.encoded.padded
    assert net.accuracy == 1.0
    longer = _spec(
        tmp_path, "longer", network={"path": folder}, task=_custom(template="{X}+{Y}+0=")
    )
    logs: list[str] = []
    with pytest.raises(SpecError, match=r"'1\+10\+0=' is 7 tokens, longer than the network's cont"):
        run(longer, log=logs.append)
    assert not any(line.startswith("alignments") for line in logs)


@pytest.mark.integration
@pytest.mark.parametrize(
    ("parts", "message"),
    [
        # "2 apples" holds a space: never one token.
        (
            {"task": _custom(answer="{O} apples")},
            r"class 2: its answer '2 apples' tokenises to 7 tokens",
        ),
        # At the character level "10" would be one token, but "1+10=" holds it.
        (
            {"task": _custom(answer="{O}")},
            r"class 10: the word '10' \(an answer\).*occurs in the prompt '1\+10='",
        ),
        # "x" and "x " read as one token.
        (
            {
                "task": _custom(
                    inputs={"X": ["x", "x ", "y"], "Y": [1, 2]}, output="X", answer="{O}"
                ),
                "candidates": {"same": {"P": "X", "O": "P"}},
            },
            r"classes 'x' and 'x ' both answer with token 'x'",
        ),
        # X+Y= has no fifth token in "1+2=".
        (
            {"sites": [{"layer": 0, "positions": [4], "rank": 4}]},
            r"sites.0.positions: position 4 does not exist in input 0 \('1\+1='\)",
        ),
    ],
    ids=["several-tokens", "answer-in-prompt", "shared-token", "site-beyond-prompt"],
)
def test_bad_inputs_stop_before_training(tmp_path, parts, message):
    from service.pipeline import run

    spec = _spec(tmp_path, **parts)
    logs: list[str] = []
    with pytest.raises(SpecError, match=message):
        run(spec, log=logs.append)
    assert not any("network: train" in line for line in logs)
    assert not list(spec.results_dir().glob("network-*"))
