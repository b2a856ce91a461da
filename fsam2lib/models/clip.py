"""CLIP models for text relevance and automatic descriptions: the shipped micro CLIP or open_clip's.

Why a micro CLIP: real CLIP weights need a download, and the project must run offline. So the
project ships a small, genuine ``open_clip`` CLIP (registered from ``configs/clip_micro.json``,
open_clip's own BPE tokenizer) trained contrastively on the synthetic world's object crops and
their "colour shape" descriptions (``fsam2lib.train.train_clip_micro``). It only knows the
synthetic vocabulary. Any open_clip model name works too, with a pretrained tag (download) or a
local checkpoint file.

Micro architecture: open_clip's ModifiedResNet (width 16, one bottleneck per stage, attention
pooling) on 64 px crops, a 2-layer width-128 text transformer (context 16), 512-d embeddings
like ViT-B CLIP. A ResNet rather than a tiny ViT because, in a short CPU race, ViTs (patch 8
or 16, width 128) were still at chance shape accuracy after ~10k crops while this ResNet had
started to separate shapes.

Shipped weights format (``data/clip_micro.safetensors``): the model's state dict in float16,
except ``token_embedding.weight``: of its 49408 rows only the non-zero ones are stored
(``token_embedding.weight.rows`` + ``token_embedding.weight.ids``). The trainer zeroes every row
the synthetic vocabulary does not use, and those rows never receive a gradient, so loading
(rows scattered into zeros, everything cast back to float32) rebuilds the trained model.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import open_clip
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from fsam2lib.models.sam2 import RANDOM_MARKER
from fsam2lib.paths import MICRO_CLIP_CONFIG, MICRO_CLIP_WEIGHTS
from fsam2lib.text import vocab

MICRO_NAME = "micro"
MICRO_CONFIG_PATH = MICRO_CLIP_CONFIG
#: open_clip registers a config file under its file stem.
MICRO_OPEN_CLIP_NAME = MICRO_CONFIG_PATH.stem
DEFAULT_MICRO_WEIGHTS = MICRO_CLIP_WEIGHTS
MICRO_TRAIN_COMMAND = "python -m fsam2lib.train.train_clip_micro --out data/clip_micro.safetensors"
_WEIGHTS_FORMAT = "fsam2-clip-micro-v1"
_ROWS_KEY = "token_embedding.weight.rows"
_IDS_KEY = "token_embedding.weight.ids"
_ENCODE_BATCH = 256


class MissingWeightsError(FileNotFoundError):
    """CLIP weights are neither on disk nor downloadable (offline); the message says how to fix it."""


@dataclass
class ClipBundle:
    """A CLIP model with its tokenizer and image preprocessing, ready for zero-shot ranking.

    preprocess: uint8 ``[H, W, 3]`` RGB numpy image -> float tensor ``[3, S, S]`` (the model's
    own open_clip evaluation transform). ``encode_*`` return L2-normalised ``[N, embed_dim]``
    float32 tensors on ``device``, computed without gradients.
    """

    model: torch.nn.Module
    tokenizer: Callable[[list[str]], torch.Tensor]
    preprocess: Callable[[np.ndarray], torch.Tensor]
    name: str
    embed_dim: int
    device: torch.device
    knows_only_synthetic_vocabulary: bool = False
    random_weights: bool = False  # no pretrained weights, or a file with the RANDOM marker
    _phrase_features: dict = field(default_factory=dict, repr=False)

    @property
    def label(self) -> str:
        """What to print beside any output that used this CLIP."""
        if self.random_weights:
            return f"CLIP {self.name} (RANDOM weights: text cue and descriptions meaningless)"
        return f"CLIP {self.name} (trained)"

    @property
    def image_size(self) -> int:
        """Side of the square image the vision tower expects (crop to this size)."""
        size = self.model.visual.image_size
        return int(size[0] if isinstance(size, (tuple, list)) else size)

    @property
    def logit_scale(self) -> float:
        """CLIP's learned temperature (multiplies cosine similarities before a softmax)."""
        return float(self.model.logit_scale.detach().exp().clamp(max=100.0))

    @torch.no_grad()
    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """Embed texts; empty or whitespace-only text raises ValueError (it has no meaning)."""
        if isinstance(texts, str) or not isinstance(texts, Sequence):
            raise TypeError(f"encode_text expects a list of strings, got {type(texts).__name__}")
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"text {i} is {type(text).__name__}, expected str")
            if not text.strip():
                raise ValueError(f"text {i} is empty or whitespace ({text!r}); give a description")
        if not texts:
            return torch.zeros(0, self.embed_dim, device=self.device)
        self.model.eval()
        out = []
        for start in range(0, len(texts), _ENCODE_BATCH):
            tokens = self.tokenizer(list(texts[start : start + _ENCODE_BATCH])).to(self.device)
            out.append(self.model.encode_text(tokens, normalize=True).float())
        return torch.cat(out)

    def encode_phrases(self, phrases: Sequence[str]) -> torch.Tensor:
        """``encode_text`` of a vocabulary that is ranked again and again (describing every
        object of a dataset): computed once per phrase list and kept. A real CLIP's default
        vocabulary is ~900 phrases, about a minute of ViT-B-32 text tower on a CPU per call."""
        key = tuple(phrases)
        if key not in self._phrase_features:
            self._phrase_features.clear()  # one vocabulary at a time is what callers use
            self._phrase_features[key] = self.encode_text(list(key))
        return self._phrase_features[key]

    @torch.no_grad()
    def encode_image(self, images: np.ndarray | Sequence[np.ndarray]) -> torch.Tensor:
        """Embed uint8 RGB images: one ``[H,W,3]``, a stack ``[N,H,W,3]`` or a list of them."""
        arrays = _as_image_list(images)
        if not arrays:
            return torch.zeros(0, self.embed_dim, device=self.device)
        self.model.eval()
        out = []
        for start in range(0, len(arrays), _ENCODE_BATCH):
            batch = torch.stack([self.preprocess(a) for a in arrays[start : start + _ENCODE_BATCH]])
            out.append(self.model.encode_image(batch.to(self.device), normalize=True).float())
        return torch.cat(out)


def known_model_names() -> list[str]:
    """Names accepted by :func:`load_clip`: the micro model, then every open_clip architecture."""
    register_micro_config()
    return [MICRO_NAME] + [n for n in open_clip.list_models() if n != MICRO_OPEN_CLIP_NAME]


def register_micro_config() -> str:
    """Register ``configs/clip_micro.json`` with open_clip (idempotent); return its open_clip name."""
    if MICRO_OPEN_CLIP_NAME not in open_clip.list_models():
        if not MICRO_CONFIG_PATH.is_file():
            raise FileNotFoundError(f"micro CLIP config missing: {MICRO_CONFIG_PATH}")
        open_clip.add_model_config(MICRO_CONFIG_PATH)
    return MICRO_OPEN_CLIP_NAME


def micro_config() -> dict:
    """The micro CLIP's architecture (the parsed JSON config)."""
    return json.loads(MICRO_CONFIG_PATH.read_text())


def build_micro_model(**overrides) -> open_clip.CLIP:
    """A randomly initialised micro CLIP; ``overrides`` replace top-level config entries
    (e.g. ``vision_cfg={...}``), which is how tests build an even smaller one."""
    name = register_micro_config()
    with _quiet_open_clip():
        model = open_clip.create_model(name, **overrides)
    return model


def load_clip(
    name: str = MICRO_NAME,
    pretrained: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    cache_dir: str | None = None,
) -> ClipBundle:
    """Load a CLIP for text relevance / descriptions.

    name: "micro" (the shipped synthetic-world CLIP; ``pretrained`` may point to another micro
        weights file, default ``data/clip_micro.safetensors`` in the repository), or any
        open_clip model name (e.g. "ViT-B-32") with ``pretrained`` = an open_clip pretrained tag
        (e.g. "openai"; downloaded, so it needs the network unless cached) or a local checkpoint
        file. ``pretrained=None`` with an open_clip name gives random weights (with a warning).
    Raises ValueError for an unknown name (listing the known ones) or tag, MissingWeightsError
    when weights are missing (saying where to put or get them).
    """
    device = _check_device(device)
    known = known_model_names()
    if name in (MICRO_NAME, MICRO_OPEN_CLIP_NAME):
        return _load_micro(
            Path(pretrained) if pretrained is not None else DEFAULT_MICRO_WEIGHTS, device
        )
    if name not in known:
        raise ValueError(f"unknown CLIP model {name!r}; known names: {', '.join(known)}")
    checkpoint, tag_cfg = _resolve_open_clip_weights(name, pretrained, cache_dir)
    random_weights = checkpoint is None or _marked_random(checkpoint)
    if random_weights:
        why = "pretrained=None" if checkpoint is None else f"{checkpoint} is marked RANDOM"
        warnings.warn(
            f"CLIP {name!r} has random weights ({why}): its embeddings mean nothing",
            UserWarning,
            stacklevel=2,
        )
    # A tag's activation and preprocessing settings travel with the tag, not with the file.
    model, _, preprocess = open_clip.create_model_and_transforms(
        name,
        pretrained=checkpoint,
        device=device,
        force_quick_gelu=bool(tag_cfg.get("quick_gelu", False)),
        image_mean=tag_cfg.get("mean"),
        image_std=tag_cfg.get("std"),
        image_interpolation=tag_cfg.get("interpolation"),
        image_resize_mode=tag_cfg.get("resize_mode"),
    )
    bundle = _bundle(model, name, preprocess, device, micro=False)
    bundle.random_weights = random_weights
    return bundle


def save_open_clip_checkpoint(
    model: torch.nn.Module, path: str | os.PathLike, random: bool
) -> Path:
    """Save an open_clip model as open_clip's checkpoints are (``{"state_dict": ...}``), loadable
    by ``load_clip(name, pretrained=path)`` and by open_clip itself. ``random=True`` adds the
    RANDOM marker, so every output made with the file says its text is meaningless."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"state_dict": model.state_dict()}
    if random:
        payload[RANDOM_MARKER] = "random"
    torch.save(payload, path)
    return path


def _marked_random(checkpoint: str) -> bool:
    """Whether an open_clip checkpoint file carries the RANDOM marker (see ``save_open_clip_checkpoint``)."""
    if str(checkpoint).endswith(".safetensors"):
        return False
    payload = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)
    return isinstance(payload, dict) and payload.get(RANDOM_MARKER) == "random"


def save_micro_weights(
    model: torch.nn.Module, path: str | os.PathLike, config: dict | None = None
) -> Path:
    """Save a micro CLIP in the compact shipped format (see module docstring); return the path.

    ``config``: the architecture the model was built with (default: ``configs/clip_micro.json``;
    pass the overridden one for a model built with overrides). It is stored in the file's
    metadata, so :func:`load_clip` rebuilds the right architecture."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    table = state.pop("token_embedding.weight")
    ids = torch.nonzero(table.abs().sum(dim=1) > 0).flatten()
    tensors = {
        k: (v.to(torch.float16) if v.is_floating_point() else v).contiguous()
        for k, v in state.items()
    }
    tensors[_ROWS_KEY] = table[ids].to(torch.float16).contiguous()
    tensors[_IDS_KEY] = ids.to(torch.int32)
    metadata = {
        "format": _WEIGHTS_FORMAT,
        "open_clip_name": MICRO_OPEN_CLIP_NAME,
        "config": json.dumps(config or micro_config(), sort_keys=True),
        "vocab_rows": str(int(table.shape[0])),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=metadata)
    return path


def load_micro_weights(model: torch.nn.Module, path: str | os.PathLike) -> None:
    """Load compact micro weights into ``model`` (strict: every key and shape must match)."""
    path = Path(path)
    tensors = load_file(str(path))
    if _ROWS_KEY not in tensors or _IDS_KEY not in tensors:
        raise ValueError(f"{path} is not a micro CLIP weights file (no {_ROWS_KEY}/{_IDS_KEY})")
    target = model.state_dict()
    table = torch.zeros_like(target["token_embedding.weight"])
    ids = tensors.pop(_IDS_KEY).long()
    rows = tensors.pop(_ROWS_KEY)
    if rows.shape[1] != table.shape[1] or (ids.numel() and int(ids.max()) >= table.shape[0]):
        raise ValueError(
            f"{path}: token embedding rows {tuple(rows.shape)} do not fit the model's "
            f"{tuple(table.shape)}; was it trained with another configs/clip_micro.json?"
        )
    table[ids] = rows.to(table.dtype)
    state = {k: v.to(target[k].dtype) if k in target else v for k, v in tensors.items()}
    state["token_embedding.weight"] = table
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(
            f"{path} does not match the micro CLIP architecture in {MICRO_CONFIG_PATH}: {err}"
        ) from err


def zero_shot_accuracy(clip: ClipBundle, images: np.ndarray, texts: Sequence[str]) -> dict:
    """Zero-shot top-1 accuracy of colour, shape and full description on labelled crops.

    Prompts: colour = the 8 colour words alone ("red"), shape = the 6 shape words alone
    ("circle"), full = all 48 "colour shape" phrases (held-out pairs included; size words are
    left out, since a crop scaled to its bounding box cannot show size). Each image takes the
    highest-similarity prompt. Returns ``{"all"|"seen"|"held_out": {"n", "colour", "shape",
    "full"}}`` where held_out = pairs in ``vocab.HELD_OUT_COMBOS``; accuracies are None for n = 0.
    """
    if len(images) != len(texts):
        raise ValueError(f"{len(images)} images but {len(texts)} texts")
    truth = [vocab.parse_description(t) for t in texts]
    features = clip.encode_image(images)
    colours, shapes, fulls = list(vocab.COLOURS), list(vocab.SHAPES), vocab.all_descriptions()
    pred_colour = _top1(features, clip.encode_text(colours))
    pred_shape = _top1(features, clip.encode_text(shapes))
    pred_full = _top1(features, clip.encode_text(fulls))
    correct = {
        "colour": np.array(
            [colours[p] == d.colour for p, d in zip(pred_colour, truth, strict=True)]
        ),
        "shape": np.array([shapes[p] == d.shape for p, d in zip(pred_shape, truth, strict=True)]),
        "full": np.array(
            [
                fulls[p] == vocab.describe(d.colour, d.shape)
                for p, d in zip(pred_full, truth, strict=True)
            ]
        ),
    }
    held = np.array([(d.colour, d.shape) in vocab.HELD_OUT_COMBOS for d in truth], dtype=bool)
    groups = {"all": np.ones(len(truth), dtype=bool), "seen": ~held, "held_out": held}
    return {
        group: {"n": int(sel.sum())}
        | {k: (float(v[sel].mean()) if sel.any() else None) for k, v in correct.items()}
        for group, sel in groups.items()
    }


def accuracy_table(results: dict[str, dict]) -> str:
    """Plain-text table of :func:`zero_shot_accuracy` results keyed by split name."""
    lines = [f"{'split':<6} {'group':<9} {'n':>5} {'colour':>7} {'shape':>7} {'full':>7}"]
    for split, res in results.items():
        for group, row in res.items():
            cells = [
                f"{row[k]:>7.3f}" if row[k] is not None else f"{'-':>7}"
                for k in ("colour", "shape", "full")
            ]
            lines.append(f"{split:<6} {group:<9} {row['n']:>5} " + " ".join(cells))
    return "\n".join(lines)


def _top1(image_features: torch.Tensor, text_features: torch.Tensor) -> list[int]:
    return (image_features @ text_features.T).argmax(dim=1).tolist()


def _load_micro(path: Path, device: torch.device) -> ClipBundle:
    if not path.is_file():
        raise MissingWeightsError(
            f"micro CLIP weights not found: {path}. They ship with the repository "
            f"(data/clip_micro.safetensors); rebuild them with `{MICRO_TRAIN_COMMAND}`."
        )
    model = build_micro_model(**_stored_overrides(path))
    load_micro_weights(model, path)
    model.to(device).eval()
    return _bundle(model, MICRO_NAME, _micro_preprocess(model), device, micro=True)


def _stored_overrides(path: Path) -> dict:
    """Config entries of a weights file that differ from ``configs/clip_micro.json``."""
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
    if metadata.get("format") != _WEIGHTS_FORMAT:
        raise ValueError(
            f"{path} is not a micro CLIP weights file (metadata format "
            f"{metadata.get('format')!r}, expected {_WEIGHTS_FORMAT!r})"
        )
    stored, default = json.loads(metadata["config"]), micro_config()
    return {k: v for k, v in stored.items() if default.get(k) != v}


def wrap_micro_model(model: torch.nn.Module) -> ClipBundle:
    """A :class:`ClipBundle` around an in-memory micro CLIP (e.g. one being trained)."""
    device = next(model.parameters()).device
    return _bundle(model, MICRO_NAME, _micro_preprocess(model), device, micro=True)


def _micro_preprocess(model: torch.nn.Module) -> Callable:
    return open_clip.transform.image_transform_v2(
        open_clip.transform.PreprocessCfg(**model.visual.preprocess_cfg), is_train=False
    )


def _bundle(model, name: str, preprocess, device: torch.device, micro: bool) -> ClipBundle:
    model.eval()
    config = micro_config() if micro else open_clip.get_model_config(name)
    return ClipBundle(
        model=model,
        tokenizer=open_clip.get_tokenizer(MICRO_OPEN_CLIP_NAME if micro else name),
        preprocess=_numpy_preprocess(preprocess),
        name=name,
        embed_dim=int(config["embed_dim"]),
        device=device,
        knows_only_synthetic_vocabulary=micro,
    )


def _numpy_preprocess(transform: Callable) -> Callable[[np.ndarray], torch.Tensor]:
    def preprocess(image: np.ndarray) -> torch.Tensor:
        (image,) = _as_image_list(image)
        return transform(Image.fromarray(image))

    return preprocess


def _as_image_list(images) -> list[np.ndarray]:
    if isinstance(images, np.ndarray):
        if images.ndim == 3:
            images = [images]
        elif images.ndim != 4:
            raise ValueError(f"images must be [H,W,3] or [N,H,W,3], got shape {images.shape}")
    arrays = list(images)
    for i, a in enumerate(arrays):
        if not isinstance(a, np.ndarray) or a.dtype != np.uint8 or a.ndim != 3 or a.shape[-1] != 3:
            desc = f"{a.dtype} {a.shape}" if isinstance(a, np.ndarray) else type(a).__name__
            raise ValueError(f"image {i} must be a uint8 [H,W,3] RGB array, got {desc}")
    return arrays


def _check_device(device: str | torch.device) -> torch.device:
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device} requested but CUDA is not available here")
    return device


def _resolve_open_clip_weights(
    name: str, pretrained, cache_dir: str | None
) -> tuple[str | None, dict]:
    """Map ``pretrained`` (None, a local file or an open_clip tag) to a local checkpoint path and
    the tag's settings ({} unless a tag). Never waits on an unreachable network."""
    if pretrained is None:
        return None, {}
    if Path(pretrained).is_file():
        return str(pretrained), {}
    tag = str(pretrained)
    cfg = open_clip.get_pretrained_cfg(name, tag)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(name)
        raise ValueError(
            f"pretrained={tag!r} is neither a file nor a known tag of {name!r}; "
            f"tags: {', '.join(tags) or '(none)'}"
        )
    cached = _cached_weights(cfg, cache_dir)
    if cached is not None:
        return cached, cfg
    sources = _weight_sources(cfg)
    advice = (
        f"Download them from {' or '.join(sources)} and pass the local file: "
        f"load_clip({name!r}, pretrained='/path/to/file')."
    )
    if not _network_available(sources):
        raise MissingWeightsError(
            f"open_clip weights {name}/{tag} are not cached here and the network is unreachable. {advice}"
        )
    try:
        return open_clip.pretrained.download_pretrained(cfg, cache_dir=cache_dir), cfg
    except Exception as err:  # any download failure gets the same advice
        raise MissingWeightsError(
            f"could not download open_clip weights {name}/{tag} ({err}). {advice}"
        ) from err


def _hf_location(hf_hub: str) -> tuple[str, list[str]]:
    """open_clip's "org/repo/file" or "org/repo/" (default file names) -> repo id, file names."""
    repo, filename = os.path.split(hf_hub)
    if filename:
        return repo, [filename]
    return repo, [open_clip.constants.HF_SAFE_WEIGHTS_NAME, open_clip.constants.HF_WEIGHTS_NAME]


def _weight_sources(cfg: dict) -> list[str]:
    sources = []
    if cfg.get("hf_hub"):
        repo, files = _hf_location(cfg["hf_hub"])
        sources.append(f"https://huggingface.co/{repo} (file {' or '.join(files)})")
    if cfg.get("url"):
        sources.append(cfg["url"])
    return sources


def _cached_weights(cfg: dict, cache_dir: str | None) -> str | None:
    """A previously downloaded copy of a tag's weights, looked up without touching the network."""
    if cfg.get("file") and Path(cfg["file"]).is_file():
        return cfg["file"]
    if cfg.get("url"):
        local = Path(cache_dir or os.path.expanduser("~/.cache/clip")) / os.path.basename(
            cfg["url"]
        )
        if local.is_file():
            return str(local)
    if cfg.get("hf_hub"):
        from huggingface_hub import try_to_load_from_cache

        repo, files = _hf_location(cfg["hf_hub"])
        for filename in files:
            hit = try_to_load_from_cache(repo_id=repo, filename=filename, cache_dir=cache_dir)
            if isinstance(hit, str):
                return hit
    return None


def _network_available(sources: list[str], timeout: float = 3.0) -> bool:
    """Whether a weights host answers; False at once when HF_HUB_OFFLINE is set."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    for url in sources:
        host = url.split("://", 1)[-1].split("/", 1)[0].split(" ", 1)[0]
        try:
            with socket.create_connection((host, 443), timeout=timeout):
                return True
        except OSError:
            continue
    return False


@contextmanager
def _quiet_open_clip() -> Iterator[None]:
    """Silence open_clip's root-logger "initialized randomly" warning while we build a model
    whose weights we load ourselves right after."""
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        logger.setLevel(level)


__all__ = [
    "ClipBundle",
    "MissingWeightsError",
    "accuracy_table",
    "build_micro_model",
    "known_model_names",
    "load_clip",
    "load_micro_weights",
    "register_micro_config",
    "save_micro_weights",
    "wrap_micro_model",
    "zero_shot_accuracy",
]
