"""Ray Train side: the per-worker training loop, its checkpoints and the TorchTrainer factory."""
