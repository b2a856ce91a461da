"""The pruned SAM2 video predictor and how to build one."""

from fsam2lib.predictor.predictor import PrunedSAM2VideoPredictor, build_predictor

__all__ = ["PrunedSAM2VideoPredictor", "build_predictor"]
