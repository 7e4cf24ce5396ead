"""Torch building blocks: losses, batched invariance transforms, models, the training steps and
their FLOP counts. No Ray here."""
