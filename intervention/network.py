"""Networks: train a small GPT-2 sequence classifier on a task here, or load a Hugging Face
directory (or a hub name where a hub is reachable), and measure its accuracy on the task."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import GPT2Config, GPT2ForSequenceClassification, PreTrainedModel

DEFAULT_ACCURACY_FLOOR = 0.99


class NetworkError(ValueError):
    """A network that cannot be used for the task; the message names the fix."""


@dataclass(frozen=True)
class TrainSettings:
    """Defaults measured on 2 CPU cores: a 2-layer, 64-wide GPT-2 reaches 100% on arithmetic."""

    n_layer: int = 2
    n_embd: int = 64
    n_head: int = 4
    epochs: int = 400
    batch_size: int = 100
    lr: float = 3e-3
    betas: tuple[float, float] = (0.9, 0.98)
    weight_decay: float = 0.01
    warmup_steps: int = 50
    clip: float = 1.0
    seed: int = 0
    stop_at_accuracy: float = 1.0  # stop early once the whole task is solved this well
    # torch threads for training. The network depends on it (float sums are reduced in another
    # order with more threads: 1 and 2 threads gave networks that differ by 0.5 in a weight),
    # so it is fixed here rather than taken from the machine's core count.
    threads: int = 1


@dataclass(frozen=True)
class TrainedNetwork:
    model: PreTrainedModel
    accuracy: float
    epochs_run: int
    seconds: float


def build_network(
    settings: TrainSettings, vocab_size: int, length: int, n_classes: int, pad_id: int
):
    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=length,
        n_embd=settings.n_embd,
        n_layer=settings.n_layer,
        n_head=settings.n_head,
        num_labels=n_classes,
        pad_token_id=pad_id,
        bos_token_id=None,
        eos_token_id=None,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    torch.manual_seed(settings.seed)
    return GPT2ForSequenceClassification(config)


@torch.no_grad()
def accuracy(
    model: PreTrainedModel, ids: torch.Tensor, labels: torch.Tensor, batch: int = 4096
) -> float:
    model.eval()
    hits = 0
    for start in range(0, len(ids), batch):
        logits = model(input_ids=ids[start : start + batch]).logits
        hits += int((logits.argmax(-1) == labels[start : start + batch]).sum())
    return hits / len(ids)


def train_network(
    ids: torch.Tensor,
    labels: torch.Tensor,
    n_classes: int,
    vocab_size: int,
    pad_id: int,
    settings: TrainSettings = TrainSettings(),
    log=None,
) -> TrainedNetwork:
    """Train on every input of the task (the task is the whole distribution), with
    ``settings.threads`` torch threads whatever the machine, so a seed gives one network."""
    previous = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    try:
        return _train(ids, labels, n_classes, vocab_size, pad_id, settings, log)
    finally:
        torch.set_num_threads(previous)


def _train(ids, labels, n_classes, vocab_size, pad_id, settings, log) -> TrainedNetwork:
    started = time.perf_counter()
    model = build_network(settings, vocab_size, ids.shape[1], n_classes, pad_id)
    opt = torch.optim.AdamW(
        model.parameters(), lr=settings.lr, betas=settings.betas, weight_decay=settings.weight_decay
    )
    steps_per_epoch = math.ceil(len(ids) / settings.batch_size)
    total = settings.epochs * steps_per_epoch

    def schedule(step: int) -> float:
        if step < settings.warmup_steps:
            return (step + 1) / settings.warmup_steps
        progress = (step - settings.warmup_steps) / max(1, total - settings.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    gen = torch.Generator().manual_seed(settings.seed)
    acc, epoch = 0.0, 0
    for epoch in range(1, settings.epochs + 1):
        model.train()
        for batch in torch.randperm(len(ids), generator=gen).split(settings.batch_size):
            loss = torch.nn.functional.cross_entropy(
                model(input_ids=ids[batch]).logits, labels[batch]
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), settings.clip)
            opt.step()
            sched.step()
        if epoch % 10 == 0 or epoch == settings.epochs:
            acc = accuracy(model, ids, labels)
            if log is not None:
                log(f"epoch {epoch}: loss {loss.item():.4f}, accuracy {acc:.4f}")
            if acc >= settings.stop_at_accuracy:
                break
    model.eval()
    return TrainedNetwork(model, acc, epoch, time.perf_counter() - started)


def require_accuracy(acc: float, floor: float = DEFAULT_ACCURACY_FLOOR) -> None:
    """Refuse to align a network that does not solve the task: its IIA would measure noise."""
    if acc < floor:
        raise NetworkError(
            f"the network's accuracy on the task is {acc:.4f}, below the floor {floor}; train it "
            "longer or larger, or lower the accuracy floor knowingly"
        )


# Config entries that name where or by which library version a network was saved: they do not
# change what it computes, so they stay out of its digest.
_NOT_CONTENT = ("transformers_version", "_name_or_path", "torch_dtype", "dtype")


def network_digest(model: PreTrainedModel) -> str:
    """The digest of what a network computes: its architecture (config) and every weight. Two
    copies of one network agree wherever they were loaded from; any changed weight differs."""
    import json

    from intervention.digest import digest

    # Through JSON: the config's own serialisation, with string keys (id2label has int keys).
    saved = json.loads(model.config.to_json_string(use_diff=False))
    config = {k: v for k, v in saved.items() if k not in _NOT_CONTENT}
    state = sorted(model.state_dict().items())
    return digest(config, [name for name, _ in state], *[t for _, t in state])


def save_network(model: PreTrainedModel, tokenizer, path: str | Path) -> Path:
    path = Path(path)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


def load_network(name_or_path: str | Path):
    """A local Hugging Face directory, or a hub name where a hub is reachable."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    local = Path(name_or_path)
    if not local.exists() and str(name_or_path).startswith((".", "/", "~")):
        raise NetworkError(f"no network directory at {local}")
    try:
        model = AutoModelForSequenceClassification.from_pretrained(str(name_or_path))
        tokenizer = AutoTokenizer.from_pretrained(str(name_or_path))
    except OSError as exc:
        raise NetworkError(
            f"cannot load network {name_or_path!r}: {exc}. Give a local directory that holds "
            "config.json, model.safetensors and the tokenizer files, or a hub name on a machine "
            "that reaches the hub"
        ) from exc
    model.eval()
    return model, tokenizer
