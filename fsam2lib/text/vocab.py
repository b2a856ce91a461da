"""The synthetic world's fixed vocabulary: colours by hue, shapes, size words.

One source of truth for the generator, the micro CLIP's training captions, the automatic
description ranking and every held-out check. Descriptions read "[size] colour shape",
e.g. "red circle" or "small blue star".
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

#: Hue in degrees (HSV) for each colour word. Saturation and value are drawn in [0.6, 1].
COLOURS: dict[str, float] = {
    "red": 0.0,
    "orange": 30.0,
    "yellow": 60.0,
    "green": 120.0,
    "cyan": 180.0,
    "blue": 240.0,
    "purple": 275.0,
    "pink": 320.0,
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "hexagon", "cross")
SIZES: tuple[str, ...] = ("small", "large")

#: Colour-shape pairs never seen in the train split (they appear in val and test), so that
#: models can be checked on combinations they were not trained on. One per colour, each shape
#: at least once.
HELD_OUT_COMBOS: frozenset[tuple[str, str]] = frozenset(
    {
        ("red", "star"),
        ("orange", "hexagon"),
        ("yellow", "cross"),
        ("green", "triangle"),
        ("cyan", "square"),
        ("blue", "circle"),
        ("purple", "cross"),
        ("pink", "star"),
    }
)


@dataclass(frozen=True)
class Description:
    """A parsed object description."""

    colour: str
    shape: str
    size: str | None = None

    @property
    def text(self) -> str:
        return describe(self.colour, self.shape, self.size)


def describe(colour: str, shape: str, size: str | None = None) -> str:
    """Build the canonical description text, validating every word."""
    _check_word(colour, COLOURS, "colour")
    _check_word(shape, SHAPES, "shape")
    if size is not None:
        _check_word(size, SIZES, "size")
        return f"{size} {colour} {shape}"
    return f"{colour} {shape}"


def parse_description(text: str) -> Description:
    """Parse "[size] colour shape"; raise ValueError naming any unknown word."""
    words = text.strip().lower().split()
    if len(words) not in (2, 3):
        raise ValueError(
            f"description {text!r} must read '[size] colour shape', e.g. 'small red circle'"
        )
    size = words[0] if len(words) == 3 else None
    colour, shape = words[-2], words[-1]
    describe(colour, shape, size)  # validates
    return Description(colour, shape, size)


def is_vocabulary_text(text: str) -> bool:
    """True when ``text`` is a description the synthetic vocabulary can express."""
    try:
        parse_description(text)
    except ValueError:
        return False
    return True


def all_descriptions(with_sizes: bool = False) -> list[str]:
    """Every colour-shape phrase (optionally also with each size word), in a fixed order."""
    phrases = [describe(c, s) for c, s in product(COLOURS, SHAPES)]
    if with_sizes:
        phrases += [describe(c, s, z) for z, c, s in product(SIZES, COLOURS, SHAPES)]
    return phrases


def combos_for_split(split: str) -> list[tuple[str, str]]:
    """Colour-shape pairs allowed in a split: train excludes HELD_OUT_COMBOS."""
    if split not in ("train", "val", "test"):
        raise ValueError(f"unknown split {split!r}; expected 'train', 'val' or 'test'")
    pairs = list(product(COLOURS, SHAPES))
    if split == "train":
        pairs = [p for p in pairs if p not in HELD_OUT_COMBOS]
    return pairs


def _check_word(word: str, known, kind: str) -> None:
    if word not in known:
        raise ValueError(f"unknown {kind} word {word!r}; known: {', '.join(known)}")
