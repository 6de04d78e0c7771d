"""Refusals of the transformer-aware scorers: each says what was given and what to do instead."""

from __future__ import annotations

import warnings

import pytest

import nodeprune as npr
from transformer_models import llama


def test_refuses_activation_norm_on_a_layer_without_known_consumers() -> None:
    model, ids = llama()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the residual-stream writers are inexact: that is what is refused
        masker = npr.Masker(model, ids[:1])
    with pytest.raises(ValueError, match=r"ActivationNorm cannot score layer 'model.layers.0.self_attn.o_proj'.*"
                       r"score it with LossDelta or Magnitude, or leave it out"):  # fmt: skip
        npr.ActivationNorm((ids, ids)).score(masker, "model.layers.0.self_attn.o_proj")
