"""The token router: cue maps, cue switches, text sensitivity, persistence, trainability."""

import pytest
import torch

from fsam2lib.pruning import ScoringInputs
from fsam2lib.router import RouterConfig, TokenRouter, load_router, save_router
from fsam2lib.train.train_router import RouterSamples, recall_at, router_loss, train_router


def _inputs(cues=("visual", "text", "uncertainty"), text=True, mask=True, seed=0):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.full((2, 1, 32, 32), -8.0)
    logits[:, :, 8:16, 8:16] = 8.0
    return ScoringInputs(
        features=torch.randn(2, 16, 8, 8, generator=gen),
        frame_idx=3,
        prev_mask_logits=logits if mask else None,
        text_embedding=torch.nn.functional.normalize(torch.randn(2, 12, generator=gen), dim=-1)
        if text
        else None,
        cues=cues,
    )


def _router(seed=0):
    torch.manual_seed(seed)
    return TokenRouter(RouterConfig(feat_dim=16, text_dim=12)).eval()


def test_outputs_cover_every_token():
    out = _router()(_inputs())
    for key in ("combined", "visual", "text", "uncertainty", "object"):
        assert out[key].shape == (2, 64), key
    # the previous mask covers grid cells (2..3, 2..3); dilated by one token
    obj = out["object"][0].reshape(8, 8)
    assert obj[2, 2] > 0.99 and obj[7, 7] < 0.01


def test_switched_off_and_missing_cues_are_zero():
    router = _router()
    off = router(_inputs(cues=("visual",)))
    assert torch.count_nonzero(off["text"]) == 0 and torch.count_nonzero(off["uncertainty"]) == 0
    missing = router(_inputs(text=False, mask=False))
    assert torch.count_nonzero(missing["text"]) == 0
    assert not torch.allclose(off["combined"], router(_inputs())["combined"])


def test_text_moves_the_scores():
    router = _router()
    a = router(_inputs(seed=0))
    other = _inputs(seed=0)
    other.text_embedding = torch.nn.functional.normalize(torch.randn(2, 12), dim=-1)
    assert not torch.allclose(a["text"], router(other)["text"])


def test_save_load_round_trip(tmp_path):
    router = _router(seed=4)
    path = save_router(router, tmp_path / "r.safetensors", {"note": "test"})
    loaded = load_router(path)
    assert loaded.metadata["note"] == "test"
    inputs = _inputs()
    assert torch.equal(router(inputs)["combined"], loaded(inputs)["combined"])


def test_missing_router_file_says_how_to_train(tmp_path):
    with pytest.raises(FileNotFoundError, match="train_router"):
        load_router(tmp_path / "none.safetensors")


def test_training_learns_the_object_tokens():
    """On samples whose label is the (noisy) previous-mask region, a few steps raise recall."""
    gen = torch.Generator().manual_seed(0)
    n = 64
    prev = torch.zeros(n, 1, 32, 32, dtype=torch.bool)
    labels = torch.zeros(n, 64, dtype=torch.bool)
    for i in range(n):
        y, x = torch.randint(0, 6, (2,), generator=gen).tolist()
        prev[i, :, 4 * y : 4 * y + 8, 4 * x : 4 * x + 8] = True
        grid = torch.zeros(8, 8, dtype=torch.bool)
        grid[max(0, y - 1) : y + 3, max(0, x - 1) : x + 3] = True
        labels[i] = grid.flatten()
    samples = RouterSamples(
        torch.randn(n, 16, 8, 8, generator=gen), prev, torch.randn(n, 12), labels
    )
    before = router_loss(
        _router(), samples, ("visual", "text", "uncertainty"), torch.Generator().manual_seed(1)
    )
    router, losses = train_router(
        samples, text_dim=12, minutes=1, max_steps=150, batch_size=16, progress=False
    )
    after = router_loss(
        router, samples, ("visual", "text", "uncertainty"), torch.Generator().manual_seed(1)
    )
    assert float(after) < 0.7 * float(before)
    scores = router(ScoringInputs(samples.features, 1, (prev.float() * 2 - 1) * 8, samples.text))[
        "combined"
    ]
    assert recall_at(scores, labels, 0.3) > 0.8
