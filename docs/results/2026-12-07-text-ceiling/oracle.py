"""What a perfect description could be worth: the shipped router without its text cue, with
the ground truth of the frame being tracked standing in for what a text cue could know.

Two oracles, each on top of the router without text (the text effect's baseline):
- "exclude look-alikes": tokens covered by another object (and not by the target) rank last.
  A description tells the target from its look-alikes at best this well.
- "target first": the target's own tokens on the frame rank first (every cue knowing where
  the object is, a ceiling for any scorer of the query and memory tokens).
If even the first gains little over the router without text, no text cue can gain more
than that at this budget (the issue's target at keep 0.1: +3 J&F on the crossing split).

Usage: python oracle.py DATASET KEEP [KEEP ...] [--image-size N] [--weighted ROUTER] [--threads N]
> result.json (one thread: two datasets can run side by side on two cores); python oracle.py
result.json  prints its table. ``--image-size``: frames fed to the micro SAM2 at N px (512:
a 32 x 32 token grid instead of 16 x 16). ``--weighted``: also a router file with a text
weight (``RouterConfig.text_weight``) sharing the shipped router's weights, so that the
router without text is its baseline too.
"""

import argparse
import json
import sys
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

import fsam2lib
from fsam2lib.bench import open_dataset
from fsam2lib.bench.runner import quiet_sam2
from fsam2lib.evaluate import (
    VideoRun,
    init_state_from_frames,
    labels_from_logits,
    prompt_objects,
    score_run,
)
from fsam2lib.metrics import DatasetScores, paired_bootstrap_interval
from fsam2lib.predictor.records import side_entry
from fsam2lib.pruning.config import CUES
from fsam2lib.pruning.router import load_router

NO_TEXT = tuple(c for c in CUES if c != "text")
BIG = 1e4


class Oracle:
    """The router without text, its ranking corrected by the frame's ground truth."""

    def __init__(self, router, mode: str) -> None:
        self.router, self.mode = router, mode
        self.config = router.config  # so the predictor feeds the stride-8 map if it reads it
        self.video, self.objects = None, {}

    def __call__(self, inputs):
        out = self.router(replace(inputs, cues=NO_TEXT))
        if not self.objects:  # a prompt being added: its memory ranks the object's mask first
            return out
        b, _, h, w = inputs.features.shape
        target = self._object(inputs.text_embedding)
        masks = torch.from_numpy(self.video.masks[inputs.frame_idx].astype(np.int64))
        on_target = _tokens(masks == target, h, w)
        on_other = _tokens((masks != target) & (masks > 0) & (masks != 255), h, w) & ~on_target
        combined = out["combined"].clone()
        if self.mode == "exclude":
            combined[:, on_other] -= BIG
        else:
            combined[:, on_target] += BIG
        return {**out, "combined": combined}

    def _object(self, embedding) -> int:
        best = max(self.objects, key=lambda k: float((self.objects[k] * embedding[0]).sum()))
        return best


def _tokens(mask, h: int, w: int):
    """Token cells ``[h*w]`` that the (stretched) mask covers by at least a quarter."""
    area = F.interpolate(mask[None, None].float(), size=(h, w), mode="area")
    return (area[0, 0] >= 0.25).flatten()


@torch.inference_mode()
def run(pred, video, texts):
    state = init_state_from_frames(pred, video.frames)
    ids = sorted(video.descriptions)
    if isinstance(pred.router, Oracle):
        pred.router.objects = {}
    prompt_objects(pred, state, video, "mask", ids, texts)
    if isinstance(pred.router, Oracle):
        pred.router.video = video
        pred.router.objects = {k: side_entry(state)["text"][k].embedding[0] for k in ids}
        names = [video.descriptions[k] for k in ids]
        if len(set(names)) != len(names):
            raise ValueError(f"{video.name}: two targets share a description")
    h, w = video.frames.shape[1:3]
    logits = np.full((len(ids), video.num_frames, h, w), -1024.0, np.float32)
    for t, obj_ids, masks in pred.propagate_in_video(state):
        for o, m in zip(obj_ids, masks, strict=True):
            logits[ids.index(o), t] = m[0].float().cpu().numpy()
    return score_run(
        VideoRun(video.name, labels_from_logits(logits, ids), logits, ids, 0, state), video
    )


def table(result: dict) -> str:
    """The result as text: J&F per configuration, then each contrast with its interval."""
    size = f" at {result['image_size']} px" if "image_size" in result else ""
    lines = [
        f"{result['dataset']}{size}: {result['videos']} videos, J&F in points, DAVIS global means"
    ]
    lines += [f"  {name:<28} {value:6.1f}" for name, value in result["configs"].items()]
    lines.append("paired differences over videos, with 95 % bootstrap intervals:")
    for name, (diff, lo, hi) in result["contrasts"].items():
        lines.append(f"  {name:<38} {diff:+5.1f}  [{lo:+.1f}, {hi:+.1f}]")
    return "\n".join(lines)


def main() -> None:
    if sys.argv[1].endswith(".json"):
        with open(sys.argv[1]) as handle:
            print(table(json.load(handle)))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset")
    parser.add_argument("keeps", type=float, nargs="+")
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--weighted", default=None)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dataset, keeps = args.dataset, args.keeps
    src = open_dataset(dataset)
    pred = fsam2lib.build_predictor("micro", image_size=args.image_size)
    pred.describe_object = None
    router = pred.router
    weighted = None if args.weighted is None else load_router(args.weighted)
    configs = [("reference", fsam2lib.PruningConfig(strategy="none"), router)]
    for k in keeps:
        configs += [
            (f"router@{k}", fsam2lib.PruningConfig(keep_ratio=k), router),
            (f"no text@{k}", fsam2lib.PruningConfig(keep_ratio=k, cues=NO_TEXT), router),
            (
                f"exclude look-alikes@{k}",
                fsam2lib.PruningConfig(keep_ratio=k),
                Oracle(router, "exclude"),
            ),
            (f"target first@{k}", fsam2lib.PruningConfig(keep_ratio=k), Oracle(router, "target")),
        ]
        if weighted is not None:
            configs.append((f"text weight@{k}", fsam2lib.PruningConfig(keep_ratio=k), weighted))
    scores = score_configs(pred, src, configs)
    contrasts = [
        (f"{name}@{k}", f"no text@{k}", "no text")
        for k in keeps
        for name in ("router", "exclude look-alikes", "target first")
        + (("text weight",) if weighted is not None else ())
    ]
    result = summarise(dataset, scores, contrasts)
    result["image_size"] = pred.image_size
    print(json.dumps(result, indent=1))


def score_configs(pred, src, configs: list[tuple]) -> dict[str, list]:
    """Every ``(name, pruning config, scorer)`` of ``configs`` on every video of ``src``:
    name -> per-video scores (progress on stderr)."""
    scores = {name: [] for name, _, _ in configs}
    for name_v in src.names:
        video = src.load(name_v)
        for name, config, scorer in configs:
            pred.pruning, pred.router = config, scorer
            with quiet_sam2():
                scores[name].append(run(pred, video, video.descriptions))
        print(name_v, file=sys.stderr, flush=True)
    return scores


def summarise(dataset: str, scores: dict[str, list], contrasts: list[tuple]) -> dict:
    """J&F per configuration (DAVIS global means: every object weighs the same), each
    ``(name, baseline name, baseline label)`` of ``contrasts`` as a paired difference with
    its 95 % interval, and every video's J&F."""
    out = {"dataset": dataset, "videos": len(next(iter(scores.values()))), "configs": {}}
    for name, s in scores.items():
        out["configs"][name] = round(100 * DatasetScores(s).JF_mean, 2)
    out["contrasts"] = {}
    for name, base_name, label in contrasts:
        base = scores[base_name]
        lo, hi = paired_bootstrap_interval(scores[name], base)
        diff = DatasetScores(scores[name]).JF_mean - DatasetScores(base).JF_mean
        out["contrasts"][f"{name} - {label}"] = [round(100 * x, 2) for x in (diff, lo, hi)]
    out["per_video"] = {
        name: {v.name: round(100 * v.JF_mean, 2) for v in s} for name, s in scores.items()
    }
    return out


if __name__ == "__main__":
    main()
