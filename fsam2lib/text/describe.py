"""Automatic object descriptions (zero-shot CLIP ranking of phrases) and text checks.

Why: the router needs an object-centric text for every prompted object. When the user gives
none, the prompted region of the first frame is cropped (mask bounding box, or the box the
clicks span, with padding, like the micro CLIP's training crops) and a vocabulary of phrases is
ranked with CLIP's image and text towers; the best phrase becomes the description.

Which phrases: the synthetic vocabulary for the micro CLIP (it knows nothing else); for a real
CLIP also the shipped object vocabulary (``configs/object_nouns.txt``, each noun alone and with
each of ``COLOUR_WORDS``), or a user's list or file (:func:`read_phrases`). Any callable can
replace the ranking altogether (``build_predictor(describe=...)``).

The upgrade path is the paper's: a region proposal around the prompt, a captioning VLM for the
crop, and a small language model that shortens the caption to an object-centric phrase. Such a
pipeline plugs in as that callable; a zero-shot ranking is the offline stand-in.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fsam2lib.models.clip import ClipBundle
from fsam2lib.paths import OBJECT_NOUNS_FILE
from fsam2lib.text import vocab
from fsam2lib.videos.crops import crop_object
from fsam2lib.videos.video import Video

#: Padding around the region's bounding box, as a fraction of its side (= the training crops').
CROP_PAD = 0.15
#: Colour words combined with every object noun for real CLIP models.
COLOUR_WORDS = (
    "red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white",
    "grey",
)  # fmt: skip


@dataclass(frozen=True)
class RegionDescription:
    """The best phrase for a region, its probability, the top-k ranking and the ranked crop.

    Scores are zero-shot probabilities: softmax over the ranked phrases of CLIP's scaled
    cosine similarity between the crop and each phrase.
    """

    phrase: str
    score: float
    top_k: list[tuple[str, float]]
    crop: np.ndarray


def check_text(text: str, clip: ClipBundle) -> str:
    """Validate a text prompt for ``clip``; return it stripped.

    Raises ValueError for empty or whitespace-only text. Warns (UserWarning) when the micro CLIP
    gets text outside the synthetic vocabulary: it was trained on "[size] colour shape" only, so
    its embedding of anything else is not meaningful.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if not text.strip():
        raise ValueError(f"text is empty or whitespace ({text!r}); give an object description")
    text = text.strip()
    if clip.knows_only_synthetic_vocabulary and not vocab.is_vocabulary_text(text):
        warnings.warn(
            f"text {text!r} is outside the synthetic vocabulary; the micro CLIP only knows the "
            f"synthetic vocabulary ('[size] colour shape', e.g. 'small red circle': colours "
            f"{', '.join(vocab.COLOURS)}; shapes {', '.join(vocab.SHAPES)}), so its relevance "
            "scores for this text are not meaningful. Use a real CLIP (load_clip('ViT-B-32', "
            "pretrained=...)) for free text.",
            UserWarning,
            stacklevel=2,
        )
    return text


def read_phrases(path: str | Path) -> list[str]:
    """Phrases from a vocabulary file: one per line, blank lines and ``#`` comments skipped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"vocabulary file not found: {path}")
    phrases = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
    phrases = [p for p in phrases if p]
    if not phrases:
        raise ValueError(f"vocabulary file {path} lists no phrases")
    return phrases


def object_vocabulary(nouns: Sequence[str] | None = None) -> list[str]:
    """Each noun alone and with each colour word ("dog", "black dog", ...); nouns default to
    the shipped ``configs/object_nouns.txt``."""
    nouns = read_phrases(OBJECT_NOUNS_FILE) if nouns is None else list(nouns)
    return [*nouns, *(f"{colour} {noun}" for noun in nouns for colour in COLOUR_WORDS)]


def default_phrases(clip: ClipBundle) -> list[str]:
    """Phrases ranked when none are given: the synthetic descriptions, plus the object
    vocabulary for real CLIP models (the micro CLIP knows nothing else)."""
    phrases = vocab.all_descriptions()
    if not clip.knows_only_synthetic_vocabulary:
        phrases += [p for p in object_vocabulary() if p not in phrases]
    return phrases


def region_crop(
    frame: np.ndarray,
    mask: np.ndarray | None = None,
    box: Sequence[float] | None = None,
    size: int = 64,
) -> np.ndarray:
    """uint8 ``[size, size, 3]`` crop around a mask's bounding box or an ``(x0, y0, x1, y1)`` box
    (pixels, x1/y1 exclusive), padded by ``CROP_PAD``. Give exactly one of mask and box."""
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"frame must be uint8 [H,W,3], got {frame.dtype} {frame.shape}")
    if (mask is None) == (box is None):
        raise ValueError("give exactly one of mask and box to say which region to describe")
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != frame.shape[:2]:
            raise ValueError(f"mask {mask.shape} does not match frame {frame.shape[:2]}")
        if not mask.any():
            raise ValueError("mask is empty: nothing to describe")
        return crop_object(frame, mask.astype(bool), pad=CROP_PAD, size=size)
    return crop_object(frame, _box_mask(box, frame.shape[:2]), pad=CROP_PAD, size=size)


def describe_region(
    clip: ClipBundle,
    frame: np.ndarray,
    mask: np.ndarray | None = None,
    box: Sequence[float] | None = None,
    phrases: Sequence[str] | None = None,
    top_k: int = 5,
    text_features: torch.Tensor | None = None,
) -> RegionDescription:
    """Describe the prompted region of ``frame`` by zero-shot ranking of ``phrases``.

    mask: bool ``[H, W]`` region (e.g. a first-frame mask prompt); box: ``(x0, y0, x1, y1)``
    (e.g. the box around the clicks). phrases default to :func:`default_phrases`;
    text_features: their embeddings, when the caller encoded them once for many regions.
    """
    crop = region_crop(frame, mask=mask, box=box, size=clip.image_size)
    phrases = checked_phrases(clip, phrases)
    if text_features is None:
        text_features = clip.encode_text(phrases)
    elif len(text_features) != len(phrases):
        raise ValueError(f"{len(text_features)} text features for {len(phrases)} phrases")
    (best,) = _rank(clip, clip.encode_image(crop), phrases, text_features, top_k)
    return RegionDescription(best[0][0], best[0][1], best, crop)


def describe_objects(
    clip: ClipBundle, video: Video, phrases: Sequence[str] | None = None, top_k: int = 5
) -> dict[int, tuple[int, RegionDescription]]:
    """Describe each object of ``video`` from its ground-truth mask on the first annotated frame
    where it is visible; returns object id -> (frame index, description)."""
    phrases = checked_phrases(clip, phrases)
    text_features = clip.encode_phrases(phrases)
    frames, crops = {}, []
    for obj in video.object_ids:
        t = _first_visible_frame(video, obj)
        frames[obj] = t
        crops.append(region_crop(video.frames[t], video.masks[t] == obj, size=clip.image_size))
    if not crops:
        return {}
    ranked = _rank(clip, clip.encode_image(crops), phrases, text_features, top_k)
    return {
        obj: (frames[obj], RegionDescription(r[0][0], r[0][1], r, crop))
        for obj, r, crop in zip(frames, ranked, crops, strict=True)
    }


def auto_description_accuracy(
    clip: ClipBundle, videos: Iterable[Video], phrases: Sequence[str] | None = None
) -> float:
    """Fraction of objects whose automatic description (see :func:`describe_objects`) names
    their true colour and shape (size words are ignored: they are relative within a video)."""
    hits, total = 0, 0
    for video in videos:
        for obj, (_, desc) in describe_objects(clip, video, phrases, top_k=1).items():
            if obj not in video.descriptions:
                raise ValueError(f"video {video.name!r}: object {obj} has no description")
            try:
                truth = vocab.parse_description(video.descriptions[obj])
            except ValueError as err:
                raise ValueError(f"video {video.name!r}, object {obj}: {err}") from err
            pred = (
                vocab.parse_description(desc.phrase)
                if vocab.is_vocabulary_text(desc.phrase)
                else None
            )
            hits += pred is not None and (pred.colour, pred.shape) == (truth.colour, truth.shape)
            total += 1
    if total == 0:
        raise ValueError("no objects to describe in the given videos")
    return hits / total


def checked_phrases(clip: ClipBundle, phrases: Sequence[str] | None) -> list[str]:
    """``phrases`` validated for ``clip`` (see :func:`check_text`), or the defaults if None."""
    if phrases is None:
        return default_phrases(clip)
    if isinstance(phrases, str) or len(phrases) == 0:
        raise ValueError(f"phrases must be a non-empty list of strings, got {phrases!r}")
    return [check_text(p, clip) for p in phrases]


def _rank(
    clip: ClipBundle,
    image_features: torch.Tensor,
    phrases: list[str],
    text_features: torch.Tensor,
    top_k: int,
) -> list[list[tuple[str, float]]]:
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    probs = (clip.logit_scale * image_features @ text_features.T).softmax(dim=-1)
    values, indices = probs.topk(min(top_k, len(phrases)), dim=-1)
    return [
        [(phrases[i], float(v)) for v, i in zip(vs.tolist(), ix.tolist(), strict=True)]
        for vs, ix in zip(values, indices, strict=True)
    ]


def _first_visible_frame(video: Video, obj: int) -> int:
    visible = np.flatnonzero(video.annotated & (video.masks == obj).any(axis=(1, 2)))
    if len(visible) == 0:
        raise ValueError(f"video {video.name!r}: object {obj} is never visible")
    return int(visible[0])


def _box_mask(box: Sequence[float], shape: tuple[int, int]) -> np.ndarray:
    if len(box) != 4:
        raise ValueError(f"box must be (x0, y0, x1, y1), got {box!r}")
    x0, y0, x1, y1 = (float(v) for v in box)
    h, w = shape
    c0, r0 = max(int(np.floor(x0)), 0), max(int(np.floor(y0)), 0)
    c1, r1 = min(int(np.ceil(x1)), w), min(int(np.ceil(y1)), h)
    if not (x1 > x0 and y1 > y0):
        raise ValueError(f"box {box!r} must have x1 > x0 and y1 > y0")
    if c1 <= c0 or r1 <= r0:
        raise ValueError(f"box {box!r} lies outside the {w}x{h} frame")
    mask = np.zeros(shape, dtype=bool)
    mask[r0:r1, c0:c1] = True
    return mask
