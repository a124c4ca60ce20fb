"""VeRA Registry: per-user VeRA adapters for one shared base model."""

__version__ = "0.1.0"
