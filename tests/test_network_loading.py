"""Networks a researcher brings: saved Hugging Face directories of several families and both
heads, loaded by the real ``from_pretrained`` path; a family with no adapter through
``network.layers``; and every bad network, stopped before any alignment is trained."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers as tf

from intervention.network import NetworkError, load_network
from intervention.tokenizer import build_tokenizer
from service.pipeline import run
from service.spec import SpecError, parse_spec

pytestmark = pytest.mark.integration

PROMPTS = [f"{x}+{y}=" for x in (1, 2, 3) for y in (1, 2, 3)]
ANSWERS = " ".join(str(s) for s in range(2, 7))  # the sums, so each answer is one word


def _tokenizer():
    return build_tokenizer([*PROMPTS, ANSWERS])


def _save(model, folder: Path) -> Path:
    torch.manual_seed(0)
    model.save_pretrained(folder)
    _tokenizer().save_pretrained(folder)
    return folder


def _llama(folder: Path, context: int = 32) -> Path:
    vocab = len(_tokenizer())
    config = tf.LlamaConfig(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=context,
        pad_token_id=0,
        bos_token_id=None,
        eos_token_id=None,
    )
    torch.manual_seed(0)
    return _save(tf.LlamaForCausalLM(config), folder)


def _phi3(folder: Path) -> Path:
    config = tf.Phi3Config(
        vocab_size=len(_tokenizer()),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        pad_token_id=0,
        bos_token_id=None,
        eos_token_id=None,
    )
    torch.manual_seed(0)
    return _save(tf.Phi3ForCausalLM(config), folder)


def _spec(tmp_path: Path, folder: Path, **over) -> dict:
    data = {
        "name": "byo",
        "results": str(tmp_path / "results"),
        "task": {
            "custom": {
                "inputs": {"X": [1, 2, 3], "Y": [1, 2, 3]},
                "template": "{X}+{Y}=",
                "output": "X + Y",
                "answer": over.pop("answer", "{O}"),
            }
        },
        "candidates": {"sum": {"P": "X + Y", "O": "P"}, "first": {"P": "X", "O": "P + Y"}},
        "network": {"path": str(folder), "accuracy_floor": 1e-6, **over.pop("network", {})},
        "sites": over.pop("sites", [{"layer": 0, "positions": ["last"], "rank": 2}]),
        "das": {"steps": 5, "batch_size": 16},
        "pairs": {"design": "sampled", "partners": 2},
        "solve": {"floors": [0.5], "time_limit": 5},
        "execution": {"mode": "in-process"},
    }
    return parse_spec(data)


def _no_alignment_started(tmp_path: Path) -> None:
    folder = tmp_path / "results" / "byo"
    assert not list(folder.glob("alignment-*")), "an alignment was trained before the error"


def test_heads_from_the_config_and_dtypes(tmp_path):
    lm = _llama(tmp_path / "lm")
    model, tokenizer = load_network(lm)
    assert type(model).__name__ == "LlamaForCausalLM" and model.dtype == torch.float32
    assert load_network(lm, dtype="bfloat16")[0].dtype == torch.bfloat16
    config = tf.GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=len(tokenizer), num_labels=5)
    _save(tf.GPT2ForSequenceClassification(config), tmp_path / "cls")
    assert type(load_network(tmp_path / "cls")[0]).__name__ == "GPT2ForSequenceClassification"
    # The same weights read as a causal LM when the head is asked for.
    assert type(load_network(lm, head="causal-lm")[0]).__name__ == "LlamaForCausalLM"
    saved = json.loads((lm / "config.json").read_text())
    saved.pop("architectures")
    (lm / "config.json").write_text(json.dumps(saved))
    with pytest.raises(NetworkError, match="network.head"):
        load_network(lm)


def test_hub_name_without_a_hub_fails_at_once(monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(NetworkError, match="hub is not reachable"):
        load_network("some-org/some-model")
    with pytest.raises(NetworkError, match="no network directory"):
        load_network("./no/such/folder")


def test_a_family_without_adapter_runs_through_network_layers(tmp_path):
    phi3 = _phi3(tmp_path / "phi3")
    with pytest.raises(SpecError, match="network.layers"):
        run(_spec(tmp_path, phi3), log=lambda line: None)
    _no_alignment_started(tmp_path)
    report = run(_spec(tmp_path, phi3, network={"layers": "model.layers"}), log=lambda line: None)
    assert report["models"] == ["sum", "first"]
    assert 0 <= report["frontier"][0]["strength"] <= 9


@pytest.mark.parametrize(
    "over, message",
    [
        ({"sites": [{"layer": 2, "rank": 2, "positions": ["last"]}]}, "-1 \\(embeddings\\) to 1"),
        ({"sites": [{"layer": 0, "rank": 2, "positions": [5]}]}, "position 5 does not exist"),
        ({"sites": [{"layer": 0, "rank": 64, "positions": ["last"]}]}, "exceeds the site's"),
        ({"answer": "{O} {O}"}, "class 2: its answer '2 2' tokenises to 2 tokens"),
        ({"answer": "{O}+"}, "tokenises to 2 tokens"),
    ],
)
def test_bad_networks_stop_before_any_alignment(tmp_path, over, message):
    lm = _llama(tmp_path / "lm")
    with pytest.raises(SpecError, match=message):
        run(_spec(tmp_path, lm, **over), log=lambda line: None)
    _no_alignment_started(tmp_path)


def test_prompts_longer_than_the_context_are_refused(tmp_path):
    lm = _llama(tmp_path / "lm", context=3)
    with pytest.raises(SpecError, match="longer than the network's context of 3"):
        run(_spec(tmp_path, lm), log=lambda line: None)
    _no_alignment_started(tmp_path)


def test_a_job_solves_with_both_edges_from_its_successes(tmp_path):
    # Sampled partners: the per-input data is built from the successes with the edge; the
    # pair's two directions must both succeed, so no input's IIA can exceed the mean edge's.
    lm = _llama(tmp_path / "lm")
    mean = run(_spec(tmp_path, lm), log=lambda line: None)
    data = _spec(tmp_path, lm)
    both_spec = data.model_copy(update={"solve": data.solve.model_copy(update={"edge": "both"})})
    both = run(both_spec, log=lambda line: None)
    assert (mean["edge"], both["edge"]) == ("mean", "both")
    folder = tmp_path / "results" / "byo"
    arrays = sorted(folder.glob("iia-*.npz"), key=lambda p: p.stat().st_mtime)
    assert len(arrays) == 2  # one per edge: the edge is in the IIA key, the successes shared
    a_mean, a_both = (np.load(p)["iia"] for p in arrays)
    assert (a_both <= a_mean + 1e-12).all()
