"""Pruning small trained transformers: attention heads and MLP neurons, scorer against scorer."""
