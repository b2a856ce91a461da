"""What an inference state keeps (StatePolicy): compact memory bank, bounded state, bounded
score records, streamed frames -- each checked against stock storage, bit for bit."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from sam2.utils.misc import load_video_frames

from fsam2lib.bench.runner import quiet_sam2
from fsam2lib.models.sam2 import load_sam2
from fsam2lib.predictor import PrunedSAM2VideoPredictor
from fsam2lib.predictor.bounded_state import ReleasedFrameError, read_window, releasable
from fsam2lib.predictor.state_policy import StatePolicy
from fsam2lib.pruning.config import PruningConfig
from fsam2lib.pruning.selection import num_kept
from fsam2lib.videos.davis import read_masks, save_as_they_come
from fsam2lib.videos.frames import read_video_file, to_model_input, write_video_file
from fsam2lib.videos.streaming import IN_FLIGHT, StreamedFrames

torch.set_num_threads(1)
warnings.filterwarnings("ignore", message=r"(?s).*Skipping the post-processing step")

FRAMES, H, W = 40, 60, 80
PRUNED = PruningConfig(keep_ratio=0.3, strategy="grid")
LEAN = StatePolicy()


def _frames() -> np.ndarray:
    rng = np.random.default_rng(0)
    video = rng.integers(0, 60, (FRAMES, H, W, 3), dtype=np.uint8)
    for t in range(FRAMES):
        x = 4 + t
        video[t, 20:36, x : x + 16] = (220, 40, 40)
    return video


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("long_video")
    for t, frame in enumerate(_frames()):
        Image.fromarray(frame).save(folder / f"{t:05d}.jpg")
    return str(folder)


@pytest.fixture(scope="module")
def micro() -> PrunedSAM2VideoPredictor:
    predictor = load_sam2("micro", weights="random", predictor_class=PrunedSAM2VideoPredictor)
    predictor.fill_hole_area = 0
    return predictor


def _mask() -> np.ndarray:
    mask = np.zeros((H, W), dtype=bool)
    mask[20:36, 4:20] = True
    return mask


def _track(predictor, video, config, policy, **init) -> tuple[dict, dict]:
    predictor.pruning, predictor.state_policy = config, policy
    with quiet_sam2():
        state = predictor.init_state(video, **init)
        predictor.add_new_mask(state, 0, 1, _mask())
        masks = {t: m.clone() for t, _, m in predictor.propagate_in_video(state)}
    return masks, state


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[t], b[t]) for t in a)


def test_policy_arguments():
    assert StatePolicy.named("stock") == StatePolicy.stock()
    assert StatePolicy.named("lean") == StatePolicy()
    with pytest.raises(ValueError, match="'lean', 'stock'"):
        StatePolicy.named("thrifty")
    with pytest.raises(ValueError, match="score_records"):
        StatePolicy(score_records=0)
    with pytest.raises(ValueError, match="prefetch"):
        StatePolicy(prefetch=-1)
    assert not StatePolicy.stock().trim_memory and StatePolicy().trim_memory
    with pytest.raises(ValueError, match="bounded must be a bool"):
        StatePolicy(bounded="yes")


@pytest.mark.parametrize("config", [PruningConfig(strategy="none"), PRUNED])
def test_lean_state_gives_stock_storage_masks_bit_for_bit(micro, video_dir, config):
    stock, _ = _track(micro, video_dir, config, StatePolicy.stock())
    lean, state = _track(micro, video_dir, config, LEAN)
    assert len(stock) == FRAMES
    assert _same(stock, lean)
    assert isinstance(state["images"], StreamedFrames)


def test_compact_bank_stores_kept_tokens_only(micro, video_dir):
    _, stock = _track(micro, video_dir, PRUNED, StatePolicy.stock())
    _, lean = _track(micro, video_dir, PRUNED, StatePolicy(bounded=False))
    kept = num_kept(16 * 16, 0.3, PRUNED.min_tokens)
    outputs = lean["output_dict_per_obj"][0]
    dense_out = stock["output_dict_per_obj"][0]["non_cond_frame_outputs"][5]
    compact_out = outputs["non_cond_frame_outputs"][5]
    features = dict.get(compact_out, "maskmem_features")
    assert features.shape == (1, 32, kept) and features.dtype == torch.bfloat16
    assert compact_out.memory_keep_idx.dtype == torch.int32
    # the stored tokens are the dense memory's at the kept indices
    dense = dict.get(dense_out, "maskmem_features").flatten(2)
    assert torch.equal(features, dense[:, :, compact_out.memory_keep_idx[0].long()])
    dense_bytes = dense.numel() * 2
    compact_bytes = features.numel() * 2 + compact_out.memory_keep_idx.numel() * 4
    assert compact_bytes <= 0.32 * dense_bytes
    assert outputs["cond_frame_outputs"][0].is_compact  # the prompted frame too
    # only pruned memory attention can read a compact chunk
    with pytest.raises(RuntimeError, match="stored compact"):
        compact_out["maskmem_features"]


def test_compact_prompted_frame_is_restored_for_another_config(micro, video_dir):
    """Prompt once, propagate pruned (the prompted frame's memory goes compact), then stock:
    SAM2's memory encoder rebuilds the dense memory, so stock SAM2's masks come out."""
    fresh, _ = _track(micro, video_dir, PruningConfig(strategy="none"), StatePolicy.stock())
    _, state = _track(micro, video_dir, PRUNED, LEAN)
    assert state["output_dict_per_obj"][0]["cond_frame_outputs"][0].is_compact
    micro.pruning = PruningConfig(strategy="none")
    with quiet_sam2():
        again = {t: m.clone() for t, _, m in micro.propagate_in_video(state)}
    assert _same(fresh, again)
    assert not state["output_dict_per_obj"][0]["cond_frame_outputs"][0].is_compact


def test_bounded_state_releases_what_sam2_cannot_read(micro, video_dir):
    masks, state = _track(micro, video_dir, PRUNED, LEAN)
    assert len(masks) == FRAMES  # every frame's mask is still yielded
    window = read_window(micro)
    stored = state["output_dict_per_obj"][0]["non_cond_frame_outputs"]
    # kept: frames a propagation from the prompt reads, and the window behind the last frame
    expected = [t for t in range(1, FRAMES) if t <= window or t >= FRAMES - 1 - window]
    assert sorted(stored) == expected
    assert sorted(stored.released) == [t for t in range(1, FRAMES) if t not in expected]
    assert state["cached_features"] == {}
    # records: the prompted frame's and the latest frames' (at most score_records of them)
    records = state["fsam2"]["records"][1]
    assert sorted(records) == [0, *range(FRAMES - LEAN.score_records, FRAMES)]
    with pytest.raises(KeyError, match="score_records"):
        micro.token_scores(state, 5, 1)


def test_released_frames_refuse_prompts_before_the_state_changes(micro, video_dir):
    _, state = _track(micro, video_dir, PRUNED, LEAN)
    before = dict(state["point_inputs_per_obj"][0])
    with pytest.raises(ReleasedFrameError, match="frame 20"):
        micro.add_new_points_or_box(
            state, 20, 1, points=np.array([[10.0, 10.0]]), labels=np.array([1])
        )
    assert state["point_inputs_per_obj"][0] == before
    # near the last frame SAM2's window is intact: a correction click works
    micro.add_new_points_or_box(
        state, FRAMES - 1, 1, points=np.array([[30.0, 28.0]]), labels=np.array([1])
    )


def test_releasable_keeps_windows_of_prompted_frames():
    assert releasable(range(1, 30), [0], 29, False, 5) == list(range(6, 24))
    assert releasable(range(1, 30), [0, 12], 29, False, 5) == [6, *range(18, 24)]
    assert releasable(range(0, 29), [29], 0, True, 5) == list(range(6, 24))


def test_streamed_jpeg_frames_equal_sams_eager_loader(micro, video_dir):
    eager, height, width = load_video_frames(
        video_dir, 256, offload_video_to_cpu=True, compute_device=torch.device("cpu")
    )
    _, state = _track(micro, video_dir, PRUNED, LEAN)
    frames = state["images"]
    assert (state["video_height"], state["video_width"]) == (height, width) == (H, W)
    assert len(frames.held_tensors()) <= IN_FLIGHT
    assert frames.decoded <= FRAMES + 2  # each frame decoded about once
    for t in (0, 17, FRAMES - 1):
        assert torch.equal(frames[t], eager[t])
    with pytest.raises(IndexError, match="frame 40 outside"):
        frames[FRAMES]


def test_streamed_mp4_equals_eager_mp4(micro, tmp_path):
    path = write_video_file(tmp_path / "clip.mp4", _frames()[:12])
    eager = to_model_input(read_video_file(path), 256)
    micro.state_policy = StatePolicy(prefetch=2)  # a decoding thread reads ahead
    with quiet_sam2():
        state = micro.init_state(str(path))
    assert isinstance(state["images"], StreamedFrames) and len(state["images"]) == 12
    for t in (0, 5, 11, 3):  # out of order: the reader seeks
        assert torch.equal(state["images"][t], eager[t])
    stock_masks, _ = _track(micro, str(path), PRUNED, StatePolicy.stock())
    lean_masks, _ = _track(micro, str(path), PRUNED, LEAN)
    assert _same(stock_masks, lean_masks)


def test_masks_are_written_as_they_come(micro, video_dir, tmp_path):
    micro.pruning, micro.state_policy = PRUNED, LEAN
    with quiet_sam2():
        state = micro.init_state(video_dir)
        micro.add_new_mask(state, 0, 1, _mask())
        shown = {
            t: (m[0, 0] > 0).numpy()
            for t, _, m in save_as_they_come(micro.propagate_in_video(state), tmp_path, "clip")
        }
    labels, names = read_masks(tmp_path, "clip")
    assert names == [f"{t:05d}" for t in range(FRAMES)]
    assert all(np.array_equal(labels[t] == 1, shown[t]) for t in range(FRAMES))
    with pytest.raises(ValueError, match="object ids 1..255"):
        next(save_as_they_come([(0, [300], torch.zeros(1, 1, H, W))], tmp_path, "bad"))
