"""Loading the frozen models: SAM2 (``sam2``: micro, Meta's checkpoints, random weights) and
CLIP (``clip``: micro, open_clip architectures)."""
