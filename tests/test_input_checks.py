"""Bad input at the predictor's boundary: a clear error naming the argument and the valid
range, raised before the inference state changes; good input still works."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from fsam2lib.models.sam2 import load_sam2
from fsam2lib.predictor import PrunedSAM2VideoPredictor

torch.set_num_threads(1)
warnings.filterwarnings("ignore", message=r"(?s).*Skipping the post-processing step")
H, W, T = 48, 64, 4


@pytest.fixture(scope="module")
def predictor() -> PrunedSAM2VideoPredictor:
    return load_sam2("micro", weights="random", predictor_class=PrunedSAM2VideoPredictor)


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("frames")
    for t in range(T):
        Image.fromarray(np.full((H, W, 3), 40 * t, np.uint8)).save(folder / f"{t:05d}.jpg")
    return str(folder)


@pytest.fixture
def state(predictor, video_dir) -> dict:
    return predictor.init_state(video_dir)


def _mask() -> np.ndarray:
    mask = np.zeros((H, W), bool)
    mask[10:20, 10:30] = True
    return mask


def test_missing_empty_misnamed_and_unreadable_videos(predictor, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        predictor.init_state(str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no JPEG frames"):
        predictor.init_state(str(tmp_path / "empty"))
    named = tmp_path / "named"
    named.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(named / "first.jpg")
    with pytest.raises(ValueError, match="frame names must be integers"):
        predictor.init_state(str(named))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "00000.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="unreadable"):
        predictor.init_state(str(broken))
    (tmp_path / "clip.avi").write_bytes(b"x")
    with pytest.raises(ValueError, match="expected a folder of JPEG frames or an .mp4"):
        predictor.init_state(str(tmp_path / "clip.avi"))
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(ValueError, match="empty file"):
        predictor.init_state(str(tmp_path / "empty.mp4"))
    with pytest.raises(TypeError, match="video_path"):
        predictor.init_state(42)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(points=[[np.nan, 5.0]], labels=[1]), ValueError, "NaN"),
        (
            dict(points=[[5000.0, 5.0]], labels=[1]),
            ValueError,
            r"outside the image: x must be in \[0, 64\]",
        ),
        (dict(points=[[-3.0, 5.0]], labels=[1]), ValueError, "outside the image"),
        (dict(points=[[5.0, 5.0]], labels=[1, 0]), ValueError, "labels must be"),
        (dict(points=[[5.0, 5.0]], labels=[7]), ValueError, "labels must be in"),
        (dict(points=[5.0, 5.0], labels=[1]), ValueError, r"\[N, 2\]"),
        (dict(points=[[5.0, 5.0]]), ValueError, "together"),
        (dict(box=[30.0, 5.0, 10.0, 20.0]), ValueError, "x1 < x2"),
        (dict(box=[0.0, 0.0, 10.0, 90.0]), ValueError, "box corners"),
        (dict(box=[0.0, 0.0, 10.0]), ValueError, r"\(x1, y1, x2, y2\)"),
        (dict(points=[[0.5, 2.0]], labels=[1], normalize_coords=False), ValueError, "normalised"),
        (dict(), ValueError, "points .* or a box"),
    ],
)
def test_bad_clicks_and_boxes(predictor, state, kwargs, error, match):
    with pytest.raises(error, match=match):
        predictor.add_new_points_or_box(state, 0, 1, **kwargs)
    assert state["obj_ids"] == []  # nothing was added


def test_bad_masks_frames_and_object_ids(predictor, state):
    with pytest.raises(ValueError, match=r"video's size \(48, 64\).*got \(10, 10\)"):
        predictor.add_new_mask(state, 0, 1, np.ones((10, 10), bool))
    with pytest.raises(ValueError, match="mask is empty"):
        predictor.add_new_mask(state, 0, 1, np.zeros((H, W), bool))
    with pytest.raises(ValueError, match="boolean"):
        predictor.add_new_mask(state, 0, 1, _mask() * 0.7)
    with pytest.raises(ValueError, match=r"frame_idx=999 is outside the video's frames 0\.\.3"):
        predictor.add_new_mask(state, 999, 1, _mask())
    with pytest.raises(TypeError, match="frame_idx must be an int"):
        predictor.add_new_mask(state, 1.0, 1, _mask())
    with pytest.raises(TypeError, match="obj_id"):
        predictor.add_new_mask(state, 0, None, _mask())
    assert state["obj_ids"] == []
    with pytest.raises(ValueError, match="frame_idx=-1"):
        predictor.propagate_in_video(state, start_frame_idx=-1)
    with pytest.raises(ValueError, match="max_frame_num_to_track"):
        predictor.propagate_in_video(state, max_frame_num_to_track=-2)


def test_good_input_still_tracks(predictor, state):
    predictor.add_new_mask(state, 0, 1, _mask())
    predictor.add_new_points_or_box(state, 0, 2, points=[[40.0, 30.0]], labels=[1])
    predictor.add_new_points_or_box(state, 0, 3, box=[5.0, 5.0, 60.0, 40.0])
    batched = torch.tensor([[[20.0, 20.0]]])  # sam2's batched form [1, N, 2] stays accepted
    predictor.add_new_points_or_box(state, 0, 1, points=batched, labels=torch.tensor([[1]]))
    frames = [t for t, _, _ in predictor.propagate_in_video(state)]
    assert frames == list(range(T)) and state["obj_ids"] == [1, 2, 3]
