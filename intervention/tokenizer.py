"""A transformers fast tokenizer built locally from a task's own prompts (no hub).

Two levels. ``"word"`` (the default): words are whole numbers, whole alphabetic words, or single
symbols, so `10+3+5=` reads as six tokens and every arithmetic prompt has the same length: DAS
sites name fixed token positions. ``"char"``: every character but whitespace is a token (digits
one per token), so `10+3+5=` reads as seven tokens and `1+3+5=` as six: prompts of different
lengths, padded, with sites at ``"last"`` or a variable's tokens.

Extra words (a causal LM's answers) join the vocabulary: one the level reads as a single piece
as a word like any other, one it would split (``<13>``, or ``13`` at the character level) as a
whole token, matched wherever its text appears. Such a whole token must then appear in no
prompt, or it would change how that prompt reads: that is refused, naming the word.
"""

from __future__ import annotations

from collections.abc import Sequence

from tokenizers import AddedToken, Regex, Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

SPECIAL = ("[PAD]", "[UNK]")


class TokenizerError(ValueError):
    """Words the tokenizer cannot hold as asked; ``word`` is the extra word at fault."""

    def __init__(self, message: str, word: str) -> None:
        super().__init__(message)
        self.word = word


WORDS = Regex(r"\d+|[A-Za-z]+|[^\sA-Za-z\d]")
CHARS = Regex(r"\S")
LEVELS = {"word": WORDS, "char": CHARS}


def _pre_tokenizer(level: str):
    if level not in LEVELS:
        raise ValueError(f"tokenizer level {level!r} is not one of {', '.join(LEVELS)}")
    return pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(LEVELS[level], behavior="isolated")]
    )


def build_tokenizer(
    prompts: Sequence[str], extra: Sequence[str] = (), level: str = "word"
) -> PreTrainedTokenizerFast:
    """A fast tokenizer whose vocabulary is exactly the pieces of ``prompts`` at ``level``
    ("word" or "char") and the ``extra`` words (e.g. a causal LM's answers; leading and
    trailing whitespace is dropped, as the tokenizer drops it). Without extras the word level
    gives the ids it always gave: [PAD], [UNK], then the prompts' words sorted."""
    splitter = _pre_tokenizer(level)

    def pieces(text: str) -> list[str]:
        return [w for w, _ in splitter.pre_tokenize_str(text) if w.strip()]

    words = {w for p in prompts for w in pieces(p)}
    whole: list[str] = []  # extras the level would split: whole tokens, in the order given
    for text in extra:
        text = text.strip()
        split = pieces(text)
        if len(split) == 1 or not split:
            words.update(split)
        elif any(c.isspace() for c in text):
            # Never one token (the text holds a space): its pieces join the vocabulary, and a
            # causal LM's answer check names it as several tokens.
            words.update(split)
        elif text not in whole:
            whole.append(text)
    for text in whole:
        inside = next((p for p in prompts if text in p), None)
        if inside is not None:
            raise TokenizerError(
                f"the word {text!r} (an answer) would be one token, but it also occurs in the "
                f"prompt {inside!r}, which would then read it as one token too: choose answer "
                "text that no prompt contains (e.g. the template '<{O}>')",
                text,
            )
    vocab = {tok: i for i, tok in enumerate([*SPECIAL, *sorted(words)])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    core.pre_tokenizer = _pre_tokenizer(level)
    if whole:
        core.add_tokens([AddedToken(t, single_word=False, normalized=False) for t in whole])
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
