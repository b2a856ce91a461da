"""Model loading: names, random weights labelled, official checkpoint format, clear errors."""

from pathlib import Path

import numpy as np
import pytest
import torch

from fsam2lib.evaluate import evaluate_videos, memory_bypassed, run_video, synthetic_suite
from fsam2lib.models.sam2 import (
    RANDOM_MARKER,
    SAM2_MODELS,
    load_sam2,
    save_checkpoint,
    weights_label,
)

SAM2_BASE = "sam2.modeling.sam2_base.SAM2Base"


def test_unknown_name_lists_known_models():
    with pytest.raises(ValueError, match="sam2.1_hiera_t") as err:
        load_sam2("sam3_huge")
    assert "micro" in str(err.value)


def test_random_weights_are_labelled_and_seeded():
    a = load_sam2("micro", weights="random", seed=1, predictor_class=SAM2_BASE)
    b = load_sam2("micro", weights="random", seed=1, predictor_class=SAM2_BASE)
    assert a.fsam2_weights == "random"
    assert "RANDOM" in weights_label(a)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)


def test_official_checkpoint_round_trip(tmp_path: Path):
    model = load_sam2("micro", predictor_class=SAM2_BASE)
    path = save_checkpoint(model, tmp_path / "micro.pt")
    assert set(torch.load(path, weights_only=True)) == {"model"}
    loaded = load_sam2("micro", checkpoint=path, predictor_class=SAM2_BASE)
    assert loaded.fsam2_weights == "trained"
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_random_weights_saved_as_a_checkpoint_stay_labelled(tmp_path: Path):
    model = load_sam2("micro", weights="random", seed=3, predictor_class=SAM2_BASE)
    path = save_checkpoint(model, tmp_path / "micro.pt")
    payload = torch.load(path, weights_only=True)
    assert set(payload) == {"model", RANDOM_MARKER}  # sam2's own loader reads "model" only
    loaded = load_sam2("micro", checkpoint=path, predictor_class=SAM2_BASE)
    assert loaded.fsam2_weights == "random"
    assert "RANDOM" in weights_label(loaded)


def test_checkpoint_config_mismatch_names_keys(tmp_path: Path):
    state = load_sam2("micro", weights="random", predictor_class=SAM2_BASE).state_dict()
    state.pop("no_mem_embed")
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "bad.pt"
    torch.save({"model": state}, path)
    with pytest.raises(RuntimeError, match=r"no_mem_embed.*extra\.weight"):
        load_sam2("micro", checkpoint=path, predictor_class=SAM2_BASE)


def test_corrupt_and_wrong_format_checkpoints(tmp_path: Path):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="cannot read checkpoint"):
        load_sam2("micro", checkpoint=corrupt)
    plain = tmp_path / "plain.pt"
    torch.save({"weights": {}}, plain)
    with pytest.raises(RuntimeError, match="official format"):
        load_sam2("micro", checkpoint=plain)


def test_offline_missing_checkpoint_says_where(tmp_path, monkeypatch):
    monkeypatch.setenv("FSAM2_CHECKPOINTS", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(FileNotFoundError) as err:
        load_sam2("sam2.1_hiera_t")
    message = str(err.value)
    assert "sam2.1_hiera_tiny.pt" in message
    assert SAM2_MODELS["sam2.1_hiera_t"].url in message
    assert str(tmp_path) in message


def test_missing_explicit_checkpoint_and_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_sam2("micro", checkpoint=tmp_path / "nope.pt")
    with pytest.raises(ValueError, match="weights"):
        load_sam2("micro", weights="imagenet")
    with pytest.raises(ValueError, match="multiple of 32"):
        load_sam2("micro", weights="random", image_size=250)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_unavailable_device_is_an_error():
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        load_sam2("micro", weights="random", device="cuda")


def test_shipped_micro_sam2_segments_above_a_floor():
    """The shipped micro SAM2 tracks a first-frame mask through synthetic val videos, single
    objects and occluding ones, far better than the same architecture with random weights,
    also on the held-out world it never trained on and on the hard split (exits, cuts,
    look-alikes). A regression floor below the measured figures (shipped weights = run 6,
    measured 2026-12-04, videos of 12 frames): 6 classic videos score 93.7 J&F single-object
    and 90.2 multi-object; 8 held-out videos 82.9 and 84.4; 8 hard videos 85.1 and 77.3;
    random weights 2.8."""
    suite = synthetic_suite("val", 6, frames=12)
    micro = load_sam2("micro")
    shipped, _, _ = evaluate_videos(micro, suite["single-object"], "mask", progress=False)
    multi, _, _ = evaluate_videos(micro, suite["multi-object"], "mask", progress=False)
    held_out, hard = (
        {
            kind: evaluate_videos(micro, videos, "mask", progress=False)[0]["J&F-Mean"]
            for kind, videos in synthetic_suite("val", 8, frames=12, world=world).items()
        }
        for world in ("held_out", "hard")
    )
    untrained, _, _ = evaluate_videos(
        load_sam2("micro", weights="random", seed=0), suite["single-object"], "mask", progress=False
    )
    assert shipped["J&F-Mean"] >= 0.85, shipped
    assert multi["J&F-Mean"] >= 0.80, multi
    assert min(held_out.values()) >= 0.75, held_out
    assert min(hard.values()) >= 0.70, hard
    assert shipped["J&F-Mean"] >= 10 * untrained["J&F-Mean"], (shipped, untrained)


def test_memory_bypass_replaces_memory_attention_only_inside_the_block():
    """Bypassed, tracked frames get the no-memory features: the prompted frame is unchanged,
    later frames change; after the block the predictor tracks exactly as before."""
    video = synthetic_suite("val", 1, frames=8)["multi-object"][0]
    micro = load_sam2("micro")
    calls = []
    hook = micro.memory_attention.register_forward_hook(lambda *a: calls.append(1))
    stock = run_video(micro, video, "mask").logits
    ran = len(calls)
    with memory_bypassed(micro):
        bypassed = run_video(micro, video, "mask").logits
    assert len(calls) == ran  # memory attention never ran inside the block
    again = run_video(micro, video, "mask").logits
    hook.remove()
    assert ran > 0 and len(calls) == 2 * ran
    assert np.array_equal(stock, again)
    assert np.array_equal(stock[:, 0], bypassed[:, 0])
    assert not np.allclose(stock[:, 1:], bypassed[:, 1:])
