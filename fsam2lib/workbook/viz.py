"""Figures for the workbook: token-score heatmaps over frames, kept-token overlays, masks side
by side, curves and markdown tables.

Why here and not in the notebooks: notebooks stay glue, and every figure can be unit-tested
without a kernel. Conventions: token maps are float ``[gh, gw]`` over the stride-16 token grid
(row-major, flattened as in ``predictor.token_scores(...).maps``). SAM2 resizes every frame to
a square before encoding, so token cell ``(y, x)`` covers rows ``[y*H/gh, (y+1)*H/gh)`` and
columns ``[x*W/gw, (x+1)*W/gw)`` of the original ``H x W`` frame, whatever its aspect ratio.

Every figure builder returns a pyplot-managed ``Figure`` (in a notebook, end the cell with
``plt.show()``; elsewhere ``plt.close(fig)`` when done).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from fsam2lib.pruning.selection import num_kept
from fsam2lib.videos.video import Video

HEAT_CMAP = "inferno"
HEAT_ALPHA = 0.6
PRUNED_DIM = 0.25  # brightness left to pruned tokens in kept-token overlays
#: Colours of object ids 1.. in mask overlays (tab10 without its grey).
_ID_COLOURS = np.array(
    [c for i, c in enumerate(plt.get_cmap("tab10").colors) if i != 7], dtype=np.float32
)


# ----------------------------------------------------------------------------- token maps


def token_map(scores, grid: tuple[int, int]) -> np.ndarray:
    """float32 ``[gh, gw]`` from one frame's row-major scores ``[gh*gw]`` (or ``[1, gh*gw]``,
    a torch tensor or numpy array)."""
    values = _to_numpy(scores).astype(np.float32)
    if values.ndim == 2 and values.shape[0] == 1:
        values = values[0]
    gh, gw = grid
    if values.ndim != 1 or values.size != gh * gw:
        raise ValueError(
            f"scores of shape {tuple(values.shape)} do not fit the token grid {grid} "
            f"(expected [{gh * gw}] or [1, {gh * gw}])"
        )
    return values.reshape(gh, gw)


def kept_map(indices, grid: tuple[int, int]) -> np.ndarray:
    """bool ``[gh, gw]``: True at the kept token indices (``[K]`` or ``[1, K]``)."""
    idx = _to_numpy(indices).astype(np.int64).reshape(-1)
    gh, gw = grid
    if idx.size and (idx.min() < 0 or idx.max() >= gh * gw):
        raise ValueError(f"token indices out of range for grid {grid}: {idx.min()}..{idx.max()}")
    kept = np.zeros(gh * gw, dtype=bool)
    kept[idx] = True
    return kept.reshape(gh, gw)


def top_tokens(grid_map: np.ndarray, keep_ratio: float, min_tokens: int = 1) -> np.ndarray:
    """bool ``[gh, gw]``: the ``num_kept`` highest-scoring tokens of a map at ``keep_ratio``
    (ties to the lower index, as the predictor's selection). Shows what a ratio would keep
    before anything is re-run; the predictor also always keeps tokens around the prompts."""
    grid_map = np.asarray(grid_map, dtype=np.float32)
    if grid_map.ndim != 2:
        raise ValueError(f"grid_map must be [gh, gw], got shape {grid_map.shape}")
    if np.isnan(grid_map).any():
        raise ValueError("grid_map contains NaN (a frame without scores?)")
    flat = grid_map.reshape(-1)
    keep = num_kept(flat.size, keep_ratio, min_tokens)
    order = np.argsort(-flat, kind="stable")[:keep]
    kept = np.zeros(flat.size, dtype=bool)
    kept[order] = True
    return kept.reshape(grid_map.shape)


def cell_rows_cols(shape: tuple[int, int], grid: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """For each pixel row / column of an ``H x W`` frame, the token row / column it lies in."""
    (h, w), (gh, gw) = shape, grid
    if min(h, w, gh, gw) < 1:
        raise ValueError(f"frame shape {shape} and grid {grid} must be positive")
    return (np.arange(h) * gh) // h, (np.arange(w) * gw) // w


def upsample(grid_map: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A token map ``[gh, gw]`` painted over an ``H x W`` frame (each token fills its cell)."""
    grid_map = np.asarray(grid_map)
    rows, cols = cell_rows_cols(shape, grid_map.shape)
    return grid_map[rows[:, None], cols[None, :]]


def cell_coverage(mask: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """float ``[gh, gw]``: fraction of each token cell covered by a boolean ``H x W`` mask."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"mask must be [H, W], got shape {mask.shape}")
    rows, cols = cell_rows_cols(mask.shape, grid)
    gh, gw = grid
    cell = rows[:, None] * gw + cols[None, :]
    covered = np.bincount(cell.ravel(), weights=mask.ravel(), minlength=gh * gw)
    area = np.bincount(cell.ravel(), minlength=gh * gw)
    return (covered / np.maximum(area, 1)).reshape(gh, gw)


def region_mean(grid_map: np.ndarray, mask: np.ndarray) -> float:
    """Mean token score over a region, each token weighted by how much of its cell the
    boolean ``H x W`` mask covers: "how high does this map score the object?"."""
    grid_map = np.asarray(grid_map, dtype=np.float64)
    weights = cell_coverage(mask, grid_map.shape)
    if weights.sum() == 0:
        raise ValueError("region_mean: the mask is empty")
    return float((weights * grid_map).sum() / weights.sum())


def mean_over_frames(maps: np.ndarray, regions: np.ndarray) -> float:
    """Mean over frames of :func:`region_mean` of ``maps[t]`` ``[T, gh, gw]`` over the boolean
    region ``regions[t]`` ``[T, H, W]``, skipping frames without scores (NaN) or with an empty
    region (e.g. the object is hidden)."""
    maps, regions = np.asarray(maps), np.asarray(regions, dtype=bool)
    if maps.ndim != 3 or regions.ndim != 3 or len(maps) != len(regions):
        raise ValueError(
            f"maps [T, gh, gw] and regions [T, H, W] must share T; got {maps.shape}, {regions.shape}"
        )
    values = [
        region_mean(m, r)
        for m, r in zip(maps, regions, strict=True)
        if r.any() and np.isfinite(m).all()
    ]
    if not values:
        raise ValueError("no frame has both scores and a non-empty region")
    return float(np.mean(values))


def own_minus_others(means: Mapping[object, Mapping[object, float]]) -> dict[object, float]:
    """How much each description singles out its own object: ``means[d][o]`` is description
    ``d``'s text cue averaged over object ``o`` (``d`` names the object it describes); the
    result is ``means[d][d]`` minus the mean of ``means[d][o]`` over the other objects.
    Positive: the text cue is brighter on the described object than on the others."""
    gaps = {}
    for own, row in means.items():
        if own not in row or len(row) < 2:
            raise ValueError(
                f"means[{own!r}] needs its own object and at least one other; got keys {list(row)}"
            )
        gaps[own] = float(row[own] - np.mean([v for o, v in row.items() if o != own]))
    return gaps


def kept_share(kept: np.ndarray, regions: np.ndarray) -> float:
    """Share of the tokens touching a region that were kept, averaged over the frames where
    tokens were selected (``kept[t].any()``) and the region is present. kept: bool
    ``[T, gh, gw]``; regions: bool ``[T, H, W]``."""
    kept, regions = np.asarray(kept, dtype=bool), np.asarray(regions, dtype=bool)
    if kept.ndim != 3 or regions.ndim != 3 or len(kept) != len(regions):
        raise ValueError(
            f"kept [T, gh, gw] and regions [T, H, W] must share T; got {kept.shape}, {regions.shape}"
        )
    shares = []
    for sel, region in zip(kept, regions, strict=True):
        if sel.any() and region.any():
            touched = cell_coverage(region, sel.shape) > 0
            shares.append(sel[touched].mean())
    if not shares:
        raise ValueError("no frame has both a token selection and a non-empty region")
    return float(np.mean(shares))


# ----------------------------------------------------------------------------- per-video scores


@dataclass
class ScoreMaps:
    """One object's token scores over a video, ready to plot.

    maps: name ("combined", "visual", "text", ...) -> float32 ``[T, gh, gw]``; NaN on frames
        without scores (not processed, or processed under strategy "none").
    kept: bool ``[T, gh, gw]`` query tokens kept by memory attention (False everywhere on
        frames where memory attention did not run, e.g. the prompted frame).
    grid: ``(gh, gw)``. description: the object text used (None without text).
    """

    maps: dict[str, np.ndarray]
    kept: np.ndarray
    grid: tuple[int, int]
    description: str | None = None

    @property
    def num_frames(self) -> int:
        return int(self.kept.shape[0])

    def frame_map(self, name: str, frame_idx: int) -> np.ndarray:
        """``[gh, gw]`` map ``name`` on one frame; KeyError naming the available maps."""
        if name not in self.maps:
            raise KeyError(f"no score map {name!r}; available: {sorted(self.maps)}")
        if not 0 <= frame_idx < self.num_frames:
            raise IndexError(f"frame {frame_idx} outside 0..{self.num_frames - 1}")
        return self.maps[name][frame_idx]


def collect_scores(predictor, state: dict, obj_id: int, num_frames: int) -> ScoreMaps:
    """Gather ``predictor.token_scores`` of every processed frame of one object."""
    records = {}
    for t in range(num_frames):
        try:
            records[t] = predictor.token_scores(state, t, obj_id)
        except KeyError:  # frame not processed with a pruning strategy
            continue
    if not records:
        raise ValueError(
            f"object {obj_id!r} has no token scores on any of {num_frames} frames: run the "
            "predictor with a pruning strategy other than 'none' first"
        )
    first = next(iter(records.values()))
    grid = tuple(int(g) for g in first.grid)
    maps = {k: np.full((num_frames, *grid), np.nan, dtype=np.float32) for k in first.maps}
    kept = np.zeros((num_frames, *grid), dtype=bool)
    for t, rec in records.items():
        for k in maps:
            maps[k][t] = token_map(rec.maps[k], grid)
        if rec.memory_attention_ran:
            kept[t] = kept_map(rec.kept_query_idx, grid)
    description = next((r.description for r in records.values() if r.description), None)
    return ScoreMaps(maps, kept, grid, description)


# ----------------------------------------------------------------------------- drawing


def frame_with_mask_contour(ax, frame: np.ndarray, mask: np.ndarray | None = None) -> None:
    """Show a frame (no ticks) with the outline of a boolean mask in white."""
    ax.imshow(frame)
    if mask is not None and mask.any():
        ax.contour(mask.astype(float), levels=[0.5], colors="white", linewidths=1.0)
    ax.set_xticks([])
    ax.set_yticks([])


def draw_heat(
    ax,
    frame: np.ndarray,
    grid_map: np.ndarray,
    norm: Normalize | None = None,
    mask: np.ndarray | None = None,
):
    """A token map over a frame (greyed frame + translucent heat); returns the heat image."""
    grey = frame.astype(np.float32).mean(-1, keepdims=True).repeat(3, -1) / 255
    frame_with_mask_contour(ax, grey, mask)
    heat = upsample(grid_map, frame.shape[:2])
    return ax.imshow(np.ma.masked_invalid(heat), cmap=HEAT_CMAP, norm=norm, alpha=HEAT_ALPHA)


def dim_pruned(frame: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """uint8 frame with pruned token cells darkened (kept cells untouched)."""
    keep = upsample(kept, frame.shape[:2])
    scale = np.where(keep, 1.0, PRUNED_DIM)[..., None]
    return (frame.astype(np.float32) * scale).astype(np.uint8)


def label_overlay(frame: np.ndarray, labels: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """uint8 frame with object ids 1..254 of a label map tinted in fixed colours (255 = void,
    left untinted)."""
    if labels.shape != frame.shape[:2]:
        raise ValueError(f"labels {labels.shape} do not match frame {frame.shape[:2]}")
    out = frame.astype(np.float32) / 255
    for k in np.unique(labels):
        if k in (0, 255):
            continue
        colour = _id_colour(k)
        sel = labels == k
        out[sel] = (1 - alpha) * out[sel] + alpha * colour
    return (out * 255).astype(np.uint8)


def shared_norm(maps: Sequence[np.ndarray]) -> Normalize:
    """One colour scale for several maps (2nd-98th percentile of their finite values)."""
    values = np.concatenate([np.asarray(m, dtype=np.float64).ravel() for m in maps])
    values = values[np.isfinite(values)]
    if values.size == 0:
        return Normalize(0.0, 1.0)
    lo, hi = np.percentile(values, [2, 98])
    if hi <= lo:
        hi = lo + 1e-6
    return Normalize(float(lo), float(hi))


# ----------------------------------------------------------------------------- figures


def render_scores(
    video: Video,
    scores: ScoreMaps,
    frame_idx: int,
    keep_ratio: float,
    name: str = "combined",
    obj_id: int | None = None,
) -> Figure:
    """One frame, three panels: the frame (object outline), the score map ``name`` over it,
    and the tokens its top ``keep_ratio`` would keep (the rest darkened).

    The kept panel ranks map ``name`` directly, so a keep-ratio slider needs no re-run.
    """
    frame = video.frames[frame_idx]
    grid_map = scores.frame_map(name, frame_idx)
    mask = None if obj_id is None else video.masks[frame_idx] == obj_id
    fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.6), constrained_layout=True)
    frame_with_mask_contour(axes[0], frame, mask)
    axes[0].set_title(f"frame {frame_idx}")
    if np.isnan(grid_map).all():
        for ax in axes[1:]:
            frame_with_mask_contour(ax, frame, mask)
            ax.set_title("no scores on this frame")
    else:
        image = draw_heat(axes[1], frame, grid_map, shared_norm([scores.maps[name]]), mask)
        fig.colorbar(image, ax=axes[1], shrink=0.8)
        axes[1].set_title(f"{name} score")
        kept = top_tokens(grid_map, keep_ratio)
        frame_with_mask_contour(axes[2], dim_pruned(frame, kept), mask)
        axes[2].set_title(f"top {keep_ratio:.0%}: {int(kept.sum())}/{kept.size} tokens")
    if scores.description:
        fig.suptitle(f"description: {scores.description!r}")
    return fig


def plot_score_grid(
    video: Video,
    rows: Mapping[str, np.ndarray],
    frames: Sequence[int],
    obj_id: int | None = None,
    title: str | None = None,
) -> Figure:
    """Rows of token maps ``[T, gh, gw]`` (one row per entry, one colour scale per row) over
    the chosen frames; the object's ground-truth outline on each panel."""
    if not rows:
        raise ValueError("plot_score_grid needs at least one row of maps")
    frames = _check_frames(video, frames)
    fig, axes = plt.subplots(
        len(rows),
        len(frames),
        figsize=(2.3 * len(frames) + 0.8, 2.3 * len(rows)),
        squeeze=False,
        constrained_layout=True,
    )
    for r, (label, maps) in enumerate(rows.items()):
        maps = np.asarray(maps)
        if maps.ndim != 3 or maps.shape[0] != video.num_frames:
            raise ValueError(
                f"row {label!r}: maps must be [T={video.num_frames}, gh, gw], got {maps.shape}"
            )
        norm = shared_norm([maps[t] for t in frames])
        image = None
        for c, t in enumerate(frames):
            mask = None if obj_id is None else video.masks[t] == obj_id
            image = draw_heat(axes[r, c], video.frames[t], maps[t], norm, mask)
            if r == 0:
                axes[r, c].set_title(f"frame {t}")
        axes[r, 0].set_ylabel(label)
        fig.colorbar(image, ax=axes[r, -1], shrink=0.8)
    if title:
        fig.suptitle(title)
    return fig


def plot_kept_tokens(
    video: Video,
    kept: Mapping[str, np.ndarray],
    frames: Sequence[int],
    obj_id: int | None = None,
    title: str | None = None,
) -> Figure:
    """Rows of kept-token selections (bool ``[T, gh, gw]``): pruned cells darkened."""
    if not kept:
        raise ValueError("plot_kept_tokens needs at least one row")
    frames = _check_frames(video, frames)
    fig, axes = plt.subplots(
        len(kept),
        len(frames),
        figsize=(2.3 * len(frames), 2.3 * len(kept)),
        squeeze=False,
        constrained_layout=True,
    )
    for r, (label, sel) in enumerate(kept.items()):
        sel = np.asarray(sel, dtype=bool)
        for c, t in enumerate(frames):
            mask = None if obj_id is None else video.masks[t] == obj_id
            frame_with_mask_contour(axes[r, c], dim_pruned(video.frames[t], sel[t]), mask)
            axes[r, c].set_title(f"frame {t}: {sel[t].mean():.0%} kept", fontsize=9)
        axes[r, 0].set_ylabel(label)
    if title:
        fig.suptitle(title)
    return fig


def plot_masks(
    video: Video,
    predictions: Mapping[str, np.ndarray],
    frames: Sequence[int],
    title: str | None = None,
    with_truth: bool = True,
) -> Figure:
    """Label maps ``[T, H, W]`` side by side: one row per prediction (ground truth first),
    each object outlined in its own colour over the untouched frame, so the objects keep
    their true colours (a filled tint drew the orange square blue), and a legend naming each
    outlined object by id and description."""
    frames = _check_frames(video, frames)
    rows = {"ground truth": video.masks} if with_truth else {}
    rows.update(predictions)
    fig, axes = plt.subplots(
        len(rows),
        len(frames),
        figsize=(2.3 * len(frames), 2.3 * len(rows) + 0.4),
        squeeze=False,
        constrained_layout=True,
    )
    drawn: set[int] = set()
    for r, (label, labels) in enumerate(rows.items()):
        if labels.shape != video.masks.shape:
            raise ValueError(f"{label!r}: label maps {labels.shape} != video {video.masks.shape}")
        for c, t in enumerate(frames):
            ax = axes[r, c]
            ax.imshow(video.frames[t])
            drawn |= _outline_objects(ax, labels[t])
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"frame {t}")
        axes[r, 0].set_ylabel(label)
    if drawn:
        handles = [
            Line2D([], [], color=_id_colour(k), lw=2, label=_object_label(video, k))
            for k in sorted(drawn)
        ]
        fig.legend(handles=handles, loc="outside lower center", ncols=min(4, len(handles)))
    if title:
        fig.suptitle(title)
    return fig


def _id_colour(obj_id: int) -> np.ndarray:
    return _ID_COLOURS[(int(obj_id) - 1) % len(_ID_COLOURS)]


def _object_label(video: Video, obj_id: int) -> str:
    text = video.descriptions.get(obj_id)
    return f"object {obj_id}" + (f": {text}" if text else "")


def _outline_objects(ax, labels: np.ndarray) -> set[int]:
    """Outline each object id of a label map (255 = void, left alone); the ids drawn."""
    ids = {int(k) for k in np.unique(labels) if k not in (0, 255)}
    for k in sorted(ids):
        ax.contour(labels == k, levels=[0.5], colors=[_id_colour(k)], linewidths=1.6)
    return ids


def plot_map_grid(
    rows: Mapping[str, Sequence[np.ndarray]],
    titles: Sequence[str] | None = None,
    title: str | None = None,
) -> Figure:
    """Rows of bare token maps ``[gh, gw]`` (no frame underneath; each row one colour scale),
    e.g. ground-truth relevant tokens next to two routers' scores on the same samples."""
    if not rows:
        raise ValueError("plot_map_grid needs at least one row")
    ncols = {len(v) for v in rows.values()}
    if len(ncols) != 1 or 0 in ncols:
        raise ValueError(f"every row needs the same, non-zero number of maps; got {sorted(ncols)}")
    ncols = ncols.pop()
    if titles is not None and len(titles) != ncols:
        raise ValueError(f"{len(titles)} titles for {ncols} columns")
    fig, axes = plt.subplots(
        len(rows),
        ncols,
        figsize=(2.2 * ncols + 0.8, 2.2 * len(rows)),
        squeeze=False,
        constrained_layout=True,
    )
    for r, (label, maps) in enumerate(rows.items()):
        norm = shared_norm(maps)
        image = None
        for c, m in enumerate(maps):
            image = axes[r, c].imshow(np.asarray(m, dtype=np.float32), cmap=HEAT_CMAP, norm=norm)
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
            if r == 0 and titles is not None:
                axes[r, c].set_title(titles[c], fontsize=9)
        axes[r, 0].set_ylabel(label)
        fig.colorbar(image, ax=axes[r, -1], shrink=0.8)
    if title:
        fig.suptitle(title)
    return fig


def plot_crops(crops: Sequence[np.ndarray], titles: Sequence[str], ncols: int = 6) -> Figure:
    """Image crops (uint8 ``[h, w, 3]``) in a grid, each with its (multi-line) title."""
    if not crops or len(crops) != len(titles):
        raise ValueError(f"need one title per crop, got {len(crops)} crops, {len(titles)} titles")
    ncols = min(ncols, len(crops))
    nrows = math.ceil(len(crops) / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(2.1 * ncols, 2.5 * nrows), squeeze=False, constrained_layout=True
    )
    for ax in axes.ravel():
        ax.axis("off")
    for ax, crop, text in zip(axes.ravel(), crops, titles, strict=False):
        ax.imshow(crop)
        ax.set_title(text, fontsize=8)
    return fig


def plot_frame_stages(frames: Sequence[Mapping[str, float]], title: str | None = None) -> Figure:
    """Stacked bars of seconds per stage for each frame of one run (entries: ``"frame"``,
    ``"seconds"`` and one value per stage), so the reader sees memory attention grow while
    the memory bank fills."""
    if not frames:
        raise ValueError("plot_frame_stages needs at least one frame")
    stages = [k for k in frames[0] if k not in ("frame", "seconds")]
    x = np.array([f["frame"] for f in frames])
    fig, ax = plt.subplots(figsize=(7, 3.8), constrained_layout=True)
    bottom = np.zeros(len(frames))
    for stage in stages:
        values = np.array([f[stage] for f in frames]) * 1000
        ax.bar(x, values, bottom=bottom, label=stage.replace("_", " "))
        bottom += values
    ax.set_xlabel("frame")
    ax.set_ylabel("ms")
    ax.set_xticks(x)
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def plot_curves(
    x: Sequence[float],
    curves: Mapping[str, Sequence[float]],
    xlabel: str,
    ylabel: str,
    title: str | None = None,
    reference: float | None = None,
    reference_label: str = "unpruned",
) -> Figure:
    """Line plot of several named curves over the same x (e.g. J&F vs keep ratio), with an
    optional horizontal reference line."""
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    for label, ys in curves.items():
        if len(ys) != len(x):
            raise ValueError(f"curve {label!r} has {len(ys)} points for {len(x)} x values")
        ax.plot(x, ys, marker="o", label=label)
    if reference is not None:
        ax.axhline(reference, color="black", linestyle="--", linewidth=1, label=reference_label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return fig


def plot_bars(values: Mapping[str, float], ylabel: str, title: str | None = None) -> Figure:
    """One bar per named value (e.g. J&F per ablation), labelled with its value."""
    fig, ax = plt.subplots(figsize=(max(4, 1.1 * len(values)), 3.5), constrained_layout=True)
    names = list(values)
    bars = ax.bar(names, [values[n] for n in names], color="tab:blue")
    ax.bar_label(bars, fmt="%.3f", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.tick_params(axis="x", labelrotation=30)
    if title:
        ax.set_title(title)
    return fig


def plot_loss(losses: Sequence[float], window: int = 25, title: str | None = None) -> Figure:
    """Per-step loss (faint) and its running mean over ``window`` steps."""
    losses = np.asarray(losses, dtype=np.float64)
    if losses.ndim != 1 or losses.size == 0:
        raise ValueError("plot_loss needs a non-empty 1-D sequence of losses")
    fig, ax = plt.subplots(figsize=(6, 3.5), constrained_layout=True)
    ax.plot(losses, alpha=0.3, label="per step")
    ax.plot(running_mean(losses, window), label=f"mean of {window} steps")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    return fig


def running_mean(values: Sequence[float], window: int) -> np.ndarray:
    """Mean of the last ``window`` values at each step (fewer at the start)."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    values = np.asarray(values, dtype=np.float64)
    sums = np.cumsum(np.concatenate([[0.0], values]))
    idx = np.arange(1, values.size + 1)
    start = np.maximum(idx - window, 0)
    return (sums[idx] - sums[start]) / (idx - start)


# ----------------------------------------------------------------------------- tables


def markdown_table(
    rows: Sequence[Mapping[str, object]], columns: Sequence[str] | None = None, digits: int = 3
) -> str:
    """A markdown table from a list of dicts (floats rounded to ``digits``); for notebook
    display (``IPython.display.Markdown``) and the workbook summary."""
    if not rows:
        raise ValueError("markdown_table needs at least one row")
    columns = list(columns) if columns is not None else list(rows[0])

    def cell(value: object) -> str:
        if isinstance(value, float | np.floating):
            return "nan" if math.isnan(value) else f"{value:.{digits}f}"
        return str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        missing = [c for c in columns if c not in row]
        if missing:
            raise KeyError(f"row {dict(row)} lacks columns {missing}")
        lines.append("| " + " | ".join(cell(row[c]) for c in columns) + " |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- helpers


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x)


def _check_frames(video: Video, frames: Sequence[int]) -> list[int]:
    frames = [int(t) for t in frames]
    if not frames:
        raise ValueError("no frames to show")
    bad = [t for t in frames if not 0 <= t < video.num_frames]
    if bad:
        raise IndexError(f"frames {bad} outside 0..{video.num_frames - 1} of {video.name!r}")
    return frames
