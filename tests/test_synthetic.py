"""Tests of the synthetic video world and its DAVIS-layout CLI."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from matplotlib.colors import rgb_to_hsv
from matplotlib.path import Path as PolygonPath

from fsam2lib.text.vocab import COLOURS, HELD_OUT_COMBOS, parse_description
from fsam2lib.videos import backgrounds, davis, paint
from fsam2lib.videos import crops as object_crops
from fsam2lib.videos import world as synthetic
from fsam2lib.videos.make_dataset import main as make_dataset_main
from fsam2lib.videos.world import WorldConfig, make_video, sample_scene, video_seed

SMALL = WorldConfig(height=96, width=128, num_frames=8)
SHORT = WorldConfig(num_frames=8)


def _scenes(split: str, count: int, config: WorldConfig = SHORT):
    return [sample_scene(video_seed(split, i), config, split) for i in range(count)]


# ----------------------------------------------------------------------------- determinism


def test_same_seed_same_video_and_different_seeds_differ():
    a, b = make_video(11, SMALL, "val"), make_video(11, SMALL, "val")
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.masks, b.masks)
    assert a.descriptions == b.descriptions
    c = make_video(12, SMALL, "val")
    assert not np.array_equal(a.frames, c.frames)


def test_video_seeds_are_deterministic_and_disjoint_across_splits():
    seeds = {s: [video_seed(s, i) for i in range(500)] for s in ("train", "val", "test")}
    assert seeds["val"] == [video_seed("val", i) for i in range(500)]
    assert len(set().union(*map(set, seeds.values()))) == 1500
    assert video_seed("val", 3, base_seed=1) != video_seed("val", 3, base_seed=0)


def test_make_split_names_and_seeds():
    videos = list(synthetic.make_split("test", 3, SMALL, base_seed=5))
    assert [v.name for v in videos] == ["test_0000", "test_0001", "test_0002"]
    again = make_video(video_seed("test", 2, 5), SMALL, "test")
    np.testing.assert_array_equal(videos[2].masks, again.masks)


# ----------------------------------------------------------------------------- content


def test_masks_agree_with_descriptions():
    for i in range(12):
        video = make_video(video_seed("val", i), SHORT, "val")
        assert video.frames.dtype == np.uint8 and video.masks.dtype == np.uint8
        assert video.frames.shape == (8, 256, 256, 3)
        described = set(video.descriptions)
        assert described == set(range(1, len(described) + 1))
        assert set(np.unique(video.masks[0]).tolist()) - {0} == described  # all visible at t=0
        assert set(np.unique(video.masks).tolist()) - {0} <= described
        texts = list(video.descriptions.values())
        assert len(set(texts)) == len(texts)
        for text in texts:
            parse_description(text)


def test_held_out_combos_never_in_train_and_common_in_val_and_test():
    for scene in _scenes("train", 200):
        for obj in scene.objects:  # distractors included: train never shows a held-out pair
            assert (obj.colour, obj.shape) not in HELD_OUT_COMBOS, scene.seed
    for split in ("val", "test"):
        targets = [o for s in _scenes(split, 100) for o in s.targets]
        share = np.mean([(o.colour, o.shape) in HELD_OUT_COMBOS for o in targets])
        assert 0.2 < share < 0.5, (split, share)


def test_distractors_share_exactly_one_attribute_with_a_target():
    found = 0
    for scene in _scenes("train", 60):
        combos = {(t.colour, t.shape) for t in scene.targets}
        for obj in scene.objects:
            if obj.is_target:
                continue
            found += 1
            assert (obj.colour, obj.shape) not in combos
            assert any(obj.colour == c or obj.shape == s for c, s in combos)
    assert found > 20


def test_size_words_only_for_same_colour_and_shape_with_clearly_different_sizes():
    config = WorldConfig(num_frames=8, min_objects=2, max_objects=3, size_pair_prob=0.5)
    pairs = 0
    for scene in _scenes("train", 60, config):
        by_combo = Counter((t.colour, t.shape) for t in scene.targets)
        for t in scene.targets:
            assert (t.size_word is not None) == (by_combo[(t.colour, t.shape)] == 2)
        sized = {t.size_word: t for t in scene.targets if t.size_word}
        if sized:
            pairs += 1
            assert np.all(sized["large"].radii > 1.8 * sized["small"].radii)
    assert 10 < pairs < 50


def test_object_colours_have_their_words_hue():
    config = WorldConfig(num_frames=8, background="plain", occlusion=False, max_objects=4)
    for i in range(10):
        scene = sample_scene(video_seed("val", i), config, "val")
        video = synthetic.render_scene(scene)
        for obj_id, text in video.descriptions.items():
            pixels = video.frames[0][video.masks[0] == obj_id]
            hsv = rgb_to_hsv(pixels / 255.0)
            assert np.all(hsv[:, 1:] > 0.58)  # saturation and value >= 0.6 (uint8 rounding)
            hue = np.median(hsv[:, 0]) * 360
            target = COLOURS[parse_description(text).colour]
            assert abs((hue - target + 180) % 360 - 180) <= paint.HUE_JITTER + 3, text


def test_occlusion_happens_and_masks_are_visible_pixels():
    occluded = 0
    config = WorldConfig(num_frames=16)
    for i in range(12):
        scene = sample_scene(video_seed("val", i), config, "val")
        video, vis = synthetic.render_scene(scene), synthetic.target_visibility(scene)
        areas = np.stack(
            [(video.masks == k).sum(axis=(1, 2)) for k in sorted(video.descriptions)], 1
        )
        np.testing.assert_array_equal(vis.visible, areas)
        assert np.all(vis.visible <= vis.in_frame)
        occluded += bool(np.any((vis.in_frame > 0) & (vis.visible < 0.5 * vis.in_frame)))
    assert occluded >= 2


def test_objects_leave_the_frame_only_when_allowed():
    left = 0
    for scene in _scenes("val", 12):
        vis = synthetic.target_visibility(scene)
        left += bool(np.any(vis.in_frame == 0))
    assert left >= 2
    stay = WorldConfig(num_frames=8, enter_leave=False, max_speed=0.1)
    for scene in _scenes("val", 12, stay):
        size = np.array([stay.width, stay.height])
        for obj in scene.objects:
            bound = obj.radii * paint.BOUND[obj.shape]
            assert np.all(obj.centers >= bound[:, None] - 1e-6)
            assert np.all(obj.centers <= size - bound[:, None] + 1e-6)


def test_camera_pan_moves_background_with_the_world():
    config = WorldConfig(num_frames=8, max_distractors=0, background="procedural", max_pan=0.3)
    scene = next(s for s in _scenes("train", 20, config) if np.abs(s.camera).sum() > 0)
    video = synthetic.render_scene(scene)
    (dx, dy), h, w = scene.camera[-1] - scene.camera[0], config.height, config.width
    assert (dx, dy) != (0, 0)
    # background pixel (x, y) of frame 0 shows up at (x - dx, y - dy) in the last frame
    ys, xs = np.mgrid[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)]
    first, last = video.frames[0][ys, xs], video.frames[-1][ys - dy, xs - dx]
    free = (video.masks[0][ys, xs] == 0) & (video.masks[-1][ys - dy, xs - dx] == 0)
    assert free.mean() > 0.5
    np.testing.assert_array_equal(first[free], last[free])


def test_davis_size_works_and_looks_like_a_scaled_small_video():
    big = WorldConfig(height=480, width=854, num_frames=8)
    video = make_video(video_seed("val", 1), big, "val")
    assert video.frames.shape == (8, 480, 854, 3) and video.masks.shape == (8, 480, 854)
    assert set(np.unique(video.masks[0]).tolist()) - {0} == set(video.descriptions)
    radii = [o.radii[0] / c.unit for c in (big, SHORT) for o in sample_scene(3, c).objects]
    assert min(radii) >= synthetic.SMALL_RADIUS_RANGE[0] * 0.5
    assert max(radii) <= synthetic.LARGE_RADIUS_RANGE[1]


def test_photo_sources_exist_and_load():
    for name in backgrounds.PHOTO_SOURCES:
        image = np.asarray(backgrounds.photo_image(name))
        assert image.ndim == 3 and image.shape[2] == 3 and min(image.shape[:2]) >= 128, name
        assert image.std() > 10, name


@pytest.mark.parametrize("shape", ["square", "triangle", "star", "hexagon", "cross", "circle"])
def test_shape_rasteriser_matches_the_polygon(shape):
    r, theta = 40.0, 0.3
    grid = np.arange(-70, 70, dtype=np.float32) + 0.5
    inside = paint.inside_shape(shape, grid[None, :], grid[:, None], r, theta)
    if shape == "circle":
        angles = np.linspace(0, 2 * np.pi, 400, endpoint=False)
        radius = np.full_like(angles, r)
    elif shape == "star":
        angles = theta - np.pi / 2 + np.arange(10) * np.pi / 5
        outer = paint.STAR_OUTER_RADIUS * r
        inner = outer * np.cos(2 * np.pi / 5) / np.cos(np.pi / 5)
        radius = np.where(np.arange(10) % 2 == 0, outer, inner)
    elif shape == "cross":
        a, b = paint.CROSS_ARM * r, paint.CROSS_HALF_WIDTH * r
        local = np.array(
            [(a, b), (b, b), (b, a), (-b, a), (-b, b), (-a, b)]
            + [(-a, -b), (-b, -b), (-b, -a), (b, -a), (b, -b), (a, -b)]
        )
        angles = np.arctan2(local[:, 1], local[:, 0]) + theta
        radius = np.hypot(local[:, 0], local[:, 1])
    else:
        sides = {"square": 4, "triangle": 3, "hexagon": 6}[shape]
        start = {"square": np.pi / 4, "triangle": -np.pi / 2, "hexagon": np.pi / 6}[shape]
        angles = theta + start + np.arange(sides) * 2 * np.pi / sides
        radius = np.full(sides, paint.BOUND[shape] * r)
    polygon = PolygonPath(np.stack([radius * np.cos(angles), radius * np.sin(angles)], 1))
    xs, ys = np.meshgrid(grid, grid)
    reference = polygon.contains_points(np.stack([xs.ravel(), ys.ravel()], 1)).reshape(xs.shape)
    iou = (inside & reference).sum() / (inside | reference).sum()
    assert iou > 0.97, (shape, iou)


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_frames": 7},
        {"num_frames": 61},
        {"height": 32},
        {"width": 5000},
        {"background": "stripes"},
        {"min_objects": 3, "max_objects": 2},
        {"max_objects": 7},
        {"max_distractors": -1},
        {"camera_pan": 1},
        {"max_speed": 0.0},
        {"leave_prob": 1.5},
        {"height": 256.0},
    ],
)
def test_bad_config_raises(kwargs):
    with pytest.raises(ValueError, match="WorldConfig"):
        WorldConfig(**kwargs)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="split"):
        make_video(0, SMALL, "dev")
    with pytest.raises(ValueError, match="seed"):
        make_video(-1, SMALL)
    with pytest.raises(ValueError, match="index"):
        video_seed("val", -2)
    with pytest.raises(ValueError, match="num_videos"):
        list(synthetic.make_split("val", -1))
    with pytest.raises(ValueError, match="config"):
        sample_scene(0, {"height": 256})


# ----------------------------------------------------------------------------- crops


def test_crop_object_shapes_and_content():
    frame = np.zeros((50, 80, 3), dtype=np.uint8)
    frame[10:20, 60:80] = (255, 0, 0)
    mask = np.zeros((50, 80), dtype=bool)
    mask[10:20, 60:80] = True  # touches the right edge: the square leaves the frame
    crop = object_crops.crop_object(frame, mask, pad=0.15, size=32)
    assert crop.shape == (32, 32, 3) and crop.dtype == np.uint8
    np.testing.assert_array_equal(crop[16, 16], (255, 0, 0))
    assert crop[1, 16].sum() == 0  # padding above the object shows the frame
    with pytest.raises(ValueError, match="empty"):
        object_crops.crop_object(frame, np.zeros((50, 80)))
    with pytest.raises(ValueError, match="does not match"):
        object_crops.crop_object(frame, mask[:10])


def test_make_object_crops():
    crops, texts = object_crops.make_object_crops("val", 150, seed=3, size=48)
    assert crops.shape == (150, 48, 48, 3) and crops.dtype == np.uint8
    assert len(texts) == 150
    parsed = [parse_description(t) for t in texts]
    assert any((p.colour, p.shape) in HELD_OUT_COMBOS for p in parsed)
    assert 0.05 < np.mean([p.size is not None for p in parsed]) < 0.4
    again, same_texts = object_crops.make_object_crops("val", 150, seed=3, size=48)
    np.testing.assert_array_equal(crops, again)
    assert texts == same_texts
    _, train_texts = object_crops.make_object_crops("train", 200, seed=3)
    for text in train_texts:
        p = parse_description(text)
        assert (p.colour, p.shape) not in HELD_OUT_COMBOS
    with pytest.raises(ValueError, match="size"):
        object_crops.make_object_crops("val", 2, size=8)


# ----------------------------------------------------------------------------- CLI


def test_cli_writes_a_davis_dataset(tmp_path, capsys):
    args = ["--out", str(tmp_path), "--split", "val", "--num-videos", "2", "--height", "96"]
    args += ["--width", "128", "--frames", "8", "--seed", "4", "--frame-format", "png"]
    assert make_dataset_main([*args, "--no-progress"]) == 0
    assert str(tmp_path) in capsys.readouterr().out
    assert davis.list_videos(tmp_path, "val") == ["val_0000", "val_0001"]
    stored = davis.read_video(tmp_path, "val_0001")
    expected = make_video(video_seed("val", 1, 4), SMALL, "val", "val_0001")
    np.testing.assert_array_equal(stored.masks, expected.masks)
    np.testing.assert_array_equal(stored.frames, expected.frames)
    assert stored.descriptions == expected.descriptions
    texts = json.loads((tmp_path / "descriptions.json").read_text())
    assert set(texts) == {"val_0000", "val_0001"}


@pytest.mark.parametrize(
    "bad", [["--frames", "5"], ["--num-videos", "0"], ["--max-objects", "9"], ["--split", "dev"]]
)
def test_cli_rejects_bad_arguments(tmp_path, bad):
    with pytest.raises(SystemExit) as error:
        make_dataset_main(["--out", str(tmp_path), "--no-progress", *bad])
    assert error.value.code == 2


def test_make_dataset_writes_a_world_family(tmp_path):
    args = ["--out", str(tmp_path), "--world", "hard", "--num-videos", "2", "--frames", "8"]
    assert make_dataset_main([*args, "--height", "64", "--no-progress"]) == 0
    names = davis.list_videos(tmp_path, "val")
    assert names == ["hard_val_0000", "hard_val_0001"]
    video = davis.read_video(tmp_path, names[1])
    assert video.num_frames == 8 and video.frames.shape[1] == 64
    assert set(video.descriptions) == set(davis.read_descriptions(tmp_path)[names[1]])
