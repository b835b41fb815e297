"""Typed configs, the training loop, checkpoints, run directories and benchmark running."""
