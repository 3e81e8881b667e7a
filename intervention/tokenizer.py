"""A transformers fast tokenizer built locally from a task's own prompts (no hub).

Words are whole numbers, whole alphabetic words, or single symbols, so `10+3+5=` reads as six
tokens and every arithmetic prompt has the same length: DAS sites name fixed token positions.
"""

from __future__ import annotations

from collections.abc import Sequence

from tokenizers import Regex, Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

SPECIAL = ("[PAD]", "[UNK]")
WORDS = Regex(r"\d+|[A-Za-z]+|[^\sA-Za-z\d]")


def build_tokenizer(prompts: Sequence[str]) -> PreTrainedTokenizerFast:
    """A word-level fast tokenizer whose vocabulary is exactly the words of ``prompts``."""
    splitter = pre_tokenizers.Split(WORDS, behavior="isolated")
    words = sorted({w for p in prompts for w, _ in splitter.pre_tokenize_str(p) if w.strip()})
    vocab = {tok: i for i, tok in enumerate([*SPECIAL, *words])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(WORDS, behavior="isolated")]
    )
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="[PAD]", unk_token="[UNK]")


def encode_fixed_length(tokenizer: PreTrainedTokenizerFast, prompts: Sequence[str]):
    """Token ids [n, length] as a LongTensor; every prompt must tokenise to the same length."""
    import torch

    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    lengths = sorted({len(x) for x in ids})
    if len(lengths) != 1:
        example = {len(x): p for x, p in zip(ids, prompts)}
        raise ValueError(
            f"prompts tokenise to different lengths {lengths} (e.g. {example}); a site at fixed "
            "token positions needs one length: change the template or the tokenizer"
        )
    unknown = [p for x, p in zip(ids, prompts) if tokenizer.unk_token_id in x]
    if unknown:
        raise ValueError(f"prompts hold words outside the vocabulary, e.g. {unknown[0]!r}")
    return torch.tensor(ids, dtype=torch.long)
