"""LesionOps pipeline stages: one folder per stage, `python -m components.<name>` runs it."""

__version__ = "0.1.0"
