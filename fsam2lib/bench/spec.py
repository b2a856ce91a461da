"""What a benchmark measures: the model (:class:`ModelSpec`), the predictor it builds or lends,
the header every result carries about that model, and checks of the run arguments.

One spec object, rather than a dozen model arguments on every ``run_*``, so that the model
side of a run reads the same everywhere, can be written to a fresh worker process as JSON,
and can also hold objects that live only in memory (a predictor, a router a notebook just
trained).
"""

from __future__ import annotations

import dataclasses
import math
import os
import platform
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from fsam2lib.bench.profiling import MemoryAttentionDims
from fsam2lib.pruning.config import ROUTER_STRATEGIES, STRATEGIES, PruningConfig
from fsam2lib.pruning.scorers import TokenScorer

if TYPE_CHECKING:
    from fsam2lib.predictor import PrunedSAM2VideoPredictor

SCHEMA_VERSION = 1
RANDOM_TEXT_DIM = 512  # text width of an untrained router when there is no text encoder
ACCURACY_STRATEGIES = tuple(s for s in STRATEGIES if s != "none")


@dataclass(frozen=True)
class ModelSpec:
    """Which SAM2 a benchmark measures, with which CLIP and router.

    Built from names: ``model``, ``checkpoint``, ``weights`` (None: trained; "random": seeded
    random weights, cost only), ``image_size``, ``device``, ``clip`` (CLIP for the text cue
    and automatic descriptions; None: no text) and ``clip_pretrained``, as
    :func:`fsam2lib.build_predictor` takes them.

    router: a trained router file, or a router object in memory (any ``TokenScorer``, e.g. one
        a notebook just trained). None: the predictor's own router; when a router strategy
        needs one and there is none, the shipped micro router (trained micro model only), or
        with random weights an untrained router, so that its cost is measured.
    predictor: an already built ``PrunedSAM2VideoPredictor``, used as it is: the naming
        fields above are then not read. It is lent to the run: the spec's router and each
        run's pruning config are set on it only for the run, then its own come back.

    In-memory objects (``predictor``, a router object) cannot be sent to another process:
    :func:`~fsam2lib.bench.run_accuracy` and :func:`~fsam2lib.bench.run_ablation` always run
    in-process and accept them; :func:`~fsam2lib.bench.run_efficiency` and
    :func:`~fsam2lib.bench.run_memory` accept them only with ``isolate=False`` (no peak RSS
    per configuration) and raise ValueError otherwise.
    """

    model: str = "micro"
    checkpoint: str | None = None
    weights: str | None = None
    image_size: int | None = None
    device: str = "cpu"
    clip: str | None = "micro"
    clip_pretrained: str | None = None
    router: str | TokenScorer | None = None
    predictor: PrunedSAM2VideoPredictor | None = None

    @property
    def in_memory(self) -> bool:
        """Whether the spec holds objects that only exist in this process."""
        return self.predictor is not None or not (
            self.router is None or isinstance(self.router, str)
        )

    def to_json(self) -> dict:
        """The spec as JSON data for a worker process (:meth:`from_json` reads it back)."""
        if self.in_memory:
            raise ValueError(
                "a run in a fresh process (isolate=True) cannot receive an in-memory predictor "
                "or router: pass isolate=False (peak RSS per configuration is then not "
                "reported), or give the router as a file"
            )
        data = dataclasses.asdict(self)
        del data["predictor"]
        return data

    @classmethod
    def from_json(cls, data: dict) -> ModelSpec:
        return cls(**data)

    def input_size(self) -> int:
        """The model's input side in pixels, without building it when it is named."""
        if self.predictor is not None:
            return int(self.predictor.image_size)
        if self.image_size is not None:
            return self.image_size
        from fsam2lib.models.sam2 import config_image_size

        return config_image_size(self.model)


@contextmanager
def open_predictor(
    spec: ModelSpec, strategies: Sequence[str] = (), seed: int = 0
) -> Iterator[tuple[PrunedSAM2VideoPredictor, dict]]:
    """The predictor ``spec`` describes, with a router wherever ``strategies`` need one, and a
    dict saying which router and text encoder it carries (for the result).

    ``seed`` seeds an untrained router (random weights only). A lent predictor
    (``spec.predictor``) gets its own router and pruning config back when the block ends.
    """
    lent = spec.predictor
    saved = None if lent is None else (lent.router, lent.pruning)
    try:
        needs_router = any(s in ROUTER_STRATEGIES for s in strategies)
        predictor, carried = _build(spec, needs_router) if lent is None else _lend(spec)
        if needs_router and predictor.router is None:
            if getattr(predictor, "fsam2_weights", "trained") != "random":
                raise ValueError(
                    f"strategies {list(strategies)} need a router and the predictor has none: "
                    "give ModelSpec(router=...) a router file or object"
                )
            predictor.router = _untrained_router(predictor, seed)
            carried["router"] = "untrained (RANDOM weights, cost only)"
        yield predictor, carried
    finally:
        if lent is not None:
            lent.router, lent.pruning = saved


def random_clip(spec: ModelSpec) -> bool:
    """Whether the spec's CLIP has random weights (an open_clip name without weights; the
    micro CLIP always loads its shipped file)."""
    return spec.clip not in (None, "micro") and not spec.clip_pretrained


def _build(spec: ModelSpec, needs_router: bool) -> tuple[PrunedSAM2VideoPredictor, dict]:
    from fsam2lib.predictor import build_predictor

    shipped = spec.router is None and needs_router and spec.weights != "random"
    predictor = build_predictor(
        model=spec.model,
        checkpoint=spec.checkpoint,
        device=spec.device,
        weights=spec.weights,
        image_size=spec.image_size,
        clip=spec.clip,
        clip_pretrained=spec.clip_pretrained,
        router="shipped" if shipped else spec.router,
    )
    text = None
    if spec.clip is not None:
        text = f"CLIP {spec.clip}" + (f" ({spec.clip_pretrained})" if spec.clip_pretrained else "")
        if random_clip(spec) or "RANDOM weights" in predictor.text_encoder.label:
            text += " with RANDOM weights: text cue and descriptions meaningless"
    router = "trained (shipped micro router)" if shipped else _router_label(spec)
    return predictor, {"router": router, "text_encoder": text}


def _lend(spec: ModelSpec) -> tuple[PrunedSAM2VideoPredictor, dict]:
    from fsam2lib.pruning.router import load_router

    predictor = spec.predictor
    router = _router_label(spec)
    if router is None and predictor.router is not None:
        router = f"the predictor's own ({type(predictor.router).__name__})"
    if isinstance(spec.router, str):
        predictor.router = load_router(spec.router, device=str(predictor.device))
    elif spec.router is not None:
        predictor.router = spec.router
    text = None
    if predictor.text_encoder is not None:
        text = f"the predictor's own: {getattr(predictor.text_encoder, 'label', 'unlabelled')}"
    return predictor, {"router": router, "text_encoder": text}


def _router_label(spec: ModelSpec) -> str | None:
    if isinstance(spec.router, str):
        return f"trained ({spec.router})"
    if spec.router is not None:
        return f"in memory ({type(spec.router).__name__})"
    return None


def _untrained_router(predictor, seed: int):
    """A seeded untrained router: with random weights its cost is real, its scores are not."""
    text_dim = (
        RANDOM_TEXT_DIM
        if predictor.text_encoder is None
        else int(predictor.text_encoder(["red circle"]).shape[-1])
    )
    return untrained_router(predictor, text_dim, seed)


def untrained_router(predictor, text_dim: int, seed: int = 0):
    """A seeded untrained router of the shipped router's design (its text context and
    whether its text cue reads SAM2's stride-8 map), sized for ``predictor``: what cost runs
    time, so that they time the design that ships."""
    import dataclasses

    from fsam2lib.pruning.router import TokenRouter, shipped_router_config

    shipped = shipped_router_config()
    high_res = getattr(predictor, "use_high_res_features_in_sam", False)
    detail = predictor.sam_mask_decoder.conv_s1.out_channels if high_res else predictor.hidden_dim
    config = dataclasses.replace(
        shipped,
        feat_dim=predictor.hidden_dim,
        text_dim=text_dim,
        detail_dim=detail if shipped.detail_dim else 0,
    )
    torch.manual_seed(seed)
    return TokenRouter(config).to(predictor.device).eval()


# --------------------------------------------------------------------------- result header


def predictor_info(predictor, extra: dict) -> dict:
    """What a result must say about the model it measured."""
    from fsam2lib.models.sam2 import weights_label

    device = torch.device(predictor.device)
    grid = predictor.sam_image_embedding_size
    return {
        "model": getattr(predictor, "fsam2_name", type(predictor).__name__),
        "weights": getattr(predictor, "fsam2_weights", "trained"),
        "weights_label": weights_label(predictor),
        "image_size": int(predictor.image_size),
        "grid": [grid, grid],
        "num_maskmem": int(predictor.num_maskmem),
        "max_obj_ptrs_in_encoder": int(predictor.max_obj_ptrs_in_encoder),
        "hidden_dim": int(predictor.hidden_dim),
        "mem_dim": int(predictor.mem_dim),
        "memory_attention": dataclasses.asdict(
            MemoryAttentionDims.from_module(predictor.memory_attention)
        ),
        "device": str(device),
        "device_name": device_name(device),
        "threads": torch.get_num_threads(),
        **extra,
    }


def device_name(device: torch.device) -> str:
    """The device in words: the GPU's name, or the CPU's model and core count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


def result_header(kind: str, info: dict, **settings) -> dict:
    """The entries every result starts with (schema: :mod:`fsam2lib.bench`)."""
    from importlib.metadata import version

    from fsam2lib import __version__

    random = info["weights"] == "random"
    random_text = "RANDOM weights" in (info.get("text_encoder") or "")
    return {
        "kind": kind,
        "schema": SCHEMA_VERSION,
        "created": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "versions": {
            "fsam2lib": __version__,
            "torch": torch.__version__,
            "sam2": version("sam2"),
            "python": platform.python_version(),
        },
        **info,
        "random_weights": random,
        "random_clip_weights": random_text,
        "note": (
            "RANDOM weights: masks are meaningless; times, FLOPs, token counts and memory are "
            "real costs (which tokens are kept still follows meaningless masks)"
            if random
            else "trained weights"
        )
        + ("; the CLIP has RANDOM weights (text meaningless)" if random_text else ""),
        "settings": settings,
    }


# --------------------------------------------------------------------------- argument checks


def parse_ratios(
    value: str | float | Sequence[float], what: str = "keep ratio", unique: bool = True
) -> list[float]:
    """Keep ratios from "1.0,0.5" (or numbers); each must be in (0, 1]; no duplicates if
    ``unique``."""
    items = value.split(",") if isinstance(value, str) else value
    items = [items] if isinstance(items, (int, float)) else list(items)
    ratios = []
    for item in items:
        try:
            ratio = float(item)
        except (TypeError, ValueError):
            raise ValueError(f"{what} {item!r} is not a number") from None
        if not (math.isfinite(ratio) and 0.0 < ratio <= 1.0):
            raise ValueError(f"{what} {item!r} is out of range: must be in (0, 1]")
        ratios.append(ratio)
    if not ratios:
        raise ValueError(f"no {what} given")
    if unique and len(set(ratios)) != len(ratios):
        raise ValueError(f"duplicated {what}s in {value!r}")
    return ratios


def parse_memory_keep(value: str | float | Sequence[float] | None, keeps: Sequence[float]) -> list:
    """Memory keep ratio per keep ratio: "same"/None (= the keep ratio), one value for all, or
    one value per keep ratio."""
    if value is None or (isinstance(value, str) and value.strip() == "same"):
        return [None] * len(keeps)
    ratios = parse_ratios(value, "memory keep ratio", unique=False)
    if len(ratios) == 1:
        return ratios * len(keeps)
    if len(ratios) != len(keeps):
        raise ValueError(
            f"give one memory keep ratio, 'same', or one per keep ratio ({len(keeps)}); got "
            f"{len(ratios)}: {value!r}"
        )
    return ratios


def parse_strategies(value: str | Sequence[str], allowed: Sequence[str] = STRATEGIES) -> list[str]:
    """Strategy names from "router,random" (or a list); unknown names raise ValueError."""
    names = [s.strip() for s in value.split(",")] if isinstance(value, str) else list(value)
    unknown = [s for s in names if s not in allowed]
    if unknown or not names:
        raise ValueError(f"unknown strategy {unknown or names!r}; choose from {', '.join(allowed)}")
    if len(set(names)) != len(names):
        raise ValueError(f"duplicated strategies in {value!r}")
    return names


def check_positive(name: str, value: int | None) -> None:
    """None or a positive int (not a bool), else ValueError."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def config_name(config: PruningConfig) -> str:
    """How cost runs (efficiency, memory) name a configuration: by its keep ratios."""
    if config.strategy == "none":
        return "keep=1.00 (stock)"
    name = f"keep={config.keep_ratio:.2f}"
    if config.memory_keep_ratio is not None:
        name += f" mem={config.memory_keep_ratio:.2f}"
    return name
