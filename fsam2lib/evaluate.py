"""Run a SAM2 video predictor on videos under a VOS protocol and score it (DAVIS J&F).

Protocols (semi-supervised VOS):
- ``"mask"``: the ground-truth mask of each object on the first frame where it is visible
  (``add_new_mask``; DAVIS gives frame 0, objects entering later are prompted on entry as in
  YouTube-VOS). SAM2 then uses that mask as its output for that frame.
- ``"click"``: one positive click at the object's most interior pixel on that frame.

Overlapping object masks are resolved per pixel by the highest logit (non-overlapping label
maps, as DAVIS expects).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage
from tqdm.auto import tqdm

from fsam2lib.metrics import VideoScores, bootstrap_interval, evaluate_video, summarize
from fsam2lib.videos.davis import labels_from_logits
from fsam2lib.videos.frames import init_state_from_frames
from fsam2lib.videos.video import Video

PROTOCOLS = ("mask", "click")


@dataclass
class VideoRun:
    """A predictor's label maps for one video, with how long propagation took."""

    name: str
    labels: np.ndarray  # uint8 [T, H, W]
    logits: np.ndarray  # float32 [K, T, H, W] per-object mask logits (video resolution)
    object_ids: list[int]
    seconds: float
    state: dict


def first_visible_frame(video: Video, obj_id: int) -> int:
    """Index of the first annotated frame where ``obj_id`` has pixels."""
    present = (video.masks == obj_id).reshape(video.num_frames, -1).any(1) & video.annotated
    if not present.any():
        raise ValueError(f"video {video.name!r}: object {obj_id} is never visible")
    return int(np.argmax(present))


def interior_click(mask: np.ndarray) -> tuple[float, float]:
    """(x, y) of the pixel farthest from the mask's boundary: an unambiguous positive click."""
    dist = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return float(x), float(y)


def prompt_objects(
    predictor,
    state: dict,
    video: Video,
    protocol: str,
    object_ids: list[int],
    texts: dict[int, str] | None = None,
) -> None:
    """Give each object its first-frame prompt (and text, if the predictor takes text)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    for obj_id in object_ids:
        t = first_visible_frame(video, obj_id)
        mask = video.masks[t] == obj_id
        extra = {"text": texts[obj_id]} if texts and obj_id in texts else {}
        if protocol == "mask":
            predictor.add_new_mask(state, frame_idx=t, obj_id=obj_id, mask=mask, **extra)
        else:
            point = np.array([interior_click(mask)], dtype=np.float32)
            predictor.add_new_points_or_box(
                state,
                frame_idx=t,
                obj_id=obj_id,
                points=point,
                labels=np.array([1], np.int32),
                **extra,
            )


@torch.inference_mode()
def run_video(
    predictor,
    video: Video,
    protocol: str = "mask",
    texts: dict[int, str] | None = None,
    object_ids: list[int] | None = None,
) -> VideoRun:
    """Prompt every object, propagate through the whole video, return label maps."""
    object_ids = sorted(video.descriptions) if object_ids is None else list(object_ids)
    if not object_ids:
        object_ids = video.object_ids
    height, width = video.frames.shape[1:3]
    state = init_state_from_frames(predictor, video.frames)
    prompt_objects(predictor, state, video, protocol, object_ids, texts)
    logits = np.full((len(object_ids), video.num_frames, height, width), -1024.0, np.float32)
    row = {obj_id: i for i, obj_id in enumerate(object_ids)}
    start = time.perf_counter()
    for frame_idx, obj_ids, masks in predictor.propagate_in_video(state):
        for obj_id, mask in zip(obj_ids, masks, strict=True):
            logits[row[obj_id], frame_idx] = mask[0].float().cpu().numpy()
    seconds = time.perf_counter() - start
    return VideoRun(
        video.name, labels_from_logits(logits, object_ids), logits, object_ids, seconds, state
    )


def score_run(run: VideoRun, video: Video) -> VideoScores:
    return evaluate_video(
        video.masks,
        run.labels,
        name=video.name,
        object_ids=run.object_ids,
        annotated=video.annotated,
    )


def evaluate_videos(
    predictor,
    videos: Iterable[Video],
    protocol: str = "mask",
    use_text: bool = False,
    progress: bool = True,
    desc: str = "evaluate",
) -> tuple[dict[str, float], list[VideoScores], float]:
    """J&F summary (DAVIS global means), per-video scores and mean seconds per frame."""
    scores, seconds, frames = [], 0.0, 0
    for video in tqdm(list(videos), desc=desc, disable=not progress):
        run = run_video(predictor, video, protocol, texts=video.descriptions if use_text else None)
        scores.append(score_run(run, video))
        seconds += run.seconds
        frames += video.num_frames
    return summarize(scores), scores, seconds / max(frames, 1)


WORLDS = ("classic", "broad", "held_out", "hard")


def synthetic_suite(
    split: str, num_videos: int, frames: int = 16, seed: int = 0, world: str = "classic"
) -> dict[str, list[Video]]:
    """The model card's evaluation videos: single-object and multi-object (with occlusion),
    from one world family (``fsam2lib.videos.worlds``; "classic" is the first world)."""
    from fsam2lib.videos.world import WorldConfig, make_split
    from fsam2lib.videos.worlds import family_split

    if world not in WORLDS:
        raise ValueError(f"unknown world {world!r}; expected one of {WORLDS}")
    if world == "classic":
        single = WorldConfig(num_frames=frames, min_objects=1, max_objects=1)
        multi = WorldConfig(num_frames=frames, min_objects=2, max_objects=3, occlusion=True)
        return {
            "single-object": list(make_split(split, num_videos, single, base_seed=seed)),
            "multi-object": list(make_split(split, num_videos, multi, base_seed=seed + 1)),
        }
    return {
        "single-object": list(
            family_split(world, split, num_videos, frames, 256, 1, 1, base_seed=seed)
        ),
        "multi-object": list(
            family_split(world, split, num_videos, frames, 256, 2, 4, base_seed=seed + 1)
        ),
    }


@contextmanager
def memory_bypassed(predictor) -> Iterator[None]:
    """Within the block every frame gets SAM2's no-memory features (the current frame's
    tokens + ``no_mem_embed``, as on a first prompted frame) instead of memory attention's
    output: the ablation that tells whether a model's memory helps it track."""

    def no_memory(*, current_vision_feats, feat_sizes, **_):  # SAM2 calls it by keyword
        tokens = current_vision_feats[-1] + predictor.no_mem_embed  # [H*W, B, C]
        (h, w), b = feat_sizes[-1], tokens.shape[1]
        return tokens.permute(1, 2, 0).reshape(b, -1, h, w)

    predictor._prepare_memory_conditioned_features = no_memory
    try:
        yield
    finally:
        del predictor._prepare_memory_conditioned_features


def _row(split: str, world: str, kind: str, protocol: str, scores, seconds: float) -> dict:
    summary = summarize(scores)
    low, high = bootstrap_interval(scores)
    return {
        "world": world,
        "split": split,
        "videos": kind,
        "protocol": protocol,
        "J&F": 100 * summary["J&F-Mean"],
        "ci95": [100 * low, 100 * high],
        "J": 100 * summary["J-Mean"],
        "F": 100 * summary["F-Mean"],
        "num_videos": summary["videos"],
        "objects": summary["objects"],
        "s/frame": seconds,
    }


def main(argv: list[str] | None = None) -> None:
    """``python -m fsam2lib.evaluate``: J&F of a SAM2 model on synthetic suites, each row with a
    95 % bootstrap interval over videos."""
    import argparse
    import json
    import shlex
    import sys

    from fsam2lib.models.sam2 import load_sam2, weights_label

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--model", default="micro")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--worlds", default="broad,held_out", help=f"comma list of {WORLDS}")
    parser.add_argument("--splits", default="val")
    parser.add_argument("--protocols", default="mask,click")
    parser.add_argument("--num-videos", type=int, default=20)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="model input size (default: the model's own, 256 px for micro); a larger input "
        "gives a finer token grid (stride 16), closer to real SAM2's 64 x 64 at 1024 px",
    )
    parser.add_argument(
        "--memory-bypass",
        action="store_true",
        help="add multi-object rows with memory attention bypassed (does memory help?)",
    )
    parser.add_argument("--json", type=str, default=None)
    args = parser.parse_args(argv)
    worlds = args.worlds.split(",")
    for world in worlds:
        if world not in WORLDS:
            parser.error(f"unknown world {world!r}; expected one of {WORLDS}")
    predictor = load_sam2(args.model, checkpoint=args.checkpoint, image_size=args.image_size)
    command = "python -m fsam2lib.evaluate " + shlex.join(sys.argv[1:] if argv is None else argv)
    results = {
        "model": weights_label(predictor),
        "frames": args.frames,
        "image_size": predictor.image_size,
        "command": command,
    }
    results["rows"] = []
    for world in worlds:
        for split in args.splits.split(","):
            suite = synthetic_suite(split, args.num_videos, args.frames, args.seed, world)
            for kind, videos in suite.items():
                runs = [(protocol, False) for protocol in args.protocols.split(",")]
                if args.memory_bypass and kind == "multi-object":
                    runs.append(("mask", True))
                for protocol, bypass in runs:
                    label = f"{kind}, memory bypassed" if bypass else kind
                    with memory_bypassed(predictor) if bypass else nullcontext():
                        _, scores, sec = evaluate_videos(
                            predictor, videos, protocol, desc=f"{world} {split} {label} {protocol}"
                        )
                    row = _row(split, world, label, protocol, scores, sec)
                    results["rows"].append(row)
                    print(
                        f"{world:9s} {split:5s} {label:32s} {protocol:5s} J&F {row['J&F']:.1f} "
                        f"[{row['ci95'][0]:.1f}, {row['ci95'][1]:.1f}] over {row['num_videos']} "
                        f"videos ({row['objects']} objects), {sec:.3f} s/frame",
                        flush=True,
                    )
    print(command)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
