"""PrunedSAM2VideoPredictor: exact at keep ratio 1.0 against stock SAM2, selections per frame
and per memory frame, prompts kept, min_tokens, config swaps, text API, fills."""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from sam2.build_sam import build_sam2_video_predictor
from sam2.sam2_video_predictor import SAM2VideoPredictor
from sam2.utils.misc import load_video_frames

from fsam2lib.models.sam2 import load_sam2
from fsam2lib.predictor import PrunedSAM2VideoPredictor
from fsam2lib.predictor.records import new_side_entry
from fsam2lib.pruning.config import PruningConfig
from fsam2lib.pruning.scorers import ScoringInputs
from fsam2lib.pruning.selection import grid_order, num_kept
from fsam2lib.videos.frames import IMG_MEAN, IMG_STD

torch.set_num_threads(1)
warnings.filterwarnings("ignore", message=r"(?s).*Skipping the post-processing step")

VIDEO_H, VIDEO_W, FRAMES = 48, 64, 4
CLICK = [[40.0, 21.0]]  # video pixels -> token (x=10, y=7) of micro's 16x16 grid


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory) -> str:
    """A short JPEG folder (SAM2's "<index>.jpg" layout) with a red square moving right."""
    folder = tmp_path_factory.mktemp("video")
    rng = np.random.default_rng(0)
    for t in range(FRAMES):
        img = rng.integers(0, 60, (VIDEO_H, VIDEO_W, 3), dtype=np.uint8)
        img[12:28, 8 + 6 * t : 24 + 6 * t] = (220, 40, 40)
        Image.fromarray(img).save(folder / f"{t:05d}.jpg")
    return str(folder)


@pytest.fixture(scope="module")
def micro() -> PrunedSAM2VideoPredictor:
    predictor = load_sam2("micro", weights="random", predictor_class=PrunedSAM2VideoPredictor)
    predictor.fill_hole_area = 0  # hole filling needs sam2's missing CUDA extension
    return predictor


@pytest.fixture
def predictor(micro):
    """The shared micro predictor, with its pruning attributes restored after each test."""
    yield micro
    micro.pruning = PruningConfig(strategy="none")
    micro.router = micro.text_encoder = micro.describe_object = None


def square_mask() -> np.ndarray:
    mask = np.zeros((VIDEO_H, VIDEO_W), dtype=bool)
    mask[12:28, 8:24] = True
    return mask


def propagate(predictor, state) -> torch.Tensor:
    """Video-resolution mask logits ``[T, objects, 1, H, W]``."""
    return torch.stack([masks for _, _, masks in predictor.propagate_in_video(state)])


def token(x: int, y: int, width: int = 16) -> int:
    return y * width + x


def neighbourhood(x: int, y: int, radius: int = 1, width: int = 16) -> set[int]:
    return {
        token(i, j, width)
        for i in range(x - radius, x + radius + 1)
        for j in range(y - radius, y + radius + 1)
    }


# --------------------------------------------------------------------------- exactness


def build_tiny(target: str) -> SAM2VideoPredictor:
    torch.manual_seed(0)
    model = build_sam2_video_predictor(
        "configs/sam2.1/sam2.1_hiera_t.yaml",
        ckpt_path=None,
        device="cpu",
        hydra_overrides_extra=[f"++model._target_={target}", "++model.image_size=128"],
    )
    model.fill_hole_area = 0
    return model


def run_two_objects(model, video_dir):
    """Object 1 from a mask prompt, object 2 from clicks; all stored outputs + masks."""
    state = model.init_state(video_dir)
    model.add_new_mask(state, 0, 1, square_mask())
    model.add_new_points_or_box(state, 0, 2, points=[[50.0, 36.0], [10.0, 40.0]], labels=[1, 0])
    masks = propagate(model, state)
    outputs = {
        (obj, t): out
        for obj, per_obj in state["output_dict_per_obj"].items()
        for kind in ("cond_frame_outputs", "non_cond_frame_outputs")
        for t, out in per_obj[kind].items()
    }
    return masks, outputs


def test_keep_all_on_pruning_path_reproduces_stock_sam2(video_dir):
    stock = build_tiny("sam2.sam2_video_predictor.SAM2VideoPredictor")
    ours = build_tiny("fsam2lib.predictor.predictor.PrunedSAM2VideoPredictor")
    ours.load_state_dict(stock.state_dict())
    ours.pruning = PruningConfig(strategy="mask_prior", keep_ratio=1.0, memory_keep_ratio=1.0)
    calls = []
    ours.memory_attention.register_forward_pre_hook(
        lambda m, args, kwargs: calls.append(
            (m._plan is not None, kwargs["memory"].shape[0], kwargs["num_obj_ptr_tokens"])
        ),
        with_kwargs=True,
    )
    expected, stock_out = run_two_objects(stock, video_dir)
    got, our_out = run_two_objects(ours, video_dir)

    assert all(pruned for pruned, _, _ in calls)  # every call went through the pruned path
    hw = 8 * 8
    assert max((mem - ptr) // hw for _, mem, ptr in calls) == 3  # cond frame + 2 previous frames
    assert max(ptr for _, _, ptr in calls) > 0  # object pointers took part
    assert (expected > 0).any() and (expected < 0).any()  # non-trivial masks
    assert (got - expected).abs().max() <= 1e-4
    assert stock_out.keys() == our_out.keys()
    for key, out in stock_out.items():
        for name in ("pred_masks", "obj_ptr", "object_score_logits", "maskmem_features"):
            assert (our_out[key][name].float() - out[name].float()).abs().max() <= 1e-4, (key, name)


# --------------------------------------------------------------------------- selections


def test_pruned_tracking_selects_per_frame_and_per_memory_frame(predictor, video_dir):
    predictor.pruning = PruningConfig(
        strategy="grid", keep_ratio=0.25, memory_keep_ratio=0.5, min_tokens=4
    )
    state = predictor.init_state(video_dir)
    predictor.add_new_points_or_box(state, 0, 1, points=CLICK, labels=[1])
    masks = propagate(predictor, state)
    assert masks.shape == (FRAMES, 1, 1, VIDEO_H, VIDEO_W) and torch.isfinite(masks).all()

    first = predictor.token_scores(state, 0, 1)
    assert first.prompted and not first.memory_attention_ran  # SAM2 skips memory there
    assert neighbourhood(10, 7) <= set(first.stored_memory_idx[0].tolist())
    for t in range(1, FRAMES):
        rec = predictor.token_scores(state, t, 1)
        assert (
            rec.grid == (16, 16)
            and rec.strategy == "grid"
            and rec.maps["combined"].shape == (1, 256)
        )
        assert rec.memory_attention_ran
        assert rec.kept_query_idx.shape == (1, num_kept(256, 0.25, 4))
        assert rec.stored_memory_idx.shape == (1, num_kept(256, 0.5, 4))
        assert list(rec.kept_memory_idx) == [0] + list(range(max(1, t - 6), t))
        for m, idx in rec.kept_memory_idx.items():  # each memory frame with its own indices
            assert torch.equal(idx, predictor.token_scores(state, m, 1).stored_memory_idx)
    assert not torch.equal(  # the cond frame's memory differs from a plain grid frame's
        predictor.token_scores(state, 0, 1).stored_memory_idx,
        predictor.token_scores(state, 1, 1).stored_memory_idx,
    )


def test_prompts_are_kept_on_prompted_frames(predictor, video_dir):
    predictor.pruning = PruningConfig(
        strategy="random", keep_ratio=0.05, min_tokens=4, prompt_radius=1
    )
    state = predictor.init_state(video_dir)
    predictor.add_new_points_or_box(state, 0, 1, box=[8.0, 6.0, 30.0, 27.0])
    corners = neighbourhood(2, 2) | neighbourhood(7, 9)  # box corners (32, 32), (120, 144) px
    assert corners <= set(predictor.token_scores(state, 0, 1).stored_memory_idx[0].tolist())
    propagate(predictor, state)
    # a correction click on a tracked frame: memory attention runs there over every query
    predictor.add_new_points_or_box(state, 2, 1, points=CLICK, labels=[1])
    rec = predictor.token_scores(state, 2, 1)
    assert rec.prompted and rec.memory_attention_ran
    assert rec.kept_query_idx[0].tolist() == list(range(256))


def test_a_correction_click_reads_no_fill(predictor, video_dir, monkeypatch):
    """Tracking fills pruned queries with the previous frame's conditioned features, which
    it drops once it moves on; a correction on a tracked frame keeps every query, so what
    it gets does not depend on a fill that is no longer there (it used to get another)."""
    predictor.pruning = PruningConfig(strategy="mask_prior", keep_ratio=0.1)
    masks = []
    for poisoned in (False, True):
        state = predictor.init_state(video_dir)
        predictor.add_new_mask(state, 0, 1, square_mask())
        propagate(predictor, state)
        if poisoned:  # any value read from the fill would now be NaN

            def poison(call, curr, fill=predictor._fill):
                return torch.full_like(fill(call, curr), torch.nan)

            monkeypatch.setattr(predictor, "_fill", poison)
        _, _, logits = predictor.add_new_points_or_box(state, 3, 1, points=CLICK, labels=[1])
        masks.append(logits)
        monkeypatch.undo()
    assert torch.isfinite(masks[1]).all()
    assert torch.equal(masks[0], masks[1])


def test_context_share_keeps_a_lattice_in_queries_and_memory(predictor, video_dir):
    predictor.pruning = PruningConfig(
        strategy="mask_prior", keep_ratio=0.25, memory_keep_ratio=0.125, context=0.25
    )
    state = predictor.init_state(video_dir)
    predictor.add_new_mask(state, 0, 1, square_mask())
    propagate(predictor, state)
    order = grid_order((16, 16))
    for t in range(1, FRAMES):
        rec = predictor.token_scores(state, t, 1)
        queries = set(rec.kept_query_idx[0].tolist())
        memory = set(rec.stored_memory_idx[0].tolist())
        assert len(queries) == 64 and len(memory) == 32  # the budget is unchanged
        assert set(torch.topk(order, 16).indices.tolist()) <= queries  # 0.25 of 64
        assert set(torch.topk(order, 8).indices.tolist()) <= memory  # 0.25 of 32


def test_min_tokens_when_the_object_is_absent(predictor, video_dir):
    predictor.pruning = PruningConfig(strategy="mask_prior", keep_ratio=0.01, min_tokens=8)
    state = predictor.init_state(video_dir)
    speck = np.zeros((VIDEO_H, VIDEO_W), dtype=bool)
    speck[0, 0] = True  # one pixel: next to nothing there (an empty mask is an input error)
    predictor.add_new_mask(state, 0, 1, speck)
    masks = propagate(predictor, state)
    assert torch.isfinite(masks).all()
    for t in range(FRAMES):
        rec = predictor.token_scores(state, t, 1)
        assert rec.kept_query_idx.shape == (1, 8) and rec.stored_memory_idx.shape == (1, 8)


def test_swapping_config_between_runs_equals_fresh_runs(predictor, video_dir):
    config_a = PruningConfig(strategy="random", keep_ratio=0.5, seed=1)
    config_b = PruningConfig(
        strategy="mask_prior", keep_ratio=0.3, memory_keep_ratio=0.2, fill="previous"
    )

    def fresh(config):
        predictor.pruning = config
        state = predictor.init_state(video_dir)
        predictor.add_new_points_or_box(state, 0, 1, points=CLICK, labels=[1])
        return state, propagate(predictor, state)

    state, masks_a = fresh(config_a)
    predictor.pruning = config_b  # same state, prompts kept: the cond frame is re-scored
    masks_b = propagate(predictor, state)
    assert predictor.token_scores(state, 0, 1).strategy == "mask_prior"
    assert predictor.token_scores(state, 0, 1).stored_memory_idx.shape == (
        1,
        num_kept(256, 0.2, 16),
    )
    assert torch.equal(masks_b, fresh(config_b)[1])
    assert not torch.equal(masks_a, masks_b)
    predictor.pruning = PruningConfig(strategy="none")
    masks_none = propagate(predictor, state)
    with pytest.raises(KeyError, match="strategy 'none'"):
        predictor.token_scores(state, 0, 1)
    assert torch.equal(masks_none, fresh(PruningConfig(strategy="none"))[1])


def test_strategy_none_is_stock_and_state_housekeeping(predictor, video_dir):
    stock = load_sam2("micro", weights="random", predictor_class=SAM2VideoPredictor)
    stock.fill_hole_area = 0
    results = []
    for model in (stock, predictor):
        state = model.init_state(video_dir)
        model.add_new_points_or_box(state, 0, 1, points=CLICK, labels=[1])
        model.add_new_mask(state, 0, 2, square_mask())
        results.append(propagate(model, state))
    assert torch.equal(results[0], results[1])

    predictor.text_encoder = text_encoder
    predictor.set_object_text(state, 2, "red square")
    predictor.remove_object(state, 2)
    assert state["obj_ids"] == [1] and 2 not in state["fsam2"]["text"]
    predictor.reset_state(state)
    assert state["obj_ids"] == [] and state["fsam2"] == new_side_entry()


# --------------------------------------------------------------------------- router and text


def text_encoder(texts: list[str]) -> torch.Tensor:
    """Deterministic stand-in for a CLIP text tower: 8-d, not normalised."""
    seeds = [sum(map(ord, t)) for t in texts]
    return torch.stack(
        [torch.randn(8, generator=torch.Generator().manual_seed(s)) * 3 for s in seeds]
    )


class TinyRouter:
    """A test TokenScorer: feature norm ("visual") plus similarity to the text ("text")."""

    def __init__(self) -> None:
        self.calls: list[ScoringInputs] = []

    def __call__(self, inputs: ScoringInputs) -> dict[str, torch.Tensor]:
        self.calls.append(inputs)
        feats = inputs.features.flatten(2)  # [B, C, HW]
        out = {"visual": feats.norm(dim=1)}
        if "text" in inputs.cues and inputs.text_embedding is not None:
            d = inputs.text_embedding.shape[1]
            out["text"] = (feats[:, :d] * inputs.text_embedding[..., None]).sum(1)
        parts = [out[c] for c in inputs.cues if c in out]
        out["combined"] = torch.stack(parts).sum(0) if parts else torch.zeros_like(out["visual"])
        return out


def test_router_strategies_and_object_text(predictor, video_dir):
    state = predictor.init_state(video_dir)
    predictor.pruning = PruningConfig(strategy="router", keep_ratio=0.5, cues=("visual", "text"))
    with pytest.raises(RuntimeError, match=r"predictor\.router"):
        predictor.add_new_points_or_box(state, 0, 1, points=CLICK, labels=[1])
    assert state["obj_ids"] == []  # refused before the prompt touched the state
    router = TinyRouter()
    predictor.router = router
    with pytest.raises(RuntimeError, match="text encoder"):
        predictor.add_new_points_or_box(state, 0, 1, points=CLICK, labels=[1], text="red square")
    predictor.text_encoder = text_encoder
    with pytest.raises(ValueError, match="non-empty"):
        predictor.add_new_points_or_box(state, 0, 3, points=CLICK, labels=[1], text="   ")
    assert 3 not in state["obj_ids"]  # rejected before the prompt touched the state

    predictor.add_new_points_or_box(state, 0, 1, points=CLICK, labels=[1], text=" red square ")
    assert predictor.get_object_text(state, 1) == "red square"
    seen = router.calls[-1]
    assert seen.cues == ("visual", "text") and seen.frame_idx == 0
    assert seen.keep_ratio == 0.5  # the budget, for a text weight that fades with it
    assert seen.text_embedding.shape == (1, 8)
    torch.testing.assert_close(seen.text_embedding.norm(dim=-1), torch.ones(1))
    torch.testing.assert_close(seen.prompt_points, torch.tensor([[[10.0, 7.0]]]))
    rec = predictor.token_scores(state, 0, 1)
    assert {"visual", "text", "combined"} <= set(rec.maps) and rec.description == "red square"

    predictor.add_new_mask(state, 0, 2, square_mask())  # no text, no describe_object
    assert predictor.get_object_text(state, 2) is None
    predictor.pruning = PruningConfig(strategy="text_only", keep_ratio=0.5)
    with pytest.raises(RuntimeError, match="text_only"):
        propagate(predictor, state)
    predictor.set_object_text(state, 2, "small red square")
    predictor.describe_object = lambda rgb, mask: "tiny red square"
    predictor.add_new_mask(state, 0, 4, square_mask())  # its text arrives after the prompt ran
    assert predictor.get_object_text(state, 4) == "tiny red square"
    propagate(predictor, state)
    assert router.calls[-1].cues == ("text",) and router.calls[-1].prev_mask_logits is not None
    # prompted frames are re-scored with the texts set after their prompts
    assert predictor.token_scores(state, 0, 2).description == "small red square"
    assert predictor.token_scores(state, 0, 4).description == "tiny red square"
    rec = predictor.token_scores(state, 3, 1)
    assert set(rec.maps) >= {"text", "combined"} and rec.description == "red square"


def test_a_router_reading_the_stride8_map_gets_it_from_the_predictor(predictor, video_dir):
    """A router whose text cue reads SAM2's stride-8 map (``RouterConfig.detail_dim``) is
    handed the frame's map, twice the token grid; other scorers are not."""
    from fsam2lib.pruning.router import RouterConfig, TokenRouter

    router = TokenRouter(RouterConfig(predictor.hidden_dim, 8, detail_dim=16)).eval()
    seen = []
    router.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    predictor.router, predictor.text_encoder = router, text_encoder
    predictor.pruning = PruningConfig(strategy="router", keep_ratio=0.5)
    state = predictor.init_state(video_dir)
    predictor.add_new_mask(state, 0, 1, square_mask(), text="red square")
    propagate(predictor, state)
    assert len(seen) >= FRAMES - 1  # every tracked frame, and the prompted one
    assert all(s.detail.shape == (1, 16, 32, 32) for s in seen)
    predictor.router = TinyRouter()
    state = predictor.init_state(video_dir)
    predictor.add_new_mask(state, 0, 1, square_mask(), text="red square")
    propagate(predictor, state)
    assert all(call.detail is None for call in predictor.router.calls)


def test_text_api_errors_and_auto_description(predictor, video_dir):
    state = predictor.init_state(video_dir)
    predictor.add_new_points_or_box(state, 0, 1, points=CLICK, labels=[1])
    with pytest.raises(RuntimeError, match="text encoder"):
        predictor.set_object_text(state, 1, "red square")
    predictor.text_encoder = text_encoder
    with pytest.raises(KeyError, match="unknown object id 7"):
        predictor.set_object_text(state, 7, "red square")
    with pytest.raises(KeyError, match="unknown object id 7"):
        predictor.get_object_text(state, 7)
    for bad in ("", "  \n", None):
        with pytest.raises(ValueError, match="non-empty"):
            predictor.set_object_text(state, 1, bad)
    assert predictor.get_object_text(state, 1) is None

    seen = []
    predictor.describe_object = lambda rgb, mask: seen.append((rgb, mask)) or "big red square"
    predictor.add_new_mask(state, 0, 2, square_mask())
    assert predictor.get_object_text(state, 2) == "big red square"
    rgb, mask = seen[0]
    assert rgb.shape == (3, 256, 256) and 0.0 <= float(rgb.min()) and float(rgb.max()) <= 1.0
    assert float(rgb[0, 80, 60]) > 0.7 > float(rgb[1, 80, 60])  # the red square, de-normalised
    assert mask.dtype == torch.bool and mask.shape == (256, 256) and bool(mask[80, 60])
    predictor.add_new_mask(state, 2, 2, square_mask())  # already described: not asked again
    assert len(seen) == 1
    with pytest.raises(TypeError, match="callable"):
        predictor.describe_object = "red"


def test_describe_object_sees_frames_denormalised_as_sam2_normalised_them():
    """The one definition of the frame normalisation must stay sam2's loader defaults."""
    defaults = inspect.signature(load_video_frames).parameters
    assert IMG_MEAN == defaults["img_mean"].default
    assert IMG_STD == defaults["img_std"].default


def test_token_scores_errors_and_router_is_not_a_submodule(predictor, video_dir):
    keys = list(predictor.state_dict())
    predictor.router = torch.nn.Linear(2, 2)
    assert list(predictor.state_dict()) == keys
    with pytest.raises(TypeError, match="PruningConfig"):
        predictor.pruning = {"keep_ratio": 0.5}
    predictor.pruning = PruningConfig(strategy="grid", keep_ratio=0.5)
    state = predictor.init_state(video_dir)
    predictor.add_new_points_or_box(state, 0, 1, points=CLICK, labels=[1])
    with pytest.raises(KeyError, match="frame 3"):
        predictor.token_scores(state, 3, 1)
    with pytest.raises(KeyError, match="unknown object id 5"):
        predictor.token_scores(state, 0, 5)


# --------------------------------------------------------------------------- fills


@pytest.mark.parametrize("fill", ["unconditioned", "previous", "zeros"])
def test_pruned_positions_get_the_configured_fill(predictor, video_dir, fill):
    predictor.pruning = PruningConfig(strategy="random", keep_ratio=0.25, fill=fill)
    calls = []
    hook = predictor.memory_attention.register_forward_hook(
        lambda m, args, kwargs, out: calls.append(
            (kwargs["curr"][0].clone(), m._plan.query_idx, out.clone())
        ),
        with_kwargs=True,
    )
    try:
        state = predictor.init_state(video_dir)
        predictor.add_new_points_or_box(state, 0, 1, points=CLICK, labels=[1])
        propagate(predictor, state)
    finally:
        hook.remove()
    assert len(calls) == FRAMES - 1
    for i, (curr, kept, out) in enumerate(calls):
        pruned = torch.ones(256, dtype=torch.bool)
        pruned[kept[0]] = False
        if fill == "zeros":
            expected = torch.zeros_like(out)
        elif fill == "unconditioned":
            expected = curr + predictor.no_mem_embed
        elif i > 0:
            expected = calls[i - 1][2]  # the previous frame's memory-conditioned output
        else:  # after the prompted frame, which SAM2 conditions with the no-memory embedding
            with torch.inference_mode():
                frame0 = predictor._get_image_feature(state, 0, 1)[2][-1]
            expected = frame0 + predictor.no_mem_embed
        assert torch.equal(out[pruned], expected[pruned]), i
