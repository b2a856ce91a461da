"""Object text: the description an object carries, how a text encoder's answer becomes one,
what ``describe_object`` is shown, and the CLIP-backed ``text_encoder`` / ``describe_object``
that :func:`~fsam2lib.predictor.build.build_predictor` attaches."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from fsam2lib.videos.frames import IMG_MEAN, IMG_STD


@dataclass
class ObjectText:
    """An object's description and its L2-normalised text embedding ``[1, D]``."""

    text: str
    embedding: Tensor
    source: str  # "user" or "auto" (from describe_object)


def encode_text(
    encoder: Callable[[list[str]], Tensor] | None,
    text: object,
    source: str,
    device: torch.device,
) -> ObjectText:
    """``text`` (stripped) with its normalised embedding by ``encoder``, on ``device``."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"object text must be a non-empty string, got {text!r}")
    if encoder is None:
        raise RuntimeError(
            "an object text was given but no text encoder is set: assign "
            "`predictor.text_encoder` (Callable[[list[str]], Tensor [N, D]], e.g. from "
            "fsam2lib.models.clip.load_clip)"
        )
    text = text.strip()
    emb = encoder([text])
    if not isinstance(emb, Tensor) or emb.dim() != 2 or emb.shape[0] != 1:
        shape = tuple(emb.shape) if isinstance(emb, Tensor) else type(emb).__name__
        raise ValueError(f"text_encoder must return a [1, D] tensor for one text, got {shape}")
    return ObjectText(text, F.normalize(emb.detach().float(), dim=-1).to(device), source)


def describer_inputs(image: Tensor, mask_logits: Tensor, image_size: int) -> tuple[Tensor, Tensor]:
    """What ``describe_object`` is called with: the frame as ``init_state`` stored it
    (normalised ``[3, S, S]``) back in RGB [0, 1], and the object's mask (bool ``[S, S]``)
    from its low-res logits ``[B, 1, h, w]``."""
    image = image.float()
    mean = torch.tensor(IMG_MEAN, device=image.device)[:, None, None]
    std = torch.tensor(IMG_STD, device=image.device)[:, None, None]
    rgb = (image * std + mean).clamp(0.0, 1.0)
    logits = F.interpolate(
        mask_logits, size=(image_size, image_size), mode="bilinear", align_corners=False
    )
    return rgb, logits[0, 0] > 0


def clip_text_encoder(clip) -> Callable:
    """``text_encoder`` for the predictor: validates each text for ``clip`` (empty text is an
    error; free text given to the micro CLIP warns), then embeds it. It carries the CLIP's
    ``label`` (RANDOM weights say so), which results print beside their figures."""
    from fsam2lib.text.describe import check_text

    def encode(texts: list[str]) -> Tensor:
        return clip.encode_text([check_text(t, clip) for t in texts])

    encode.label = clip.label
    return encode


def clip_describer(clip, phrases: Sequence[str] | str | Path | None = None) -> Callable:
    """``describe_object`` for the predictor: zero-shot ranking of phrases on a crop around the
    object's mask on its prompted frame (None when the mask is empty). phrases: None (the
    defaults for this CLIP, see ``describe.default_phrases``), a list, or a vocabulary file
    (one phrase per line). The phrases are encoded once, here."""
    from fsam2lib.text.describe import checked_phrases, describe_region, read_phrases

    if isinstance(phrases, (str, Path)):
        phrases = read_phrases(phrases)
    phrases = checked_phrases(clip, phrases)
    text_features = clip.encode_phrases(phrases)

    def describe(rgb: Tensor, mask: Tensor) -> str | None:
        mask_np = mask.detach().cpu().numpy().astype(bool)
        if not mask_np.any():
            return None
        frame = (rgb.detach().cpu().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
        return describe_region(
            clip, frame, mask=mask_np, phrases=phrases, text_features=text_features
        ).phrase

    return describe
