"""Text about objects: the synthetic vocabulary (``vocab``) and automatic descriptions
(``describe``) ranked with a CLIP model."""
