"""The router trained for the mask: keep gates whose forward pass is pruning's, gradients that
reach the router through the frozen SAM2, the training run (resumable) and its CLI, and the
worlds it trains and is judged on (look-alikes, twins, the crossing split)."""

import dataclasses

import numpy as np
import pytest
import torch
from test_pruning import bool_mask, keep_idx, small_memory_attention

from fsam2lib.pruning.attention import GatedPlan, PrunedMemoryAttention, PruningPlan
from fsam2lib.pruning.config import CUES
from fsam2lib.pruning.router import load_router
from fsam2lib.train import mask_objective, train_router
from fsam2lib.train.mask_objective import MaskObjectiveConfig, straight_through_keep
from fsam2lib.videos import worlds


@dataclasses.dataclass
class GatedSource:
    frame_idx: int
    gate: torch.Tensor | None
    memory_keep_idx: torch.Tensor | None = None
    is_compact: bool = False


def test_gated_attention_computes_what_pruning_computes():
    """0/1 gates give the values of attending over kept tokens and scattering onto the fill."""
    grid, hw, ptr = (8, 8), 64, 4
    attention = PrunedMemoryAttention.convert(small_memory_attention(True, True))
    torch.manual_seed(5)
    curr, curr_pos = torch.randn(hw, 1, 32), torch.randn(hw, 1, 32)
    memory, memory_pos = torch.randn(2 * hw + ptr, 1, 16), torch.randn(2 * hw + ptr, 1, 16)
    fill = torch.randn(hw, 1, 32)
    query_idx, first = keep_idx(hw, 20, 1), keep_idx(hw, 13, 2)
    with torch.no_grad():
        plan = PruningPlan(
            grid=grid,
            query_idx=query_idx,
            fill=fill,
            memory_sources=[GatedSource(0, None, first), GatedSource(1, None)],
        )
        with attention.planned(plan):
            pruned = attention(curr, memory, curr_pos, memory_pos, num_obj_ptr_tokens=ptr)
        gated_plan = GatedPlan(
            grid=grid,
            query_gate=bool_mask(query_idx, hw).float(),
            fill=fill,
            memory_sources=[GatedSource(0, bool_mask(first, hw).float()), GatedSource(1, None)],
        )
        with attention.planned(gated_plan):
            gated = attention(curr, memory, curr_pos, memory_pos, num_obj_ptr_tokens=ptr)
    torch.testing.assert_close(gated, pruned, rtol=0, atol=1e-5)


def test_gradients_reach_the_scores_of_pruned_and_kept_tokens():
    hw = 64
    attention = PrunedMemoryAttention.convert(small_memory_attention(False, False))
    torch.manual_seed(6)
    curr, curr_pos = torch.randn(hw, 1, 32), torch.randn(hw, 1, 32)
    memory, memory_pos = torch.randn(hw + 2, 1, 16), torch.randn(hw + 2, 1, 16)
    query_scores = torch.randn(1, hw, requires_grad=True)
    memory_scores = torch.randn(1, hw, requires_grad=True)
    plan = GatedPlan(
        grid=(8, 8),
        query_gate=straight_through_keep(query_scores, 16),
        fill=torch.zeros(hw, 1, 32),
        memory_sources=[GatedSource(0, straight_through_keep(memory_scores, 10))],
    )
    with attention.planned(plan):
        out = attention(curr, memory, curr_pos, memory_pos, num_obj_ptr_tokens=2)
    out.square().sum().backward()
    assert query_scores.grad.abs().sum() > 0 and memory_scores.grad.abs().sum() > 0
    assert torch.isfinite(query_scores.grad).all() and torch.isfinite(memory_scores.grad).all()


def test_straight_through_keep_is_a_hard_top_k_forward():
    scores = torch.tensor([[0.1, 3.0, -1.0, 2.0, 0.5]], requires_grad=True)
    gate = straight_through_keep(scores, 2)
    assert gate.tolist() == [[0.0, 1.0, 0.0, 1.0, 0.0]]
    first = torch.tensor([[False, False, True, False, False]])
    ranked = straight_through_keep(scores, 2, rank=first.float() * 10 + scores.detach())
    assert ranked.tolist() == [[0.0, 1.0, 1.0, 0.0, 0.0]]  # the object's token first
    gate[0, 4].backward()  # the nearest pruned token is the most sensitive to its score
    assert scores.grad[0, 4] > scores.grad[0, 2] >= 0
    assert straight_through_keep(scores, 5).detach().eq(1).all()


def test_bad_objective_settings_name_the_problem():
    with pytest.raises(ValueError, match="keep_min"):
        MaskObjectiveConfig(keep_min=0.6, keep_max=0.4)
    with pytest.raises(ValueError, match="text_off"):
        MaskObjectiveConfig(text_off=1.5)
    with pytest.raises(ValueError, match="2 frames"):
        MaskObjectiveConfig(frames=1)
    with pytest.raises(ValueError, match="text_cue_weight"):
        MaskObjectiveConfig(text_cue_weight=-1)


def test_text_cue_loss_prefers_the_described_object_over_its_look_alike():
    """The clip-frame text loss is lowest for a cue on the target, highest for one on the
    other object (a hard negative), with a cue on background between them."""
    size, grid = 32, (4, 4)
    target = torch.zeros(1, 1, size, size)
    target[..., :8, :8] = 1  # token (0, 0)
    other = torch.zeros(1, 1, size, size)
    other[..., 24:, 24:] = 1  # token (3, 3)

    def loss_with_cue_on(token: int) -> float:
        text = torch.full((1, 16), -1.0)
        text[0, token] = 1.0
        return float(mask_objective.text_cue_loss(text, target, other, grid))

    on_target, on_background, on_other = (loss_with_cue_on(t) for t in (0, 5, 15))
    assert on_target < on_background < on_other


def test_steps_without_text_come_at_the_configured_share():
    cfg = MaskObjectiveConfig(text_off=0.4, cue_off=0.2)
    rng = np.random.default_rng(0)
    picks = [mask_objective.sample_step_cues(rng, cfg) for _ in range(2000)]
    without_text = np.mean(["text" not in p for p in picks])
    all_cues = np.mean([p == CUES for p in picks])
    assert abs(without_text - 0.4) < 0.04 and abs(all_cues - 0.4) < 0.04


def test_mask_objective_trains_resumes_and_keeps_sam2_frozen(tmp_path):
    """Two short sittings through the CLI: the router changes, SAM2 does not, the weights
    file says where the run stands and the second sitting continues from it."""
    from fsam2lib.models.sam2 import load_sam2

    out, log = tmp_path / "router.safetensors", tmp_path / "log.jsonl"
    common = [
        "--objective", "mask", "--out", str(out), "--log", str(log), "--clips", "1",
        "--objects-per-clip", "1", "--clip-frames", "3", "--mask-minutes", "5",
        "--threads", "1", "--no-progress",
    ]  # fmt: skip
    sam2 = load_sam2("micro", predictor_class=train_router.SAM2_BASE)
    before = {k: v.clone() for k, v in sam2.state_dict().items()}
    train_router.main(["--init", "data/router_micro.safetensors", "--mask-steps", "2", *common])
    first = load_router(out)
    assert first.metadata["objective"] == "mask" and first.metadata["step"] == "2"
    shipped = load_router()
    changed = [
        k for k, v in first.state_dict().items() if not torch.equal(v, shipped.state_dict()[k])
    ]
    assert changed, "two steps of the mask objective left every router weight as it was"
    train_router.main(["--resume", "--mask-steps", "3", *common])
    assert load_router(out).metadata["step"] == "3"
    assert len(log.read_text().splitlines()) == 3
    sam2_after = load_sam2("micro", predictor_class=train_router.SAM2_BASE).state_dict()
    assert all(torch.equal(before[k], sam2_after[k]) for k in before)  # the file is untouched


def test_resume_and_init_need_the_mask_objective(capsys):
    with pytest.raises(SystemExit):
        train_router.main(["--init", "data/router_micro.safetensors"])
    assert "--objective mask" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train_router.main(["--objective", "mask", "--mask-worlds", "crossing"])
    assert "--mask-worlds" in capsys.readouterr().err


def test_crossing_split_puts_a_look_alike_by_a_target_on_most_videos():
    """Held-out settings, and on most videos a look-alike the description tells apart passes
    over or close by a target; far more often than on the held-out world itself."""
    crossing = [
        worlds.lookalike_passes(worlds.family_scene("crossing", "val", i)) for i in range(24)
    ]
    held = [worlds.lookalike_passes(worlds.family_scene("held_out", "val", i)) for i in range(24)]
    share = np.mean([any(v.values()) for v in crossing])
    assert share >= 0.7 and share > np.mean([any(v.values()) for v in held]) + 0.3
    rng = np.random.default_rng(0)
    configs = [worlds.sample_world("crossing", rng) for _ in range(50)]
    assert {c.photos for c in configs} == {"held_out"} and all(c.twin_prob == 0 for c in configs)
    assert all(c.min_distractors >= 1 and c.near_prob == 1.0 for c in configs)


def test_lookalike_world_holds_identical_twins_and_old_worlds_none():
    def twins(scene):
        targets = {(o.colour, o.shape) for o in scene.targets}
        return sum((o.colour, o.shape) in targets for o in scene.objects if not o.is_target)

    lookalike = sum(twins(worlds.family_scene("lookalike", "train", i)) for i in range(30))
    hard = sum(twins(worlds.family_scene("hard", "train", i)) for i in range(30))
    assert lookalike >= 3 and hard == 0


def test_clips_of_a_folder_are_windows_with_their_frame_names():
    from fsam2lib.videos.world import WorldConfig, make_video

    video = make_video(3, WorldConfig(height=64, width=64, num_frames=8), "val")
    draw = mask_objective.folder_source([video], frames=4)
    clip = draw(np.random.default_rng(0))
    assert clip.num_frames == 4 and len(clip.frame_names) == 4
    start = int(clip.frame_names[0])
    assert np.array_equal(clip.frames, video.frames[start : start + 4])
    with pytest.raises(ValueError, match="no window"):
        video.window(6, 4)
