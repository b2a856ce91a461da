"""In-memory frames reach SAM2 exactly as sam2's own JPEG-folder loader would deliver them."""

import numpy as np
import pytest
import torch
from PIL import Image
from sam2.utils.misc import load_video_frames

from fsam2lib.models.sam2 import load_sam2
from fsam2lib.videos.frames import init_state_from_frames, to_model_input


def test_preprocessing_matches_sam2_loader(tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 48, 80, 3), dtype=np.uint8)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(tmp_path / f"{i:05d}.jpg", quality=95)
    decoded = np.stack([np.array(Image.open(tmp_path / f"{i:05d}.jpg")) for i in range(3)])
    images, height, width = load_video_frames(
        str(tmp_path), image_size=64, offload_video_to_cpu=True, compute_device=torch.device("cpu")
    )
    assert (height, width) == (48, 80)
    assert torch.allclose(to_model_input(decoded, 64), images, atol=1e-6)


def test_init_state_from_frames():
    predictor = load_sam2("micro", weights="random")
    frames = np.zeros((4, 40, 60, 3), dtype=np.uint8)
    state = init_state_from_frames(predictor, frames)
    assert state["num_frames"] == 4
    assert (state["video_height"], state["video_width"]) == (40, 60)
    assert tuple(state["images"].shape) == (4, 3, 256, 256)


def test_mp4_round_trip_and_init_state_from_an_mp4(tmp_path):
    from fsam2lib.models.sam2 import load_sam2
    from fsam2lib.predictor import PrunedSAM2VideoPredictor
    from fsam2lib.videos.frames import read_video_file, write_video_file

    frames = np.zeros((5, 48, 64, 3), np.uint8)
    for t in range(5):
        frames[t, 10:30, 5 + 8 * t : 25 + 8 * t] = (220, 40, 40)  # a red block moving right
    path = write_video_file(tmp_path / "clip.mp4", frames)
    decoded = read_video_file(path)
    assert decoded.shape == frames.shape
    assert np.abs(decoded.astype(int) - frames).mean() < 8  # lossy, but the same video
    assert decoded[2, 20, 25, 0] > 150 and decoded[2, 20, 25, 2] < 100  # red where it was
    predictor = load_sam2("micro", weights="random", predictor_class=PrunedSAM2VideoPredictor)
    state = predictor.init_state(str(path))
    assert state["num_frames"] == 5 and (state["video_height"], state["video_width"]) == (48, 64)
    mask = np.zeros((48, 64), bool)
    mask[10:30, 5:25] = True
    predictor.add_new_mask(state, 0, 1, mask)
    assert len(list(predictor.propagate_in_video(state))) == 5
    (tmp_path / "noise.mp4").write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="cannot be opened|no decodable frames"):
        read_video_file(tmp_path / "noise.mp4")
