"""How much the description moves the kept set: on crossing val videos at keep 0.1, per
tracked frame and object, the share of kept query tokens that differ with and without text."""

import json
import sys

import numpy as np

import fsam2lib
from fsam2lib.bench import open_dataset
from fsam2lib.evaluate import run_video
from fsam2lib.pruning.router import load_router

router_path = sys.argv[1] if len(sys.argv) > 1 else None
n = int(sys.argv[2]) if len(sys.argv) > 2 else 12
src = open_dataset(f"synthetic-crossing:val:{n}")
pred = fsam2lib.build_predictor(
    "micro",
    pruning=fsam2lib.PruningConfig(keep_ratio=0.1),
    state_policy=fsam2lib.StatePolicy(score_records=None),
)
if router_path:
    pred.router = load_router(router_path)
pred.describe_object = None
changed = []
for name in src.names:
    v = src.load(name)
    runs = {}
    for label, texts in (("with", v.descriptions), ("without", None)):
        run = run_video(pred, v, texts=texts)
        runs[label] = {
            (t, o): set(pred.token_scores(run.state, t, o).kept_query_idx[0].tolist())
            for o in run.object_ids
            for t in range(1, v.num_frames)
        }
    for key, kept in runs["with"].items():
        other = runs["without"][key]
        changed.append(1 - len(kept & other) / len(kept))
print(
    json.dumps(
        {
            "router": router_path or "shipped",
            "videos": n,
            "rows": len(changed),
            "mean share of kept tokens that the text changes": round(float(np.mean(changed)), 4),
            "rows where it changes any": round(float(np.mean([c > 0 for c in changed])), 4),
        }
    )
)
