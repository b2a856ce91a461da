"""Training scripts for the micro models (each runnable with ``python -m``)."""
