"""Loading SAM2 models: the shipped micro model, Meta's SAM2/SAM2.1 configs, or random weights.

One place decides where weights come from, so that no notebook or benchmark can silently fall
back to random weights: ``weights="random"`` must be asked for, and the returned model carries
``fsam2_weights == "random"`` so every output that uses it can say so. Random weights saved as
an official-format file (``save_checkpoint``; the CI rehearsal of the real path does this) keep
a marker next to the state dict, so whatever loads that file is labelled RANDOM too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch

from fsam2lib.paths import CONFIG_DIR, MICRO_SAM2_WEIGHTS

CHECKPOINT_DIR_ENV = "FSAM2_CHECKPOINTS"
# Extra key of a checkpoint payload holding random weights; sam2's own loader reads only "model".
RANDOM_MARKER = "fsam2_weights"


@dataclass(frozen=True)
class Sam2Spec:
    """Where a named SAM2 model's config and official checkpoint live."""

    config: str  # sam2 package config name, or a file in fsam2lib/configs
    checkpoint: str | None  # official file name (None: shipped in data/)
    url: str | None = None

    @property
    def is_packaged_config(self) -> bool:
        return self.config.startswith("configs/")


_META = "https://dl.fbaipublicfiles.com/segment_anything_2"
SAM2_MODELS: dict[str, Sam2Spec] = {
    "micro": Sam2Spec("sam2_micro.yaml", None),
    "sam2.1_hiera_t": Sam2Spec(
        "configs/sam2.1/sam2.1_hiera_t.yaml",
        "sam2.1_hiera_tiny.pt",
        f"{_META}/092824/sam2.1_hiera_tiny.pt",
    ),
    "sam2.1_hiera_s": Sam2Spec(
        "configs/sam2.1/sam2.1_hiera_s.yaml",
        "sam2.1_hiera_small.pt",
        f"{_META}/092824/sam2.1_hiera_small.pt",
    ),
    "sam2.1_hiera_b+": Sam2Spec(
        "configs/sam2.1/sam2.1_hiera_b+.yaml",
        "sam2.1_hiera_base_plus.pt",
        f"{_META}/092824/sam2.1_hiera_base_plus.pt",
    ),
    "sam2.1_hiera_l": Sam2Spec(
        "configs/sam2.1/sam2.1_hiera_l.yaml",
        "sam2.1_hiera_large.pt",
        f"{_META}/092824/sam2.1_hiera_large.pt",
    ),
    "sam2_hiera_t": Sam2Spec(
        "configs/sam2/sam2_hiera_t.yaml", "sam2_hiera_tiny.pt", f"{_META}/072824/sam2_hiera_tiny.pt"
    ),
    "sam2_hiera_s": Sam2Spec(
        "configs/sam2/sam2_hiera_s.yaml",
        "sam2_hiera_small.pt",
        f"{_META}/072824/sam2_hiera_small.pt",
    ),
    "sam2_hiera_b+": Sam2Spec(
        "configs/sam2/sam2_hiera_b+.yaml",
        "sam2_hiera_base_plus.pt",
        f"{_META}/072824/sam2_hiera_base_plus.pt",
    ),
    "sam2_hiera_l": Sam2Spec(
        "configs/sam2/sam2_hiera_l.yaml",
        "sam2_hiera_large.pt",
        f"{_META}/072824/sam2_hiera_large.pt",
    ),
}

VIDEO_PREDICTOR = "sam2.sam2_video_predictor.SAM2VideoPredictor"


def load_sam2(
    name: str = "micro",
    checkpoint: str | Path | None = None,
    device: str = "cpu",
    weights: str | None = None,
    image_size: int | None = None,
    predictor_class: str | type = VIDEO_PREDICTOR,
    seed: int = 0,
    overrides: list[str] | None = None,
) -> torch.nn.Module:
    """Build a SAM2 video predictor (or any SAM2Base subclass) with trained or random weights.

    name: ``"micro"`` (shipped, offline) or one of Meta's names (``sam2.1_hiera_t`` ...).
    checkpoint: a local file in the official format (``{"model": state_dict}`` .pt) or a
        safetensors state dict. Without it, Meta's models are looked up in ``$FSAM2_CHECKPOINTS``,
        ``~/.cache/fsam2/checkpoints`` and ``./checkpoints``, then downloaded if online.
    weights: ``None`` for trained weights, ``"random"`` for seeded random weights — only for
        measuring cost; the model then carries ``fsam2_weights == "random"``.
    image_size: override the config's input size (multiple of 32), e.g. for cheaper cost runs.
    predictor_class: the class (or dotted path) hydra instantiates as the model.
    """
    spec = _spec(name)
    if weights not in (None, "random"):
        raise ValueError(f"weights must be None (trained) or 'random', got {weights!r}")
    if weights == "random" and checkpoint is not None:
        raise ValueError("weights='random' and a checkpoint were both given; choose one")
    torch_device = _check_device(device)
    state, marked_random = (
        (None, True)
        if weights == "random"
        else _load_state_dict(_resolve_checkpoint(name, spec, checkpoint))
    )

    extra = [f"++model._target_={_dotted(predictor_class)}"]
    if image_size is not None:
        if image_size % 32 or image_size <= 0:
            raise ValueError(f"image_size must be a positive multiple of 32, got {image_size}")
        extra.append(f"++model.image_size={image_size}")
    extra += list(overrides or [])

    torch.manual_seed(seed)
    model = _instantiate(spec, extra, video_predictor=_is_video_predictor(predictor_class))
    if state is not None:
        _load_into(model, state, name)
    if hasattr(model, "fill_hole_area"):
        # Hole filling needs sam2's optional CUDA extension (_C), not built here: without it
        # sam2 skips the step with a warning on every frame. Switch it off explicitly instead
        # (build_sam2 appends its own fill_hole_area=8 after our overrides).
        model.fill_hole_area = 0
    model.fsam2_name = name
    model.fsam2_weights = "random" if marked_random else "trained"
    return model.to(torch_device).eval()


def weights_label(model: torch.nn.Module) -> str:
    """A human-readable label such as "micro (trained)" or "sam2.1_hiera_t (RANDOM weights, cost only)"."""
    name = getattr(model, "fsam2_name", type(model).__name__)
    if getattr(model, "fsam2_weights", "trained") == "random":
        return f"{name} (RANDOM weights, cost only)"
    return f"{name} (trained)"


def save_checkpoint(model: torch.nn.Module, path: str | Path) -> Path:
    """Save in SAM2's official format (``{"model": state_dict}``), loadable by ``load_sam2`` and
    by sam2's own ``build_sam2``. A model with random weights also gets the RANDOM marker."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"model": model.state_dict()}
    if getattr(model, "fsam2_weights", "trained") == "random":
        payload[RANDOM_MARKER] = "random"
    torch.save(payload, path)
    return path


def _spec(name: str) -> Sam2Spec:
    if name not in SAM2_MODELS:
        raise ValueError(f"unknown SAM2 model {name!r}; known: {', '.join(SAM2_MODELS)}")
    return SAM2_MODELS[name]


def _check_device(device: str) -> torch.device:
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device {device!r} requested but CUDA is not available here; use device='cpu'"
        )
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError(
            f"device {device!r} requested but MPS is not available here; use device='cpu'"
        )
    return dev


def _is_video_predictor(cls: str | type) -> bool:
    """sam2's post-processing options (hole filling, ...) exist only on video predictors."""
    from hydra.utils import get_class
    from sam2.sam2_video_predictor import SAM2VideoPredictor

    return issubclass(get_class(cls) if isinstance(cls, str) else cls, SAM2VideoPredictor)


def _dotted(cls: str | type) -> str:
    return cls if isinstance(cls, str) else f"{cls.__module__}.{cls.__qualname__}"


def checkpoint_search_dirs() -> list[Path]:
    """Folders searched for official checkpoints, in order."""
    dirs = [Path(os.environ[CHECKPOINT_DIR_ENV])] if os.environ.get(CHECKPOINT_DIR_ENV) else []
    return dirs + [Path.home() / ".cache" / "fsam2" / "checkpoints", Path.cwd() / "checkpoints"]


def _resolve_checkpoint(name: str, spec: Sam2Spec, checkpoint: str | Path | None) -> Path:
    if checkpoint is not None:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint for {name!r} not found: {path}")
        return path
    if spec.checkpoint is None:
        if not MICRO_SAM2_WEIGHTS.is_file():
            raise FileNotFoundError(
                f"shipped micro SAM2 weights missing: {MICRO_SAM2_WEIGHTS}. They come with the "
                "repository (data/); retrain with `python -m fsam2lib.train.train_sam2_micro`."
            )
        return MICRO_SAM2_WEIGHTS
    dirs = checkpoint_search_dirs()
    for folder in dirs:
        if (folder / spec.checkpoint).is_file():
            return folder / spec.checkpoint
    return _download(spec, dirs)


def _download(spec: Sam2Spec, dirs: list[Path]) -> Path:
    target = dirs[-2] / spec.checkpoint  # ~/.cache/fsam2/checkpoints
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(spec.url, str(target) + ".part", progress=True)
    except Exception as err:  # offline, DNS failure, HTTP error
        searched = "\n  ".join(str(d) for d in dirs)
        raise FileNotFoundError(
            f"SAM2 checkpoint {spec.checkpoint!r} is not on this machine and could not be "
            f"downloaded ({type(err).__name__}: {err}).\nDownload it from {spec.url}\n"
            f"and put it in one of:\n  {searched}\nor pass checkpoint=PATH "
            f"(or set ${CHECKPOINT_DIR_ENV})."
        ) from err
    os.replace(str(target) + ".part", target)
    return target


def _load_state_dict(path: Path) -> tuple[Mapping[str, torch.Tensor], bool]:
    """The checkpoint's state dict, and whether it carries the RANDOM marker."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path)), False
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise RuntimeError(f"cannot read checkpoint {path}: {type(err).__name__}: {err}") from err
    if not isinstance(payload, Mapping) or "model" not in payload:
        raise RuntimeError(
            f"checkpoint {path} is not in SAM2's official format (a dict with a 'model' state dict)"
        )
    return payload["model"], payload.get(RANDOM_MARKER) == "random"


def _load_into(model: torch.nn.Module, state: Mapping[str, torch.Tensor], name: str) -> None:
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:

        def head(keys: list[str]) -> str:
            return ", ".join(keys[:8]) + (f" … (+{len(keys) - 8})" if len(keys) > 8 else "")

        raise RuntimeError(
            f"checkpoint does not match the {name!r} config: missing keys [{head(missing)}]; "
            f"unexpected keys [{head(unexpected)}]; shape mismatches [{head(wrong)}]"
        )
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})


@contextmanager
def _fsam2_config_dir():
    """Let sam2's own builders (hydra ``compose``) see fsam2lib/configs for one call."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.initialize import get_gh_backup, restore_gh_from_backup

    saved = get_gh_backup()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.2"):
            yield
    finally:
        restore_gh_from_backup(saved)


def config_image_size(name: str) -> int:
    """A named model's input size in pixels, read from its config without building it."""
    spec = _spec(name)
    import sam2  # noqa: F401  (initialises hydra's search path for sam2's configs)
    from hydra import compose

    with nullcontext() if spec.is_packaged_config else _fsam2_config_dir():
        return int(compose(config_name=spec.config).model.image_size)


def _instantiate(spec: Sam2Spec, overrides: list[str], video_predictor: bool) -> torch.nn.Module:
    import sam2  # noqa: F401  (initialises hydra's search path for sam2's configs)
    from sam2.build_sam import build_sam2_video_predictor

    def build() -> torch.nn.Module:
        return build_sam2_video_predictor(
            spec.config,
            ckpt_path=None,
            device="cpu",
            mode="eval",
            hydra_overrides_extra=overrides,
            apply_postprocessing=video_predictor,
        )

    if spec.is_packaged_config:
        return build()
    with _fsam2_config_dir():
        return build()
