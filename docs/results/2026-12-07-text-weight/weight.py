"""Does the description help if its cue is given weight outside the router's MLP?

The mask-objective router learned to give its text cue next to no weight (its text effect is
about zero on every split), while the text-ceiling folder's "target first" oracle gains
+2.7 J&F at keep 0.1 on the crossing split. This tries the simplest way to make the router
lean on its own text cue: rank tokens by

    z(combined) + w * z(text)

with ``z`` standardising a map over the frame's tokens, ``combined`` the shipped router's
score and ``text`` its text cue (nothing is added when the text cue is off, so the router
without text is unchanged). ``w`` is one number, chosen on the lookalike world's *training*
videos (``select``), never on a split it is judged on; ``save`` writes the shipped router
with ``RouterConfig.text_weight`` set, which ranks the same way, for the bench's
``text-effect --router`` to judge.

Usage: python weight.py select DATASET KEEP W [W ...] > select.json
       python weight.py save W OUT.safetensors [FULL OFF]
                    the shipped router with text_weight=W (faded from keep FULL to OFF)
       python weight.py result.json                 prints its table
"""

import importlib.util
import json
import sys
from dataclasses import replace
from pathlib import Path

import torch

import fsam2lib
from fsam2lib.bench import open_dataset
from fsam2lib.pruning.router import load_router, save_router

_spec = importlib.util.spec_from_file_location(
    "oracle", Path(__file__).parent.parent / "2026-12-07-text-ceiling" / "oracle.py"
)
oracle = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(oracle)


class TextWeighted:
    """The shipped router with its text cue added outside the MLP, ``weight`` times."""

    def __init__(self, router, weight: float) -> None:
        self.router, self.weight = router, weight
        self.config = router.config  # so the predictor feeds the stride-8 map if it reads it

    def __call__(self, inputs):
        out = self.router(inputs)
        if "text" not in inputs.cues or inputs.text_embedding is None:
            return out
        combined = _standardised(out["combined"]) + self.weight * _standardised(out["text"])
        return {**out, "combined": combined}


def _standardised(x: torch.Tensor) -> torch.Tensor:
    """``x`` ``[B, N]`` less its mean over the tokens, over its spread (1e-6 floor)."""
    centred = x - x.mean(dim=1, keepdim=True)
    return centred / centred.std(dim=1, keepdim=True).clamp_min(1e-6)


def _predictor():
    torch.set_num_threads(2)
    pred = fsam2lib.build_predictor("micro")
    pred.describe_object = None
    return pred


def select(dataset: str, keep: float, weights: list[float]) -> dict:
    """Text effect of each weight at one keep ratio (the router without text as baseline)."""
    pred = _predictor()
    router, no_text = pred.router, tuple(c for c in fsam2lib.pruning.config.CUES if c != "text")
    configs = [(f"no text@{keep}", fsam2lib.PruningConfig(keep_ratio=keep, cues=no_text), router)]
    configs += [
        (f"w={w}@{keep}", fsam2lib.PruningConfig(keep_ratio=keep), TextWeighted(router, w))
        for w in weights
    ]
    scores = oracle.score_configs(pred, open_dataset(dataset), configs)
    contrasts = [(f"w={w}@{keep}", f"no text@{keep}", "no text") for w in weights]
    return oracle.summarise(dataset, scores, contrasts)


def save(weight: float, out: str, fade: tuple[float, float] | None = None) -> None:
    """The shipped router's weights with ``RouterConfig.text_weight`` set (and
    ``text_weight_fade``, if given): what the bench's ``text-effect --router`` judges (at
    a budget where the weight is in full, the same ranking as :class:`TextWeighted`)."""
    router = load_router()
    router.config = replace(router.config, text_weight=weight, text_weight_fade=fade)
    faded = "" if fade is None else f", text_weight_fade={fade}"
    note = (
        f"the shipped router with text_weight={weight}{faded} (docs/results/2026-12-07-text-weight)"
    )
    kept = {k: v for k, v in router.metadata.items() if k != "config"}  # the new config wins
    save_router(router, out, {**kept, "text_weight_note": note})
    print(f"wrote {out}")


def main() -> None:
    if sys.argv[1].endswith(".json"):
        print(oracle.table(json.loads(Path(sys.argv[1]).read_text())))
        return
    if sys.argv[1] == "select":
        result = select(sys.argv[2], float(sys.argv[3]), [float(w) for w in sys.argv[4:]])
    elif sys.argv[1] == "save":
        fade = tuple(float(k) for k in sys.argv[4:6]) if len(sys.argv) > 4 else None
        save(float(sys.argv[2]), sys.argv[3], fade)
        return
    else:
        raise SystemExit(f"unknown command {sys.argv[1]!r}: select, save or a result .json")
    result["command"] = "python weight.py " + " ".join(sys.argv[1:])
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
