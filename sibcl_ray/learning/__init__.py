"""Torch building blocks: losses, batched invariance transforms, models. No Ray here."""
