"""Micro SAM2 training: curriculum, teacher forcing, and a smoke test that the losses fall."""

import numpy as np
import pytest
import torch

from fsam2lib.models.sam2 import load_sam2
from fsam2lib.train.train_sam2_micro import (
    SAM2_BASE,
    TrainConfig,
    _scalar,
    main,
    make_batch,
    teacher_forcing_at,
    video_loss,
    world_at,
)
from fsam2lib.videos.world import WorldConfig


def test_world_gets_harder_and_ends_on_the_full_world():
    cfg = TrainConfig()
    easy, last = world_at(0.0, cfg, 3), world_at(0.99, cfg, 8)
    assert easy.background == "plain" and easy.max_distractors == 0 and not easy.occlusion
    full = WorldConfig(num_frames=8, min_objects=2)
    assert last == full  # the last stage is the world the model card evaluates on
    assert easy.num_frames == 8  # short clips are the first frames of 8-frame videos


def test_teacher_forcing_anneals_to_zero():
    cfg = TrainConfig(teacher_forcing=0.5, teacher_forcing_until=0.5)
    assert teacher_forcing_at(0.0, cfg) == 0.5
    assert teacher_forcing_at(0.25, cfg) == pytest.approx(0.25)
    assert teacher_forcing_at(0.5, cfg) == 0.0 and teacher_forcing_at(0.9, cfg) == 0.0
    assert teacher_forcing_at(0.0, TrainConfig(teacher_forcing_until=0.0)) == 0.0


def test_batch_has_one_target_per_chosen_object():
    cfg = TrainConfig(clips=2, objects_per_clip=2)
    batch = make_batch(np.random.default_rng(0), cfg, 3, world_at(0.0, cfg, 3))
    assert batch.images.shape == (2 * 3, 3, 256, 256)
    assert batch.masks.shape[0] == 3 and batch.masks.shape[2:] == (1, 256, 256)
    assert batch.masks.shape[1] == len(batch.clip_of) == 4  # min_objects=2: two per clip
    first = batch.masks[0].flatten(1).sum(-1)
    assert (first >= 16).all()  # every target is visible on the prompted frame
    assert not torch.equal(batch.masks[0, 0], batch.masks[0, 1])  # two different objects


def test_a_few_steps_on_one_clip_lower_the_losses():
    """Smoke test: the losses reach every head (masks, IoU, object score) and fall."""
    torch.manual_seed(0)
    model = load_sam2("micro", weights="random", seed=0, predictor_class=SAM2_BASE)
    model.train()
    cfg = TrainConfig(clips=1, objects_per_clip=2)
    batch = make_batch(np.random.default_rng(1), cfg, 2, world_at(0.0, cfg, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    history = []
    for _ in range(25):
        losses = video_loss(model, batch, "box", cfg, np.random.default_rng(5), forcing=0.5)
        opt.zero_grad()
        losses["total"].backward()
        opt.step()
        history.append({k: _scalar(v) for k, v in losses.items()})
    first, last = history[0], history[-1]
    assert last["mask"] < 0.7 * first["mask"], (first, last)
    assert last["score"] < first["score"], (first, last)
    assert last["total"] < first["total"], (first, last)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--prompt-mix", "0.5,0.5"], "three non-negative shares"),
        (["--prompt-mix", "0.5,0.3,0.3"], "summing to 1"),
        (["--frames", "1,4"], "clip lengths >= 2"),
    ],
)
def test_bad_arguments(argv, message, capsys):
    with pytest.raises(SystemExit):
        main(argv)
    assert message in capsys.readouterr().err


def test_hard_share_draws_that_share_of_clips_from_the_hard_family():
    mixed = TrainConfig(world="broad", hard_share=0.3)
    rng = np.random.default_rng(0)
    worlds = [world_at(0.5, mixed, 8, rng) for _ in range(200)]
    hard = [w for w in worlds if w.vanish_prob > 0]
    assert 0.2 <= len(hard) / len(worlds) <= 0.4
    assert all(w.cut_prob == 0.5 and w.near_prob == 1.0 for w in hard)
    broad = TrainConfig(world="broad")
    assert all(world_at(0.5, broad, 8, rng).vanish_prob == 0 for _ in range(50))


def test_hard_share_is_checked():
    with pytest.raises(ValueError, match="hard_share must be in"):
        TrainConfig(world="broad", hard_share=1.5)
    with pytest.raises(ValueError, match="needs world='broad'"):
        TrainConfig(hard_share=0.3)
