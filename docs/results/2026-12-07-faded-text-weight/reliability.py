"""Would a gate on what the text cue shows keep the weighted text from hurting?

For each video of a text-effect run, beside that video's text effect at keep 0.1 from the
run's JSON, two things a gate could read:
- reliability: how well the router's text cue ranks each described object's tokens above the
  rest of the frame on the first tracked frame (AUC against the ground truth: 1 = every
  object token above every other token; the lowest over the video's objects). If the weight
  hurt where the cue misreads the description, a gate on this AUC (known on a prompted
  frame, where the object's mask is given) would help;
- competition: on every tracked frame, the brightest standardised text-cue token outside
  the object's tokens minus the brightest inside (> 0: something else looks more like the
  description; the median over the video's objects and frames). If the weight paid only
  where a look-alike competes, a weight scaled by this would help.

    python reliability.py DATASET SEED ROUTER EFFECT_JSON > reliability_WORLD.txt
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch

from fsam2lib.bench.sources import open_dataset
from fsam2lib.metrics import percentile_interval
from fsam2lib.models.clip import load_clip
from fsam2lib.models.sam2 import load_sam2
from fsam2lib.pruning.router import load_router, reads_detail
from fsam2lib.train.train_router import SAM2_BASE, build_samples


def text_effects(path: str, keep: str = "0.10") -> dict[str, float]:
    """Per video: router minus router without text, in J&F points, at ``keep``."""
    jf: dict[str, dict[str, float]] = {}
    for row in json.loads(Path(path).read_text())["videos"]:
        jf.setdefault(row["video"], {})[row["config"]] = row["J&F"]
    return {
        name: 100 * (rows[f"router@{keep}"] - rows[f"router without text@{keep}"])
        for name, rows in jf.items()
    }


def mean_with_interval(values: np.ndarray, resamples: int = 2000, seed: int = 0) -> str:
    """Mean and 95 % percentile-bootstrap interval over videos, as text."""
    rng = np.random.default_rng(seed)
    means = rng.choice(values, (resamples, len(values))).mean(axis=1)
    low, high = percentile_interval(means, 0.95)
    return f"{values.mean():+5.1f} [{low:+.1f}, {high:+.1f}]"


@torch.no_grad()
def reliability_and_competition(router, sam2_model, clip, video) -> tuple[list[float], float]:
    """Each described object's text-cue AUC on the first tracked frame (its relevant tokens
    against every other token), and the video's median competition (see above)."""
    samples = build_samples(sam2_model, clip, [video], progress=False, detail=reads_detail(router))
    cue = router(samples.inputs(cues=("text",)))["text"]
    z = (cue - cue.mean(1, keepdim=True)) / cue.std(1, keepdim=True)
    per_object = video.num_frames - 1  # rows: object by object, frames 1..T-1
    aucs, competition = [], []
    for row, label in enumerate(samples.labels):
        if not label.any() or label.all():
            continue
        competition.append(float(z[row][~label].max() - z[row][label].max()))
        if row % per_object == 0:
            own = cue[row]
            aucs.append(float((own[label][:, None] > own[~label][None, :]).float().mean()))
    return aucs, float(np.median(competition))


def main(dataset: str, seed: int, router_path: str, effect_json: str) -> None:
    torch.set_num_threads(2)
    effects = text_effects(effect_json)
    router = load_router(router_path)
    sam2_model = load_sam2("micro", predictor_class=SAM2_BASE)
    clip = load_clip("micro")
    source = open_dataset(dataset, "val", seed=seed)
    rows = []
    print("video               objects  lowest AUC  competition  text effect at 0.1")
    for name in source.names:
        aucs, competition = reliability_and_competition(router, sam2_model, clip, source.load(name))
        rows.append((min(aucs), competition, effects[name]))
        print(
            f"{name:<18}  {len(aucs):7d}  {min(aucs):10.3f}  {competition:+11.2f}"
            f"  {effects[name]:+18.1f}"
        )
    auc, competition, effect = np.array(rows).T
    print(f"\n{len(rows)} videos; means with 95 % bootstrap intervals over videos")
    for label, measure, cuts in (
        ("AUC", auc, (0.7, 0.8, 0.9)),
        ("competition", competition, (-1.0, -0.5, 0.0)),
    ):
        rank = np.corrcoef(measure.argsort().argsort(), effect.argsort().argsort())[0, 1]
        print(f"rank correlation of {label} with the text effect: {rank:+.2f}")
        for cut in cuts:
            for side, chosen in ((">=", measure >= cut), ("< ", measure < cut)):
                print(
                    f"  {label} {side} {cut:+.1f}: {chosen.sum():2d} videos, mean text effect "
                    f"{mean_with_interval(effect[chosen])}, "
                    f"{int((effect[chosen] < -5).sum())} lose more than 5"
                )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4])
