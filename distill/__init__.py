"""Temporal knowledge distillation from attention audio teachers into compact students."""

__version__ = "0.1.0"
