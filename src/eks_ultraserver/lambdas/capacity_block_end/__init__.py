"""The Capacity Block end-of-life handler (``handler.py``; see docs/capacity-block-end.md)."""
