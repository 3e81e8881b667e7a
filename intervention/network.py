"""Networks: train a small decoder on a task here (a GPT-2 or Llama sequence classifier, or a
causal LM that writes each class's answer token), or load a Hugging Face directory (or a hub
name where a hub is reachable), and measure its accuracy on the task."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from transformers import GPT2Config, GPT2ForSequenceClassification, PreTrainedModel

if TYPE_CHECKING:
    from intervention.prompts import Encoded

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
    # "classifier": a sequence-classification head over the classes; "causal-lm": a language
    # model trained to write each class's answer token after its prompt.
    head: str = "classifier"
    family: str = "gpt2"  # "gpt2" or "llama"
    # "word", "char", or "auto": a causal LM reads characters (digits one per token, so numbers
    # of different widths give prompts of different lengths), a classifier words (the ids the
    # built-in demos were trained on).
    tokenizer: str = "auto"


TRAINED_HEADS = ("classifier", "causal-lm")
TRAINED_FAMILIES = ("gpt2", "llama")


def tokenizer_level(settings: TrainSettings) -> str:
    """The tokenizer level a network trained with ``settings`` reads: ``settings.tokenizer``,
    or for "auto" characters for a causal LM and words for a classifier."""
    if settings.tokenizer != "auto":
        return settings.tokenizer
    return "char" if settings.head == "causal-lm" else "word"


@dataclass(frozen=True)
class TrainedNetwork:
    model: PreTrainedModel
    accuracy: float
    epochs_run: int
    seconds: float


def build_network(
    settings: TrainSettings, vocab_size: int, length: int, n_classes: int, pad_id: int
):
    """An untrained network of ``settings.family`` with ``settings.head``, its positions
    covering ``length`` tokens, seeded by ``settings.seed``."""
    if settings.head not in TRAINED_HEADS:
        raise NetworkError(f"head {settings.head!r} is not one of {', '.join(TRAINED_HEADS)}")
    if settings.family == "llama":
        return _build_llama(settings, vocab_size, length, n_classes, pad_id)
    if settings.family != "gpt2":
        raise NetworkError(
            f"family {settings.family!r} is not one of {', '.join(TRAINED_FAMILIES)}"
        )
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
    if settings.head == "causal-lm":
        from transformers import GPT2LMHeadModel

        return GPT2LMHeadModel(config)
    return GPT2ForSequenceClassification(config)


def _build_llama(settings: TrainSettings, vocab_size: int, length: int, n_classes: int, pad_id):
    """A small Llama: n_layer, n_embd and n_head as its depth, width and heads (no grouped
    heads), an MLP 4x the width, positions (rotary) for ``length`` tokens, untied embeddings."""
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

    if settings.n_embd % settings.n_head or (settings.n_embd // settings.n_head) % 2:
        raise NetworkError(
            f"a Llama needs an even head width: n_embd = {settings.n_embd} and n_head = "
            f"{settings.n_head} do not give one"
        )
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=settings.n_embd,
        intermediate_size=4 * settings.n_embd,
        num_hidden_layers=settings.n_layer,
        num_attention_heads=settings.n_head,
        num_key_value_heads=settings.n_head,
        max_position_embeddings=length,
        num_labels=n_classes,
        pad_token_id=pad_id,
        bos_token_id=None,
        eos_token_id=None,
        tie_word_embeddings=False,
        attention_dropout=0.0,
    )
    torch.manual_seed(settings.seed)
    if settings.head == "causal-lm":
        return LlamaForCausalLM(config)
    return LlamaForSequenceClassification(config)


@torch.no_grad()
def accuracy(
    model: PreTrainedModel,
    ids: torch.Tensor,
    labels: torch.Tensor,
    batch: int = 4096,
    mask: torch.Tensor | None = None,
) -> float:
    """A classifier's accuracy on token ids (``mask``: where they are padded)."""
    model.eval()
    hits = 0
    for start in range(0, len(ids), batch):
        sl = slice(start, start + batch)
        logits = _forward(model, ids[sl], None if mask is None else mask[sl]).logits
        hits += int((logits.argmax(-1) == labels[sl]).sum())
    return hits / len(ids)


def _forward(model, ids: torch.Tensor, mask: torch.Tensor | None):
    # Prompts of one length go in without a mask, as they always did.
    if mask is None:
        return model(input_ids=ids)
    return model(input_ids=ids, attention_mask=mask)


def train_network(
    ids: torch.Tensor,
    labels: torch.Tensor,
    n_classes: int,
    vocab_size: int,
    pad_id: int,
    settings: TrainSettings = TrainSettings(),
    log=None,
    mask: torch.Tensor | None = None,
) -> TrainedNetwork:
    """Train a classifier on every input of the task (the task is the whole distribution),
    with ``settings.threads`` torch threads whatever the machine, so a seed gives one network.
    ``mask``: the attention mask of prompts padded (on the right) to one length."""
    with _threads(settings.threads):
        return _train(ids, labels, n_classes, vocab_size, pad_id, settings, log, mask)


@contextmanager
def _threads(n: int):
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _optimizer(model, settings: TrainSettings, n_inputs: int):
    """AdamW with a linear warm-up, then a cosine decay over every step of every epoch."""
    opt = torch.optim.AdamW(
        model.parameters(), lr=settings.lr, betas=settings.betas, weight_decay=settings.weight_decay
    )
    steps_per_epoch = math.ceil(n_inputs / settings.batch_size)
    total = settings.epochs * steps_per_epoch

    def schedule(step: int) -> float:
        if step < settings.warmup_steps:
            return (step + 1) / settings.warmup_steps
        progress = (step - settings.warmup_steps) / max(1, total - settings.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, schedule)


def _fit(model, n_inputs: int, batch_loss, measure, settings: TrainSettings, log):
    """The training loop both heads share: shuffled batches of every input per epoch, AdamW
    with warm-up and cosine decay, gradient clipping; every 10 epochs ``measure()`` the
    accuracy, stopping once it reaches ``settings.stop_at_accuracy``. Returns (accuracy,
    epochs run)."""
    opt, sched = _optimizer(model, settings, n_inputs)
    gen = torch.Generator().manual_seed(settings.seed)
    acc, epoch = 0.0, 0
    for epoch in range(1, settings.epochs + 1):
        model.train()
        for batch in torch.randperm(n_inputs, generator=gen).split(settings.batch_size):
            loss = batch_loss(batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), settings.clip)
            opt.step()
            sched.step()
        if epoch % 10 == 0 or epoch == settings.epochs:
            acc = measure()
            if log is not None:
                log(f"epoch {epoch}: loss {loss.item():.4f}, accuracy {acc:.4f}")
            if acc >= settings.stop_at_accuracy:
                break
    model.eval()
    return acc, epoch


def _train(ids, labels, n_classes, vocab_size, pad_id, settings, log, mask=None) -> TrainedNetwork:
    started = time.perf_counter()
    model = build_network(settings, vocab_size, ids.shape[1], n_classes, pad_id)

    def batch_loss(batch):
        logits = _forward(model, ids[batch], None if mask is None else mask[batch]).logits
        return torch.nn.functional.cross_entropy(logits, labels[batch])

    acc, epoch = _fit(
        model, len(ids), batch_loss, lambda: accuracy(model, ids, labels, mask=mask), settings, log
    )
    return TrainedNetwork(model, acc, epoch, time.perf_counter() - started)


def train_causal_lm(
    encoded: Encoded,
    labels: torch.Tensor,
    answer_ids: Sequence[int],
    vocab_size: int,
    pad_id: int,
    settings: TrainSettings = TrainSettings(head="causal-lm"),
    log=None,
) -> TrainedNetwork:
    """Train ``settings.family``'s causal LM on next-token prediction of the answer: the loss
    is the cross-entropy of the logits at each prompt's last real token, over the whole
    vocabulary, against the answer token of its class (``answer_ids[label]``). Prompts of
    different lengths come padded, with their attention mask (``encoded``). Accuracy is
    ``task_accuracy``'s: the argmax over the answer tokens' logits. Deterministic as
    ``train_network``: ``settings.threads`` torch threads, ``settings.seed``."""
    if settings.head != "causal-lm":
        settings = replace(settings, head="causal-lm")
    with _threads(settings.threads):
        return _train_lm(encoded, labels, answer_ids, vocab_size, pad_id, settings, log)


def _train_lm(encoded, labels, answer_ids, vocab_size, pad_id, settings, log) -> TrainedNetwork:
    from intervention.adapters import last_hidden

    started = time.perf_counter()
    labels = torch.as_tensor(labels, dtype=torch.long)
    targets = torch.as_tensor(list(answer_ids), dtype=torch.long)[labels]
    ids, mask, last = encoded.ids, encoded.mask, encoded.last
    model = build_network(settings, vocab_size, encoded.length, len(answer_ids), pad_id)
    out = model.get_output_embeddings()

    def batch_loss(batch):
        # The final-normed hidden state at the last real token, through the LM head: the
        # next-token logits there, the only ones the answer is read from.
        hidden = last_hidden(model.base_model, ids[batch], mask[batch], last[batch])
        return torch.nn.functional.cross_entropy(out(hidden), targets[batch])

    acc, epoch = _fit(
        model,
        len(ids),
        batch_loss,
        lambda: lm_accuracy(model, encoded, labels, answer_ids),
        settings,
        log,
    )
    return TrainedNetwork(model, acc, epoch, time.perf_counter() - started)


def lm_accuracy(
    model, encoded: Encoded, labels, answer_ids: Sequence[int], batch: int = 1024
) -> float:
    """A causal LM's accuracy as ``task_accuracy`` measures it: the argmax over the answer
    tokens' logits at each prompt's last real token."""
    from intervention.adapters import Readout, predictions

    model.eval()
    readout = Readout(model, "causal-lm", answer_ids)
    pred = predictions(model, readout, encoded.ids, encoded.mask, encoded.last, batch)
    return int((pred == torch.as_tensor(labels)).sum()) / encoded.n


@dataclass(frozen=True)
class TrainingData:
    """A task as a network trained here reads it: the tokenizer built from its prompts (and a
    causal LM's answers), the prompts encoded (padded where their lengths differ), the labels,
    and a causal LM's answer token per class."""

    tokenizer: object  # a transformers fast tokenizer (intervention.tokenizer)
    encoded: Encoded
    labels: torch.Tensor
    n_classes: int
    answer_ids: list[int] | None  # None for a classifier
    level: str  # the tokenizer's level: "word" or "char"


def training_data(task, settings: TrainSettings = TrainSettings()) -> TrainingData:
    """Everything training needs from ``task``, checked before any training: the tokenizer
    (level ``tokenizer_level(settings)``) built from the prompts and, for a causal LM, the
    answers; the prompts encoded (a classifier's exactly as ever when they share one length,
    padded with a mask when they do not); a causal LM's answers one token per class, no two
    classes sharing one, none that a prompt holds (each refused naming the class)."""
    from intervention.prompts import answer_token_ids, encode_prompts
    from intervention.tokenizer import TokenizerError, build_tokenizer, encode_fixed_length

    if settings.head not in TRAINED_HEADS:
        raise NetworkError(f"head {settings.head!r} is not one of {', '.join(TRAINED_HEADS)}")
    prompts = task.prompts()
    labels = torch.as_tensor(task.labels())
    level = tokenizer_level(settings)
    if settings.head == "classifier":
        tokenizer = build_tokenizer(prompts, level=level)
        encoded = encode_prompts(tokenizer, prompts)
        if not encoded.padded:
            # Prompts of one length: the ids the classifier always trained on (checked the
            # same way: one length, every word known).
            ids = encode_fixed_length(tokenizer, prompts)
            encoded = replace(encoded, ids=ids)
        return TrainingData(tokenizer, encoded, labels, len(task.classes), None, level)
    answers = task.answers()
    try:
        tokenizer = build_tokenizer(prompts, extra=answers, level=level)
    except TokenizerError as exc:
        cls = next(c for c, a in zip(task.classes, answers) if a.strip() == exc.word)
        raise NetworkError(f"class {cls!r}: {exc}") from None
    encoded = encode_prompts(tokenizer, prompts)
    answer_ids = answer_token_ids(tokenizer, answers, task.classes)
    return TrainingData(tokenizer, encoded, labels, len(task.classes), answer_ids, level)


def train_on(
    data: TrainingData, settings: TrainSettings = TrainSettings(), log=None
) -> TrainedNetwork:
    """Train the network ``settings`` describes on ``data`` (from ``training_data``)."""
    enc, tok = data.encoded, data.tokenizer
    if data.answer_ids is None:
        mask = enc.mask if enc.padded else None
        return train_network(
            enc.ids, data.labels, data.n_classes, len(tok), tok.pad_token_id, settings, log, mask
        )
    return train_causal_lm(
        enc, data.labels, data.answer_ids, len(tok), tok.pad_token_id, settings, log
    )


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
    # Floats as float32: a bf16 checkpoint loaded in float32 on a CPU driver and in bf16 on a
    # GPU worker holds the same weights (the upcast is exact), so both see one network.
    state = sorted(
        (k, v.detach().float().cpu() if v.is_floating_point() else v.cpu())
        for k, v in model.state_dict().items()
    )
    return digest(config, [name for name, _ in state], *[t for _, t in state])


def save_network(model: PreTrainedModel, tokenizer, path: str | Path) -> Path:
    path = Path(path)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


HUB_HOST = "huggingface.co"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the model hub answers here (a few seconds at most: without this check a hub
    name on an offline machine spends half a minute in retries before failing)."""
    import os
    import socket
    from urllib.parse import urlparse

    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", f"https://{HUB_HOST}")).hostname or HUB_HOST
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _model_class(config, head: str):
    """The transformers class for ``head``; 'auto' reads the checkpoint's architectures."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    if head == "auto":
        names = list(getattr(config, "architectures", None) or [])
        if any(n.endswith("ForSequenceClassification") for n in names):
            head = "classifier"
        elif any(n.endswith(("ForCausalLM", "LMHeadModel")) for n in names):
            head = "causal-lm"
        else:
            raise NetworkError(
                f"the network's config names architectures {names or 'none'}, so its head is "
                "not known: set network.head = 'classifier' or 'causal-lm'"
            )
    if head == "classifier":
        return AutoModelForSequenceClassification
    if head == "causal-lm":
        return AutoModelForCausalLM
    raise NetworkError(f"network.head {head!r} is not one of auto, classifier, causal-lm")


def load_network(name_or_path: str | Path, head: str = "auto", dtype: str = "auto"):
    """A local Hugging Face directory (or a hub name where a hub is reachable) as (model,
    tokenizer), with the head its config names (``head='auto'``) or the one given. ``dtype``
    'auto' loads the checkpoint's dtype on a GPU and float32 on a CPU (where bf16 is slow)."""
    from transformers import AutoConfig, AutoTokenizer

    local = Path(name_or_path).expanduser()
    offline = False
    if not local.exists():
        if str(name_or_path).startswith((".", "/", "~")) or str(name_or_path).count("/") > 1:
            raise NetworkError(f"no network directory at {local}")
        offline = not _hub_reachable()
    where = str(local) if local.exists() else str(name_or_path)
    try:
        config = AutoConfig.from_pretrained(where, local_files_only=offline)
        cls = _model_class(config, head)
        if dtype == "auto":
            chosen = "auto" if torch.cuda.is_available() else torch.float32
        elif dtype in DTYPES:
            chosen = DTYPES[dtype]
        else:
            raise NetworkError(f"network.dtype {dtype!r} is not one of auto, {', '.join(DTYPES)}")
        model = cls.from_pretrained(where, dtype=chosen, local_files_only=offline)
        tokenizer = AutoTokenizer.from_pretrained(where, local_files_only=offline)
    except (OSError, ValueError) as exc:
        if isinstance(exc, NetworkError):
            raise
        if offline:
            raise NetworkError(
                f"network {name_or_path!r} is not a local directory, and the model hub is not "
                "reachable from this machine (nor is the name in its local cache): download it "
                "where a hub is reachable and give network.path its directory"
            ) from None
        raise NetworkError(
            f"cannot load network {name_or_path!r}: {exc}. Give a local directory that holds "
            "config.json, the weights (model.safetensors) and the tokenizer files, or a hub "
            "name on a machine that reaches the hub"
        ) from exc
    model.eval()
    return model, tokenizer


@dataclass(frozen=True)
class TaskInputs:
    """A task's prompts as one network reads them: encoded with its tokenizer, and for a
    causal LM the answer token of each class."""

    encoded: object  # intervention.prompts.Encoded
    head: str  # 'classifier' or 'causal-lm'
    answer_ids: list[int] | None

    def identity_tensor(self) -> torch.Tensor:
        """What later stages key on besides the weights: the token ids, and the mask where the
        prompts are padded (the same ids padded on the other side are other inputs)."""
        enc = self.encoded
        return torch.stack([enc.ids, enc.mask]) if enc.padded else enc.ids


def task_inputs(model, tokenizer, task) -> TaskInputs:
    """Encode the task's prompts for ``model`` and check they fit it: the context length, the
    classifier's number of classes, a causal LM's answers (one distinct token per class)."""
    from intervention.adapters import context_length, head_of
    from intervention.prompts import answer_token_ids, encode_prompts

    head = head_of(model)
    encoded = encode_prompts(tokenizer, task.prompts(), max_length=context_length(model))
    answer_ids = None
    if head == "classifier":
        if model.config.num_labels != len(task.classes):
            raise NetworkError(
                f"the network's classifier has {model.config.num_labels} classes, the task "
                f"{len(task.classes)} ({list(task.classes)[:8]}...): use a network trained for "
                "this task's classes"
            )
    else:
        answer_ids = answer_token_ids(tokenizer, task.answers(), task.classes)
    return TaskInputs(encoded, head, answer_ids)


def task_accuracy(model, inputs: TaskInputs, labels, batch: int = 1024) -> tuple[float, int]:
    """The share and the number of inputs whose predicted class (argmax of the classifier, or
    of the answer tokens' logits at the last real token) is the task's label."""
    from intervention.adapters import Readout, predictions

    readout = Readout(model, inputs.head, inputs.answer_ids)
    enc = inputs.encoded
    pred = predictions(model, readout, enc.ids, enc.mask, enc.last, batch)
    correct = int((pred == torch.as_tensor(labels)).sum())
    return correct / enc.n, correct
