"""How far above the mask prior can any scorer that knows where the target is get at keep 0.1?

Issue 36 asks the router for at least the mask prior + 3 J&F at keep 0.1 on classic val. The
shipped router trails the prior there. This runs, on the same videos, the mask prior, the
shipped router, and the text-ceiling folder's "target first" oracle (the tokens the frame's
ground truth puts on the target rank first) on top of each of them: the router without its
text cue, and the mask prior itself. If even the oracles stay below prior + 3, then knowing
where the object is does not buy the +3 at this budget.

Usage: python ceiling.py DATASET KEEP > result.json   (e.g. synthetic:val:60 0.1)
       python ceiling.py result.json                  prints its table
"""

import importlib.util
import json
import sys
from pathlib import Path

import torch

import fsam2lib
from fsam2lib.bench import open_dataset
from fsam2lib.pruning.scorers import MaskPriorScorer

_spec = importlib.util.spec_from_file_location(
    "oracle", Path(__file__).parent.parent / "2026-12-07-text-ceiling" / "oracle.py"
)
oracle = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(oracle)


class PriorScorer:
    """The mask prior as the oracle's base scorer (it reads no cue list)."""

    def __init__(self, config) -> None:
        self.prior, self.config = MaskPriorScorer(), config

    def __call__(self, inputs):
        return self.prior(inputs)


def main() -> None:
    if sys.argv[1].endswith(".json"):
        with open(sys.argv[1]) as handle:
            print(oracle.table(json.load(handle)))
        return
    dataset, k = sys.argv[1], float(sys.argv[2])
    src = open_dataset(dataset)
    pred = fsam2lib.build_predictor("micro")
    pred.describe_object = None
    router = pred.router
    routed = fsam2lib.PruningConfig(keep_ratio=k)
    configs = [
        ("reference", fsam2lib.PruningConfig(strategy="none"), router),
        (f"mask prior@{k}", fsam2lib.PruningConfig(strategy="mask_prior", keep_ratio=k), router),
        (f"router@{k}", routed, router),
        (f"router, target first@{k}", routed, oracle.Oracle(router, "target")),
        (f"prior, target first@{k}", routed, oracle.Oracle(PriorScorer(router.config), "target")),
    ]
    scores = oracle.score_configs(pred, src, configs)
    contrasts = [
        (f"{name}@{k}", f"mask prior@{k}", "mask prior")
        for name in ("router", "router, target first", "prior, target first")
    ]
    print(json.dumps(oracle.summarise(dataset, scores, contrasts), indent=1))


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
