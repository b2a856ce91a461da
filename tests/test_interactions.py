"""Every interaction leaves a consistent state.

A rule-based state machine (hypothesis) drives four predictors in lockstep, the way users
drive one: ``init_state`` from frames in memory, a JPEG folder or an MP4; clicks and masks on
any frame, for new and known objects, before and after propagating; descriptions;
propagation forward and backward from any frame with any frame budget; ``remove_object``,
``clear_all_prompts_in_frame`` and ``reset_state``, in any order. After every step:

- the project at keep 1.0 with ``build_predictor``'s defaults (the lean state policy) gives
  the same masks as the project with the stock state policy, and as Meta's predictor until
  Meta's predictor crashes (it does on CPU where SAM2 mixes bfloat16 memory with float32
  weights; from then on it is compared no further in that run);
- the project at keep 0.3 raises nothing but a documented refusal;
- a refusal leaves the state as it was (compared before and after), and a refusal that the
  lean state policy does not cause is the same refusal everywhere.

To reach the bounded state's releases within a short video, every predictor reads a short
memory (``SHORT_MEMORY``: 3 memory frames, 4 object pointers); the same for all four, so the
comparisons stay like for like.

Seeded (``derandomize``): the suite runs ``EXAMPLES`` sequences of up to ``STEPS`` steps and
prints how often each rule ran; ``FSAM2_FUZZ_EXAMPLES=N`` runs N sequences instead.
"""

from __future__ import annotations

import collections
import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)
from PIL import Image

from fsam2lib.predictor import build_predictor
from fsam2lib.predictor.bounded_state import ReleasedFrameError
from fsam2lib.predictor.memory_reads import TrackedOutput
from fsam2lib.pruning.config import PruningConfig
from fsam2lib.videos.frames import init_state_from_frames, read_video_file, write_video_file
from fsam2lib.videos.world import WorldConfig, make_video

FRAMES = 10
OBJECT_IDS = (1, 2, 3)
SOURCES = ("frames", "jpeg", "mp4")
SHORT_MEMORY = {"num_maskmem": 3, "max_obj_ptrs_in_encoder": 4}
EXAMPLES = int(os.environ.get("FSAM2_FUZZ_EXAMPLES", "10"))
STEPS = 20
# SAM2's own refusals (sam2 1.1.0), raised by every predictor alike
SAM2_REFUSALS = ("No input points or masks are provided",)
COUNTS: collections.Counter = collections.Counter()


@dataclass
class Predictors:
    lean: object  # keep 1.0, build_predictor's defaults
    stock_policy: object  # keep 1.0, StatePolicy.stock()
    meta: object  # Meta's SAM2VideoPredictor, same weights
    pruned: object  # keep 0.3, lean policy


@functools.cache
def predictors() -> Predictors:
    from sam2.sam2_video_predictor import SAM2VideoPredictor

    from fsam2lib.models.sam2 import load_sam2

    full = PruningConfig(keep_ratio=1.0, strategy="router")
    made = Predictors(
        lean=build_predictor(pruning=full),
        stock_policy=build_predictor(pruning=full, state_policy="stock"),
        meta=load_sam2("micro", predictor_class=SAM2VideoPredictor),
        pruned=build_predictor(pruning=PruningConfig(keep_ratio=0.3, strategy="router")),
    )
    for predictor in vars(made).values():
        for name, value in SHORT_MEMORY.items():
            setattr(predictor, name, value)
    return made


@functools.cache
def video_files(root: str):
    """The test video (three objects, ten frames) in memory, as JPEGs and as an MP4."""
    config = WorldConfig(height=64, width=64, num_frames=FRAMES, min_objects=3, max_objects=3)
    video = make_video(7, config, split="val")
    folder = Path(root) / "jpeg"
    folder.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(video.frames):
        Image.fromarray(frame).save(folder / f"{t:05d}.jpg", quality=95)
    mp4 = write_video_file(Path(root) / "video.mp4", video.frames)
    return video, folder, mp4


def documented(err: BaseException) -> bool:
    """A refusal the API documents: a bad input, an unknown object, a released frame, or one
    of SAM2's own."""
    if isinstance(err, (ValueError, KeyError, ReleasedFrameError)):
        return True
    return isinstance(err, RuntimeError) and str(err).startswith(SAM2_REFUSALS)


def digest(value: object) -> object:
    """What an inference state holds, as comparable values (tensors by shape, dtype and
    sums); frame caches are left out, they change what is computed, never what is stored."""
    if isinstance(value, torch.Tensor):
        t = value.detach().float()
        return ("tensor", tuple(value.shape), value.dtype, float(t.sum()), float(t.abs().sum()))
    if isinstance(value, dict):
        items = {
            repr(k): digest(v)
            for k, v in value.items()
            if k not in ("cached_features", "images", "score_check")
        }
        if isinstance(value, TrackedOutput):
            items["memory_keep_idx"] = digest(value.memory_keep_idx)
            items["conditioned"] = digest(value.conditioned)
        return (type(value).__name__, items)
    if isinstance(value, (list, tuple)):
        return [digest(v) for v in value]
    if isinstance(value, set):
        return sorted(value)
    if value is None or isinstance(value, (int, float, str, bool)):
        return value
    return type(value).__name__


def frames_of(result: object) -> list:
    """A step's masks as ``[(frame, object ids, logits)]``, whatever the method returned."""
    if result is None:
        return []
    if isinstance(result, list):  # propagation
        return [(t, tuple(ids), m) for t, ids, m in result]
    if len(result) == 2:  # remove_object: (object ids, [(frame, logits)])
        ids, updated = result
        return [(t, tuple(ids), m) for t, m in updated]
    t, ids, masks = result
    return [(t, tuple(ids), masks)]


def assert_same_masks(a: list, b: list, what: str) -> None:
    assert [(t, ids) for t, ids, _ in a] == [(t, ids) for t, ids, _ in b], what
    for (t, _, x), (_, _, y) in zip(a, b, strict=True):
        assert x.shape == y.shape, f"{what}: frame {t}"
        assert (x - y).abs().max() <= 1e-4, f"{what}: frame {t} differs by {(x - y).abs().max()}"


class Interactions(RuleBasedStateMachine):
    root: str = ""

    def __init__(self) -> None:
        super().__init__()
        self.p = predictors()
        self.video, self.folder, self.mp4 = video_files(self.root)
        self.states: dict = {}
        self.meta_alive = True

    # ------------------------------------------------------------------ helpers

    def _init(self, source: str) -> None:
        COUNTS[f"init_state ({source})"] += 1
        self.meta_alive = True
        for name, predictor in vars(self.p).items():
            if source == "frames":
                state = init_state_from_frames(predictor, self.video.frames)
            elif source == "jpeg":
                state = predictor.init_state(str(self.folder))
            elif name == "meta":  # sam2's MP4 reader needs decord: the same decoded frames
                state = init_state_from_frames(predictor, read_video_file(self.mp4))
            else:
                state = predictor.init_state(str(self.mp4))
            self.states[name] = state

    def _step(self, rule_name: str, action, meta: bool = True) -> None:
        """``action(predictor, state)`` on every predictor, compared as the module says."""
        COUNTS[rule_name] += 1
        lean, refusal = self._attempt("lean", rule_name, action)
        if refusal is not None:
            if not isinstance(refusal, ReleasedFrameError):  # not the lean policy's own
                with pytest.raises(type(refusal)):
                    action(self.p.stock_policy, self.states["stock_policy"])
            return
        stock = frames_of(action(self.p.stock_policy, self.states["stock_policy"]))
        assert_same_masks(lean, stock, f"{rule_name}: lean vs stock state policy")
        if meta and self.meta_alive:
            try:
                theirs = frames_of(action(self.p.meta, self.states["meta"]))
            except RuntimeError as err:  # Meta's predictor on CPU
                COUNTS[f"Meta's predictor crashed ({str(err)[:40]}...)"] += 1
                self.meta_alive = False
            else:
                assert_same_masks(lean, theirs, f"{rule_name}: project vs Meta's predictor")
        pruned, _ = self._attempt("pruned", f"{rule_name} at keep 0.3", action)
        assert all(torch.isfinite(m).all() for _, _, m in pruned or []), rule_name

    def _attempt(self, name: str, label: str, action) -> tuple[list | None, Exception | None]:
        """``action`` on one predictor: its masks, or its refusal, which must be documented
        and leave that predictor's state as it was (counted under ``label``)."""
        state = self.states[name]
        before = digest(state)
        try:
            return frames_of(action(getattr(self.p, name), state)), None
        except Exception as err:
            assert documented(err), f"{label}: undocumented {type(err).__name__}: {err}"
            assert digest(state) == before, f"{label} refused after changing the state"
            COUNTS[f"{label}: refused ({type(err).__name__})"] += 1
            return None, err

    def has_objects(self) -> bool:
        """Whether an object was prompted (the rules that need one run only then: without,
        every sequence would spend most of its steps on SAM2's "add inputs first")."""
        return bool(self.states and self.states["lean"]["obj_ids"])

    def _is_new_after_tracking(self, obj: int) -> bool:
        state = self.states["lean"]
        tracked = any(state["frames_tracked_per_obj"].values())
        return tracked and obj not in state["obj_id_to_idx"]

    def _object_mask(self, frame: int, obj: int) -> np.ndarray:
        mask = self.video.masks[frame] == obj
        if mask.sum() < 4:  # the object is not in view: a square where it might be
            mask = np.zeros_like(mask)
            mask[8 * obj : 8 * obj + 12, 20:32] = True
        return mask

    # ------------------------------------------------------------------ rules

    @initialize(source=st.sampled_from(SOURCES))
    def init(self, source: str) -> None:
        self._init(source)

    @rule(
        frame=st.integers(0, FRAMES - 1),
        obj=st.sampled_from(OBJECT_IDS),
        negative=st.booleans(),
        clear=st.booleans(),
    )
    def add_points(self, frame: int, obj: int, negative: bool, clear: bool) -> None:
        if self._is_new_after_tracking(obj):
            COUNTS["add a new object after propagating"] += 1
        ys, xs = np.nonzero(self._object_mask(frame, obj))
        points = [[float(np.median(xs)), float(np.median(ys))]]
        labels = [1]
        if negative:
            points.append([2.0, 2.0])
            labels.append(0)
        points_arr = np.array(points, dtype=np.float32)
        labels_arr = np.array(labels, dtype=np.int32)
        self._step(
            "add_new_points_or_box",
            lambda p, s: p.add_new_points_or_box(
                s, frame, obj, points=points_arr, labels=labels_arr, clear_old_points=clear
            ),
        )

    @rule(frame=st.integers(0, FRAMES - 1), obj=st.sampled_from(OBJECT_IDS))
    def add_mask(self, frame: int, obj: int) -> None:
        if self._is_new_after_tracking(obj):
            COUNTS["add a new object after propagating"] += 1
        mask = self._object_mask(frame, obj)
        self._step("add_new_mask", lambda p, s: p.add_new_mask(s, frame, obj, mask))

    @precondition(lambda self: self.has_objects())
    @rule(obj=st.sampled_from(OBJECT_IDS))
    def set_text(self, obj: int) -> None:
        text = self.video.descriptions.get(obj, "a thing")
        self._step("set_object_text", lambda p, s: p.set_object_text(s, obj, text), meta=False)

    @precondition(lambda self: self.has_objects())
    @rule(
        start=st.none() | st.integers(0, FRAMES - 1),
        budget=st.none() | st.integers(0, FRAMES),
        reverse=st.booleans(),
    )
    def propagate(self, start: int | None, budget: int | None, reverse: bool) -> None:
        COUNTS["propagate_in_video reverse" if reverse else "propagate_in_video forward"] += 1
        self._step(
            "propagate_in_video",
            lambda p, s: list(p.propagate_in_video(s, start, budget, reverse)),
        )

    @precondition(lambda self: self.has_objects())
    @rule()
    def propagate_everything(self) -> None:
        """The call most users make, as its own rule: hypothesis enables a random subset of
        the rules in each sequence (swarm testing), and propagation must run in most."""
        COUNTS["propagate_in_video forward"] += 1
        self._step("propagate_in_video", lambda p, s: list(p.propagate_in_video(s)))

    @precondition(lambda self: self.has_objects())
    @rule(obj=st.sampled_from(OBJECT_IDS))
    def remove(self, obj: int) -> None:
        self._step("remove_object", lambda p, s: p.remove_object(s, obj))

    @precondition(lambda self: self.has_objects())
    @rule(frame=st.integers(0, FRAMES - 1), obj=st.sampled_from(OBJECT_IDS))
    def clear_prompts(self, frame: int, obj: int) -> None:
        self._step(
            "clear_all_prompts_in_frame", lambda p, s: p.clear_all_prompts_in_frame(s, frame, obj)
        )

    @precondition(lambda self: self.has_objects())
    @rule()
    def reset(self) -> None:
        self._step("reset_state", lambda p, s: p.reset_state(s))


def test_random_interaction_sequences_leave_a_consistent_state(tmp_path_factory, capsys):
    Interactions.root = str(tmp_path_factory.mktemp("interactions"))
    COUNTS.clear()
    run_state_machine_as_test(
        Interactions,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
    with capsys.disabled():
        print("\nrule counts:", dict(sorted(COUNTS.items())))
    for rule_name in (
        "add_new_points_or_box",
        "add_new_mask",
        "set_object_text",
        "propagate_in_video",
        "remove_object",
        "clear_all_prompts_in_frame",
        "reset_state",
        "add a new object after propagating",
        "propagate_in_video reverse",
    ):
        assert COUNTS[rule_name] >= 3, f"{rule_name} ran {COUNTS[rule_name]} times: {COUNTS}"
    assert sum(COUNTS[f"init_state ({s})"] for s in SOURCES) >= EXAMPLES


# ---------------------------------------------------------------------- what the machine found


def _two_objects_tracked(predictor, video):
    """Objects 1 and 2 prompted on frame 0 and tracked through the video."""
    state = init_state_from_frames(predictor, video.frames)
    for obj in (1, 2):
        predictor.add_new_mask(state, 0, obj, video.masks[0] == obj)
    assert len(list(predictor.propagate_in_video(state))) == FRAMES
    return state


def _object_1_prompted(tmp_path):
    """The lean predictor, the test video and a state with object 1 prompted on frame 0."""
    lean = predictors().lean
    video, _, _ = video_files(str(tmp_path))
    state = init_state_from_frames(lean, video.frames)
    lean.add_new_mask(state, 0, 1, video.masks[0] == 1)
    return lean, video, state


def test_clearing_the_prompts_of_an_unknown_object_is_refused(tmp_path):
    """Stock SAM2 registers the unknown id as an object without a prompt, and every later
    propagation refuses it (found by the state machine)."""
    lean, _, state = _object_1_prompted(tmp_path)
    before = digest(state)
    with pytest.raises(KeyError, match="unknown object id 2"):
        lean.clear_all_prompts_in_frame(state, 0, 2)
    assert digest(state) == before
    assert len(list(lean.propagate_in_video(state))) == FRAMES


def test_a_propagation_with_an_unprompted_object_is_refused_before_anything_moves(tmp_path):
    """SAM2 finds the object without a prompt only after moving the other objects' prompts
    into tracking memory (found by the state machine)."""
    lean, video, state = _object_1_prompted(tmp_path)
    lean.add_new_mask(state, 3, 2, video.masks[3] == 2)
    lean.clear_all_prompts_in_frame(state, 3, 2)  # object 2 keeps no prompt
    before = digest(state)
    with pytest.raises(RuntimeError, match="object id 2; please add inputs first"):
        lean.propagate_in_video(state)
    assert digest(state) == before


def test_a_prompt_on_a_frame_whose_outputs_were_released_is_refused_before_any_change(tmp_path):
    """A new object's first prompt reads no memory, but SAM2 shows every object's mask on the
    prompted frame: with another object's output there released, the prompt used to register
    the new object and then fail. Now it is refused first; the stock policy serves it."""
    p = predictors()
    video, _, _ = video_files(str(tmp_path))
    state = _two_objects_tracked(p.lean, video)
    released = state["output_dict_per_obj"][0]["non_cond_frame_outputs"].released
    assert released, "the short memory should let the bounded state release frames"
    frame = max(released)
    before = digest(state)
    with pytest.raises(ReleasedFrameError, match="released object 1's output on"):
        p.lean.add_new_mask(state, frame, 3, video.masks[frame] > 0)
    assert digest(state) == before
    served = _two_objects_tracked(p.stock_policy, video)
    _, ids, _ = p.stock_policy.add_new_mask(served, frame, 3, video.masks[frame] > 0)
    assert list(ids) == [1, 2, 3]


# ---------------------------------------------------------------------- pruned tracking, recorded

REFERENCE = Path(__file__).parent / "data" / "keep03_tracks.npz"


def keep03_tracks(tmp: str) -> dict[str, np.ndarray]:
    """Masks at keep 0.3 (lean policy, short memory), bool ``[frames, objects, H, W]``:
    objects 1 and 2 prompted on frame 0 and tracked forward; object 3 then added on frame 8
    and all three tracked again; after a reset, objects 2 and 3 prompted on the last frame
    (object 1 has left by then) and tracked in reverse."""
    pruned = predictors().pruned
    video, _, _ = video_files(tmp)
    last = FRAMES - 1
    state = init_state_from_frames(pruned, video.frames)
    for obj in (1, 2):
        pruned.add_new_mask(state, 0, obj, video.masks[0] == obj, text=video.descriptions[obj])
    forward = [m > 0 for _, _, m in pruned.propagate_in_video(state)]
    pruned.add_new_mask(state, 8, 3, video.masks[8] == 3)
    added = [m > 0 for _, _, m in pruned.propagate_in_video(state)]
    pruned.reset_state(state)
    for obj in (2, 3):
        pruned.add_new_mask(state, last, obj, video.masks[last] == obj)
    backward = [m > 0 for _, _, m in pruned.propagate_in_video(state, reverse=True)][::-1]
    return {
        name: torch.stack(frames)[:, :, 0].numpy()
        for name, frames in (("forward", forward), ("added", added), ("reverse", backward))
    }


def test_pruned_multi_object_and_reverse_tracks_match_their_recorded_reference(tmp_path):
    """Regenerate the reference after an intended change with
    ``FSAM2_RECORD_REFERENCE=1 pytest tests/test_interactions.py -k recorded``."""
    tracks = keep03_tracks(str(tmp_path))
    if os.environ.get("FSAM2_RECORD_REFERENCE") == "1":
        REFERENCE.parent.mkdir(exist_ok=True)
        np.savez_compressed(REFERENCE, **tracks)
    reference = np.load(REFERENCE)
    for name, masks in tracks.items():
        assert masks.shape == reference[name].shape, name
        assert reference[name].any(axis=(0, 2, 3)).all(), f"{name}: an object never tracked"
        differing = (masks != reference[name]).mean()
        assert differing <= 1e-3, f"{name}: {differing:.2%} of mask pixels moved"


def test_a_propagation_starting_next_to_released_frames_is_refused_before_any_change(tmp_path):
    """Objects tracked in reverse from the last frame, a new object prompted on frame 6, then
    a forward propagation from frame 6: its first frame reads frames 3-5, which the bounded
    state released. SAM2 had already moved the new prompt into memory when that read failed;
    now the propagation is refused before anything moves (the stock policy serves it)."""
    p = predictors()
    video, _, _ = video_files(str(tmp_path))
    last = FRAMES - 1

    def reversed_then_prompted(predictor):
        state = init_state_from_frames(predictor, video.frames)
        for obj in (2, 3):
            predictor.add_new_mask(state, last, obj, video.masks[last] == obj)
        assert len(list(predictor.propagate_in_video(state, reverse=True))) == FRAMES
        predictor.add_new_mask(state, 6, 1, video.masks[6] == 1)
        return state

    state = reversed_then_prompted(p.lean)
    before = digest(state)
    with pytest.raises(ReleasedFrameError, match="propagation from frame 6"):
        p.lean.propagate_in_video(state, start_frame_idx=6)
    assert digest(state) == before
    served = reversed_then_prompted(p.stock_policy)
    assert len(list(p.stock_policy.propagate_in_video(served, start_frame_idx=6))) == 4
