"""Read and write videos in the DAVIS 2017 folder layout, plus one text description per object.

Layout under a dataset root (a real DAVIS 2017 download is read unchanged)::

    JPEGImages/<resolution>/<video>/00000.jpg   frames (.jpg, .jpeg or lossless .png)
    Annotations/<resolution>/<video>/00000.png  indexed (palette) or greyscale PNG label maps:
                                                0 = background, 1..K = objects, 255 = void
    ImageSets/<year>/<split>.txt                one video name per line (val, train, test-dev, ...)
    descriptions.json                           text per object, see below

``descriptions.json`` maps video name -> object id (a JSON string) -> text::

    {"bear": {"1": "brown bear"}, "synth_0007": {"1": "red circle", "2": "small blue star"}}

A missing file means "no descriptions" (real DAVIS ships none). Frame names must be consecutive
numbers; annotations must cover a consecutive run of frames starting at the first frame
(all frames for train/val, only the first one for test-dev), which ``Video.annotated`` records.

Frames are written as JPEG (as DAVIS ships them) at quality 95 and without chroma subsampling
(4:4:4, so the synthetic world's sharp colour edges survive) by default; JPEG is lossy, so a write -> read round trip returns identical masks and descriptions but
only approximately equal frames. ``frame_format="png"`` stores lossless frames for exact round
trips. Prediction folders (``write_masks``) use the layout the DAVIS evaluation code and
vos-benchmark read: ``<folder>/<video>/<frame>.png`` palette PNGs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from fsam2lib.videos.video import Video

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")
VOID_LABEL = 255
JPEG_QUALITY = 95
DESCRIPTIONS_FILE = "descriptions.json"


def _davis_palette() -> np.ndarray:
    """The DAVIS palette (the PASCAL VOC colour map): index bits spread over R, G, B, MSB first."""
    index = np.arange(256)
    palette = np.zeros((256, 3), dtype=np.uint8)
    for bit in range(8):  # bit 3*bit+c of the index becomes bit (7 - bit) of channel c
        for channel in range(3):
            palette[:, channel] |= (((index >> (3 * bit + channel)) & 1) << (7 - bit)).astype(
                np.uint8
            )
    return palette


#: uint8 ``[256, 3]``: 0 black, 1 (128, 0, 0), 2 (0, 128, 0), ..., 255 (224, 224, 192).
DAVIS_PALETTE: np.ndarray = _davis_palette()
DAVIS_PALETTE.flags.writeable = False


# ----------------------------------------------------------------------------- masks (PNG)


def _check_label_maps(masks: np.ndarray, what: str) -> None:
    if not isinstance(masks, np.ndarray) or masks.dtype != np.uint8 or masks.ndim != 3:
        raise ValueError(
            f"{what}: masks must be a uint8 array [T,H,W] of labels (0 background, 1..254 "
            f"objects, 255 void), got {getattr(masks, 'dtype', type(masks))} "
            f"{tuple(getattr(masks, 'shape', ()))}"
        )


def _save_label_png(path: Path, labels: np.ndarray) -> None:
    image = Image.fromarray(labels)  # mode 'L'; putpalette turns it into mode 'P'
    image.putpalette(DAVIS_PALETTE.tobytes())
    image.save(path)


def _load_label_png(path: Path) -> np.ndarray:
    """Read an indexed ('P') or greyscale ('L') PNG as its raw label values."""
    image = _open_image(path)
    if image.mode not in ("P", "L"):
        raise ValueError(
            f"{path}: label PNGs must be indexed (mode 'P') or greyscale (mode 'L'), "
            f"got mode {image.mode!r}"
        )
    return np.asarray(image, dtype=np.uint8)


def _open_image(path: Path) -> Image.Image:
    """Open and fully decode an image, turning every decoder failure into an error naming it."""
    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except FileNotFoundError:
        raise FileNotFoundError(f"image file not found: {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"cannot read image {path}: {err}") from err


def write_masks(
    folder: str | Path, video_name: str, masks: np.ndarray, frame_names: list[str]
) -> None:
    """Write label maps as ``folder/<video>/<frame>.png`` palette PNGs (one per frame name)."""
    _check_name(video_name, "video name")
    _check_label_maps(masks, f"video {video_name!r}")
    if len(frame_names) != len(masks):
        raise ValueError(
            f"video {video_name!r}: {len(frame_names)} frame names for {len(masks)} masks"
        )
    out = Path(folder) / video_name
    out.mkdir(parents=True, exist_ok=True)
    for frame_name, labels in zip(frame_names, masks, strict=True):
        _check_name(frame_name, "frame name")
        _save_label_png(out / f"{frame_name}.png", labels)


def labels_from_logits(logits: np.ndarray, object_ids: list[int]) -> np.ndarray:
    """``[K, T, H, W]`` logits -> uint8 ``[T, H, W]`` label map (best object where its logit > 0)."""
    best = logits.argmax(0)
    ids = np.asarray(object_ids, dtype=np.uint8)[best]
    return np.where(logits.max(0) > 0, ids, 0).astype(np.uint8)


def save_as_they_come(
    propagation: Iterable[tuple[int, list, object]], folder: str | Path, video_name: str
) -> Iterator[tuple[int, list, object]]:
    """Pass ``predictor.propagate_in_video(...)`` through, writing each frame's label map as a
    DAVIS palette PNG ``folder/<video>/<frame:05d>.png`` as soon as it is yielded, so that a
    long video's masks never have to be held in memory at once."""
    _check_name(video_name, "video name")
    out = Path(folder) / video_name
    out.mkdir(parents=True, exist_ok=True)
    for frame_idx, obj_ids, mask_logits in propagation:
        bad = [
            i for i in obj_ids if isinstance(i, bool) or not isinstance(i, int) or not 0 < i < 256
        ]
        if bad:
            raise ValueError(f"palette PNGs hold object ids 1..255, got {bad}")
        logits = mask_logits.float().cpu().numpy()[:, 0]  # [K, H, W]
        _save_label_png(
            out / f"{frame_idx:05d}.png", labels_from_logits(logits[:, None], obj_ids)[0]
        )
        yield frame_idx, obj_ids, mask_logits


def read_masks(folder: str | Path, video_name: str) -> tuple[np.ndarray, list[str]]:
    """Read every ``folder/<video>/*.png`` (sorted by name) -> uint8 ``[T,H,W]`` and frame names."""
    video_dir = Path(folder) / video_name
    if not video_dir.is_dir():
        raise FileNotFoundError(f"mask folder for video {video_name!r} not found: {video_dir}")
    paths = sorted(p for p in video_dir.iterdir() if p.suffix.lower() == ".png")
    if not paths:
        raise FileNotFoundError(f"no .png masks in {video_dir}")
    masks = [_load_label_png(p) for p in paths]
    for path, labels in zip(paths, masks, strict=True):
        if labels.shape != masks[0].shape:
            raise ValueError(
                f"{path}: size {labels.shape[::-1]} differs from {paths[0].name} "
                f"({masks[0].shape[::-1]}) (W x H)"
            )
    return np.stack(masks), [p.stem for p in paths]


# ----------------------------------------------------------------------------- videos


def write_video(
    root: str | Path,
    video: Video,
    resolution: str = "480p",
    frame_format: str = "jpg",
    overwrite: bool = False,
) -> None:
    """Write frames, the annotated frames' masks, and merge the descriptions into the root's file.

    frame_format: "jpg" (lossy, quality 95, DAVIS-like) or "png" (lossless, exact round trips).
    overwrite: replace frame and mask files already in this video's folders; without it an
        existing non-empty folder is an error (stale frames would silently join the video).
    """
    if frame_format not in ("jpg", "png"):
        raise ValueError(f"frame_format must be 'jpg' or 'png', got {frame_format!r}")
    _check_name(video.name, "video name")
    _check_label_maps(video.masks, f"video {video.name!r}")
    _check_frame_names(video.frame_names, f"video {video.name!r}")
    annotated = np.asarray(video.annotated, dtype=bool)
    _check_annotated_prefix(annotated, video.frame_names, f"video {video.name!r}")
    if video.masks[~annotated].any():
        raise ValueError(
            f"video {video.name!r}: frames marked as not annotated have non-zero masks, "
            "which would be lost on writing"
        )

    root = Path(root)
    frame_dir = root / "JPEGImages" / resolution / video.name
    mask_dir = root / "Annotations" / resolution / video.name
    for folder in (frame_dir, mask_dir):
        _prepare_folder(folder, overwrite)
    for frame_name, frame in zip(video.frame_names, video.frames, strict=True):
        image = Image.fromarray(frame)
        if frame_format == "jpg":
            image.save(frame_dir / f"{frame_name}.jpg", quality=JPEG_QUALITY, subsampling=0)
        else:
            image.save(frame_dir / f"{frame_name}.png")
    for frame_name, labels in zip(
        np.asarray(video.frame_names)[annotated], video.masks[annotated], strict=True
    ):
        _save_label_png(mask_dir / f"{frame_name}.png", labels)

    descriptions = read_descriptions(root)
    if video.descriptions:
        descriptions[video.name] = dict(video.descriptions)
    else:
        descriptions.pop(video.name, None)
    write_descriptions(root, descriptions)


def read_video(root: str | Path, name: str, resolution: str = "480p") -> Video:
    """Read one video (frames, masks of its annotated frames, descriptions) from a DAVIS root."""
    root = Path(root)
    frame_dir = root / "JPEGImages" / resolution / name
    mask_dir = root / "Annotations" / resolution / name
    if not frame_dir.is_dir():
        raise FileNotFoundError(f"video {name!r}: frame folder not found: {frame_dir}")
    frame_paths = _frame_paths(frame_dir)
    frame_names = [p.stem for p in frame_paths]
    _check_frame_names(frame_names, f"video {name!r} ({frame_dir})")
    frames = np.stack(_read_frames(frame_paths))

    if not mask_dir.is_dir():
        raise FileNotFoundError(f"video {name!r}: annotation folder not found: {mask_dir}")
    mask_paths = {p.stem: p for p in mask_dir.iterdir() if p.suffix.lower() == ".png"}
    unknown = sorted(set(mask_paths) - set(frame_names))
    if unknown:
        raise ValueError(f"{mask_dir}: annotations {unknown} have no matching frame")
    annotated = np.array([n in mask_paths for n in frame_names], dtype=bool)
    _check_annotated_prefix(annotated, frame_names, f"video {name!r} ({mask_dir})")

    masks = np.zeros(frames.shape[:3], dtype=np.uint8)
    for t in np.flatnonzero(annotated):
        path = mask_paths[frame_names[t]]
        labels = _load_label_png(path)
        if labels.shape != frames.shape[1:3]:
            raise ValueError(
                f"{path}: mask size {labels.shape[::-1]} differs from its frame "
                f"{frame_paths[t].name} {frames.shape[2:0:-1]} (W x H)"
            )
        masks[t] = labels
    return Video(
        name=name,
        frames=frames,
        masks=masks,
        descriptions=read_descriptions(root).get(name, {}),
        frame_names=frame_names,
        annotated=annotated,
    )


def _frame_paths(frame_dir: Path) -> list[Path]:
    paths = sorted(p for p in frame_dir.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
    if not paths:
        raise FileNotFoundError(f"no frames ({', '.join(FRAME_SUFFIXES)}) in {frame_dir}")
    stems = [p.stem for p in paths]
    duplicated = sorted({s for s in stems if stems.count(s) > 1})
    if duplicated:
        raise ValueError(f"{frame_dir}: frames {duplicated} exist in more than one format")
    return paths


def _read_frames(paths: list[Path]) -> list[np.ndarray]:
    frames = []
    for path in paths:
        image = _open_image(path)
        if image.mode not in ("RGB", "L"):
            raise ValueError(f"{path}: frames must be RGB or greyscale, got mode {image.mode!r}")
        frame = np.asarray(image.convert("RGB"), dtype=np.uint8)
        if frames and frame.shape != frames[0].shape:
            raise ValueError(
                f"{path}: size {frame.shape[1::-1]} differs from {paths[0].name} "
                f"{frames[0].shape[1::-1]} (W x H)"
            )
        frames.append(frame)
    return frames


def _check_frame_names(frame_names: list[str], what: str) -> None:
    """Frame names must be numbers counting up by one (00000, 00001, ...): a gap is a lost frame."""
    for name in frame_names:
        _check_name(name, "frame name")
        if not name.isdigit():
            raise ValueError(f"{what}: frame name {name!r} is not a number like '00000'")
    for before, after in zip(frame_names[:-1], frame_names[1:], strict=True):
        if int(after) != int(before) + 1:
            raise ValueError(f"{what}: frames are not consecutive: {after!r} follows {before!r}")


def _check_annotated_prefix(annotated: np.ndarray, frame_names: list[str], what: str) -> None:
    """Annotations must be a consecutive run from the first frame (dense, or test-dev's first)."""
    if len(annotated) == 0 or not annotated[0]:
        first = frame_names[0] if frame_names else "<none>"
        raise ValueError(f"{what}: the first frame {first!r} has no annotation")
    gaps = np.flatnonzero(~annotated)
    if len(gaps) and annotated[gaps[0] :].any():
        later = frame_names[gaps[0] + int(np.argmax(annotated[gaps[0] :]))]
        raise ValueError(
            f"{what}: annotations are not consecutive: frame {frame_names[gaps[0]]!r} has none "
            f"but later frame {later!r} has one"
        )


def _prepare_folder(folder: Path, overwrite: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    existing = [p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES]
    if existing and not overwrite:
        raise FileExistsError(f"{folder} already holds {len(existing)} images; pass overwrite=True")
    for path in existing:
        path.unlink()


def _check_name(name: str, what: str) -> None:
    if not isinstance(name, str) or not name or name.strip() != name or "/" in name or "\\" in name:
        raise ValueError(f"invalid {what} {name!r}: must be a non-empty file name without slashes")
    if name in (".", "..") or any(c in name for c in "\n\r\t"):
        raise ValueError(f"invalid {what} {name!r}")


# ----------------------------------------------------------------------------- image sets


def write_image_set(
    root: str | Path, names: list[str], split: str = "val", year: str = "2017"
) -> None:
    """Write ``ImageSets/<year>/<split>.txt`` with one video name per line."""
    _check_name(split, "split name")
    for name in names:
        _check_name(name, "video name")
        if " " in name:
            raise ValueError(f"invalid video name {name!r}: contains a space")
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"split {split!r}: duplicated video names {duplicated}")
    folder = Path(root) / "ImageSets" / year
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{split}.txt").write_text("".join(f"{n}\n" for n in names))


def list_videos(root: str | Path, split: str = "val", year: str = "2017") -> list[str]:
    """Video names of a split, in file order, from ``ImageSets/<year>/<split>.txt``."""
    path = Path(root) / "ImageSets" / year / f"{split}.txt"
    if not path.is_file():
        found = sorted(f"{p.parent.name}/{p.stem}" for p in Path(root).glob("ImageSets/*/*.txt"))
        raise FileNotFoundError(
            f"split file {path} not found; splits present (year/split): "
            f"{', '.join(found) if found else 'none'}"
        )
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"{path}: duplicated video names {duplicated}")
    return names


# ----------------------------------------------------------------------------- descriptions


def read_descriptions(root: str | Path) -> dict[str, dict[int, str]]:
    """``root/descriptions.json`` as {video: {object id: text}}; a missing file gives {}."""
    path = Path(root) / DESCRIPTIONS_FILE
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON: {err}") from err
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected an object {{video: {{id: text}}}}, got {type(raw)}")
    return {video: _parse_objects(objects, f"{path} [{video!r}]") for video, objects in raw.items()}


def write_descriptions(root: str | Path, descriptions: dict[str, dict[int, str]]) -> None:
    """Write ``root/descriptions.json`` (replacing it), keys sorted for stable diffs."""
    payload = {}
    for video, objects in descriptions.items():
        _check_name(video, "video name")
        checked = _parse_objects(objects, f"descriptions of {video!r}")
        payload[video] = {str(k): checked[k] for k in sorted(checked)}
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    text = json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False)
    (root / DESCRIPTIONS_FILE).write_text(text + "\n")


def _parse_objects(objects: object, what: str) -> dict[int, str]:
    if not isinstance(objects, dict):
        raise ValueError(f"{what}: expected {{object id: text}}, got {type(objects).__name__}")
    parsed = {}
    for key, text in objects.items():
        try:
            obj_id = int(key)
        except (TypeError, ValueError):
            raise ValueError(f"{what}: object id {key!r} is not an integer") from None
        if not 1 <= obj_id <= 254 or str(obj_id) != str(key):
            raise ValueError(f"{what}: object id {key!r} must be an integer in 1..254")
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{what}: description of object {obj_id} must be non-empty text")
        parsed[obj_id] = text
    return parsed
