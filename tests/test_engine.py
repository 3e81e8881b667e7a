"""The interchange engine against a plain full forward that patches through a hook (the
pyvene-style oracle), DAS on a real trained GPT-2, and the engine's bad inputs."""

import numpy as np
import pytest
import torch

from intervention.das import (
    Alignment,
    AlignmentError,
    DASSettings,
    split_inputs,
    train_alignment,
)
from intervention.engine import InterchangeEngine, Site, SiteError
from intervention.network import (
    NetworkError,
    load_network,
    require_accuracy,
    save_network,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def trained(task_ids, small_network):
    """The session's trained network (default TrainSettings, as train_network gives), read
    with the task's own token ids: the stage built its tokenizer from the same prompts."""
    task, tok, ids = task_ids
    net = small_network[1]
    assert torch.equal(net.ids, ids) and net.tokenizer.get_vocab() == tok.get_vocab()
    return net


def _hooked_logits(model, ids, layer, positions, hs, rotation):
    def patch(module, args, out):
        h = out.clone()
        n = h.shape[0]
        vb = h[:, positions].reshape(n, -1)
        vs = hs[:, positions].reshape(n, -1)
        h[:, positions] = (vb + ((vs - vb) @ rotation) @ rotation.T).reshape(n, len(positions), -1)
        return h

    target = model.transformer.h[layer] if layer >= 0 else model.transformer.drop
    handle = target.register_forward_hook(patch)
    try:
        with torch.no_grad():
            return model(input_ids=ids).logits
    finally:
        handle.remove()


@pytest.mark.integration
@pytest.mark.parametrize("layer, positions", [(-1, None), (0, None), (1, (3,)), (2, (1, 5))])
def test_engine_matches_a_hooked_full_forward(task_ids, random_net, layer, positions):
    _, _, ids = task_ids
    engine = InterchangeEngine(random_net, ids, Site(layer, positions), batch_size=97)
    gen = torch.Generator().manual_seed(layer + 5)
    rotation = torch.linalg.qr(torch.randn(engine.dim, 8, generator=gen))[0]
    base = torch.randint(0, 1000, (300,), generator=gen)
    source = torch.randint(0, 1000, (300,), generator=gen)
    got = engine.patched_logits(base, source, rotation).detach()
    pos = list(engine.site.positions)
    ref = _hooked_logits(random_net, ids[base], layer, pos, engine.cache[source], rotation)
    assert (got - ref).abs().max().item() <= 1e-5
    assert torch.equal(got.argmax(-1), ref.argmax(-1))
    # The patch moved nearly every row ten times further than that tolerance: the match is not
    # two no-ops agreeing.
    moved = (got - engine.base_logits(base)).abs().amax(-1)
    assert (moved > 1e-4).float().mean().item() > 0.9
    # The split network without a patch is the network.
    with torch.no_grad():
        full = random_net(input_ids=ids).logits
    assert (engine.base_logits() - full).abs().max().item() <= 1e-5


def _balanced_labels(predictions: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels that the predictions match on even pairs and miss on odd ones, so that a run of
    successes is half True, half False, and any slip in the engine shows."""
    hit = np.arange(len(predictions)) % 2 == 0
    return np.where(hit, predictions, (predictions + 1) % n_classes), hit


@pytest.mark.integration
def test_successes_are_the_oracles_argmax_matches_at_any_batching(task_ids, random_net):
    task, _, ids = task_ids
    rng = np.random.default_rng(0)
    base, source = rng.integers(0, 1000, 500), rng.integers(0, 1000, 500)
    rotation = torch.linalg.qr(torch.randn(6 * 32, 4, generator=torch.Generator().manual_seed(3)))[
        0
    ]
    # The oracle: the full forward with the site patched by a hook.
    engine = InterchangeEngine(random_net, ids, Site(0), batch_size=500)
    hs = engine.cache[torch.as_tensor(source)]
    oracle = _hooked_logits(random_net, ids[base], 0, list(range(6)), hs, rotation)
    labels, expected = _balanced_labels(oracle.argmax(-1).numpy(), len(task.classes))
    assert expected.mean() == 0.5
    for batch_size in (1, 64, 500):
        got = InterchangeEngine(random_net, ids, Site(0), batch_size=batch_size).successes(
            base, source, rotation, labels
        )
        assert np.array_equal(got, expected), batch_size


@pytest.mark.integration
def test_full_rank_patch_is_the_source_and_a_self_patch_is_the_base(task_ids, random_net):
    _, _, ids = task_ids
    with torch.no_grad():
        full = random_net(input_ids=ids).logits
    base, source = torch.arange(0, 200), torch.arange(999, 799, -1)
    for layer in (-1, 1):
        engine = InterchangeEngine(random_net, ids, Site(layer))
        identity = torch.eye(engine.dim)  # the whole site, every position
        with torch.no_grad():
            swapped = engine.patched_logits(base, source, identity)
            kept = engine.patched_logits(base, base, identity[:, :5])
        # Replacing the whole residual stream at the site is running the source.
        assert (swapped - full[source]).abs().max().item() <= 1e-5
        assert torch.equal(swapped.argmax(-1), full[source].argmax(-1))
        assert (kept - full[base]).abs().max().item() <= 1e-5
        # Every base's logits are far from its source's (this untrained network predicts one
        # class everywhere, so argmax alone would tell nothing): the checks above can fail.
        assert (full[source] - full[base]).abs().amax(-1).min().item() > 1e-3


@pytest.mark.unit
def test_bad_sites_and_ranks(task_ids, random_net):
    _, _, ids = task_ids
    with pytest.raises(SiteError, match="-1 \\(embeddings\\) to 2"):
        InterchangeEngine(random_net, ids, Site(3))
    with pytest.raises(SiteError, match="0..5"):
        InterchangeEngine(random_net, ids, Site(0, (6,)))
    engine = InterchangeEngine(random_net, ids, Site(0, (0,)))
    for rank in (0, engine.dim + 1):
        with pytest.raises(AlignmentError, match="rank"):
            train_alignment(engine, lambda b, s: b * 0, "m", "t", DASSettings(rank=rank))


@pytest.mark.integration
def test_trained_network_and_das_find_the_sum_at_the_embeddings(task_ids, trained, tmp_path):
    task, tok, ids = task_ids
    assert trained.accuracy >= 0.99
    require_accuracy(trained.accuracy)
    with pytest.raises(NetworkError, match="below the floor"):
        require_accuracy(0.5)
    # Round trip through a Hugging Face directory (safetensors) and the real loading code.
    save_network(trained.model, tok, tmp_path / "net")
    loaded, loaded_tok = load_network(tmp_path / "net")
    assert torch.equal(loaded(input_ids=ids[:50]).logits, trained.model(input_ids=ids[:50]).logits)
    assert loaded_tok("1+2+3=")["input_ids"] == tok("1+2+3=")["input_ids"]
    with pytest.raises(NetworkError, match="no network directory"):
        load_network(tmp_path / "missing")
    # At the embedding output every input is still separate, so (X+Y)+Z aligns well.
    engine = InterchangeEngine(trained.model, ids, Site(-1))
    model = task.candidates[0]
    alignment = train_alignment(
        engine,
        lambda b, s: task.counterfactual_labels(model, b, s),
        model.name,
        "arith",
        DASSettings(rank=16, steps=150),
    )
    assert alignment.held_out_iia > 0.8
    # Measured where it tells: held-out pairs whose counterfactual label differs from the base
    # label, so a network that ignored the patch would score 0 on every one of them.
    rot = alignment.rotation
    _, held = split_inputs(task.n_inputs, 0.2, 0)
    rng = np.random.default_rng(1)
    b, s = rng.choice(held, 4000), rng.choice(held, 4000)
    cf = task.counterfactual_labels(model, b, s)
    informative = cf != task.labels()[b]
    b, s, cf = b[informative], s[informative], cf[informative]
    assert len(b) > 3000
    trained_iia = engine.successes(b, s, rot, cf).mean()
    control = torch.linalg.qr(
        torch.randn(engine.dim, 16, generator=torch.Generator().manual_seed(0))
    )[0]
    control_iia = engine.successes(b, s, control, cf).mean()
    assert trained_iia >= 0.8 and control_iia <= 0.2, (trained_iia, control_iia)
    assert torch.allclose(rot.T @ rot, torch.eye(16), atol=1e-4)
    alignment.save(tmp_path / "align")
    back = Alignment.load(tmp_path / "align", "arith", alignment.network_digest)
    assert torch.equal(back.rotation, rot) and back.site == alignment.site
    with pytest.raises(AlignmentError, match="another task"):
        Alignment.load(tmp_path / "align", "other-task", alignment.network_digest)
    with pytest.raises(AlignmentError, match="another network"):
        Alignment.load(tmp_path / "align", "arith", "0" * 16)


@pytest.mark.gpu
def test_engine_on_cuda_matches_cpu(task_ids, random_net):
    import copy

    _, _, ids = task_ids
    cpu = InterchangeEngine(random_net, ids, Site(1))
    gpu = InterchangeEngine(copy.deepcopy(random_net).to("cuda"), ids, Site(1))
    rotation = torch.linalg.qr(torch.randn(cpu.dim, 8))[0]
    base, source = torch.randint(0, 1000, (512,)), torch.randint(0, 1000, (512,))
    a = cpu.patched_logits(base, source, rotation)
    b = gpu.patched_logits(base, source, rotation.to("cuda")).cpu()
    assert (a - b).abs().max().item() <= 1e-4
    labels, expected = _balanced_labels(a.argmax(-1).numpy(), a.shape[-1])
    got = gpu.successes(base.numpy(), source.numpy(), rotation, labels)
    # Exact, except where the CPU's top two logits are closer than the devices differ.
    top2 = a.topk(2, dim=-1).values
    tie = ((top2[:, 0] - top2[:, 1]) < 2e-4).numpy()
    assert np.array_equal(got[~tie], expected[~tie]) and tie.mean() < 0.05


@pytest.mark.integration
def test_trimmed_das_in_a_pool_from_a_given_rotation(task_ids, random_net):
    """A refit's pieces: trim out of range is refused; ``pool`` draws pairs only among its
    inputs (the labelling function never sees another); ``init`` is where training starts
    (zero steps give it back); a wrong-shaped start is refused."""
    _, _, ids = task_ids
    engine = InterchangeEngine(random_net, ids, Site(0, (5,)))
    for trim in (0.0, 1.5):
        with pytest.raises(AlignmentError, match="trim"):
            train_alignment(engine, lambda b, s: b * 0, "m", "t", DASSettings(rank=4, trim=trim))
    pool = np.arange(100, 160)
    seen: set[int] = set()

    def labels(b, s):
        seen.update(np.asarray(b).tolist() + np.asarray(s).tolist())
        return np.asarray(b) % 5

    settings = DASSettings(rank=4, steps=3, batch_size=32, trim=0.3)
    train_alignment(engine, labels, "m", "t", settings, pool=pool)
    assert seen and seen <= set(pool.tolist())
    start = torch.linalg.qr(torch.randn(engine.dim, 4, generator=torch.Generator().manual_seed(1)))[
        0
    ]
    same = train_alignment(
        engine, labels, "m", "t", DASSettings(rank=4, steps=0), pool=pool, init=start
    )
    assert torch.allclose(same.rotation @ same.rotation.T, start @ start.T, atol=1e-5)
    with pytest.raises(AlignmentError, match="shape"):
        train_alignment(engine, labels, "m", "t", DASSettings(rank=4), init=start[:, :3])
