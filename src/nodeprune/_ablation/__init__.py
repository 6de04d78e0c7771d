"""The batched single-node ablation engine (private); see :mod:`nodeprune._ablation.engine` for the method.

Reads the model and its masks through :class:`nodeprune.masker.Masker`; nothing here imports scorers or
strategies.
"""

from .engine import DEFAULT_BLOCK_BYTES, ONE_PROCESS, Outcomes, ablate, batch_hint, prime, reuse

__all__ = ["DEFAULT_BLOCK_BYTES", "ONE_PROCESS", "Outcomes", "ablate", "batch_hint", "prime", "reuse"]
