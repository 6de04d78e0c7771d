"""Refusals of the narrow VGG builder (the Fashion-MNIST stand-in of Zhao's VGG-16)."""

from __future__ import annotations

import pytest

from nodeprune import zoo


def test_refuses_a_narrow_vgg_depth_other_than_11_or_16() -> None:
    with pytest.raises(ValueError, match=r"depth of narrow_vgg must be one of \[11, 16\]; got 13"):
        zoo.narrow_vgg(depth=13)
