"""Token pruning for SAM2's memory attention.

``config`` says what pruning is asked to do, ``scorers`` and ``router`` score tokens,
``selection`` picks them, ``rope`` rotates kept tokens at their true grid positions and
``attention`` runs SAM2's memory attention over the kept tokens only.
"""

from fsam2lib.pruning.config import CUES, FILLS, ROUTER_STRATEGIES, STRATEGIES, PruningConfig

__all__ = ["CUES", "FILLS", "ROUTER_STRATEGIES", "STRATEGIES", "PruningConfig"]
