"""DAVIS 2017 semi-supervised metrics: region similarity J, boundary accuracy F and J&F.

Follows the official davis2017-evaluation code (``davis2017/metrics.py``, ``evaluation.py``,
``utils.db_statistics``, ``evaluation_method.py``); this is an independent implementation.

Per object k and scored frame t (both masks boolean):

- J = |gt ∩ pred| / |gt ∪ pred| with void pixels removed from both; an empty union gives 1.
- F = 2PR / (P + R) between one-pixel boundary maps (``boundary_map``, DAVIS' seg2bmap) of
  gt and pred (void pixels cleared from both masks first). A boundary pixel counts as matched
  when the other map has a boundary pixel within a disk of radius
  r = ceil(bound_th * sqrt(H² + W²)) (bound_th = 0.008; r = 8 at 854x480). Edge cases as in
  DAVIS: both boundaries empty -> F = 1; exactly one empty -> F = 0.
- Scored frames: all frames but the first (the given mask) and the last.
- Objects: ids 1..max(first frame's labels) (void ignored) — including ids missing from the
  first frame, whose J/F are 1 wherever gt and prediction are both empty.
- Per object: mean over scored frames (M), recall = fraction of frames > 0.5 (R), decay =
  mean of the first quarter minus mean of the last quarter of frames (D, four overlapping
  bins as in ``db_statistics``).
- Dataset: J-Mean = mean over ALL objects of ALL videos of the per-object means (videos with
  more objects weigh more); same for F; J&F-Mean = (J-Mean + F-Mean) / 2. Values are
  fractions in [0, 1] (DAVIS prints them x100).

Where this code knowingly differs from the reference implementation:

- Void. The reference intends to exclude void (255) pixels, but its loader maps 255 to 0 before
  building per-object masks, so its void mask is always empty and void counts as background.
  ``exclude_void=True`` (default) applies the intended exclusion; ``exclude_void=False``
  gives the reference's numbers. Real DAVIS 2017 annotations hold no 255, so both agree there.
- A prediction that never uses the highest object id makes the reference exit ("index higher
  than the number of objects"); here that object simply scores 0 where it is visible. A
  prediction label outside the evaluated ids is an error in both.
- ``db_statistics`` casts decay bin edges to uint8, which wraps beyond 255 scored frames;
  here the edges are plain integers.

vos-benchmark (the package ``vos_benchmark``) computes the same per-frame
J (without void) and F and the same object-weighted global mean (x100), but differs in
which (object, frame) pairs it scores:

- object ids come from the scored frames' gt (frame 0 is not read) and a label 255 is an
  ordinary object, so void becomes an extra "object 255";
- an object is scored only from the first scored frame where it appears in the gt or the
  prediction onwards (absent earlier: no J = 1 entries), and objects only in the prediction
  are dropped;
- sparse annotations: it scores the annotated frames minus the first and last annotated one
  (``evaluate_video(annotated=...)`` does the same; the DAVIS code requires dense masks).

When every id 1..K of the first frame is visible in the gt of the second frame, no other id
appears later, there is no void and the prediction uses only 0..K, both give the same numbers
(tests/test_metrics.py checks this to 1e-6).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from fsam2lib.videos.davis import VOID_LABEL, read_masks

BOUND_TH = 0.008
STAT_KEYS = ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")


# ----------------------------------------------------------------------------- per frame


def _check_pair(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None) -> None:
    for what, mask in (("gt", gt), ("pred", pred), ("void", void)):
        if mask is None:
            continue
        if not isinstance(mask, np.ndarray) or mask.dtype != bool or mask.ndim != 2:
            raise TypeError(
                f"{what} must be a boolean HxW array, got {getattr(mask, 'dtype', type(mask))} "
                f"{tuple(getattr(mask, 'shape', ()))}"
            )
        if mask.shape != gt.shape:
            raise ValueError(f"{what} shape {mask.shape} differs from gt shape {gt.shape}")


def jaccard(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None) -> float:
    """Region similarity J (IoU) of two boolean masks, void pixels excluded; both empty -> 1."""
    _check_pair(gt, pred, void)
    valid = np.ones_like(gt) if void is None else ~void
    union = np.count_nonzero((gt | pred) & valid)
    if union == 0:
        return 1.0
    return np.count_nonzero(gt & pred & valid) / union


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """One-pixel boundary of a boolean mask (DAVIS' seg2bmap, no resizing).

    A pixel is on the boundary when it differs from its east, south or south-east neighbour;
    pixels of the last row compare with the east neighbour only, of the last column with the
    south neighbour only, and the bottom-right pixel is never a boundary. Hence the image
    border itself is no boundary, and boundaries sit half a pixel towards the origin.
    """
    boundary = np.zeros_like(mask, dtype=bool)
    boundary[:, :-1] |= mask[:, :-1] != mask[:, 1:]
    boundary[:-1, :] |= mask[:-1, :] != mask[1:, :]
    boundary[:-1, :-1] |= mask[:-1, :-1] != mask[1:, 1:]
    return boundary


def boundary_radius(shape: tuple[int, int], bound_th: float = BOUND_TH) -> int:
    """Match tolerance in pixels: ``bound_th`` itself if >= 1, else ceil(bound_th * diagonal)."""
    if bound_th >= 1:
        if bound_th != int(bound_th):
            raise ValueError(f"bound_th >= 1 is a radius in pixels and must be whole: {bound_th}")
        return int(bound_th)
    if bound_th <= 0:
        raise ValueError(f"bound_th must be positive, got {bound_th}")
    diagonal = np.sqrt(float(shape[0] ** 2 + shape[1] ** 2))
    return int(np.ceil(bound_th * diagonal))


def _matched(points: np.ndarray, others: np.ndarray, radius: int) -> int:
    """How many of ``points`` lie within ``radius`` (Euclidean) of some point in ``others``.

    Equals counting ``points`` inside the other boundary dilated by the disk x²+y² <= r².
    """
    distances, _ = cKDTree(others).query(points, k=1, distance_upper_bound=radius + 0.5)
    return int(np.count_nonzero(distances <= radius))


def f_measure(
    gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None, bound_th: float = BOUND_TH
) -> float:
    """Boundary accuracy F of two boolean masks (DAVIS): harmonic mean of boundary P and R."""
    _check_pair(gt, pred, void)
    radius = boundary_radius(gt.shape, bound_th)
    if void is not None:
        gt, pred = gt & ~void, pred & ~void
    gt_points = np.argwhere(boundary_map(gt))
    pred_points = np.argwhere(boundary_map(pred))
    if len(gt_points) == 0 or len(pred_points) == 0:
        return 1.0 if len(gt_points) == len(pred_points) else 0.0
    precision = _matched(pred_points, gt_points, radius) / len(pred_points)
    recall = _matched(gt_points, pred_points, radius) / len(gt_points)
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


# ----------------------------------------------------------------------------- per video


def frame_statistics(values: np.ndarray) -> tuple[float, float, float]:
    """DAVIS mean, recall (fraction > 0.5) and decay of one object's per-frame values.

    Decay: the frames are cut into four bins at round(linspace(1, n, 5)) - 1, each bin
    running from its edge to the next edge inclusive (neighbouring bins share a frame), and
    decay = mean(first bin) - mean(last bin).
    """
    values = np.asarray(values, dtype=float)
    if values.ndim != 1 or len(values) == 0:
        raise ValueError(f"need a non-empty 1-D array of per-frame values, got {values.shape}")
    edges = np.round(np.linspace(1, len(values), 5) + 1e-10).astype(int) - 1
    first, last = values[edges[0] : edges[1] + 1], values[edges[3] : edges[4] + 1]
    return float(values.mean()), float(np.mean(values > 0.5)), float(first.mean() - last.mean())


@dataclass
class VideoScores:
    """Per-object, per-frame J and F of one video.

    object_ids: the evaluated ids, one row of J/F each.
    frame_indices: indices (into the arrays given to ``evaluate_video``) of the scored frames.
    J, F: float ``[K, T']``, fractions in [0, 1].
    """

    name: str
    object_ids: list[int]
    frame_indices: np.ndarray
    J: np.ndarray
    F: np.ndarray

    def __post_init__(self) -> None:
        shape = (len(self.object_ids), len(self.frame_indices))
        if self.J.shape != shape or self.F.shape != shape:
            raise ValueError(
                f"video {self.name!r}: J {self.J.shape} and F {self.F.shape} must be {shape} "
                "(objects x scored frames)"
            )

    @property
    def J_per_object(self) -> np.ndarray:
        return self.J.mean(axis=1)

    @property
    def F_per_object(self) -> np.ndarray:
        return self.F.mean(axis=1)

    @property
    def JF_per_object(self) -> np.ndarray:
        return (self.J_per_object + self.F_per_object) / 2

    @property
    def J_mean(self) -> float:
        """Mean over objects of each object's mean over frames."""
        return float(self.J_per_object.mean())

    @property
    def F_mean(self) -> float:
        return float(self.F_per_object.mean())

    @property
    def JF_mean(self) -> float:
        return (self.J_mean + self.F_mean) / 2

    def object_statistics(self) -> dict[str, np.ndarray]:
        """Per-object DAVIS statistics: "J-Mean", "J-Recall", "J-Decay", "F-..." -> ``[K]``."""
        stats = {}
        for metric, values in (("J", self.J), ("F", self.F)):
            per_object = np.array([frame_statistics(row) for row in values]).reshape(-1, 3)
            for column, stat in enumerate(("Mean", "Recall", "Decay")):
                stats[f"{metric}-{stat}"] = per_object[:, column]
        return stats

    def summary(self) -> dict[str, float]:
        return summarize([self])


def evaluate_video(
    gt: np.ndarray,
    pred: np.ndarray,
    name: str = "",
    object_ids: list[int] | None = None,
    annotated: np.ndarray | None = None,
    *,
    exclude_void: bool = True,
    skip_first_and_last: bool = True,
    bound_th: float = BOUND_TH,
) -> VideoScores:
    """Score predicted label maps against ground truth, per object and frame (DAVIS protocol).

    gt, pred: uint8 ``[T, H, W]`` label maps; 255 in gt is void. Predictions may use only 0
        and the evaluated object ids.
    object_ids: default: 1..max label of the first annotated gt frame (DAVIS).
    annotated: bool ``[T]``; frames without annotation are never scored. Of the annotated
        frames, the first and the last are dropped (``skip_first_and_last``).
    exclude_void: see the module docstring; False reproduces the reference code exactly.
    """
    _check_label_maps(gt, pred, name)
    annotated = np.ones(len(gt), dtype=bool) if annotated is None else np.asarray(annotated)
    if annotated.dtype != bool or annotated.shape != (len(gt),):
        raise ValueError(f"video {name!r}: annotated must be bool [{len(gt)}], got {annotated}")
    frames = np.flatnonzero(annotated)
    if len(frames) == 0:
        raise ValueError(f"video {name!r}: no annotated frames to score")
    if object_ids is None:
        object_ids = _default_object_ids(gt[frames[0]], name)
    object_ids = [int(k) for k in object_ids]
    if not object_ids or any(not 1 <= k <= 254 for k in object_ids):
        raise ValueError(f"video {name!r}: object ids must be a non-empty list in 1..254")
    if skip_first_and_last:
        frames = frames[1:-1]
    if len(frames) == 0:
        raise ValueError(
            f"video {name!r}: nothing to score — {int(annotated.sum())} annotated frames, "
            "and the first and last are not scored (need at least 3)"
        )
    _check_prediction_labels(pred[frames], object_ids, name)

    J = np.zeros((len(object_ids), len(frames)))
    F = np.zeros_like(J)
    for column, t in enumerate(frames):
        void = gt[t] == VOID_LABEL if exclude_void else None
        for row, k in enumerate(object_ids):
            gt_k, pred_k = gt[t] == k, pred[t] == k
            J[row, column] = jaccard(gt_k, pred_k, void)
            F[row, column] = f_measure(gt_k, pred_k, void, bound_th)
    return VideoScores(name=name, object_ids=object_ids, frame_indices=frames, J=J, F=F)


def _check_label_maps(gt: np.ndarray, pred: np.ndarray, name: str) -> None:
    for what, maps in (("gt", gt), ("pred", pred)):
        if not isinstance(maps, np.ndarray) or maps.dtype != np.uint8 or maps.ndim != 3:
            raise TypeError(
                f"video {name!r}: {what} must be uint8 label maps [T,H,W], got "
                f"{getattr(maps, 'dtype', type(maps))} {tuple(getattr(maps, 'shape', ()))}"
            )
    if gt.shape != pred.shape:
        raise ValueError(f"video {name!r}: gt {gt.shape} and pred {pred.shape} differ in shape")


def _default_object_ids(first_gt: np.ndarray, name: str) -> list[int]:
    labels = first_gt[first_gt != VOID_LABEL]
    top = int(labels.max()) if labels.size else 0
    if top == 0:
        raise ValueError(f"video {name!r}: the first annotated frame holds no object")
    return list(range(1, top + 1))


def _check_prediction_labels(pred: np.ndarray, object_ids: list[int], name: str) -> None:
    stray = sorted(set(np.unique(pred).tolist()) - {0, *object_ids})
    if stray:
        raise ValueError(
            f"video {name!r}: prediction holds labels {stray} that are not evaluated object ids "
            f"{object_ids} (nor background 0)"
        )


# ----------------------------------------------------------------------------- datasets


def summarize(scores: list[VideoScores]) -> dict[str, float]:
    """DAVIS global scores: each statistic averaged over every object of every video.

    Keys: STAT_KEYS ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", ...) as fractions,
    plus "videos" and "objects" (counts).
    """
    if not scores:
        raise ValueError("summarize needs at least one VideoScores")
    per_video = [s.object_statistics() for s in scores]
    summary = {
        key: float(np.concatenate([v[key] for v in per_video]).mean()) for key in STAT_KEYS[1:]
    }
    summary = {"J&F-Mean": (summary["J-Mean"] + summary["F-Mean"]) / 2, **summary}
    summary["videos"] = len(scores)
    summary["objects"] = sum(len(s.object_ids) for s in scores)
    return summary


def bootstrap_interval(
    scores: list[VideoScores], level: float = 0.95, resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the global J&F mean, resampling *videos* with
    replacement (a video's objects stay together: they share its difficulty).

    Why videos: figures from ten videos moved by 10+ J&F between neighbouring checkpoints;
    the interval says how much of a difference the number of videos can carry.
    """
    (means,) = _resampled_means([scores], level, resamples, seed)
    return percentile_interval(means, level)


def paired_bootstrap_interval(
    reference: list[VideoScores],
    other: list[VideoScores],
    level: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Interval of the J&F *difference* reference - other over the same videos: each resample
    draws videos once and scores both on them, so what the videos share cancels out."""
    if [s.name for s in reference] != [s.name for s in other]:
        raise ValueError("paired intervals need the same videos, in the same order")
    ref, oth = _resampled_means([reference, other], level, resamples, seed)
    return percentile_interval(ref - oth, level)


def _resampled_means(
    runs: list[list[VideoScores]], level: float, resamples: int, seed: int
) -> list[np.ndarray]:
    """Global J&F means ``[resamples]`` of each run over the same resampled videos."""
    if not runs[0]:
        raise ValueError("bootstrap intervals need at least one VideoScores")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    picks = np.random.default_rng(seed).integers(0, len(runs[0]), (resamples, len(runs[0])))
    means = []
    for scores in runs:
        sums = np.array([s.JF_per_object.sum() for s in scores])
        counts = np.array([len(s.object_ids) for s in scores])
        means.append(sums[picks].sum(axis=1) / counts[picks].sum(axis=1))
    return means


def percentile_interval(values: np.ndarray, level: float) -> tuple[float, float]:
    """The central ``level`` interval of bootstrap resamples ``values`` (percentile method)."""
    tail = (1 - level) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return float(low), float(high)


@dataclass
class DatasetScores:
    """Scores of several videos; global means weight every object equally (DAVIS)."""

    videos: list[VideoScores]

    @property
    def J_mean(self) -> float:
        return float(np.concatenate([v.J_per_object for v in self.videos]).mean())

    @property
    def F_mean(self) -> float:
        return float(np.concatenate([v.F_per_object for v in self.videos]).mean())

    @property
    def JF_mean(self) -> float:
        return (self.J_mean + self.F_mean) / 2

    def per_object(self) -> dict[str, tuple[float, float]]:
        """``"<video>_<id>"`` -> (J mean, F mean), as DAVIS' per-sequence table."""
        return {
            f"{v.name}_{k}": (float(j), float(f))
            for v in self.videos
            for k, j, f in zip(v.object_ids, v.J_per_object, v.F_per_object, strict=True)
        }

    def summary(self) -> dict[str, float]:
        return summarize(self.videos)


def evaluate_folder(
    gt_root: str | Path,
    pred_root: str | Path,
    videos: list[str] | None = None,
    *,
    exclude_void: bool = True,
) -> DatasetScores:
    """Score a folder of predicted PNGs against a folder of ground-truth PNGs.

    Both hold ``<video>/<frame>.png`` label maps; for a DAVIS root pass
    ``<root>/Annotations/480p`` as gt_root. videos: default every sub-folder of gt_root.
    Every gt frame needs a prediction of the same name and size; predicted frames without a
    gt annotation are not scored (sparse gt, as vos-benchmark). vos-benchmark's own runner is
    not used here: it differs in which objects and frames it scores (module docstring),
    exits the process on a missing file and writes results.csv into the prediction folder.
    """
    gt_root, pred_root = Path(gt_root), Path(pred_root)
    if videos is None:
        if not gt_root.is_dir():
            raise FileNotFoundError(f"ground-truth folder not found: {gt_root}")
        videos = sorted(p.name for p in gt_root.iterdir() if p.is_dir())
        if not videos:
            raise FileNotFoundError(
                f"no video folders in {gt_root} (for a DAVIS root pass <root>/Annotations/480p)"
            )
    scores = []
    for video in videos:
        gt, gt_names = read_masks(gt_root, video)
        pred, pred_names = read_masks(pred_root, video)
        missing = sorted(set(gt_names) - set(pred_names))
        if missing:
            raise FileNotFoundError(
                f"video {video!r}: no prediction in {pred_root / video} for frames {missing}"
            )
        if pred.shape[1:] != gt.shape[1:]:
            raise ValueError(
                f"video {video!r}: predictions are {pred.shape[1:]} but gt is {gt.shape[1:]} (H, W)"
            )
        annotated = np.isin(pred_names, gt_names)
        gt_full = np.zeros_like(pred)
        gt_full[annotated] = gt
        scores.append(
            evaluate_video(gt_full, pred, video, annotated=annotated, exclude_void=exclude_void)
        )
    return DatasetScores(scores)
