"""Every decoder family the engine has an adapter for, against an oracle written here.

Each family is built from its transformers config class (3 blocks, 32 wide, 4 heads, a
64-token vocabulary, random weights from a fixed seed), with its causal-LM head and its
sequence-classification head. The prompts come from a template whose first value takes one to
four words, so prompts have different lengths and every named position moves between inputs;
they are padded on the right and on the left.

The oracle is the network's plain forward (``model(input_ids, attention_mask).logits``, the
model's own head, Gemma 2's final soft-capping included) with the site patched by hooks written
in this file, never by ``intervention.adapters.split_at``: the source's site vectors are read by
a forward hook on block k's output (a forward pre-hook on block 0 for the embeddings, k = -1)
during the source's own plain forward, then h_b + R Rᵀ (h_s − h_b) is written into the base's
forward by the same kind of hook. A causal LM is read at the last real token, at the answer
tokens only.
"""

from __future__ import annotations

import itertools

import pytest
import torch
import transformers as tf

from intervention.adapters import AdapterError, context_length
from intervention.engine import InterchangeEngine, Site, SiteError
from intervention.prompts import PromptError, answer_token_ids, encode_prompts
from intervention.tokenizer import build_tokenizer

torch.set_num_threads(1)

TOLERANCE = 1e-5  # fp32: max |engine - oracle| over the logits
MOVED = 1e-3  # a patch that changes a row's logits by more than this moved it
N_LAYER = 3
PAIRS = 40
RANK = 4

# -- the task: a template whose values take different numbers of words ----------------------

A_VALUES = ("bob", "the cat", "a big red dog", "my old grey pet cat")  # 1 to 4 words
B_VALUES = ("x", "y", "z")
C_VALUES = ("one", "two")
TEMPLATE = "{A} saw {B} then {C}"
ANSWERS = (" yes", " no", " maybe")  # a causal LM's classes, one token each


def _inputs() -> tuple[list[str], list[dict[str, tuple[int, int]]]]:
    """Prompts and each prompt's value spans (character ranges), from the template."""
    prompts, spans = [], []
    for a, b, c in itertools.product(A_VALUES, B_VALUES, C_VALUES):
        values = {"A": a, "B": b, "C": c}
        text, span, rest = "", {}, TEMPLATE
        while "{" in rest:
            head, tail = rest.split("{", 1)
            name, rest = tail.split("}", 1)
            text += head
            span[name] = (len(text), len(text) + len(values[name]))
            text += values[name]
        prompts.append(text + rest)
        spans.append(span)
    return prompts, spans


PROMPTS, SPANS = _inputs()
TOKENIZER = build_tokenizer([*PROMPTS, "yes no maybe"])
VOCAB = 64
assert len(TOKENIZER) <= VOCAB

# Sites: integers (from the start and from the end), a variable's tokens, "last"; and the last
# token of a value whose width differs between inputs.
SITES = ((0, -2, "B", "last"), ("A:last", "C"))


# -- the families ------------------------------------------------------------------------------


def llama_like(**extra) -> dict:
    return dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=N_LAYER,
        num_attention_heads=4,
        num_key_value_heads=2,  # grouped-query attention
        max_position_embeddings=32,
        **extra,
    )


COMMON = dict(vocab_size=VOCAB, pad_token_id=0, num_labels=3, initializer_range=0.1)

# name -> (config, causal-LM class, classifier class, the block list's path written here)
FAMILY_MODELS = {
    "gpt2": (
        lambda: tf.GPT2Config(
            n_layer=N_LAYER,
            n_embd=32,
            n_head=4,
            n_positions=32,
            bos_token_id=1,
            eos_token_id=1,
            **COMMON,
        ),
        tf.GPT2LMHeadModel,
        tf.GPT2ForSequenceClassification,
        "transformer.h",
    ),
    "pythia": (  # GPT-NeoX as Pythia has it: attention and MLP in parallel
        lambda: tf.GPTNeoXConfig(
            num_hidden_layers=N_LAYER,
            hidden_size=32,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=32,
            use_parallel_residual=True,
            rotary_pct=0.25,
            bos_token_id=1,
            eos_token_id=1,
            **COMMON,
        ),
        tf.GPTNeoXForCausalLM,
        tf.GPTNeoXForSequenceClassification,
        "gpt_neox.layers",
    ),
    "gpt_neox-sequential": (
        lambda: tf.GPTNeoXConfig(
            num_hidden_layers=N_LAYER,
            hidden_size=32,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=32,
            use_parallel_residual=False,
            bos_token_id=1,
            eos_token_id=1,
            **COMMON,
        ),
        tf.GPTNeoXForCausalLM,
        tf.GPTNeoXForSequenceClassification,
        "gpt_neox.layers",
    ),
    "llama": (
        lambda: tf.LlamaConfig(**llama_like(), **COMMON),
        tf.LlamaForCausalLM,
        tf.LlamaForSequenceClassification,
        "model.layers",
    ),
    "qwen2": (
        lambda: tf.Qwen2Config(**llama_like(), **COMMON),
        tf.Qwen2ForCausalLM,
        tf.Qwen2ForSequenceClassification,
        "model.layers",
    ),
    "qwen3": (
        lambda: tf.Qwen3Config(**llama_like(head_dim=8), **COMMON),
        tf.Qwen3ForCausalLM,
        tf.Qwen3ForSequenceClassification,
        "model.layers",
    ),
    "mistral": (  # a sliding window shorter than the prompts
        lambda: tf.MistralConfig(**llama_like(sliding_window=4), **COMMON),
        tf.MistralForCausalLM,
        tf.MistralForSequenceClassification,
        "model.layers",
    ),
    "gemma2": (  # soft-capped final logits (small, so that the cap bends them), local layers
        lambda: tf.Gemma2Config(
            **llama_like(head_dim=8, sliding_window=4, final_logit_softcapping=0.5), **COMMON
        ),
        tf.Gemma2ForCausalLM,
        tf.Gemma2ForSequenceClassification,
        "model.layers",
    ),
    "gemma3_text": (  # sliding and full attention layers, each with its own rotary base
        lambda: tf.Gemma3TextConfig(
            **llama_like(
                head_dim=8,
                sliding_window=4,
                layer_types=["sliding_attention", "full_attention", "sliding_attention"],
            ),
            **COMMON,
        ),
        tf.Gemma3ForCausalLM,
        tf.Gemma3TextForSequenceClassification,
        "model.layers",
    ),
}
HEADS = ("causal-lm", "classifier")


def build_family(family: str, head: str, seed: int = 0):
    config, lm, classifier, path = FAMILY_MODELS[family]
    torch.manual_seed(seed)
    model = (lm if head == "causal-lm" else classifier)(config()).eval()
    return model, path


def answer_ids_of() -> list[int]:
    return answer_token_ids(TOKENIZER, ANSWERS, ["yes", "no", "maybe"])


# -- the oracle: hooks written here, on a plain forward ---------------------------------------


def _hook_site(model, path: str, layer: int, fn):
    """Register ``fn(h) -> h`` on the residual stream after block ``layer`` of the plain
    network (block 0's input for -1); returns the handle."""
    blocks = model.get_submodule(path)
    if layer == -1:

        def pre(module, args, kwargs):
            if args:
                return (fn(args[0]), *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": fn(kwargs["hidden_states"])}

        return blocks[0].register_forward_pre_hook(pre, with_kwargs=True)

    def post(module, args, out):
        if isinstance(out, tuple):
            return (fn(out[0]), *out[1:])
        return fn(out)

    return blocks[layer].register_forward_hook(post)


def read_logits(model, ids, mask, last, answer_ids):
    """The plain network's logits as the task reads them."""
    logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
    if answer_ids is None:
        return logits.float()
    rows = torch.arange(len(ids), device=logits.device)
    return logits[rows, last.to(logits.device)][:, answer_ids].float()


@torch.no_grad()
def oracle_patched(model, path, enc, layer, rows, base, source, rotation, answer_ids):
    """Logits of the bases with the site patched towards the sources inside span(R)."""
    width = model.config.hidden_size
    seen = {}

    def keep(h):
        seen["h"] = h.clone()
        return h

    handle = _hook_site(model, path, layer, keep)
    try:
        model(input_ids=enc.ids[source], attention_mask=enc.mask[source], use_cache=False)
    finally:
        handle.remove()
    index = rows[source][..., None].expand(-1, -1, width)
    vs = seen["h"].gather(1, index).reshape(len(source), -1)
    base_index = rows[base][..., None].expand(-1, -1, width)

    def patch(h):
        vb = h.gather(1, base_index)
        flat = vb.reshape(len(base), -1)
        new = (flat + ((vs - flat) @ rotation) @ rotation.T).reshape(vb.shape)
        return h.scatter(1, base_index, new)

    handle = _hook_site(model, path, layer, patch)
    try:
        return read_logits(model, enc.ids[base], enc.mask[base], enc.last[base], answer_ids)
    finally:
        handle.remove()


def pairs_of(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    base = torch.randint(0, n, (PAIRS,), generator=gen)
    source = (base + torch.randint(1, n, (PAIRS,), generator=gen)) % n  # never the base
    return base, source


def check_parity(engine, model, path, enc, answer_ids, seed: int):
    """Patched logits of the engine equal the oracle's; the patch moved them."""
    base, source = pairs_of(enc.n, seed)
    gen = torch.Generator().manual_seed(seed)
    rotation = torch.linalg.qr(torch.randn(engine.dim, RANK, generator=gen))[0]
    with torch.no_grad():
        got = engine.patched_logits(base, source, rotation)
    rows = engine.rows.cpu()
    layer = engine.site.layer
    ref = oracle_patched(model, path, enc, layer, rows, base, source, rotation, answer_ids)
    diff = (got - ref).abs().max().item()
    where = f"{type(model).__name__} layer {layer} site {engine.site.positions}"
    assert diff <= TOLERANCE, f"{where}: max |engine - oracle| = {diff:.3g}"
    assert torch.equal(got.argmax(-1), ref.argmax(-1)), where
    # Not two no-ops agreeing: the patch moved the logits of every pair whose site differs,
    # by far more than the tolerance, and most pairs' sites differ.
    with torch.no_grad():
        plain = read_logits(model, enc.ids[base], enc.mask[base], enc.last[base], answer_ids)
    moved = (ref - plain).abs().amax(-1)
    differs = sites_differ(enc, rows, layer, base, source)
    assert differs.float().mean().item() >= 0.6, f"{where}: {differs}"
    assert (moved[differs] > MOVED).all(), f"{where}: patch moved {moved}"
    return got, ref


def sites_differ(enc, rows, layer, base, source) -> torch.Tensor:
    """Pairs whose site vectors can differ: at the embeddings, other tokens or positions at
    the site; after a block, another prefix up to the site's last token."""
    rb, rs = rows[base].cpu(), rows[source].cpu()
    ids, mask = enc.ids.cpu(), enc.mask.cpu()
    if layer == -1:
        tokens = ids[base].gather(1, rb) != ids[source].gather(1, rs)
        return tokens.any(1) | (rb != rs).any(1)
    upto = torch.arange(enc.length)[None] <= torch.maximum(rb.amax(1), rs.amax(1))[:, None]
    other = (ids[base] != ids[source]) | (mask[base] != mask[source])
    return (other & upto).any(1)


# -- parity per family, head and padding side --------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("family", list(FAMILY_MODELS))
def test_engine_matches_a_hooked_plain_forward(family, head, side):
    model, path = build_family(family, head)
    enc = encode_prompts(TOKENIZER, PROMPTS, pad_side=side)
    assert enc.padded and len(set(enc.lengths.tolist())) == len(A_VALUES)
    answer_ids = answer_ids_of() if head == "causal-lm" else None
    moving = False  # whether some site's token moves between inputs (not one column)
    for layer, positions in itertools.product((-1, 1, N_LAYER - 1), SITES):
        engine = InterchangeEngine(
            model,
            enc,
            Site(layer, positions),
            batch_size=16,
            answer_ids=answer_ids,
            spans=SPANS,
            prompts=PROMPTS,
        )
        moving |= bool((engine.rows != engine.rows[0]).any())
        seed = 100 * (layer + 1) + len(positions)
        got, _ = check_parity(engine, model, path, enc, answer_ids, seed)
        if layer == 1:  # the same site with no cache: each batch recomputes the bases' prefix
            uncached = InterchangeEngine(
                model,
                enc,
                Site(layer, positions),
                batch_size=7,
                answer_ids=answer_ids,
                spans=SPANS,
                prompts=PROMPTS,
                cache_bytes=0,
            )
            assert not uncached.cached and engine.cached
            again, _ = check_parity(uncached, model, path, enc, answer_ids, seed)
            assert (again - got).abs().max().item() <= TOLERANCE
    assert moving
    # Unpatched, the split network is the network, on every input.
    with torch.no_grad():
        plain = read_logits(model, enc.ids, enc.mask, enc.last, answer_ids)
    assert (engine.base_logits() - plain).abs().max().item() <= TOLERANCE


@pytest.mark.integration
@pytest.mark.parametrize("family", ["gpt2", "llama", "gemma2"])
def test_causal_lm_reads_the_answer_tokens_at_the_last_real_token(family):
    """Right-padded prompts: the last column is padding for most inputs, so reading there (or
    reading every vocabulary logit) would differ; the engine reads each input's last real
    token's answer logits."""
    model, _ = build_family(family, "causal-lm")
    enc = encode_prompts(TOKENIZER, PROMPTS, pad_side="right")
    answer_ids = answer_ids_of()
    engine = InterchangeEngine(model, enc, Site(0, ("last",)), answer_ids=answer_ids)
    with torch.no_grad():
        full = model(input_ids=enc.ids, attention_mask=enc.mask).logits
        got = engine.base_logits()
    assert got.shape == (enc.n, len(ANSWERS))
    rows = torch.arange(enc.n)
    want = full[rows, enc.last][:, answer_ids]
    assert (got - want).abs().max().item() <= TOLERANCE
    short = enc.lengths < enc.length
    assert short.sum() >= enc.n // 2
    at_pad = full[rows, enc.length - 1][:, answer_ids]
    assert (at_pad[short] - want[short]).abs().amax(-1).min().item() > MOVED


@pytest.mark.integration
def test_gemma2_final_softcapping_isread_logits():
    """Gemma 2 caps its final logits (tanh(x / c) · c); with a small cap the capped and raw
    answer logits differ far beyond the tolerance, and the engine matches the capped ones."""
    model, path = build_family("gemma2", "causal-lm")
    cap = model.config.final_logit_softcapping
    enc = encode_prompts(TOKENIZER, PROMPTS, pad_side="left")
    answer_ids = answer_ids_of()
    engine = InterchangeEngine(
        model, enc, Site(1, ("B", "last")), answer_ids=answer_ids, spans=SPANS
    )
    assert engine.readout.softcap == cap
    got, ref = check_parity(engine, model, path, enc, answer_ids, seed=7)
    assert ref.abs().max().item() < cap  # the oracle's logits are capped
    raw = torch.atanh(ref / cap) * cap
    assert (raw - ref).abs().max().item() > 100 * TOLERANCE  # the cap bends them
    engine.readout.softcap = None  # without the cap the engine would be wrong
    base, source = pairs_of(enc.n, 7)
    rotation = torch.linalg.qr(
        torch.randn(engine.dim, RANK, generator=torch.Generator().manual_seed(7))
    )[0]
    with torch.no_grad():
        uncapped = engine.patched_logits(base, source, rotation)
    assert (uncapped - ref).abs().max().item() > 100 * TOLERANCE


# -- decoders without an adapter ---------------------------------------------------------------


@pytest.mark.integration
def test_a_family_without_adapter_runs_from_network_layers():
    """A GPT-2 whose config names an unknown family, and a family transformers has but the
    adapters do not (Phi-3, OLMo): refused without ``layers``, the oracle's logits with it."""
    enc = encode_prompts(TOKENIZER, PROMPTS, pad_side="left")
    answer_ids = answer_ids_of()
    model, path = build_family("gpt2", "causal-lm")
    model.config.model_type = "my_own_gpt"
    torch.manual_seed(0)
    phi3 = tf.Phi3ForCausalLM(tf.Phi3Config(**llama_like(), **COMMON)).eval()
    olmo = tf.OlmoForCausalLM(tf.OlmoConfig(**llama_like(), **COMMON)).eval()
    for net, path in ((model, "transformer.h"), (phi3, "model.layers"), (olmo, "model.layers")):
        family = net.config.model_type
        with pytest.raises(AdapterError, match="network.layers") as err:
            InterchangeEngine(net, enc, Site(1, ("B",)), answer_ids=answer_ids, spans=SPANS)
        assert repr(family) in str(err.value)
        for layer in (-1, 1):
            engine = InterchangeEngine(
                net,
                enc,
                Site(layer, ("B", "last")),
                answer_ids=answer_ids,
                layers=path,
                spans=SPANS,
            )
            check_parity(engine, net, path, enc, answer_ids, seed=11 + layer)
    with pytest.raises(AdapterError, match="names no module"):
        InterchangeEngine(model, enc, Site(0, ("last",)), answer_ids=answer_ids, layers="h.x")


@pytest.mark.integration
@pytest.mark.parametrize("side", ["right", "left"])
def test_a_classifier_without_a_pad_token_reads_the_last_real_token(side):
    """Hugging Face's classifier head refuses a batch when its config names no pad token; the
    engine (which reads each input's last real token from the mask) still scores, and equals
    the plain base model read through the model's own score layer there."""
    model, _ = build_family("llama", "classifier")
    model.config.pad_token_id = None
    enc = encode_prompts(TOKENIZER, PROMPTS, pad_side=side)
    with pytest.raises(ValueError, match="no padding token"):
        model(input_ids=enc.ids, attention_mask=enc.mask)
    engine = InterchangeEngine(model, enc, Site(1, ("B", "last")), spans=SPANS)
    with torch.no_grad():
        h = model.base_model(input_ids=enc.ids, attention_mask=enc.mask).last_hidden_state
        want = model.score(h[torch.arange(enc.n), enc.last])
        # One prompt alone (no padding): the head's own reading, at its last token.
        alone = model(input_ids=enc.ids[:1, : int(enc.lengths[0])]).logits
    got = engine.base_logits()
    assert (got - want).abs().max().item() <= TOLERANCE
    if side == "right":
        assert (got[:1] - alone).abs().max().item() <= TOLERANCE


@pytest.mark.integration
def test_a_classifier_reading_another_token_than_the_last_real_one_is_refused():
    """A config whose pad_token_id is not the id the prompts are padded with: the head reads
    a padding token, not the prompt's last; the engine refuses, saying which and why."""
    model, _ = build_family("gpt2", "classifier")
    enc = encode_prompts(TOKENIZER, PROMPTS, pad_side="right")
    model.config.pad_token_id = TOKENIZER.convert_tokens_to_ids("saw")  # not [PAD]
    with pytest.raises(SiteError, match="reads token .* pad_token_id .* last real token"):
        InterchangeEngine(model, enc, Site(0, ("last",)))


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.integration
def test_answers_must_be_one_distinct_token_each():
    with pytest.raises(PromptError, match=r"class 'big': .* 2 tokens"):
        answer_token_ids(TOKENIZER, [" yes", " big dog"], ["yes", "big"])
    with pytest.raises(PromptError, match=r"class 'none': .* 0 tokens"):
        answer_token_ids(TOKENIZER, [" yes", " "], ["yes", "none"])
    with pytest.raises(PromptError, match=r"classes 'a' and 'b' both answer with token 'yes'"):
        answer_token_ids(TOKENIZER, [" yes", "yes"], ["a", "b"])
    with pytest.raises(PromptError, match=r"class 'w': .* not in the vocabulary"):
        answer_token_ids(TOKENIZER, [" yes", " wolf"], ["y", "w"])


@pytest.mark.integration
def test_a_prompt_longer_than_the_context_is_refused():
    model, _ = build_family("llama", "causal-lm")
    context = context_length(model)
    assert context == 32
    long = " ".join(["x"] * (context + 1))
    with pytest.raises(PromptError, match=f"{context + 1} tokens, longer than the network's "):
        encode_prompts(TOKENIZER, [*PROMPTS, long], max_length=context)
    encode_prompts(TOKENIZER, [*PROMPTS, " ".join(["x"] * context)], max_length=context)


@pytest.mark.integration
@pytest.mark.parametrize("family", ["gpt2", "qwen3"])
def test_bad_sites_are_refused(family):
    model, _ = build_family(family, "classifier")
    enc = encode_prompts(TOKENIZER, PROMPTS)

    def engine(layer, positions):
        return InterchangeEngine(model, enc, Site(layer, positions), spans=SPANS)

    with pytest.raises(SiteError, match=r"'D' is not an input variable .* \['A', 'B', 'C'\]"):
        engine(0, ("D",))
    with pytest.raises(SiteError, match="needs the task's value spans"):
        InterchangeEngine(model, enc, Site(0, ("B",)))
    with pytest.raises(SiteError, match="A's value takes 1 token"):
        engine(0, ("A",))  # widths differ between inputs: ask for A:first or A:last
    for layer in (N_LAYER, 10, -2):
        with pytest.raises(SiteError, match=rf"{N_LAYER} blocks.* -1 \(embeddings\) to 2"):
            engine(layer, ("last",))
    with pytest.raises(SiteError, match="different lengths"):
        engine(0, None)  # every position, of prompts of different lengths
    with pytest.raises(SiteError, match="position 5 does not exist in input 0"):
        engine(0, (5,))


@pytest.mark.integration
def test_the_self_check_refuses_a_readout_that_is_not_the_network(monkeypatch):
    """The engine compares its split forward with the plain one before scoring: a readout that
    forgot Gemma 2's final cap (float32), or one that is far off (bfloat16, where only gross
    differences and clear argmax flips count), stops the engine with a SiteError."""
    import intervention.adapters as adapters

    enc = encode_prompts(TOKENIZER, PROMPTS, pad_side="left")
    model, _ = build_family("gemma2", "causal-lm")
    forward = adapters.Readout.forward

    def uncapped(self, hidden):
        self.softcap = None
        return forward(self, hidden)

    monkeypatch.setattr(adapters.Readout, "forward", uncapped)
    with pytest.raises(SiteError, match="differs from its plain forward"):
        InterchangeEngine(model, enc, Site(1, ("last",)), answer_ids=answer_ids_of())
    monkeypatch.setattr(adapters.Readout, "forward", lambda self, h: -forward(self, h))
    model = model.to(torch.bfloat16)
    with pytest.raises(SiteError, match="differs from its plain forward"):
        InterchangeEngine(model, enc, Site(1, ("last",)), answer_ids=answer_ids_of())


@pytest.mark.integration
def test_bf16_engine_and_plain_forward_agree_on_cpu():
    """The GPU test's check, here in bfloat16 on the CPU: the engine builds (its self-check
    allows rounding) and every argmax agrees with the plain forward's and the hooked oracle's
    where the oracle's top two are not a near tie."""
    assert bf16_argmax_agreement("cpu") == (1.0, 1.0)


# -- GPU tier ---------------------------------------------------------------------------------


def bf16_argmax_agreement(device: str) -> tuple[float, float]:
    """A Llama-shaped tiny causal LM in bfloat16 on ``device``: the fraction of inputs whose
    argmax the engine's unpatched logits share with the plain forward, and of patched pairs
    whose argmax matches the hooked oracle's, where the oracle's top two are not a near tie."""
    torch.manual_seed(0)
    config = tf.LlamaConfig(
        **{**llama_like(), "num_hidden_layers": 4, "hidden_size": 64, "intermediate_size": 176},
        **COMMON,
    )
    model = tf.LlamaForCausalLM(config).eval().to(device=device, dtype=torch.bfloat16)
    enc = encode_prompts(TOKENIZER, PROMPTS, pad_side="left")
    answer_ids = answer_ids_of()
    engine = InterchangeEngine(
        model, enc, Site(2, ("B", "last")), answer_ids=answer_ids, spans=SPANS
    )
    with torch.no_grad():
        plain = read_logits(
            model, enc.ids.to(device), enc.mask.to(device), enc.last.to(device), answer_ids
        )
        unpatched = engine.base_logits()
    base_agree = (unpatched.argmax(-1) == plain.argmax(-1)).float().mean().item()

    base, source = pairs_of(enc.n, 3)
    rotation = torch.linalg.qr(
        torch.randn(engine.dim, RANK, generator=torch.Generator().manual_seed(3))
    )[0].to(device=device, dtype=torch.bfloat16)
    on = type(enc)(enc.ids.to(device), enc.mask.to(device), enc.padding_side)
    with torch.no_grad():
        got = engine.patched_logits(base, source, rotation)
    ref = oracle_patched(
        model,
        "model.layers",
        on,
        2,
        engine.rows,
        base.to(device),
        source.to(device),
        rotation,
        answer_ids,
    )
    top2 = ref.topk(2, dim=-1).values
    clear = (top2[:, 0] - top2[:, 1]) > 0.05 * ref.abs().amax(-1).clamp_min(1e-3)
    agree = got.argmax(-1)[clear] == ref.argmax(-1)[clear]
    return base_agree, agree.float().mean().item() if clear.any() else 1.0


@pytest.mark.gpu
def test_bf16_on_cuda_engine_and_plain_forward_agree():
    base_agree, patched_agree = bf16_argmax_agreement("cuda")
    assert base_agree == 1.0
    assert patched_agree == 1.0
