"""``PrunedSAM2VideoPredictor``: SAM2's video predictor with token pruning before memory
attention, a text description per object, and inspectable per-frame token scores.

How it plugs into sam2 1.1.0 without editing or copying it:

* **Scoring** happens in ``_run_single_frame_inference`` -- the one place every frame SAM2
  processes for one object passes through (prompted frames and tracked frames alike, each
  object with batch size 1). Before SAM2 runs, the frame's stride-16 tokens are scored with
  the configured strategy (:class:`~fsam2lib.pruning.scorers.ScoringInputs`) and the query
  tokens are selected; after it, the frame's own memory tokens are selected (top
  ``memory_keep_ratio`` of its scores; on prompted frames the object's tokens -- its
  output mask dilated by ``prompt_radius`` -- rank first, and the clicks' / box corners'
  neighbourhoods are always kept, on queries and memory alike). Both decisions are plain
  functions of :mod:`~fsam2lib.predictor.frame_pruning`.
* **Memory frames are identified by observation, not by re-deriving SAM2's selection.**
  The output dict SAM2 stores per frame is returned as a
  :class:`~fsam2lib.predictor.memory_reads.TrackedOutput` (a ``dict`` that knows its frame
  and kept memory indices). SAM2 keeps that very object: it moves it
  from ``temp_output_dict_per_obj`` to ``output_dict_per_obj`` in
  ``propagate_in_video_preflight`` (adding its memory with ``out["maskmem_features"] = ...``)
  and between cond/non-cond dicts when prompts are cleared. In
  ``_prepare_memory_conditioned_features`` SAM2 subscripts ``prev["maskmem_features"]``
  exactly once per memory frame, in concatenation order, each giving ``H*W`` tokens, with
  the object-pointer tokens appended last. While ``record_memory_reads`` is active those
  reads are logged, so memory attention knows which frame each ``H*W`` chunk came from; it
  checks that ``chunks * H*W + pointer tokens`` equals the memory length and fails loudly
  if not.
* **Memory attention** (:class:`~fsam2lib.pruning.attention.PrunedMemoryAttention`,
  installed in place on ``self.memory_attention``) receives a
  :class:`~fsam2lib.pruning.attention.PruningPlan` for the duration of that call, attends
  over kept tokens with RoPE at their true grid positions and scatters back onto the
  configured fill.

Inference-state additions (``state["fsam2"]``, see :mod:`~fsam2lib.predictor.records`),
keyed by client object id (stable under ``remove_object``): ``"text"`` (description,
embedding, source) and ``"records"`` (per frame: scores per cue, combined, kept query /
memory indices, the config used; ``token_scores`` shows one as ``TokenScores``). Each
frame's ``TrackedOutput`` carries its kept memory indices and, when the frame is processed
under a pruning strategy with ``fill="previous"``, its memory-conditioned features (the next
frame's fill; kept on prompted frames and on the latest tracked frame only).

What the state stores is set by ``predictor.state_policy``
(:class:`~fsam2lib.predictor.state_policy.StatePolicy`): by default a pruned frame's memory
is stored compact (:meth:`TrackedOutput.compact`), outputs SAM2 can no longer read are
released during propagation (:mod:`~fsam2lib.predictor.bounded_state`), token records are
kept for the latest frames, and JPEG folders / MP4s are decoded lazily
(:mod:`~fsam2lib.videos.streaming`). A compact conditioning frame whose selection must change
gets its dense memory back from SAM2's own memory encoder, called as SAM2's
``propagate_in_video_preflight`` calls it (same inputs, same bits).

Selections are made when a frame is processed, under the config in force then. Swap
``predictor.pruning`` between runs; prompted (conditioning) frames scored under another
config, router or text are re-scored at the start of ``propagate_in_video``, so
"prompt once, propagate under several configs" gives each config its own selection.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from sam2.sam2_video_predictor import SAM2VideoPredictor
from torch import Tensor

from fsam2lib.predictor.bounded_state import (
    check_frame_kept,
    check_not_released,
    check_propagation_start,
    release_behind,
    trim_heap,
    trim_records,
)
from fsam2lib.predictor.frame_pruning import prompt_points, score_frame, select_memory
from fsam2lib.predictor.input_checks import (
    VIDEO_SUFFIXES,
    check_every_object_prompted,
    check_frame_idx,
    check_mask,
    check_obj_id,
    check_points_and_box,
    check_video_path,
)
from fsam2lib.predictor.memory_reads import TrackedOutput, record_memory_reads
from fsam2lib.predictor.object_text import describer_inputs, encode_text
from fsam2lib.predictor.records import (
    PER_OBJECT_KEYS,
    SIDE_KEY,
    FrameRecord,
    ScoreCheck,
    TokenScores,
    new_side_entry,
    side_entry,
)
from fsam2lib.predictor.state_policy import StatePolicy
from fsam2lib.pruning.attention import PrunedMemoryAttention, PruningPlan
from fsam2lib.pruning.config import ROUTER_STRATEGIES, PruningConfig
from fsam2lib.pruning.router import reads_detail
from fsam2lib.pruning.scorers import ScoringInputs, make_scorer
from fsam2lib.videos.frames import IN_MEMORY_VIDEO, init_state_from_frames, read_video_file
from fsam2lib.videos.streaming import stream_jpeg_folder, stream_video_file


@dataclass
class _FrameCall:
    """Context of the frame being processed, for the hooks deeper in SAM2's call chain."""

    state: dict
    obj_id: object
    output_dict: dict
    frame_idx: int
    reverse: bool
    record: FrameRecord | None
    conditioned: Tensor | None = None


def _neighbour_output(output_dict: dict, frame_idx: int, reverse: bool) -> dict | None:
    """The stored output of the frame processed just before ``frame_idx`` in tracking order."""
    t = frame_idx + 1 if reverse else frame_idx - 1
    out = output_dict["cond_frame_outputs"].get(t)
    return output_dict["non_cond_frame_outputs"].get(t) if out is None else out


class PrunedSAM2VideoPredictor(SAM2VideoPredictor):
    """SAM2's video predictor with token pruning (see the module docstring for the design).

    Every stock method keeps its signature and behaviour; with ``pruning.strategy == "none"``
    (the default) results are stock SAM2's. Extra attributes, settable at any time and never
    registered as submodules (state-dict keys stay SAM2's; move them to the model's device
    yourself):

    pruning: :class:`~fsam2lib.pruning.PruningConfig`.
    state_policy: :class:`~fsam2lib.predictor.state_policy.StatePolicy`, what inference
        states keep (default: the lean policy; ``StatePolicy.stock()`` for stock SAM2's).
    router: the learned :class:`~fsam2lib.pruning.scorers.TokenScorer` for strategies
        "router" and "text_only" (``ScoringInputs.cues`` says which cues to use).
    text_encoder: ``Callable[[list[str]], Tensor [N, D]]`` (e.g. from ``load_clip``); needed
        as soon as an object gets text.
    describe_object: ``Callable[[Tensor, Tensor], str | None]`` called with the prompted frame
        (RGB ``[3, S, S]`` float in [0, 1] at the model's input size S) and the object's
        predicted mask there (bool ``[S, S]``, possibly empty) when an object is prompted
        without text and has none; its answer becomes the object's text (source "auto").
        If it is None (default) such an object has no text and the text cue is off for it.
    """

    _PLAIN_ATTRS = frozenset(
        {
            "pruning",
            "state_policy",
            "router",
            "text_encoder",
            "describe_object",
            "_call",
            "_features_memo",
            "_frame_cache",
        }
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        PrunedMemoryAttention.convert(self.memory_attention)
        self.pruning = PruningConfig(strategy="none")
        self.state_policy = StatePolicy()
        self.router = None
        self.text_encoder = None
        self.describe_object = None
        self._call = None
        self._features_memo = None
        self._frame_cache = None

    def __setattr__(self, name: str, value: object) -> None:
        if name not in self._PLAIN_ATTRS:
            super().__setattr__(name, value)
            return
        if name == "pruning" and not isinstance(value, PruningConfig):
            raise TypeError(f"pruning must be a PruningConfig, got {type(value).__name__}")
        if name == "state_policy" and not isinstance(value, StatePolicy):
            raise TypeError(f"state_policy must be a StatePolicy, got {type(value).__name__}")
        if name in ("router", "text_encoder", "describe_object") and not (
            value is None or callable(value)
        ):
            raise TypeError(f"{name} must be callable or None, got {type(value).__name__}")
        object.__setattr__(self, name, value)  # bypass nn.Module registration

    # ------------------------------------------------------------------ stock API, extended

    @torch.inference_mode()
    def init_state(
        self,
        video_path,
        offload_video_to_cpu=False,
        offload_state_to_cpu=False,
        async_loading_frames=False,
    ):
        """Stock ``init_state``; also creates the state's ``"fsam2"`` entry. A missing, empty or
        unreadable ``video_path`` is a clear error (see ``input_checks``). Under
        ``state_policy.streaming`` a JPEG folder or MP4 is decoded lazily (then
        ``async_loading_frames`` has nothing left to do and is ignored)."""
        if video_path != IN_MEMORY_VIDEO:
            check_video_path(video_path)
            if self.state_policy.streaming:
                with self._streamed_loader(offload_video_to_cpu):
                    state = super().init_state(
                        str(video_path),
                        offload_video_to_cpu=offload_video_to_cpu,
                        offload_state_to_cpu=offload_state_to_cpu,
                    )
                state[SIDE_KEY] = new_side_entry()
                return state
            if Path(video_path).suffix in VIDEO_SUFFIXES:  # decoded here (sam2 needs decord)
                return init_state_from_frames(
                    self,
                    read_video_file(video_path),
                    offload_video_to_cpu=offload_video_to_cpu,
                    offload_state_to_cpu=offload_state_to_cpu,
                    async_loading_frames=async_loading_frames,
                )
        state = super().init_state(
            video_path,
            offload_video_to_cpu=offload_video_to_cpu,
            offload_state_to_cpu=offload_state_to_cpu,
            async_loading_frames=async_loading_frames,
        )
        state[SIDE_KEY] = new_side_entry()
        return state

    @torch.inference_mode()
    def add_new_points_or_box(
        self,
        inference_state,
        frame_idx,
        obj_id,
        points=None,
        labels=None,
        clear_old_points=True,
        normalize_coords=True,
        box=None,
        text: str | None = None,
    ):
        """Stock clicks / box prompt. ``text`` (optional) sets the object's description
        before the frame is scored; without it, ``describe_object`` (if set) may give one.
        Bad frame indices, object ids, points and boxes raise before the state changes."""
        check_frame_idx(inference_state, frame_idx)
        check_obj_id(obj_id)
        check_points_and_box(inference_state, points, labels, box, normalize_coords)
        check_not_released(self, inference_state, obj_id, frame_idx)
        make_scorer(self.pruning, self.router)  # fail before touching the state
        with self._prompt_text(inference_state, obj_id, text):
            result = super().add_new_points_or_box(
                inference_state,
                frame_idx,
                obj_id,
                points=points,
                labels=labels,
                clear_old_points=clear_old_points,
                normalize_coords=normalize_coords,
                box=box,
            )
        self._describe_if_needed(inference_state, frame_idx, obj_id)
        return result

    @torch.inference_mode()
    def add_new_mask(self, inference_state, frame_idx, obj_id, mask, text: str | None = None):
        """Stock mask prompt; ``text`` as in :meth:`add_new_points_or_box`. The mask must be a
        non-empty boolean ``[H, W]`` of the video's size (stock SAM2 resizes any shape)."""
        check_frame_idx(inference_state, frame_idx)
        check_obj_id(obj_id)
        check_mask(inference_state, mask)
        check_not_released(self, inference_state, obj_id, frame_idx)
        make_scorer(self.pruning, self.router)  # fail before touching the state
        with self._prompt_text(inference_state, obj_id, text):
            result = super().add_new_mask(inference_state, frame_idx, obj_id, mask)
        self._describe_if_needed(inference_state, frame_idx, obj_id)
        return result

    def propagate_in_video(
        self, inference_state, start_frame_idx=None, max_frame_num_to_track=None, reverse=False
    ):
        """Stock propagation; a start frame outside the video or a negative frame budget is a
        clear error before anything runs."""
        if start_frame_idx is not None:
            check_frame_idx(inference_state, start_frame_idx)
        if max_frame_num_to_track is not None and (
            isinstance(max_frame_num_to_track, bool)
            or not isinstance(max_frame_num_to_track, int)
            or max_frame_num_to_track < 0
        ):
            raise ValueError(
                f"max_frame_num_to_track must be an int >= 0, got {max_frame_num_to_track!r}"
            )
        check_every_object_prompted(inference_state)
        check_propagation_start(self, inference_state, start_frame_idx, reverse)
        frames = super().propagate_in_video(
            inference_state, start_frame_idx, max_frame_num_to_track, reverse
        )
        policy = self.state_policy
        if policy.bounded or policy.trim_memory:
            frames = self._bounded(inference_state, frames, reverse, policy)
        return self._scores_checked(inference_state, frames)

    @torch.inference_mode()
    def propagate_in_video_preflight(self, inference_state):
        """Stock preflight, then bring conditioning frames' selections up to date."""
        super().propagate_in_video_preflight(inference_state)
        self._refresh_conditioning_frames(inference_state)

    @torch.inference_mode()
    def reset_state(self, inference_state):
        """Stock ``reset_state``; also forgets texts and token records."""
        super().reset_state(inference_state)
        inference_state[SIDE_KEY] = new_side_entry()

    @torch.inference_mode()
    def clear_all_prompts_in_frame(self, inference_state, frame_idx, obj_id, need_output=True):
        """Stock, for a known object only: stock SAM2 registers an unknown id as a new object
        with no prompt, which every later propagation then refuses."""
        check_frame_idx(inference_state, frame_idx)
        self._check_obj(inference_state, obj_id)
        check_frame_kept(inference_state, frame_idx, "clearing the prompts on")
        return super().clear_all_prompts_in_frame(
            inference_state, frame_idx, obj_id, need_output=need_output
        )

    @torch.inference_mode()
    def remove_object(self, inference_state, obj_id, strict=False, need_output=True):
        """Stock ``remove_object``; also forgets the object's text and token records."""
        obj_idx = inference_state["obj_id_to_idx"].get(obj_id)
        if obj_idx is not None and len(inference_state["obj_ids"]) > 1:
            prompted = set(inference_state["point_inputs_per_obj"][obj_idx])
            for t in sorted(prompted | set(inference_state["mask_inputs_per_obj"][obj_idx])):
                check_frame_kept(inference_state, t, f"removing object {obj_id!r} from")
        result = super().remove_object(
            inference_state, obj_id, strict=strict, need_output=need_output
        )
        if obj_id not in inference_state["obj_id_to_idx"]:
            for key in PER_OBJECT_KEYS:
                side_entry(inference_state)[key].pop(obj_id, None)
        return result

    def compile_pruning(self, **compile_kwargs) -> PrunedSAM2VideoPredictor:
        """``torch.compile`` the per-frame work pruning touches: memory attention, stock and
        pruned paths (:meth:`~fsam2lib.pruning.attention.PrunedMemoryAttention.compile_paths`),
        and the router when it is a module. Each compiles to one graph; the encoder, decoder
        and memory encoder are left as they are (compile them as sam2's VOS predictor does,
        if wanted). Options as ``torch.compile``'s (default ``dynamic=True``)."""
        options = {"dynamic": True, **compile_kwargs}
        PrunedMemoryAttention.convert(self.memory_attention).compile_paths(**options)
        if isinstance(self.router, torch.nn.Module):
            self.router.compile(fullgraph=True, **options)
        return self

    # ------------------------------------------------------------------ text and token scores

    @torch.inference_mode()
    def set_object_text(self, inference_state: dict, obj_id: object, text: str) -> None:
        """Set (or replace) the description of a known object; encoded with ``text_encoder``."""
        self._check_obj(inference_state, obj_id)
        side_entry(inference_state)["text"][obj_id] = encode_text(
            self.text_encoder, text, "user", self.device
        )

    def get_object_text(self, inference_state: dict, obj_id: object) -> str | None:
        """The object's description, or None if it has none."""
        self._check_obj(inference_state, obj_id)
        entry = side_entry(inference_state)["text"].get(obj_id)
        return None if entry is None else entry.text

    def token_scores(self, inference_state: dict, frame_idx: int, obj_id: object) -> TokenScores:
        """Scores and selections of one processed frame for one object (see
        :class:`~fsam2lib.predictor.records.TokenScores`)."""
        self._check_obj(inference_state, obj_id)
        record = side_entry(inference_state)["records"].get(obj_id, {}).get(frame_idx)
        if record is None:
            raise KeyError(
                f"no token scores for object {obj_id!r} on frame {frame_idx}: the frame has not "
                "been processed with a pruning strategy (strategy 'none' records nothing), or "
                "its record was dropped: state_policy.score_records="
                f"{self.state_policy.score_records} keeps the latest frames' records only "
                "(StatePolicy(score_records=None) keeps all)"
            )
        return TokenScores.of(record)

    # ------------------------------------------------------------------ hooks into SAM2

    def _run_single_frame_inference(
        self,
        inference_state,
        output_dict,
        frame_idx,
        batch_size,
        is_init_cond_frame,
        point_inputs,
        mask_inputs,
        reverse,
        run_mem_encoder,
        prev_sam_mask_logits=None,
    ):
        """Score the frame, run stock inference with the plan in reach, select its memory."""
        obj_id = self._obj_id_of(inference_state, output_dict)
        prompted = point_inputs is not None or mask_inputs is not None
        record = None
        if self.pruning.strategy != "none" and not (
            prompted and self._awaits_description(inference_state, obj_id)
        ):
            record = self._score_frame(
                inference_state,
                obj_id,
                output_dict,
                frame_idx,
                batch_size,
                is_init_cond_frame,
                point_inputs,
                mask_inputs,
                reverse,
            )
            if record.finite is not None:
                side_entry(inference_state)["score_check"].add(record.finite, frame_idx, obj_id)
        call = _FrameCall(inference_state, obj_id, output_dict, frame_idx, reverse, record)
        self._call = call
        try:
            out, pred_masks = super()._run_single_frame_inference(
                inference_state,
                output_dict,
                frame_idx,
                batch_size,
                is_init_cond_frame,
                point_inputs,
                mask_inputs,
                reverse,
                run_mem_encoder,
                prev_sam_mask_logits,
            )
        finally:
            self._call = self._features_memo = None
        tracked = TrackedOutput(out, frame_idx, is_init_cond_frame, reverse, prompted)
        if self.pruning.strategy != "none" and self.pruning.fill == "previous":
            tracked.conditioned = call.conditioned  # the next frame's fill reads it
        previous = _neighbour_output(output_dict, frame_idx, reverse)
        if isinstance(previous, TrackedOutput) and not previous.prompted:
            previous.conditioned = None  # only the latest tracked frame's is needed
        records = side_entry(inference_state)["records"].setdefault(obj_id, {})
        if record is None:
            records.pop(frame_idx, None)
        else:
            record.memory_keep_idx = tracked.memory_keep_idx = self._select_memory(
                record, out["pred_masks"]
            )
            if self.state_policy.compact_memory:
                tracked.compact()
            records.pop(frame_idx, None)  # re-inserted last: records stay in processing order
            records[frame_idx] = record
            trim_records(records, self.state_policy.score_records)
        return tracked, pred_masks

    def _get_image_feature(self, inference_state, frame_idx, batch_size):
        """Stock; the features just prepared for scoring this frame are handed over once
        rather than prepared again (SAM2 re-expands and re-flattens even a cached frame)."""
        memo, self._features_memo = self._features_memo, None
        if memo is not None and memo[:3] == (id(inference_state), frame_idx, batch_size):
            return memo[3]
        return super()._get_image_feature(inference_state, frame_idx, batch_size)

    def _prepare_memory_conditioned_features(
        self,
        frame_idx,
        is_init_cond_frame,
        current_vision_feats,
        current_vision_pos_embeds,
        feat_sizes,
        output_dict,
        num_frames,
        track_in_reverse=False,
    ):
        """Stock memory conditioning; with a pruning record, memory attention is pruned."""
        kwargs = dict(
            frame_idx=frame_idx,
            is_init_cond_frame=is_init_cond_frame,
            current_vision_feats=current_vision_feats,
            current_vision_pos_embeds=current_vision_pos_embeds,
            feat_sizes=feat_sizes,
            output_dict=output_dict,
            num_frames=num_frames,
            track_in_reverse=track_in_reverse,
        )
        call = self._call
        record = None if call is None else call.record
        if record is None and (call is None or self.pruning.strategy == "none"):
            pix = super()._prepare_memory_conditioned_features(**kwargs)
        else:
            # a frame left unscored under a pruning strategy (a prompt awaiting its
            # description) keeps every query, but may still read compact memory frames
            curr = current_vision_feats[-1]
            hw = curr.shape[0]
            attention = PrunedMemoryAttention.convert(self.memory_attention)
            plan = PruningPlan(
                grid=tuple(feat_sizes[-1]),
                query_idx=torch.arange(hw, device=curr.device).expand(curr.shape[1], -1)
                if record is None
                else record.query_idx,
                fill=curr if record is None else self._fill(call, curr),
            )
            with record_memory_reads() as reads, attention.planned(plan):
                plan.memory_sources = reads
                pix = super()._prepare_memory_conditioned_features(**kwargs)
            if plan.attended is not None and record is not None:
                record.memory_attention_ran = True
                record.attended_memory = plan.attended
        if call is not None:
            call.conditioned = pix
        return pix

    # ------------------------------------------------------------------ helpers of the above

    @contextmanager
    def _streamed_loader(self, offload_video_to_cpu: bool) -> Iterator[None]:
        """sam2's frame loader swapped, for one ``init_state``, for a lazy one."""
        from unittest import mock

        prefetch = self.state_policy.prefetch

        def load(video_path, image_size, *_, compute_device=None, **__):
            device = "cpu" if offload_video_to_cpu else (compute_device or self.device)
            if Path(video_path).suffix in VIDEO_SUFFIXES:
                return stream_video_file(video_path, image_size, device, prefetch)
            return stream_jpeg_folder(video_path, image_size, device, prefetch)

        with mock.patch("sam2.sam2_video_predictor.load_video_frames", load):
            yield

    def _bounded(
        self, state: dict, frames: Iterator, reverse: bool, policy: StatePolicy
    ) -> Iterator:
        """Stock propagation; after each frame, under ``policy.bounded``, release what SAM2 can
        no longer read: old outputs, and the finished frame's cached backbone output (SAM2
        keeps the last frame's, ~100 MiB at 1024 px, alive while the next frame is encoded; a
        later request for that frame recomputes it, same bits); under ``policy.trim_memory``,
        hand freed heap memory back to the OS."""
        records = side_entry(state)["records"]
        for frame_idx, obj_ids, masks in frames:
            if policy.bounded:
                release_behind(self, state, frame_idx, reverse, records)
                state["cached_features"] = {}
            if policy.trim_memory:
                trim_heap()
            yield frame_idx, obj_ids, masks

    def _scores_checked(self, state: dict, frames: Iterator) -> Iterator:
        """Propagation, then one read of whether every tracked frame's scores were finite
        (:class:`~fsam2lib.predictor.records.ScoreCheck`). A propagation the caller stops
        early is not checked; the next one starts a fresh check."""
        check = side_entry(state)["score_check"] = ScoreCheck()
        try:
            yield from frames
        finally:
            self._frame_cache = None
        check.raise_if_not_finite()

    def _dense_memory(self, state: dict, frame_idx: int, out: TrackedOutput) -> None:
        """Give a compact conditioning frame its dense memory back: SAM2's memory encoder on
        the frame's stored mask, called exactly as ``propagate_in_video_preflight`` does."""
        high_res_masks = F.interpolate(
            out["pred_masks"].to(state["device"]),
            size=(self.image_size, self.image_size),
            mode="bilinear",
            align_corners=False,
        )
        features, pos_enc = self._run_memory_encoder(
            inference_state=state,
            frame_idx=frame_idx,
            batch_size=1,
            high_res_masks=high_res_masks,
            object_score_logits=out["object_score_logits"],
            is_mask_from_pts=True,
        )
        out.compact_grid = None
        out["maskmem_features"], out["maskmem_pos_enc"] = features, pos_enc

    def _check_obj(self, state: dict, obj_id: object) -> None:
        if obj_id not in state["obj_id_to_idx"]:
            raise KeyError(
                f"unknown object id {obj_id!r}; known ids: {list(state['obj_id_to_idx'])}. "
                "Add a prompt for it first (add_new_points_or_box / add_new_mask)."
            )

    def _obj_id_of(self, state: dict, output_dict: dict) -> object:
        for obj_idx, obj_output_dict in state["output_dict_per_obj"].items():
            if obj_output_dict is output_dict:
                return state["obj_idx_to_id"][obj_idx]
        raise RuntimeError(
            "output_dict is not one of this inference state's per-object output dicts"
        )

    @contextmanager
    def _prompt_text(self, state: dict, obj_id: object, text: str | None) -> Iterator[None]:
        """Set the object's text for the prompt that follows; undo it if the prompt fails."""
        if text is None:
            yield
            return
        texts = side_entry(state)["text"]
        previous = texts.get(obj_id)
        texts[obj_id] = encode_text(self.text_encoder, text, "user", self.device)
        try:
            yield
        except BaseException:
            if previous is None:
                texts.pop(obj_id, None)
            else:
                texts[obj_id] = previous
            raise

    def _describe_if_needed(self, state: dict, frame_idx: int, obj_id: object) -> None:
        """Ask ``describe_object`` for the text of an object just prompted without one."""
        texts = side_entry(state)["text"]
        if self.describe_object is None or texts.get(obj_id) is not None:
            return
        temp = state["temp_output_dict_per_obj"][state["obj_id_to_idx"][obj_id]]
        out = temp["cond_frame_outputs"].get(frame_idx)
        if out is None:
            out = temp["non_cond_frame_outputs"][frame_idx]
        text = self.describe_object(
            *describer_inputs(
                state["images"][frame_idx].to(self.device),
                out["pred_masks"].to(self.device),
                self.image_size,
            )
        )
        if text is None:
            return
        if not isinstance(text, str) or not text.strip():
            raise ValueError(
                f"describe_object must return a non-empty string or None, got {text!r}"
            )
        texts[obj_id] = encode_text(self.text_encoder, text, "auto", self.device)

    def _awaits_description(self, state: dict, obj_id: object) -> bool:
        """Under "text_only", an object prompted without text while ``describe_object`` is
        set gets its text only after the prompt's mask exists; its prompted frame is then
        scored at the start of ``propagate_in_video`` (see ``_refresh_conditioning_frames``)."""
        return (
            self.pruning.strategy == "text_only"
            and self.describe_object is not None
            and side_entry(state)["text"].get(obj_id) is None
        )

    def _fingerprint(self, state: dict, obj_id: object) -> tuple:
        """What a frame's scores depend on besides the frame: config, and for router
        strategies the router and the object's text."""
        if self.pruning.strategy not in ROUTER_STRATEGIES:
            return (self.pruning, None, None)
        entry = side_entry(state)["text"].get(obj_id)
        return (self.pruning, self.router, None if entry is None else entry.text)

    def _score_frame(
        self,
        state: dict,
        obj_id: object,
        output_dict: dict,
        frame_idx: int,
        batch_size: int,
        is_init_cond_frame: bool,
        point_inputs: dict | None,
        mask_inputs: Tensor | None,
        reverse: bool,
    ) -> FrameRecord:
        """Gather what the scorer sees of this frame for this object, and score it."""
        features = self._get_image_feature(state, frame_idx, batch_size)
        self._features_memo = (id(state), frame_idx, batch_size, features)
        _, _, vision_feats, _, feat_sizes = features
        h, w = feat_sizes[-1]
        tokens = vision_feats[-1]  # [H*W, B, C]
        b = tokens.shape[1]
        entry = side_entry(state)["text"].get(obj_id)
        prompted = point_inputs is not None or mask_inputs is not None
        if self.pruning.strategy == "text_only" and entry is None:
            raise RuntimeError(
                f"strategy 'text_only' needs a description of object {obj_id!r}: pass text=... "
                "with the prompt, call set_object_text, or set predictor.describe_object"
            )
        previous = (
            None if is_init_cond_frame else _neighbour_output(output_dict, frame_idx, reverse)
        )
        inputs = ScoringInputs(
            features=tokens.permute(1, 2, 0).reshape(b, -1, h, w),
            frame_idx=frame_idx,
            prev_mask_logits=None if previous is None else previous["pred_masks"].to(self.device),
            text_embedding=None if entry is None else entry.embedding.expand(b, -1),
            prompt_points=prompt_points(point_inputs, (h, w), self.image_size),
            cues=self.pruning.cues,
            detail=self._detail_map(vision_feats, feat_sizes),
            frame_cache=self._shared_per_frame(state, frame_idx)
            if not prompted and len(state["obj_ids"]) > 1
            else None,
            keep_ratio=self.pruning.keep_ratio,
        )
        return score_frame(
            inputs,
            self.pruning,
            self.router,
            text=None if entry is None else entry.text,
            fingerprint=self._fingerprint(state, obj_id),
            prompted=prompted,
            correction=prompted and not is_init_cond_frame,
        )

    def _shared_per_frame(self, state: dict, frame_idx: int) -> dict:
        """The scorer's per-frame cache (``ScoringInputs.frame_cache``) while propagation
        scores one frame's objects one after another; a new frame, state or router starts
        an empty one, and the end of a propagation drops it. Only with several objects:
        for one it would only hold the maps longer (8 MiB at 1024 px)."""
        key = (id(state), frame_idx, id(self.router))
        if self._frame_cache is None or self._frame_cache[0] != key:
            self._frame_cache = (key, {})
        return self._frame_cache[1]

    def _detail_map(self, vision_feats: list[Tensor], feat_sizes: list) -> Tensor | None:
        """The frame's stride-8 map ``[B, C, 2H, 2W]`` when the router's text cue reads it
        (``RouterConfig.detail_dim``), else None: other scorers never look at it."""
        if self.pruning.strategy not in ROUTER_STRATEGIES or not reads_detail(self.router):
            return None
        if len(vision_feats) < 2:
            raise ValueError("the router reads a stride-8 map, but this SAM2 returns one level")
        h, w = feat_sizes[-2]
        return vision_feats[-2].permute(1, 2, 0).reshape(vision_feats[-2].shape[1], -1, h, w)

    def _select_memory(self, record: FrameRecord, pred_masks: Tensor) -> Tensor:
        """The frame's memory tokens (:func:`~fsam2lib.predictor.frame_pruning.select_memory`);
        a method, as ``_score_frame``, so that the bench can time it."""
        return select_memory(record, pred_masks)

    def _fill(self, call: _FrameCall, curr: Tensor) -> Tensor:
        """Values ``[H*W, B, C]`` for pruned query positions (sequence-first)."""
        mode = call.record.config.fill
        if mode == "zeros":
            return torch.zeros_like(curr)
        if mode == "previous":
            previous = _neighbour_output(call.output_dict, call.frame_idx, call.reverse)
            if isinstance(previous, TrackedOutput) and previous.conditioned is not None:
                return previous.conditioned.flatten(2).permute(2, 0, 1)
        # SAM2's own treatment of a frame without memory (directly_add_no_mem_embed)
        return curr + self.no_mem_embed

    def _refresh_conditioning_frames(self, state: dict) -> None:
        """Re-score conditioning frames whose selection was made under another config,
        router or text, so their stored memory follows the config now in force (under
        strategy "none" their records are dropped: nothing is pruned or recorded)."""
        side = side_entry(state)
        for obj_idx, obj_output_dict in state["output_dict_per_obj"].items():
            obj_id = state["obj_idx_to_id"][obj_idx]
            records = side["records"].setdefault(obj_id, {})
            fingerprint = self._fingerprint(state, obj_id)
            for t, out in obj_output_dict["cond_frame_outputs"].items():
                if self.pruning.strategy == "none":
                    records.pop(t, None)
                    if isinstance(out, TrackedOutput):
                        if out.is_compact:
                            self._dense_memory(state, t, out)
                        out.memory_keep_idx = None
                    continue
                if not isinstance(out, TrackedOutput):
                    raise RuntimeError(
                        f"frame {t} of object {obj_id!r} was not produced by PrunedSAM2VideoPredictor; "
                        "create the inference state with this predictor"
                    )
                record = records.get(t)
                if record is None or record.fingerprint != fingerprint:
                    if out.is_compact:
                        self._dense_memory(state, t, out)
                    record = self._score_frame(
                        state,
                        obj_id,
                        obj_output_dict,
                        t,
                        out["pred_masks"].shape[0],
                        out.is_init_cond_frame,
                        state["point_inputs_per_obj"][obj_idx].get(t),
                        state["mask_inputs_per_obj"][obj_idx].get(t),
                        out.reverse,
                    )
                    self._features_memo = None  # no inference follows to consume it
                    record.memory_keep_idx = out.memory_keep_idx = self._select_memory(
                        record, out["pred_masks"]
                    )
                    records[t] = record
                if self.state_policy.compact_memory:
                    out.compact()  # its memory exists from preflight on
