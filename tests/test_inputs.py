"""In-memory frames reach SAM2 exactly as sam2's own JPEG-folder loader would deliver them."""

import numpy as np
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
