"""DAVIS J / F / J&F: hand-computed cases, protocol details, and vos-benchmark agreement."""

from __future__ import annotations

import numpy as np
import pytest

from fsam2lib.metrics import (
    DatasetScores,
    VideoScores,
    bootstrap_interval,
    boundary_map,
    boundary_radius,
    evaluate_folder,
    evaluate_video,
    f_measure,
    frame_statistics,
    jaccard,
    paired_bootstrap_interval,
    summarize,
)
from fsam2lib.videos.davis import write_masks


def square(top: int, left: int, side: int = 20, shape=(100, 100)) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[top : top + side, left : left + side] = True
    return mask


# ----------------------------------------------------------------------------- J


def test_jaccard_shifted_squares():
    # 20x20 squares shifted by 3 columns: overlap 20*17 = 340, union 2*400 - 340 = 460.
    assert jaccard(square(20, 20), square(20, 23)) == pytest.approx(340 / 460)
    # shifted by 5 rows and 5 columns: overlap 15*15 = 225, union 800 - 225 = 575.
    assert jaccard(square(20, 20), square(25, 25)) == pytest.approx(225 / 575)


def test_jaccard_empty_masks():
    empty = np.zeros((10, 10), dtype=bool)
    assert jaccard(empty, empty) == 1.0
    assert jaccard(square(2, 2, 3, (10, 10)), empty) == 0.0
    assert jaccard(empty, square(2, 2, 3, (10, 10))) == 0.0


def test_jaccard_void_pixels_excluded_from_both():
    gt, pred = square(20, 20), square(20, 23)
    void = np.zeros_like(gt)
    void[:, 40:] = True  # pred's 3 extra columns (40..42) are void: pred ∩ valid ⊂ gt
    # overlap 340, union (valid part) = gt 400 + 0 extra = 400.
    assert jaccard(gt, pred, void) == pytest.approx(340 / 400)
    # All of both masks void -> nothing to compare -> 1, as for two empty masks.
    assert jaccard(gt, pred, np.ones_like(gt)) == 1.0


def test_jaccard_rejects_label_maps_and_shape_mismatch():
    with pytest.raises(TypeError, match="boolean"):
        jaccard(np.zeros((4, 4), np.uint8), np.zeros((4, 4), bool))
    with pytest.raises(ValueError, match="shape"):
        jaccard(np.zeros((4, 4), bool), np.zeros((4, 5), bool))


# ----------------------------------------------------------------------------- F


def test_boundary_map_of_a_square_is_the_ring_half_a_pixel_up_left():
    mask = square(20, 20, side=20)  # rows/cols 20..39
    ring = np.zeros_like(mask)
    ring[19:40, 19:40] = True
    ring[20:39, 20:39] = False  # outline of the 21x21 square at rows/cols 19..39
    np.testing.assert_array_equal(boundary_map(mask), ring)
    assert boundary_map(mask).sum() == 80
    # The image border is not a boundary.
    assert not boundary_map(np.ones((6, 7), dtype=bool)).any()


def test_boundary_radius():
    assert boundary_radius((480, 854)) == 8  # 0.008 * 979.6 = 7.84 -> 8
    assert boundary_radius((100, 100)) == 2  # 0.008 * 141.4 = 1.13 -> 2
    assert boundary_radius((100, 100), bound_th=3) == 3  # >= 1: pixels
    with pytest.raises(ValueError):
        boundary_radius((100, 100), bound_th=2.5)


def test_f_measure_identical_disjoint_and_small_shift():
    a = square(20, 20)
    assert f_measure(a, a) == 1.0
    assert f_measure(a, square(60, 60)) == 0.0  # boundaries > 2 px apart everywhere
    assert f_measure(a, square(20, 22)) == 1.0  # shift 2 <= radius 2: every point matched
    assert f_measure(a, square(21, 21)) == 1.0  # diagonal shift sqrt(2) <= 2
    assert jaccard(a, square(20, 22)) < 1.0
    assert f_measure(a, square(20, 22), bound_th=1) < 1.0  # same shift, radius 1


def test_f_measure_larger_shift_by_hand():
    """Rings of 80 px (21x21 outline); a horizontal shift s = 5 with radius r = 2.

    A ring point matches if B's ring is within r. Top and bottom rows of A (x = 19..39) match
    where B's row exists nearby: x >= 19 + s - r -> 21 - s + r = 18 points each. A's left
    column is s > r away from everything of B. A's right column (x = 39, 19 interior rows)
    is 20 - s = 15 px from B's left column, so only the r rows next to each of B's horizontal
    rows match: 2r = 4 points. Recall = (2 * 18 + 4) / 80 = 0.5; precision likewise.
    """
    s, r = 5, 2
    matched = 2 * (21 - s + r) + 2 * r
    expected_recall = matched / 80
    f = f_measure(square(20, 20), square(20, 20 + s), bound_th=r)
    assert f == pytest.approx(expected_recall)  # P = R -> F = P = R
    assert f_measure(square(20, 20), square(20, 20 + s)) == f  # default radius is 2 at 100x100


def test_f_measure_empty_masks_and_void():
    empty = np.zeros((100, 100), dtype=bool)
    assert f_measure(empty, empty) == 1.0
    assert f_measure(square(20, 20), empty) == 0.0
    assert f_measure(empty, square(20, 20)) == 0.0
    gt, pred = square(20, 20), square(20, 25)
    void = np.zeros_like(gt)
    void[:, :25] = True
    void[:, 40:] = True  # only columns 25..39 remain: both masks become the same band
    assert f_measure(gt, pred) < 1.0
    assert f_measure(gt, pred, void) == 1.0


def test_boundary_and_f_agree_with_davis_code_on_random_masks():
    """vos_benchmark carries the DAVIS seg2bmap and f_measure unchanged (cv2 dilation)."""
    from scipy.ndimage import gaussian_filter
    from vos_benchmark.evaluator import Evaluator
    from vos_benchmark.utils import _seg2bmap

    rng = np.random.default_rng(0)
    for _ in range(40):
        h, w = rng.integers(6, 90, size=2)
        gt = gaussian_filter(rng.random((h, w)), rng.uniform(0.5, 3)) > 0.5
        pred = gaussian_filter(rng.random((h, w)), rng.uniform(0.5, 3)) > 0.5
        np.testing.assert_array_equal(boundary_map(gt), _seg2bmap(gt))
        reference = Evaluator()
        reference.feed_frame(pred.astype(np.uint8), gt.astype(np.uint8))
        assert f_measure(gt, pred) == pytest.approx(reference.boundary_f[1][0], abs=1e-12)
        assert jaccard(gt, pred) == pytest.approx(reference.object_iou[1][0], abs=1e-12)


# ----------------------------------------------------------------------------- statistics


def test_frame_statistics_by_hand():
    # n = 4: bin edges round(linspace(1, 4, 5)) - 1 = [0, 1, 2, 2, 3];
    # first bin v[0:2] = [1, 1], last bin v[2:4] = [0, 0] -> decay 1.
    assert frame_statistics(np.array([1.0, 1.0, 0.0, 0.0])) == (0.5, 0.5, 1.0)
    mean, recall, decay = frame_statistics(np.array([0.2, 0.6, 0.9]))
    # n = 3: linspace(1, 3, 5) = [1, 1.5, 2, 2.5, 3]; +1e-10 makes halves round up ->
    # edges [0, 1, 1, 2, 2]: first bin v[0:2] = [0.2, 0.6], last bin v[2:3] = [0.9].
    assert (mean, recall, decay) == pytest.approx((1.7 / 3, 2 / 3, 0.4 - 0.9))


def test_summarize_weights_objects_not_videos():
    one = VideoScores("a", [1], np.arange(2), J=np.array([[1.0, 1.0]]), F=np.array([[0.5, 0.5]]))
    two = VideoScores(
        "b", [1, 2], np.arange(2), J=np.array([[0.0, 0.0], [0.0, 1.0]]), F=np.zeros((2, 2))
    )
    summary = summarize([one, two])
    assert summary["J-Mean"] == pytest.approx((1.0 + 0.0 + 0.5) / 3)  # not (1 + 0.25) / 2
    assert summary["F-Mean"] == pytest.approx(0.5 / 3)
    assert summary["J&F-Mean"] == pytest.approx((1.5 / 3 + 0.5 / 3) / 2)
    assert summary["J-Recall"] == pytest.approx((1 + 0 + 0.5) / 3)
    assert summary["objects"] == 3 and summary["videos"] == 2
    scores = DatasetScores([one, two])
    assert scores.JF_mean == pytest.approx(summary["J&F-Mean"])
    assert scores.per_object()["b_2"] == (0.5, 0.0)
    assert two.J_mean == pytest.approx(0.25) and two.JF_mean == pytest.approx(0.125)


# ----------------------------------------------------------------------------- videos


def label_video(t: int = 5, shape=(40, 40)) -> np.ndarray:
    gt = np.zeros((t, *shape), dtype=np.uint8)
    for i in range(t):
        gt[i, 5:15, 5 + i : 15 + i] = 1
        gt[i, 22:32, 22:32] = 2
    return gt


def test_evaluate_video_skips_first_and_last_frames():
    gt = label_video()
    pred = gt.copy()
    pred[0] = 0  # wrong first and last frames do not count
    pred[-1] = 0
    scores = evaluate_video(gt, pred, "v")
    assert scores.object_ids == [1, 2]
    assert scores.frame_indices.tolist() == [1, 2, 3]
    assert scores.J.shape == (2, 3) and scores.JF_mean == 1.0
    pred[2][pred[2] == 2] = 0  # object 2 lost on frame 2
    scores = evaluate_video(gt, pred, "v")
    np.testing.assert_array_equal(scores.J[1], [1.0, 0.0, 1.0])
    assert scores.J_mean == pytest.approx((1.0 + 2 / 3) / 2)
    assert evaluate_video(gt, pred, skip_first_and_last=False).J.shape == (2, 5)


def test_evaluate_video_object_ids_follow_the_first_frame():
    gt = label_video()
    gt[gt == 1] = 3  # ids 2 and 3 in frame 0 -> DAVIS evaluates 1..3, id 1 never present
    pred = gt.copy()
    scores = evaluate_video(gt, pred)
    assert scores.object_ids == [1, 2, 3]
    np.testing.assert_array_equal(scores.J[0], 1.0)  # absent in both -> 1
    with pytest.raises(ValueError, match=r"labels \[4\]"):
        evaluate_video(gt, np.where(pred == 3, 4, pred).astype(np.uint8))
    with pytest.raises(ValueError, match=r"labels \[2\]"):
        evaluate_video(gt, pred, object_ids=[3])  # stray labels are never ignored
    only_3 = np.where(pred == 3, 3, 0).astype(np.uint8)
    assert evaluate_video(gt, only_3, object_ids=[3]).JF_mean == 1.0


def test_evaluate_video_void_exclusion_and_reference_mode():
    gt = label_video()
    gt[:, :, 30:] = np.where(gt[:, :, 30:] == 2, 255, gt[:, :, 30:])  # part of object 2 void
    pred = label_video()  # predicts object 2 over the void part too
    excluded = evaluate_video(gt, pred)
    assert excluded.JF_mean == 1.0
    reference = evaluate_video(gt, pred, exclude_void=False)
    as_background = evaluate_video(np.where(gt == 255, 0, gt).astype(np.uint8), pred)
    np.testing.assert_array_equal(reference.J, as_background.J)
    np.testing.assert_array_equal(reference.F, as_background.F)
    assert reference.J[1, 0] == pytest.approx(80 / 100)  # 10x10 object, 2 columns void


def test_evaluate_video_annotated_and_bad_input():
    gt, pred = label_video(t=6), label_video(t=6)
    scores = evaluate_video(gt, pred, annotated=np.array([1, 1, 0, 1, 1, 0], dtype=bool))
    assert scores.frame_indices.tolist() == [1, 3]
    with pytest.raises(ValueError, match="at least 3"):
        evaluate_video(gt[:2], pred[:2])
    with pytest.raises(TypeError, match="uint8"):
        evaluate_video(gt.astype(np.int64), pred)
    with pytest.raises(ValueError, match="differ in shape"):
        evaluate_video(gt, pred[:, :-1])
    with pytest.raises(ValueError, match="no object"):
        evaluate_video(np.zeros_like(gt), pred)


# ----------------------------------------------------------------------------- vos-benchmark


def synthetic_dataset(rng: np.random.Generator, t: int = 6, shape=(90, 160), k: int = 3):
    """Moving, overlapping ellipses and a noisy prediction (shifted, rescaled, speckled)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    gt = np.zeros((t, *shape), dtype=np.uint8)
    pred = np.zeros_like(gt)
    for obj in range(1, k + 1):
        centre = rng.uniform([15, 20], [shape[0] - 15, shape[1] - 20])
        radii, velocity = rng.uniform(5, 14, size=2), rng.uniform(-3, 3, size=2)
        for i in range(t):
            cy, cx = centre + i * velocity
            gt[i][((yy - cy) / radii[0]) ** 2 + ((xx - cx) / radii[1]) ** 2 <= 1] = obj
            dy, dx = rng.normal(0, 2, size=2)
            scale = rng.uniform(0.8, 1.2)
            blob = ((yy - cy - dy) / (scale * radii[0])) ** 2 + (
                (xx - cx - dx) / (scale * radii[1])
            ) ** 2 <= 1
            if rng.random() > 0.15:  # sometimes the prediction loses the object
                pred[i][blob & (rng.random(shape) > 0.03)] = obj
    return gt, pred


def write_pair(root, videos):
    names = [f"{i:05d}" for i in range(len(videos[0][1][0]))]
    for name, (gt, pred) in videos:
        write_masks(root / "gt", name, gt, names)
        write_masks(root / "pred", name, pred, names)
    return root / "gt", root / "pred"


def run_vos_benchmark(gt_root, pred_root):
    from vos_benchmark.benchmark import benchmark

    jf, j, f, objects = benchmark([str(gt_root)], [str(pred_root)], num_processes=1, verbose=False)
    return jf[0] / 100, j[0] / 100, f[0] / 100, objects[0]


def test_agrees_with_vos_benchmark_on_synthetic_folders(tmp_path):
    rng = np.random.default_rng(7)
    videos = []
    for v in range(3):
        gt, pred = synthetic_dataset(rng, k=2 + v)
        # matching convention: every object visible in frames 0 and 1, no void
        assert all(set(range(1, 3 + v)) <= set(np.unique(gt[i])) for i in (0, 1))
        videos.append((f"vid{v}", (gt, pred)))
    gt_root, pred_root = write_pair(tmp_path, videos)

    ours = evaluate_folder(gt_root, pred_root)
    theirs_jf, theirs_j, theirs_f, theirs_objects = run_vos_benchmark(gt_root, pred_root)

    assert [v.name for v in ours.videos] == ["vid0", "vid1", "vid2"]
    assert ours.summary()["objects"] == 2 + 3 + 4
    for video in ours.videos:
        iou, boundary = theirs_objects[video.name]
        assert sorted(iou) == video.object_ids
        for k, j, f in zip(video.object_ids, video.J_per_object, video.F_per_object, strict=True):
            assert j == pytest.approx(iou[k] / 100, abs=1e-6)
            assert f == pytest.approx(boundary[k] / 100, abs=1e-6)
    assert 0.3 < ours.JF_mean < 0.95  # a real, imperfect prediction
    assert ours.J_mean == pytest.approx(theirs_j, abs=1e-6)
    assert ours.F_mean == pytest.approx(theirs_f, abs=1e-6)
    assert ours.JF_mean == pytest.approx(theirs_jf, abs=1e-6)
    assert ours.summary()["J&F-Mean"] == pytest.approx(theirs_jf, abs=1e-6)


def test_documented_differences_from_vos_benchmark(tmp_path):
    """Late-appearing objects and void: vos-benchmark's convention, expressed with our arrays."""
    gt, pred = synthetic_dataset(np.random.default_rng(3), t=7, k=2)
    gt[1:3][gt[1:3] == 2] = 0  # object 2: in frame 0, then absent in frames 1-2
    pred[1:3][pred[1:3] == 2] = 0
    gt[4, :3, :] = 255  # a void strip in a scored frame
    gt_root, pred_root = write_pair(tmp_path, [("late", (gt, pred))])

    davis = evaluate_folder(gt_root, pred_root, exclude_void=False).videos[0]
    _, _, _, theirs = run_vos_benchmark(gt_root, pred_root)
    iou, boundary = theirs["late"]
    assert sorted(iou) == [1, 2, 255]  # void became an object
    assert iou[1] / 100 == pytest.approx(davis.J_per_object[0], abs=1e-6)
    assert boundary[1] / 100 == pytest.approx(davis.F_per_object[0], abs=1e-6)
    # object 2 is scored by vos-benchmark only from its first appearance (frame 3 = column 2)
    assert davis.frame_indices.tolist() == [1, 2, 3, 4, 5]
    np.testing.assert_array_equal(davis.J[1, :2], 1.0)  # DAVIS: absent in both -> 1
    assert iou[2] / 100 == pytest.approx(davis.J[1, 2:].mean(), abs=1e-6)
    assert boundary[2] / 100 == pytest.approx(davis.F[1, 2:].mean(), abs=1e-6)
    assert iou[2] / 100 < davis.J_per_object[1]


def test_evaluate_folder_errors(tmp_path):
    gt = label_video()
    names = [f"{i:05d}" for i in range(5)]
    write_masks(tmp_path / "gt", "v", gt, names)
    write_masks(tmp_path / "pred", "v", gt[:4], names[:4])
    with pytest.raises(FileNotFoundError, match="00004"):
        evaluate_folder(tmp_path / "gt", tmp_path / "pred")
    with pytest.raises(FileNotFoundError, match="'w'"):
        evaluate_folder(tmp_path / "gt", tmp_path / "pred", videos=["w"])
    with pytest.raises(FileNotFoundError, match="no video folders"):
        evaluate_folder(tmp_path / "pred" / "v", tmp_path / "pred")


def _video(name: str, jf_per_object: list[float]) -> VideoScores:
    values = np.array(jf_per_object)[:, None].repeat(3, axis=1)
    return VideoScores(name, list(range(1, len(values) + 1)), np.arange(3), J=values, F=values)


def test_bootstrap_interval_resamples_videos():
    same = [_video(f"v{i}", [0.6, 0.6]) for i in range(10)]
    assert bootstrap_interval(same) == pytest.approx((0.6, 0.6))
    spread = [_video(f"v{i}", [v]) for i, v in enumerate(np.linspace(0.2, 1.0, 20))]
    low, high = bootstrap_interval(spread)
    assert low < 0.6 < high and 0.1 < high - low < 0.4
    few_low, few_high = bootstrap_interval(spread[::4])  # 5 of the videos: a wider interval
    assert few_high - few_low > high - low
    # a video's objects move together: 9 failed objects in one video widen the interval more
    # than 9 failed objects in 9 videos (same global mean, 0.5)
    lumped = [_video("bad", [0.0] * 9), *[_video(f"g{i}", [1.0]) for i in range(9)]]
    split = [
        *[_video(f"b{i}", [0.0]) for i in range(9)],
        *[_video(f"g{i}", [1.0]) for i in range(9)],
    ]
    assert bootstrap_interval(lumped)[0] < bootstrap_interval(split)[0] - 0.03
    with pytest.raises(ValueError, match="level"):
        bootstrap_interval(spread, level=1.5)


def test_paired_interval_cancels_what_the_videos_share():
    """Two configs that differ by exactly 0.05 on every video, on videos of very different
    difficulty: the paired interval of the difference is that 0.05; unpaired intervals of the
    two means overlap widely."""
    base = [_video(f"v{i}", [v]) for i, v in enumerate(np.linspace(0.2, 0.9, 15))]
    worse = [_video(f"v{i}", [v - 0.05]) for i, v in enumerate(np.linspace(0.2, 0.9, 15))]
    assert paired_bootstrap_interval(base, worse) == pytest.approx((0.05, 0.05))
    (lo_a, hi_a), (lo_b, hi_b) = bootstrap_interval(base), bootstrap_interval(worse)
    assert lo_a < hi_b and lo_b < hi_a  # unpaired: the intervals overlap
    with pytest.raises(ValueError, match="same videos"):
        paired_bootstrap_interval(base, worse[::-1])
