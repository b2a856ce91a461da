"""viz (token maps, region means, figures, tables), showcase (example picking) and widgets
(explorer callbacks driven by setting ``.value``), all without a kernel or a model."""

from __future__ import annotations

import dataclasses

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from fsam2lib.predictor import TokenScores  # noqa: E402
from fsam2lib.text import vocab  # noqa: E402
from fsam2lib.videos.video import Video  # noqa: E402
from fsam2lib.videos.world import WorldConfig  # noqa: E402
from fsam2lib.workbook import showcase, viz

GRID = (4, 4)
T, H, W = 3, 32, 48  # 8x12-pixel token cells


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture
def video() -> Video:
    """Object 1 fills token (row 1, col 1) on every frame; object 2 fills token (2, 3)."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (T, H, W, 3), dtype=np.uint8)
    masks = np.zeros((T, H, W), dtype=np.uint8)
    masks[:, 8:16, 12:24] = 1
    masks[:, 16:24, 36:48] = 2
    return Video("toy", frames, masks, {1: "red circle", 2: "blue star"})


class FakePredictor:
    """token_scores of a processed object: frame 0 prompted (no memory attention), 1..T-1
    tracked; the text map peaks at token 5 = (1, 1) i.e. object 1."""

    def __init__(self, processed=range(T)):
        self.processed = set(processed)

    def token_scores(self, state, frame_idx, obj_id):
        if frame_idx not in self.processed:
            raise KeyError(frame_idx)
        text = torch.zeros(1, 16)
        text[0, 5] = 1.0
        combined = torch.arange(16, dtype=torch.float32)[None] + frame_idx
        return TokenScores(
            maps={"combined": combined, "text": text},
            kept_query_idx=torch.tensor([[5, 6]]),
            kept_memory_idx={},
            stored_memory_idx=torch.tensor([[5]]),
            memory_attention_ran=frame_idx > 0,
            grid=GRID,
            strategy="router",
            prompted=frame_idx == 0,
            description="red circle",
        )


# ----------------------------------------------------------------------------- token maps


def test_token_map_reshapes_row_major_and_rejects_wrong_size():
    m = viz.token_map(torch.arange(16.0)[None], GRID)
    assert m.shape == GRID and m[1, 2] == 6  # index y*W + x
    with pytest.raises(ValueError, match="do not fit the token grid"):
        viz.token_map(np.zeros(15), GRID)


def test_kept_map_and_range_check():
    kept = viz.kept_map(torch.tensor([[0, 5, 15]]), GRID)
    assert kept.sum() == 3 and kept[1, 1] and kept[3, 3]
    with pytest.raises(ValueError, match="out of range"):
        viz.kept_map([16], GRID)


def test_top_tokens_keeps_the_highest_with_ties_to_lower_index():
    m = np.array([[1.0, 1.0], [0.0, 2.0]])
    assert viz.top_tokens(m, 0.5).tolist() == [[True, False], [False, True]]
    assert viz.top_tokens(m, 1.0).all()
    with pytest.raises(ValueError, match="NaN"):
        viz.top_tokens(np.full((2, 2), np.nan), 0.5)


def test_upsample_paints_each_token_over_its_cell_for_non_square_frames():
    m = np.arange(16).reshape(GRID)
    big = viz.upsample(m, (H, W))
    assert big.shape == (H, W)
    assert big[0, 0] == 0 and big[8, 12] == 5 and big[31, 47] == 15 and big[7, 11] == 0


def test_cell_coverage_and_region_mean(video):
    cov = viz.cell_coverage(video.masks[0] == 1, GRID)
    assert cov[1, 1] == 1.0 and cov.sum() == 1.0
    half = np.zeros((H, W), bool)
    half[8:12, 12:24] = True  # top half of token (1, 1)
    assert viz.cell_coverage(half, GRID)[1, 1] == pytest.approx(0.5)
    m = np.zeros(GRID)
    m[1, 1], m[2, 3] = 3.0, 1.0
    assert viz.region_mean(m, video.masks[0] == 1) == 3.0
    assert viz.region_mean(m, video.masks[0] == 2) == 1.0
    with pytest.raises(ValueError, match="empty"):
        viz.region_mean(m, np.zeros((H, W), bool))


def test_collect_scores_fills_processed_frames_and_nan_elsewhere():
    scores = viz.collect_scores(FakePredictor(processed=[0, 1]), {}, 1, T)
    assert set(scores.maps) == {"combined", "text"}
    assert scores.grid == GRID and scores.description == "red circle"
    assert scores.maps["combined"][1, 0, 1] == 2.0  # token 1 + frame 1
    assert np.isnan(scores.maps["combined"][2]).all()
    assert not scores.kept[0].any()  # prompted frame: no memory attention
    assert scores.kept[1].sum() == 2 and scores.kept[1, 1, 1]
    with pytest.raises(KeyError, match="available"):
        scores.frame_map("visual", 0)


def test_collect_scores_without_any_record_says_why():
    with pytest.raises(ValueError, match="strategy other than 'none'"):
        viz.collect_scores(FakePredictor(processed=[]), {}, 1, T)


def test_collected_maps_land_on_the_pixels_of_their_token(video):
    """A score at token 11 = (row 2, col 3) must land on object 2's pixels (cell 16:24, 36:48),
    not on its transpose (row 3, col 2) nor on object 1: the chain token_scores ->
    collect_scores -> region means keeps SAM2's row-major token order."""

    class PeakAt11(FakePredictor):
        def token_scores(self, state, frame_idx, obj_id):
            record = super().token_scores(state, frame_idx, obj_id)
            text = torch.zeros(1, 16)
            text[0, 11] = 1.0
            return dataclasses.replace(record, maps={**record.maps, "text": text})

    scores = viz.collect_scores(PeakAt11(), {}, 1, T)
    assert viz.mean_over_frames(scores.maps["text"], video.masks == 2) == 1.0
    assert viz.mean_over_frames(scores.maps["text"], video.masks == 1) == 0.0
    transposed = np.zeros((T, H, W), bool)
    transposed[:, 24:32, 24:36] = True  # token (3, 2)
    assert viz.mean_over_frames(scores.maps["text"], transposed) == 0.0


# ----------------------------------------------------------------------------- drawing


def test_dim_pruned_and_label_overlay(video):
    kept = np.zeros(GRID, bool)
    kept[1, 1] = True
    out = viz.dim_pruned(video.frames[0], kept)
    assert np.array_equal(out[8:16, 12:24], video.frames[0][8:16, 12:24])
    assert (out[:8] <= video.frames[0][:8]).all() and out[:8].mean() < video.frames[0][:8].mean()
    tinted = viz.label_overlay(np.zeros((H, W, 3), np.uint8), video.masks[0])
    assert tinted[0, 0].sum() == 0 and tinted[10, 15].sum() > 0
    assert not np.array_equal(tinted[10, 15], tinted[20, 40])  # ids get different colours


def test_shared_norm_ignores_nan_and_handles_constant_maps():
    norm = viz.shared_norm([np.array([np.nan, 0.0, 1.0]), np.array([2.0])])
    assert 0.0 <= norm.vmin < norm.vmax <= 2.0
    flat = viz.shared_norm([np.ones(4)])
    assert flat.vmax > flat.vmin


def test_render_scores_panels_and_titles(video):
    scores = viz.collect_scores(FakePredictor(), {}, 1, T)
    fig = viz.render_scores(video, scores, 1, 0.25, obj_id=1)
    titles = [ax.get_title() for ax in fig.axes]
    assert "frame 1" in titles and "combined score" in titles
    assert any("4/16 tokens" in t for t in titles)
    assert "red circle" in fig._suptitle.get_text()


def test_render_scores_on_a_frame_without_scores(video):
    scores = viz.collect_scores(FakePredictor(processed=[0]), {}, 1, T)
    fig = viz.render_scores(video, scores, 2, 0.5)
    assert sum("no scores" in ax.get_title() for ax in fig.axes) == 2


def test_grid_figures_have_one_panel_per_row_and_frame(video):
    scores = viz.collect_scores(FakePredictor(), {}, 1, T)
    fig = viz.plot_score_grid(video, scores.maps, [0, 2], obj_id=1, title="t")
    images = [ax for ax in fig.axes if ax.get_images()]
    assert len(images) == 4
    fig = viz.plot_kept_tokens(video, {"router": scores.kept}, [1, 2])
    assert [ax.get_title() for ax in fig.axes] == ["frame 1: 12% kept", "frame 2: 12% kept"]
    fig = viz.plot_masks(video, {"pred": video.masks}, [0, 1, 2])
    assert len(fig.axes) == 6 and fig.axes[3].get_ylabel() == "pred"
    # the frames are drawn as they are (objects keep their colours), objects outlined
    assert np.array_equal(fig.axes[0].get_images()[0].get_array(), video.frames[0])
    (legend,) = fig.legends
    names = [t.get_text() for t in legend.get_texts()]
    assert names == [f"object {k}: {video.descriptions[k]}" for k in sorted(video.descriptions)]
    with pytest.raises(IndexError, match="outside"):
        viz.plot_masks(video, {}, [3])
    with pytest.raises(ValueError, match="maps must be"):
        viz.plot_score_grid(video, {"bad": np.zeros((2, 4, 4))}, [0])


def test_curves_bars_and_loss():
    fig = viz.plot_curves([1.0, 0.5], {"a": [0.8, 0.7]}, "keep", "J&F", reference=0.8)
    assert len(fig.axes[0].lines) == 2
    with pytest.raises(ValueError, match="points"):
        viz.plot_curves([1.0], {"a": [1, 2]}, "x", "y")
    fig = viz.plot_bars({"a": 0.5, "b": 0.25}, "J&F")
    assert len(fig.axes[0].patches) == 2
    fig = viz.plot_loss([3.0, 2.0, 1.0], window=2)
    assert len(fig.axes[0].lines) == 2


def test_running_mean():
    assert viz.running_mean([1, 3, 5, 7], 2).tolist() == [1.0, 2.0, 4.0, 6.0]
    with pytest.raises(ValueError):
        viz.running_mean([1.0], 0)


def test_markdown_table():
    table = viz.markdown_table([{"name": "router", "J&F": 0.81234}, {"name": "grid", "J&F": 0.5}])
    assert table.splitlines() == [
        "| name | J&F |",
        "|---|---|",
        "| router | 0.812 |",
        "| grid | 0.500 |",
    ]
    with pytest.raises(KeyError, match="lacks"):
        viz.markdown_table([{"a": 1}], columns=["a", "b"])


# ----------------------------------------------------------------------------- showcase


def test_find_video_with_returns_a_video_holding_both_descriptions():
    cfg = WorldConfig(height=64, width=64, num_frames=8, min_objects=2, max_objects=3)
    video, ids = showcase.find_video_with(["red circle", "blue star"], "val", cfg)
    assert set(ids) == {"red circle", "blue star"} and len(set(ids.values())) == 2
    for text, obj in ids.items():
        got = vocab.parse_description(video.descriptions[obj])
        want = vocab.parse_description(text)
        assert (got.colour, got.shape) == (want.colour, want.shape)
        assert (video.masks[0] == obj).any()


def test_find_video_with_rejects_impossible_requests():
    with pytest.raises(ValueError, match="held-out"):
        showcase.find_video_with(["red star"], "train")
    with pytest.raises(ValueError, match="unknown"):
        showcase.find_video_with(["red dog"])
    cfg = WorldConfig(height=64, width=64, num_frames=8, max_objects=1)
    with pytest.raises(ValueError, match="max_objects"):
        showcase.find_video_with(["red circle", "blue star"], "val", cfg)
    with pytest.raises(RuntimeError, match="no video"):
        showcase.find_video_with(
            ["red circle", "blue star"],
            "val",
            cfg.__class__(height=64, width=64, num_frames=8, max_objects=2),
            max_tries=1,
        )


def test_wrong_description_and_spread_frames():
    assert showcase.wrong_description("red circle") == "orange square"
    assert showcase.wrong_description("small pink cross", "colour") == "red cross"
    assert showcase.wrong_description("red circle", "shape") == "red square"
    assert showcase.spread_frames(8, 4) == [0, 2, 5, 7]
    assert showcase.spread_frames(2, 5) == [0, 1]


# ----------------------------------------------------------------------------- widgets


def test_score_explorer_rerenders_when_controls_change(video):
    from fsam2lib.workbook import widgets

    scores = viz.collect_scores(FakePredictor(), {}, 1, T)
    asked = []

    def rescore(text):
        asked.append(text)
        if text == "boom":
            raise ValueError("bad text")
        return scores

    ex = widgets.score_explorer(video, scores, obj_id=1, rescore=rescore)
    assert ex.renders == 1 and ex.figure.axes[0].get_title() == "frame 0"
    ex.controls["frame_idx"].value = 2
    assert ex.figure.axes[0].get_title() == "frame 2"
    ex.controls["keep_ratio"].value = 0.5
    assert any("8/16 tokens" in ax.get_title() for ax in ex.figure.axes)
    ex.controls["name"].value = "text"
    assert any(ax.get_title() == "text score" for ax in ex.figure.axes)
    ex.controls["text"].value = "blue star"
    ex.controls["text"].value = "red circle"  # cached: rescore not called again
    assert asked == ["blue star"] and ex.renders == 6
    ex.controls["text"].value = "boom"
    assert ex.error == "ValueError: bad text" and ex.renders == 6


def test_mask_explorer_switches_runs(video):
    from fsam2lib.workbook import widgets

    empty = np.zeros_like(video.masks)
    ex = widgets.mask_explorer(video, {"keep 1.0": video.masks, "keep 0.1": empty})
    assert ex.figure.axes[1].get_ylabel() == "keep 1.0"
    ex.controls["choice"].value = "keep 0.1"
    ex.controls["frame_idx"].value = 1
    assert ex.figure.axes[1].get_ylabel() == "keep 0.1"
    assert ex.figure.axes[0].get_title() == "frame 1" and ex.renders == 3


# ----------------------------------------------------------------------------- summaries


def test_mean_over_frames_skips_unscored_frames_and_empty_regions(video):
    maps = np.zeros((T, *GRID), np.float32)
    maps[:, 1, 1] = [1.0, 2.0, 3.0]
    maps[2] = np.nan  # frame 2 not scored
    regions = video.masks == 1
    regions[0] = False  # object hidden on frame 0
    assert viz.mean_over_frames(maps, regions) == 2.0
    with pytest.raises(ValueError, match="share T"):
        viz.mean_over_frames(maps[:2], regions)
    with pytest.raises(ValueError, match="no frame"):
        viz.mean_over_frames(maps, np.zeros_like(regions))


def test_kept_share_counts_tokens_touching_the_region(video):
    kept = np.zeros((T, *GRID), bool)
    kept[1, 1, 1] = True  # object 1's only token kept on frame 1
    kept[2, 0, 0] = True  # another token on frame 2
    assert viz.kept_share(kept, video.masks == 1) == 0.5  # frame 0 selects nothing: skipped
    with pytest.raises(ValueError, match="no frame"):
        viz.kept_share(np.zeros_like(kept), video.masks == 1)


def test_map_grid_crops_and_frame_stages():
    fig = viz.plot_map_grid(
        {"a": [np.zeros(GRID), np.ones(GRID)], "b": [np.eye(4)] * 2}, ["x", "y"]
    )
    assert len([ax for ax in fig.axes if ax.get_images()]) == 4
    with pytest.raises(ValueError, match="same"):
        viz.plot_map_grid({"a": [np.zeros(GRID)], "b": []})
    crops = [np.zeros((8, 8, 3), np.uint8)] * 3
    fig = viz.plot_crops(crops, ["a", "b", "c"], ncols=2)
    assert [ax.get_title() for ax in fig.axes if ax.get_images()] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="one title per crop"):
        viz.plot_crops(crops, ["a"])
    frames = [
        {"frame": t, "seconds": 0.3, "image_encoder": 0.1, "memory_attention": 0.2}
        for t in range(3)
    ]
    fig = viz.plot_frame_stages(frames, "t")
    assert len(fig.axes[0].patches) == 6


def test_check_real_setup_reports_what_is_missing_and_where(tmp_path, monkeypatch):
    from fsam2lib.videos import davis

    monkeypatch.setenv("FSAM2_CHECKPOINTS", str(tmp_path / "ckpt"))
    check = showcase.check_real_setup("sam2.1_hiera_t", davis_root=None)
    assert not check.ready
    assert "sam2.1_hiera_tiny.pt" in check.missing["SAM2 checkpoint (sam2.1_hiera_t)"]
    assert str(tmp_path / "ckpt") in check.missing["SAM2 checkpoint (sam2.1_hiera_t)"]
    assert "DAVIS_ROOT is not set" in check.missing["DAVIS dataset"]
    assert "MISSING" in check.report() and "skipped" in check.report()

    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "sam2.1_hiera_tiny.pt").write_bytes(b"x")
    root = tmp_path / "davis"
    frames = np.zeros((3, 16, 16, 3), np.uint8)
    masks = np.zeros((3, 16, 16), np.uint8)
    masks[:, 4:8, 4:8] = 1
    davis.write_video(root, Video("v0", frames, masks, {1: "red circle"}))
    davis.write_image_set(root, ["v0"], "val")
    check = showcase.check_real_setup("sam2.1_hiera_t", davis_root=str(root))
    assert check.ready, check.report()
    assert "1 videos" in check.found["DAVIS dataset"]
    check = showcase.check_real_setup("sam2.1_hiera_t", str(tmp_path / "nope.pt"), str(root / "x"))
    assert set(check.missing) == {"SAM2 checkpoint (sam2.1_hiera_t)", "DAVIS dataset"}
    with pytest.raises(ValueError, match="unknown SAM2 model"):
        showcase.check_real_setup("hiera_xxl")


def test_own_minus_others_compares_each_description_with_the_other_objects():
    means = {"a": {"a": 0.9, "b": 0.1, "c": 0.3}, "b": {"a": 0.5, "b": 0.2, "c": 0.1}}
    gaps = viz.own_minus_others(means)
    assert gaps["a"] == pytest.approx(0.9 - 0.2) and gaps["b"] == pytest.approx(0.2 - 0.3)
    with pytest.raises(ValueError, match="at least one other"):
        viz.own_minus_others({"a": {"a": 1.0}})


def test_find_return_finds_an_object_that_disappears_and_comes_back(video):
    with pytest.raises(RuntimeError, match="disappears and returns"):
        showcase.find_return([video])
    masks = np.repeat(video.masks[:1], 6, 0)
    masks[2:4][masks[2:4] == 2] = 0  # object 2 gone on frames 2-3
    frames = np.repeat(video.frames[:1], 6, 0)
    back = Video("back", frames, masks, video.descriptions)
    assert showcase.find_return([video, back]) == (back, 2, [2, 3], 4)
    with pytest.raises(RuntimeError):
        showcase.find_return([back], min_gap=3)
