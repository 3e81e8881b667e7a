"""Prompts as a network reads them: token ids padded on the tokenizer's side with attention
masks, token positions resolved per input, and answer tokens for a causal LM's classes.

A site names its positions as integers (the k-th real token, negative from the end),
``"last"`` (the last real token) or an input variable's name (the tokens its value occupies,
``"X:first"`` / ``"X:last"`` for one of them). Each resolves per input, so prompts of different
lengths and values of different widths still give one vector per input of a fixed size.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

Position = int | str
NAMED = re.compile(r"^([A-Za-z_][A-Za-z_0-9]*)(?::(first|last))?$")


class PromptError(ValueError):
    """Prompts, positions or answers the network cannot read as asked; the message says how."""


@dataclass(frozen=True)
class Encoded:
    """Token ids [n, length], padded on ``padding_side``, their attention mask and, from a fast
    tokenizer, each token's character span in its prompt ([n, length, 2]; None otherwise)."""

    ids: torch.Tensor
    mask: torch.Tensor
    padding_side: str = "right"
    offsets: torch.Tensor | None = None

    @property
    def n(self) -> int:
        return self.ids.shape[0]

    @property
    def length(self) -> int:
        return self.ids.shape[1]

    @property
    def lengths(self) -> torch.Tensor:
        return self.mask.sum(1)

    @property
    def padded(self) -> bool:
        return bool((self.lengths != self.length).any())

    def real_to_padded(self, index: torch.Tensor) -> torch.Tensor:
        """Row positions of real-token indices (0 = each prompt's first real token)."""
        if self.padding_side == "left":
            return index + (self.length - self.lengths)
        return index

    @property
    def last(self) -> torch.Tensor:
        """Each input's last real token: where a classifier or a causal LM reads its answer."""
        return self.real_to_padded(self.lengths - 1)

    @classmethod
    def unpadded(cls, ids: torch.Tensor) -> Encoded:
        """Ids of prompts of one length (no padding)."""
        return cls(ids, torch.ones_like(ids))


def encode_prompts(
    tokenizer, prompts: Sequence[str], max_length: int | None = None, pad_side: str | None = None
) -> Encoded:
    """Tokenise as a plain call does (the tokenizer's own special tokens), pad on the side the
    tokenizer says, and refuse what a network cannot read: an empty prompt, a word outside the
    vocabulary, a prompt longer than the network's context (``max_length``)."""
    if not prompts:
        raise PromptError("no prompts to encode")
    side = pad_side or getattr(tokenizer, "padding_side", "right") or "right"
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        # Decoders often ship without a pad token; a masked position's id is never read.
        pad_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    fast = bool(getattr(tokenizer, "is_fast", False))
    enc = tokenizer(list(prompts), return_offsets_mapping=fast)
    rows = enc["input_ids"]
    lengths = [len(r) for r in rows]
    if min(lengths) == 0:
        empty = prompts[lengths.index(0)]
        raise PromptError(f"prompt {empty!r} tokenises to no tokens; give it some text")
    unk = tokenizer.unk_token_id
    if unk is not None:
        for p, r in zip(prompts, rows):
            if unk in r:
                raise PromptError(
                    f"prompt {p!r} holds words outside the tokenizer's vocabulary (token "
                    f"{tokenizer.unk_token!r}); the network never saw such input"
                )
    length = max(lengths)
    if max_length is not None and length > max_length:
        longest = prompts[lengths.index(length)]
        raise PromptError(
            f"prompt {longest!r} is {length} tokens, longer than the network's context of "
            f"{max_length}: shorten the prompts (the template) or use a network with a longer "
            "context"
        )
    ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    offsets = torch.zeros((len(rows), length, 2), dtype=torch.long) if fast else None
    for i, r in enumerate(rows):
        cols = slice(length - len(r), length) if side == "left" else slice(0, len(r))
        ids[i, cols] = torch.as_tensor(r)
        mask[i, cols] = 1
        if offsets is not None:
            offsets[i, cols] = torch.as_tensor(enc["offset_mapping"][i]).reshape(-1, 2)
    return Encoded(ids, mask, side, offsets)


def resolve_positions(
    encoded: Encoded,
    positions: Sequence[Position] | None,
    spans: Sequence[Mapping[str, tuple[int, int]]] | None = None,
    prompts: Sequence[str] | None = None,
) -> torch.Tensor:
    """Row positions [n, P] of a site's tokens for every input. ``spans`` (each input's
    variables' character spans, from ``Task.value_spans``) is needed for named positions.
    ``None``: every position, which needs prompts of one length."""
    n = encoded.n
    if positions is None:
        if encoded.padded:
            raise PromptError(
                "the prompts have different lengths, so 'all positions' differ between inputs: "
                "name the site's positions (integers, 'last', or an input variable's name)"
            )
        return torch.arange(encoded.length).repeat(n, 1)
    if not positions:
        raise PromptError("give at least one position, or leave positions out for all")
    lengths = encoded.lengths
    columns: list[torch.Tensor] = []
    for pos in positions:
        if isinstance(pos, bool) or not isinstance(pos, int | str):
            raise PromptError(f"position {pos!r} is neither an integer nor a name")
        if isinstance(pos, int):
            real = lengths + pos if pos < 0 else torch.full_like(lengths, pos)
            bad = ((real < 0) | (real >= lengths)).nonzero()
            if len(bad):
                i = int(bad[0])
                raise PromptError(
                    f"position {pos} does not exist in input {i}"
                    + (f" ({prompts[i]!r})" if prompts else "")
                    + f", which has {int(lengths[i])} tokens (positions 0..{int(lengths[i]) - 1}, "
                    f"or -{int(lengths[i])}..-1 from its end): choose a position every prompt has, "
                    "or 'last'"
                )
            columns.append(encoded.real_to_padded(real)[:, None])
        elif pos == "last":
            columns.append(encoded.last[:, None])
        else:
            columns.append(_named(encoded, pos, spans, prompts))
    out = torch.cat(columns, 1)
    for i in range(n):
        row = out[i].tolist()
        if len(set(row)) != len(row):
            raise PromptError(
                f"positions {list(positions)} name one token twice in input {i}"
                + (f" ({prompts[i]!r})" if prompts else "")
                + "; list each token once"
            )
    return out


def _named(encoded: Encoded, name: str, spans, prompts) -> torch.Tensor:
    match = NAMED.match(name)
    if match is None:
        raise PromptError(
            f"position {name!r} is not 'last', an input variable's name, or NAME:first/NAME:last"
        )
    var, pick = match.groups()
    if spans is None or encoded.offsets is None:
        raise PromptError(
            f"position {name!r} names a variable, which needs the task's value spans and a fast "
            "tokenizer (character offsets); use integer positions or 'last' instead"
        )
    if var not in spans[0]:
        raise PromptError(
            f"position {name!r}: {var!r} is not an input variable of the task; the variables "
            f"are {sorted(spans[0])}"
        )
    rows = []
    width = None
    for i in range(encoded.n):
        start, end = spans[i][var]
        off = encoded.offsets[i]
        # A token covers the value when their character ranges overlap; padding and special
        # tokens have empty ranges and never do.
        hit = ((off[:, 0] < end) & (off[:, 1] > start) & (off[:, 1] > off[:, 0])).nonzero()
        hit = hit[:, 0]
        if len(hit) == 0:
            raise PromptError(
                f"position {name!r}: the value of {var} occupies no token of input {i}"
                + (f" ({prompts[i]!r})" if prompts else "")
            )
        if pick == "first":
            hit = hit[:1]
        elif pick == "last":
            hit = hit[-1:]
        if width is None:
            width = len(hit)
        elif len(hit) != width:
            raise PromptError(
                f"position {name!r}: {var}'s value takes {width} token(s) in input 0 but "
                f"{len(hit)} in input {i}"
                + (f" ({prompts[i]!r})" if prompts else "")
                + f"; a site needs one width for every input: use '{var}:last' or '{var}:first'"
            )
        rows.append(hit)
    return torch.stack(rows)


def answer_token_ids(tokenizer, answers: Sequence[str], classes: Sequence) -> list[int]:
    """The one token each class's answer string reads as. Refused, naming the class and its
    tokens: an answer of several tokens (or none), and two classes sharing a token, since the
    prediction is the argmax over exactly these tokens' logits."""
    ids: list[int] = []
    for cls, text in zip(classes, answers):
        toks = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(toks) != 1:
            pieces = tokenizer.convert_ids_to_tokens(toks)
            raise PromptError(
                f"class {cls!r}: its answer {text!r} tokenises to {len(toks)} tokens {pieces}, "
                "not one; change the answer template (e.g. a leading space, ' {O}') so that every "
                "class is a single token"
            )
        if tokenizer.unk_token_id is not None and toks[0] == tokenizer.unk_token_id:
            raise PromptError(f"class {cls!r}: its answer {text!r} is not in the vocabulary")
        ids.append(toks[0])
    seen: dict[int, object] = {}
    for cls, t in zip(classes, ids):
        if t in seen:
            raise PromptError(
                f"classes {seen[t]!r} and {cls!r} both answer with token "
                f"{tokenizer.convert_ids_to_tokens([t])[0]!r}; each class needs its own token"
            )
        seen[t] = cls
    return ids
