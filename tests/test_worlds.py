"""The broader synthetic worlds: families, camera and sensor effects, motion models, photo
sets, look-alikes passing close, and the first world left exactly as it was."""

import dataclasses

import numpy as np
import pytest

from fsam2lib.videos import backgrounds, effects, worlds
from fsam2lib.videos.paint import BOUND
from fsam2lib.videos.world import MOTIONS, WorldConfig, make_video, sample_scene

SMALL = WorldConfig(height=96, width=160, num_frames=12)


def test_photo_sets_are_disjoint_and_load():
    train, held_out = set(backgrounds.PHOTO_SETS["train"]), set(backgrounds.PHOTO_SETS["held_out"])
    assert not train & held_out
    assert set(backgrounds.PHOTO_SETS["classic"]) <= train
    for name in held_out | {"skimage:motorcycle", "skimage:camera"}:
        image = np.asarray(backgrounds.photo_image(name))
        assert image.ndim == 3 and image.shape[-1] == 3 and image.std() > 5, name


def test_unknown_photo_set_and_motion_are_rejected():
    with pytest.raises(ValueError, match="photos"):
        WorldConfig(photos="holiday")
    with pytest.raises(ValueError, match="motions"):
        WorldConfig(motions=("teleport",))
    with pytest.raises(ValueError, match="jpeg_quality"):
        WorldConfig(jpeg_quality=3)


def test_families_are_deterministic_and_keep_their_ranges():
    a = worlds.family_video("broad", "val", 3, num_frames=8, height=64)
    b = worlds.family_video("broad", "val", 3, num_frames=8, height=64)
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.masks, b.masks)
    rng = np.random.default_rng(0)
    broad = [worlds.sample_world("broad", rng) for _ in range(200)]
    held = [worlds.sample_world("held_out", rng) for _ in range(200)]
    broad_aspects = {round(c.width / c.height, 3) for c in broad}
    held_aspects = {round(c.width / c.height, 3) for c in held}
    assert all(a == 1.0 or 4 / 3 - 0.01 <= a <= 16 / 9 + 0.01 for a in broad_aspects)
    assert not broad_aspects & held_aspects  # framing the broad family never samples
    assert {c.photos for c in broad} == {"train"} and {c.photos for c in held} == {"held_out"}
    assert max(c.max_speed for c in held) > max(worlds.BROAD_SPEED)
    assert {c.jpeg_quality > 0 for c in broad} == {True, False}
    with pytest.raises(ValueError, match="world family"):
        worlds.sample_world("moon", rng)


def test_identity_effects_change_nothing_and_warps_move_masks_with_pixels():
    frames = np.random.default_rng(0).integers(0, 255, (3, 40, 60, 3), dtype=np.uint8)
    masks = np.zeros((3, 40, 60), np.uint8)
    masks[:, 15:25, 25:40] = 1  # central: stays in frame when zoomed
    f, m = frames.copy(), masks.copy()
    identity = effects.Effects(np.ones(3), np.zeros(3), np.ones((3, 3)))
    effects.apply_effects(f, m, identity)
    assert np.array_equal(f, frames) and np.array_equal(m, masks)
    zoomed = effects.Effects(np.full(3, 1.5), np.zeros(3), np.ones((3, 3)))
    frames[:] = 0
    frames[masks == 1] = 255
    effects.apply_effects(frames, masks, zoomed)
    assert (frames[..., 0][masks == 1] > 100).mean() > 0.97  # the mask follows the pixels
    assert 2.0 < (masks == 1).sum() / (10 * 15 * 3) < 2.5  # area grows by zoom^2 = 2.25
    # a frame rolled by 10 degrees at the covering zoom keeps no empty corner
    ones = np.full((1, 40, 60, 3), 200, np.uint8)
    rolled = effects.Effects(np.ones(1), np.full(1, 10.0), np.ones((1, 3)))
    effects.apply_effects(ones, np.zeros((1, 40, 60), np.uint8), rolled)
    assert ones.min() > 150


def test_sensor_effects_are_seeded_and_bounded():
    video = worlds.family_video("broad", "train", 5, num_frames=8, height=64)
    assert video.frames.dtype == np.uint8 and video.frames.shape[1] == 64
    config = dataclasses.replace(SMALL, noise=20.0, blur=0.02, jpeg_quality=30, lighting_drift=0.3)
    one, two = make_video(4, config), make_video(4, config)
    assert np.array_equal(one.frames, two.frames)
    clean = make_video(4, SMALL)
    assert np.array_equal(one.masks, clean.masks)  # no camera warp: masks untouched
    assert not np.array_equal(one.frames, clean.frames)


@pytest.mark.parametrize("motion", [m for m in MOTIONS if m != "waypoints"])
def test_periodic_and_bouncing_objects_stay_in_frame_and_move(motion):
    config = dataclasses.replace(
        SMALL, motions=(motion,), enter_leave=False, occlusion=False, max_speed=0.1
    )
    for seed in range(5):
        scene = sample_scene(seed, config)
        for obj in scene.objects:
            bound = obj.radii * BOUND[obj.shape]
            assert (obj.centers[:, 0] >= bound - 1e-6).all()
            assert (obj.centers[:, 0] <= config.width - bound + 1e-6).all()
            steps = np.linalg.norm(np.diff(obj.centers, axis=0), axis=1)
            assert steps.max() <= 0.1 * config.unit * 1.01 + 1e-6
            assert steps.sum() > 0


def test_look_alikes_pass_close_to_a_target():
    config = dataclasses.replace(
        SMALL, near_prob=1.0, max_distractors=2, occlusion=False, enter_leave=False, num_frames=16
    )
    closest = []
    for seed in range(20):
        scene = sample_scene(seed, config)
        targets = [o for o in scene.objects if o.is_target]
        for d in (o for o in scene.objects if not o.is_target):
            gaps = [
                np.linalg.norm(d.centers - t.centers, axis=1).min() / t.radii.mean()
                for t in targets
            ]
            closest.append(min(gaps))
    assert closest and np.median(closest) < 3.5  # within a few radii of some target


def test_the_first_world_is_unchanged_by_the_new_options():
    """Defaults of the new fields draw nothing extra: the classic world's videos (and the
    shipped models' figures) stay reproducible."""
    base = make_video(11, SMALL, "val")
    explicit = make_video(
        11, dataclasses.replace(SMALL, photos="classic", motions=("waypoints",)), "val"
    )
    assert np.array_equal(base.frames, explicit.frames)
    assert not SMALL.has_effects and sample_scene(11, SMALL, "val").effects is None


def test_vanishing_targets_hide_then_reappear_far_away():
    config = dataclasses.replace(
        SMALL, vanish_prob=1.0, enter_leave=False, occlusion=False, max_distractors=0, num_frames=16
    )
    jumps = 0
    for seed in range(8):
        scene = sample_scene(seed, config)
        video = make_video(seed, config)
        for obj in scene.objects:
            if obj.hidden is None:
                continue
            hidden = np.flatnonzero(obj.hidden)
            assert len(hidden) >= 2 and np.all(np.diff(hidden) == 1)
            assert not (video.masks[hidden] == obj.obj_id).any()  # wholly hidden, mask empty
            after, before = hidden[-1] + 1, hidden[0] - 1
            assert (video.masks[after] == obj.obj_id).any()  # back in view
            jumps += np.linalg.norm(obj.centers[after] - obj.centers[before]) >= config.unit / 3
    assert jumps >= 4


def test_a_camera_cut_moves_every_object_at_once_and_keeps_targets_in_frame():
    config = dataclasses.replace(SMALL, cut_prob=1.0, max_speed=0.005, num_frames=16)
    cuts = 0
    for seed in range(8):
        scene = sample_scene(seed, config)
        steps = np.stack(
            [np.linalg.norm(np.diff(o.centers, axis=0), axis=1) for o in scene.objects]
        )
        big = steps.min(axis=0) >= 0.25 * config.unit * 0.99  # all objects jump on one frame
        if big.any():
            cuts += 1
            assert big.sum() == 1
            t = int(np.argmax(big)) + 1
            for o in scene.objects:
                if o.is_target:
                    bound = o.radii[t] * BOUND[o.shape]
                    assert bound - 1e-6 <= o.centers[t, 0] <= config.width - bound + 1e-6
    assert cuts >= 5


@pytest.mark.parametrize("family", ["broad", "held_out", "hard"])
def test_every_target_is_visible_on_the_first_frame(family):
    """A first-frame prompt must exist: camera effects start at the identity on frame 0."""
    for index in range(12):
        video = worlds.family_video(family, "val", index, num_frames=8, height=64)
        for obj_id in video.descriptions:
            assert (video.masks[0] == obj_id).sum() >= 4, (family, index, obj_id)
