"""The token router: cue maps, cue switches, text sensitivity, persistence, trainability."""

from dataclasses import replace

import pytest
import torch

import fsam2lib.train.train_router as train_router_module
from fsam2lib.pruning.router import RouterConfig, TokenRouter, load_router, save_router
from fsam2lib.pruning.scorers import ScoringInputs
from fsam2lib.train.train_router import (
    RouterSamples,
    recall_at,
    router_loss,
    simulate_logits,
    text_discrimination,
    train_router,
)


def _inputs(cues=("visual", "text", "mask", "uncertainty"), text=True, mask=True, seed=0):
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


def _router(seed=0, text_context=1):
    torch.manual_seed(seed)
    config = RouterConfig(feat_dim=16, text_dim=12, text_context=text_context)
    return TokenRouter(config).eval()


def test_outputs_cover_every_token():
    out = _router()(_inputs())
    for key in ("combined", "visual", "text", "mask", "uncertainty"):
        assert out[key].shape == (2, 64), key
    # the previous mask covers grid cells (2..3, 2..3); dilated by one token
    obj = out["mask"][0].reshape(8, 8)
    assert obj[2, 2] > 0.99 and obj[7, 7] < 0.01


def test_switched_off_and_missing_cues_are_zero():
    router = _router()
    off = router(_inputs(cues=("visual",)))
    for cue in ("text", "mask", "uncertainty"):
        assert torch.count_nonzero(off[cue]) == 0, cue
    missing = router(_inputs(text=False, mask=False))
    assert torch.count_nonzero(missing["text"]) == 0
    assert not torch.allclose(off["combined"], router(_inputs())["combined"])


def test_mask_and_uncertainty_switch_off_separately():
    """Each name switches off its own map only: without "uncertainty" the previous-mask prior
    stays, without "mask" the boundary map stays, and the flags tell the MLP which is which."""
    router = _router()
    full = router(_inputs())
    no_unc = router.cue_maps(_inputs(cues=("visual", "text", "mask")))
    no_mask = router.cue_maps(_inputs(cues=("visual", "text", "uncertainty")))
    assert torch.equal(no_unc["mask"], full["mask"]) and torch.count_nonzero(full["mask"]) > 0
    assert torch.count_nonzero(no_unc["uncertainty"]) == 0
    assert torch.equal(no_mask["uncertainty"], full["uncertainty"])
    assert torch.count_nonzero(no_mask["mask"]) == 0
    assert no_unc["flags"][0].tolist() == [1.0, 1.0, 0.0]
    assert no_mask["flags"][0].tolist() == [1.0, 0.0, 1.0]


def test_a_router_from_before_the_cue_split_is_refused_with_a_reason(tmp_path):
    router = _router()
    old = torch.nn.Linear(6, router.config.mlp_hidden)  # 4 maps + 2 flags, the old layout
    router.mlp[0] = old
    path = save_router(router, tmp_path / "old_router.safetensors")
    with pytest.raises(RuntimeError, match="separate cues.*retrain"):
        load_router(path)


def test_text_cue_peaks_on_the_token_the_text_matches():
    """The text cue is the cosine between each projected token and the projected text: with
    identity projections, a text equal to one token's (normalised) feature scores 1 there and
    less everywhere else, and another token's text moves the peak to that token."""
    torch.manual_seed(0)
    router = TokenRouter(RouterConfig(feat_dim=16, text_dim=16)).eval()
    with torch.no_grad():
        for layer in (router.text_proj, router.token_proj):
            layer.weight.copy_(torch.eye(16).reshape(layer.weight.shape))
            layer.bias.zero_()
    inputs = _inputs(mask=False)
    feats = router.norm(inputs.features).flatten(2)  # [B, C, HW]
    for token in (5, 42):
        inputs.text_embedding = torch.nn.functional.normalize(feats[:, :, token], dim=-1)
        text = router(inputs)["text"].detach()
        assert torch.allclose(text[:, token], torch.ones(2), atol=1e-5)
        assert (text.argmax(dim=1) == token).all()
        assert (text <= 1 + 1e-5).all() and (text >= -1 - 1e-5).all()


@pytest.mark.parametrize("text_context, text_gate", [(1, "always"), (3, "always"), (3, "lost")])
def test_save_load_round_trip(tmp_path, text_context, text_gate):
    torch.manual_seed(4)
    router = TokenRouter(RouterConfig(16, 12, text_context=text_context, text_gate=text_gate))
    path = save_router(router.eval(), tmp_path / "r.safetensors", {"note": "test"})
    loaded = load_router(path)
    assert loaded.metadata["note"] == "test"
    assert (loaded.config.text_context, loaded.config.text_gate) == (text_context, text_gate)
    inputs = _inputs()
    assert torch.equal(router(inputs)["combined"], loaded(inputs)["combined"])


def test_lost_text_gate_reads_text_only_where_the_previous_mask_shows_no_object():
    """Under ``text_gate="lost"`` the MLP reads the text cue on frames whose previous mask is
    empty, or when the mask cue is off; the raw text cue is reported either way."""
    torch.manual_seed(0)
    router = TokenRouter(RouterConfig(16, 12, text_gate="lost")).eval()
    shown = _inputs()  # the previous mask shows an object
    empty = _inputs()
    empty.prev_mask_logits = torch.full_like(shown.prev_mask_logits, -8.0)
    assert router.cue_maps(shown)["text_used"].tolist() == [False, False]
    assert router.cue_maps(empty)["text_used"].tolist() == [True, True]
    no_mask_cue = _inputs(cues=("visual", "text", "uncertainty"))
    assert router.cue_maps(no_mask_cue)["text_used"] is True  # one answer for every sample
    with torch.no_grad():
        out = router(shown)
        blind = router(_inputs(cues=("visual", "mask", "uncertainty")))
    assert out["text"].abs().sum() > 0  # the raw cue, for heatmaps
    assert torch.equal(out["combined"], blind["combined"])  # but not combined
    with pytest.raises(ValueError, match="text_gate"):
        RouterConfig(16, 12, text_gate="sometimes")


def test_text_weight_ranks_by_standardised_score_plus_weighted_text_and_spares_no_text():
    plain = _router()
    weighted = _router()
    weighted.config = replace(plain.config, text_weight=2.0)
    base, out = plain(_inputs()), weighted(_inputs())
    assert torch.equal(base["text"], out["text"])

    def z(x):
        x = x - x.mean(dim=1, keepdim=True)
        return x / x.std(dim=1, keepdim=True)

    expected = z(base["combined"]) + 2.0 * z(base["text"])
    assert torch.equal(out["combined"].argsort(dim=1), expected.argsort(dim=1))
    assert torch.allclose(z(out["combined"]), z(expected), atol=1e-5)
    # without the description (removed, or absent) nothing is added
    for inputs in (_inputs(cues=("visual", "mask", "uncertainty")), _inputs(text=False)):
        assert torch.equal(weighted(inputs)["combined"], plain(inputs)["combined"])


def test_text_weight_survives_a_save_and_must_be_finite_and_not_negative(tmp_path):
    router = TokenRouter(RouterConfig(16, 12, text_weight=0.5, text_weight_fade=(0.1, 0.3)))
    loaded = load_router(save_router(router.eval(), tmp_path / "r.safetensors")).config
    assert (loaded.text_weight, loaded.text_weight_fade) == (0.5, (0.1, 0.3))
    for bad in (-1.0, float("nan"), float("inf"), "1", True):
        with pytest.raises(ValueError, match="text_weight"):
            RouterConfig(16, 12, text_weight=bad)
    for bad in ((0.3, 0.1), (0.1, 0.1), (0.0, 0.3), (0.1, 1.5), (0.1,), (0.1, True), "0.1,0.3"):
        with pytest.raises(ValueError, match="text_weight_fade"):
            RouterConfig(16, 12, text_weight=0.5, text_weight_fade=bad)


def test_a_faded_text_weight_is_full_at_tight_budgets_and_gone_at_loose_ones():
    """With ``text_weight_fade=(0.1, 0.3)`` the router scores as the plain router at keep
    0.3 and above, as the fully weighted one at keep 0.1 and below, and in between with
    the weight scaled linearly; without a known budget the weight is in full."""
    plain = _router()
    full = _router()
    full.config = replace(plain.config, text_weight=2.0)
    faded = _router()
    faded.config = replace(full.config, text_weight_fade=(0.1, 0.3))
    half = _router()
    half.config = replace(plain.config, text_weight=1.0)

    def combined(router, keep):
        return router(replace(_inputs(), keep_ratio=keep))["combined"]

    for keep in (0.3, 0.5, 1.0):
        assert torch.equal(combined(faded, keep), combined(plain, keep))
    for keep in (0.05, 0.1, None):
        assert torch.equal(combined(faded, keep), combined(full, keep))
    assert torch.allclose(combined(faded, 0.2), combined(half, 0.2))
    assert not torch.allclose(combined(faded, 0.2), combined(plain, 0.2))
    assert faded.weight_at(0.15) == pytest.approx(1.5)


def test_text_context_widens_what_the_text_cue_sees():
    feats = torch.randn(1, 16, 8, 8)
    bumped = feats.clone()
    bumped[:, :, 0, 0] += 5.0  # one token changes
    for context, changed in ((1, 1), (3, 4)):  # corner token: itself, or its 2x2 neighbourhood
        proj = _router(text_context=context).token_proj
        with torch.no_grad():
            diff = (proj(feats) - proj(bumped)).abs().amax(dim=1) > 1e-6
        assert diff.sum().item() == changed


def _detail_inputs(detail_dim=4, seed=0):
    inputs = _inputs(seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)
    inputs.detail = torch.randn(2, detail_dim, 16, 16, generator=gen)  # stride 8: twice the grid
    return inputs


def test_a_detail_router_reads_the_stride8_map_under_its_own_token():
    """With ``detail_dim`` the text cue projects each token together with its 2x2 block of
    stride-8 cells: a change in one cell changes what is projected at its own token most
    (elsewhere only slightly, through the map's normalisation), and the cue with it."""
    torch.manual_seed(0)
    router = TokenRouter(RouterConfig(16, 12, text_context=1, detail_dim=4)).eval()
    inputs = _detail_inputs()
    bumped = _detail_inputs()
    bumped.detail[:, :, 5, 3] += 5.0  # the cell under token (row 2, column 1)
    with torch.no_grad():
        feats = router.norm(inputs.features)
        stacked = router._text_tokens(feats, inputs)
        changed = (stacked - router._text_tokens(feats, bumped)).abs().amax(dim=1).flatten(1)
        cue_moved = (router(inputs)["text"] - router(bumped)["text"]).abs()
    assert stacked.shape == (2, 16 + 4 * 4, 8, 8)
    assert changed.argmax(dim=1).tolist() == [2 * 8 + 1] * 2
    assert (changed[:, 2 * 8 + 1] > 10 * changed.median(dim=1).values).all()
    assert (cue_moved[:, 2 * 8 + 1] > 0).all()


def test_a_detail_router_says_what_is_missing_or_mismatched(tmp_path):
    torch.manual_seed(0)
    router = TokenRouter(RouterConfig(16, 12, detail_dim=4)).eval()
    with pytest.raises(ValueError, match="stride-8 feature map"):
        router(_inputs())
    wrong = _detail_inputs()
    wrong.detail = wrong.detail[:, :, :8, :8]  # the stride-16 grid, not twice it
    with pytest.raises(ValueError, match="does not match the router"):
        router(wrong)
    with pytest.raises(ValueError, match="detail_dim"):
        RouterConfig(16, 12, detail_dim=-1)
    loaded = load_router(save_router(router, tmp_path / "detail.safetensors"))
    assert loaded.config.detail_dim == 4
    inputs = _detail_inputs()
    assert torch.equal(router(inputs)["combined"], loaded(inputs)["combined"])


def test_detail_tells_apart_objects_whose_tokens_agree():
    """Two objects with the same stride-16 tokens (same colour, say) that differ only in how
    their stride-8 cells are laid out (their outline): a text cue on the tokens cannot tell
    which is described; one that also reads the stride-8 map can (measured: 0.625, chance
    on 48 samples, against 1.0)."""
    samples = _two_object_samples()
    gen = torch.Generator().manual_seed(1)
    shared = torch.randn(16, generator=gen) * 3
    patterns = torch.randn(2, 4, 2, 2, generator=gen) * 3  # per object: 4 channels, 2x2 cells
    detail = torch.randn(len(samples), 4, 16, 16, generator=gen) * 0.5
    own, other = (m.reshape(-1, 8, 8) for m in (samples.labels, samples.others))
    features = torch.randn(len(samples), 16, 8, 8, generator=gen) * 0.5
    for i in range(len(samples)):
        described = i % 2  # _two_object_samples alternates the described text
        core = (-torch.nn.functional.max_pool2d(-own[i][None, None].float(), 3, 1, 1))[0, 0] > 0
        for k, where in ((described, core), (1 - described, other[i])):
            for y, x in where.nonzero().tolist():
                features[i, :, y, x] += shared
                detail[i, :, 2 * y : 2 * y + 2, 2 * x : 2 * x + 2] += patterns[k]
    plain = RouterSamples(
        features, samples.prev_masks, samples.text, samples.labels, samples.others
    )
    shares = {}
    for name, rows in (("plain", plain), ("detail", replace(plain, detail=detail))):
        router = _train_briefly(rows)
        assert router.config.detail_dim == (0 if rows.detail is None else 4)
        shares[name] = text_discrimination(router, rows)
    assert shares["plain"] < 0.75 and shares["detail"] > 0.9, shares


@pytest.mark.parametrize("kernel", [0, 2])
def test_text_context_must_be_a_positive_odd_kernel(kernel):
    with pytest.raises(ValueError, match="text_context"):
        _router(text_context=kernel)


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
        torch.randn(n, 16, 8, 8, generator=gen),
        prev,
        torch.randn(n, 12),
        labels,
        torch.zeros_like(labels),
    )
    with torch.no_grad():
        before = router_loss(
            _router(),
            samples,
            ("visual", "text", "mask", "uncertainty"),
            torch.Generator().manual_seed(1),
        )
    router, losses = train_router(
        samples, text_dim=12, minutes=1, max_steps=150, batch_size=16, progress=False
    )
    with torch.no_grad():
        after = router_loss(
            router,
            samples,
            ("visual", "text", "mask", "uncertainty"),
            torch.Generator().manual_seed(1),
        )
    assert after.item() < 0.7 * before.item()
    scores = router(ScoringInputs(samples.features, 1, (prev.float() * 2 - 1) * 8, samples.text))[
        "combined"
    ]
    assert recall_at(scores, labels, 0.3) > 0.8


def _train_briefly(samples, **kwargs):
    """200 steps on the test's own samples; text context 1, as their signatures are per token."""
    router, _ = train_router(
        samples,
        text_dim=12,
        minutes=1,
        max_steps=200,
        batch_size=16,
        progress=False,
        text_context=1,
        **kwargs,
    )
    return router


def _two_object_samples(n=48, seed=0):
    """Two objects per frame and a text for each. Their features share a strong "object"
    component and differ only by a weak signature, so lighting up both objects is an easy
    way to score well on the text loss unless the other object counts as a hard negative."""
    gen = torch.Generator().manual_seed(seed)
    objectness = torch.randn(16, generator=gen) * 3
    signature = objectness + torch.randn(2, 16, generator=gen) * 0.5
    texts = torch.randn(2, 12, generator=gen)
    feats = torch.randn(n, 16, 8, 8, generator=gen) * 0.5
    own = torch.zeros(n, 8, 8, dtype=torch.bool)
    other = torch.zeros(n, 8, 8, dtype=torch.bool)
    for i in range(n):
        spots = torch.randperm(4, generator=gen)[:2].tolist()  # two of four 3x3 quadrant cells
        cells = [(1 + 4 * (s // 2), 1 + 4 * (s % 2)) for s in spots]
        for k, (y, x) in enumerate(cells):
            feats[i, :, y : y + 2, x : x + 2] += signature[k, :, None, None]
        (ya, xa), (yb, xb) = cells if i % 2 == 0 else cells[::-1]
        own[i, ya : ya + 2, xa : xa + 2] = True
        other[i, yb : yb + 2, xb : xb + 2] = True
    labels = torch.nn.functional.max_pool2d(own[:, None].float(), 3, 1, 1).flatten(1) > 0
    text = torch.stack([texts[i % 2] for i in range(n)])
    prev = torch.zeros(n, 1, 32, 32, dtype=torch.bool)
    return RouterSamples(feats, prev, text, labels, other.flatten(1) & ~labels)


def test_a_misleading_previous_mask_points_at_the_other_object_or_far_away():
    samples = _two_object_samples(n=8)
    own = samples.labels.reshape(-1, 1, 8, 8).float()
    prev = torch.nn.functional.interpolate(own, size=(32, 32), mode="nearest") > 0
    others = samples.others.reshape(-1, 8, 8)
    up = torch.nn.functional.interpolate(others[:, None].float(), size=(32, 32)) > 0

    def mean_on(logits, where):
        return float(logits[where].mean())

    honest = simulate_logits(prev, torch.Generator().manual_seed(0), others, misleading=0.0)
    misled = simulate_logits(prev, torch.Generator().manual_seed(0), others, misleading=1.0)
    assert mean_on(honest, prev) > mean_on(honest, up) + 4
    assert mean_on(misled, up) > mean_on(misled, prev) + 4
    alone = simulate_logits(
        prev, torch.Generator().manual_seed(0), torch.zeros_like(others), misleading=1.0
    )
    assert mean_on(alone, prev) < 0 and (alone > 0).sum() > 0.5 * prev.sum()


class _CueRouter(torch.nn.Module):
    def __init__(self, cue):
        super().__init__()
        self.cue = cue

    def forward(self, inputs):
        return {"text": self.cue.float()}


def test_text_discrimination_compares_own_and_other_objects():
    samples = _two_object_samples()
    core = samples.labels.reshape(-1, 8, 8)
    core = (-torch.nn.functional.max_pool2d(-core[:, None].float(), 3, 1, 1)).flatten(1) > 0
    assert text_discrimination(_CueRouter(core), samples) == 1.0
    assert text_discrimination(_CueRouter(samples.others), samples) == 0.0
    no_others = RouterSamples(
        *[getattr(samples, f) for f in ("features", "prev_masks", "text")],
        samples.labels,
        torch.zeros_like(samples.others),
    )
    with pytest.raises(ValueError, match="another object"):
        text_discrimination(_CueRouter(core), no_others)


@pytest.mark.parametrize("hard_negatives", [0.0, 1.0])
def test_hard_negatives_make_the_text_cue_follow_the_description(hard_negatives):
    """Without hard negatives the text cue lights up the wrong object (measured: 0.0 of the
    samples right); with them each text is brighter on its own object (0.92)."""
    samples = _two_object_samples()
    router = _train_briefly(samples, hard_negative_weight=hard_negatives)
    share = text_discrimination(router, samples)
    assert share > 0.8 if hard_negatives else share < 0.5


def test_router_trains_on_a_davis_folder_with_a_feature_cache(tmp_path):
    """The real-data path: a DAVIS-layout folder (one video without texts: the CLIP describes
    it), any SAM2 by name, encoder tokens cached on the first run and read on the second."""
    import json

    from fsam2lib.videos.davis import DESCRIPTIONS_FILE
    from fsam2lib.videos.make_dataset import main as make_dataset

    root = tmp_path / "davis"
    for split, count in (("train", 2), ("val", 1)):
        args = ["--out", str(root), "--split", split, "--num-videos", str(count), "--frames", "8"]
        assert make_dataset([*args, "--height", "64", "--width", "96", "--no-progress"]) == 0
    texts = json.loads((root / DESCRIPTIONS_FILE).read_text())
    texts.pop("train_0001")  # no texts for this video: described automatically
    (root / DESCRIPTIONS_FILE).write_text(json.dumps(texts))
    videos = train_router_module.davis_videos(
        root, "train", train_router_module.load_clip("micro"), frames=5
    )
    assert [v.num_frames for v in videos] == [5, 5]
    assert set(videos[1].descriptions) == set(videos[1].object_ids)
    cache, out = tmp_path / "cache", tmp_path / "router.safetensors"
    argv = ["--dataset", str(root), "--frames", "5", "--cache", str(cache), "--out", str(out)]
    argv += ["--steps", "5", "--minutes", "1", "--threads", "1", "--no-progress"]
    train_router_module.main(argv)
    cached = sorted(p.name for p in cache.rglob("*.pt"))
    assert cached == ["train_0000_5f.pt", "train_0001_5f.pt", "val_0000_5f.pt"]
    stamps = {p: p.stat().st_mtime_ns for p in cache.rglob("*.pt")}
    first = load_router(out).state_dict()
    train_router_module.main(argv)  # the second run reads the cache, writes nothing new
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*.pt")} == stamps
    router = load_router(out)
    # a cold cache trains on the same (float16) tokens as a warm one: the same router
    assert all(torch.equal(first[k], v) for k, v in router.state_dict().items())
    assert router.metadata["dataset"] == str(root) and router.config.detail_dim == 0
    train_router_module.main([*argv, "--text-detail"])  # adds the stride-8 maps, keeps the rest
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    added = sorted(p.name for p in cache.rglob("*.pt") if p not in stamps)
    assert added == [
        "train_0000_5f_stride8.pt",
        "train_0001_5f_stride8.pt",
        "val_0000_5f_stride8.pt",
    ]
    assert load_router(out).config.detail_dim == 16  # the micro SAM2's stride-8 channels


def test_router_training_refuses_evaluation_worlds_and_bad_settings(capsys):
    """held_out and hard stay unseen by training (--world lists training worlds, each once);
    --misleading is a share, --mask-shift a number of tokens >= 0, --text-gate one of the
    router's gates."""
    with pytest.raises(ValueError, match="router training world"):
        train_router_module.synthetic_videos("train", 1, 256, world="held_out")
    for flag, value, message in (
        ("--misleading", "1.5", "share"),
        ("--mask-shift", "-1", "mask-shift"),
        ("--text-gate", "sometimes", "text-gate"),
        ("--world", "classic,hard", "training worlds"),
        ("--world", "broad,broad", "training worlds"),
    ):
        with pytest.raises(SystemExit):
            train_router_module.main([flag, value, "--steps", "1"])
        assert message in capsys.readouterr().err


def test_a_mix_of_worlds_splits_the_videos_evenly_in_the_order_listed():
    videos = train_router_module.mixed_synthetic_videos(
        "train", 5, 64, num_frames=8, seed=0, worlds=["classic", "broad"]
    )
    names = [v.name for v in videos]
    assert len(names) == 5 and len(set(names)) == 5
    assert [n.startswith("broad") for n in names] == [False, False, False, True, True]
