"""The LRP composites that :class:`~nodeprune.Relevance` accepts by name, built on zennit.

zennit is imported inside the functions only, so that ``import nodeprune`` does not import it (zennit imports
torchvision at import time). nodeprune never copies zennit's code: it configures zennit's rules and composites.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from torch import nn

from .._validation import invalid

__all__ = ["THESIS", "alpha2beta1_composite", "build_composite", "composite_names"]

THESIS = "alpha2beta1"


def composite_names() -> list[str]:
    """Every name :class:`~nodeprune.Relevance` accepts for ``composite``: ``"alpha2beta1"`` and zennit's registry."""
    from zennit.composites import COMPOSITES

    return [THESIS, *sorted(COMPOSITES)]


@functools.cache
def _alpha_beta_rule() -> type:
    """zennit's AlphaBeta rule, with the two terms of negative inputs skipped where a layer has none.

    Built once, on first use, so that zennit is imported lazily.
    """
    from zennit.core import BasicHook, Stabilizer
    from zennit.rules import AlphaBeta, ClampMod

    class SkipNegativeInputs(AlphaBeta):  # zennit is untyped: AlphaBeta is Any for mypy
        """``AlphaBeta(alpha, beta, stabilizer, zero_params="bias")`` of zennit, computed faster.

        zennit evaluates four modified copies of the layer: ``x⁺·w⁺``, ``x⁻·w⁻``, ``x⁺·w⁻`` and ``x⁻·w⁺``. When
        the layer's input has no negative entry (any layer after a ReLU or a max-pool of one), ``x⁻ = 0`` and
        with the biases zeroed the two ``x⁻`` terms are exactly zero; this rule then evaluates only the two
        others (half the work) and returns the same relevance, bit for bit. Other inputs (e.g. the image)
        take zennit's own four-term path.
        """

        def __init__(self, alpha: float = 2.0, beta: float = 1.0, stabilizer: Any = 1e-6) -> None:
            super().__init__(alpha=alpha, beta=beta, stabilizer=stabilizer, zero_params="bias")
            self.alpha, self.beta, self.stabilizer = alpha, beta, stabilizer
            stabilize = Stabilizer.ensure(stabilizer)
            self.nonnegative = BasicHook(
                input_modifiers=[lambda x: x.clamp(min=0), lambda x: x.clamp(min=0)],
                param_modifiers=[ClampMod(min=0.0, zero_params=["bias"]), ClampMod(max=0.0, zero_params=["bias"])],
                output_modifiers=[lambda z: z, lambda z: z],
                gradient_mapper=lambda grad, outputs: [grad / stabilize(outputs[0]), grad / stabilize(outputs[1])],
                reducer=lambda inputs, grads: alpha * (inputs[0] * grads[0]) - beta * (inputs[1] * grads[1]),
            )

        def backward(self, module: nn.Module, grad_input: Any, grad_output: Any) -> Any:
            if bool(self.stored_tensors["input"][0].amin() >= 0):
                self.nonnegative.stored_tensors = self.stored_tensors
                return self.nonnegative.backward(module, grad_input, grad_output)
            return super().backward(module, grad_input, grad_output)

        def copy(self) -> Any:
            return type(self)(self.alpha, self.beta, self.stabilizer)

    return SkipNegativeInputs


def alpha2beta1_composite(stabilizer: float = 1e-6, canonizers: list[Any] | None = None) -> Any:
    r"""Zhao (2024)'s LRP: TorchLRP's ``alpha2beta1`` rule on every Conv and Linear, as a zennit composite.

    Every Conv/ConvTranspose/Linear module gets the :math:`\alpha\beta` rule with :math:`\alpha=2, \beta=1` and
    its bias ignored (``zero_params="bias"``), the first and the last layer included; activations and
    BatchNorm pass relevance through unchanged (zennit's ``Pass``); average pooling shares it in proportion
    to the pooled inputs (zennit's ``Norm``, with the same stabilizer; TorchLRP's plain gradient is the same
    for the 1×1 → 7×7 replication in Zhao's VGG); max-pooling and everything else use the plain gradient
    (the winner takes all).
    For input :math:`x` and weights :math:`w` of a layer (:math:`z^\pm` over positive/negative parts, biases dropped),

    .. math::

        R_i = \sum_j \Big( 2\,\frac{x_i^+ w_{ij}^+ + x_i^- w_{ij}^-}{z_j^{(+)}}
              - \frac{x_i^- w_{ij}^+ + x_i^+ w_{ij}^-}{z_j^{(-)}} \Big) R_j ,
        \quad \sum_i R_i = \sum_j R_j .

    This is *not* zennit's ``"epsilon_alpha2_beta1"`` composite, which uses the epsilon rule on Linear layers
    and keeps the biases (relevance is then not conserved). It reproduces TorchLRP's traces to a relative
    error of 4e-4 with the default stabilizer and 4e-10 with ``stabilizer=1e-12`` in float64 (nodeprune's own check).

    Parameters
    ----------
    stabilizer : float, default=1e-6
        Added to every denominator of the αβ and Norm rules with its sign (zennit's convention; TorchLRP
        adds 1e-6 only where a denominator is exactly zero). zennit's default.
    canonizers : list of zennit canonizers, default=None
        E.g. ``[zennit.canonizers.SequentialMergeBatchNorm()]`` for a model with BatchNorm. None means none.

    Returns
    -------
    zennit.composites.LayerMapComposite
    """
    from zennit.composites import LayerMapComposite
    from zennit.rules import Norm, Pass
    from zennit.types import Activation, AvgPool, BatchNorm
    from zennit.types import Linear as AnyLinear

    rule = _alpha_beta_rule()(alpha=2.0, beta=1.0, stabilizer=stabilizer)
    layer_map = [(Activation, Pass()), (BatchNorm, Pass()), (AvgPool, Norm(stabilizer)), (AnyLinear, rule)]
    return LayerMapComposite(layer_map=layer_map, canonizers=canonizers)


def _batchnorm_canonizers(model: nn.Module) -> list[Any]:
    """``[SequentialMergeBatchNorm()]`` when the model has a BatchNorm right after a Conv/Linear, else ``[]``.

    Raises ValueError (before anything changes) for a BatchNorm that zennit could not merge and restore.
    """
    from zennit.canonizers import SequentialMergeBatchNorm
    from zennit.core import collect_leaves
    from zennit.types import BatchNorm
    from zennit.types import Linear as AnyLinear

    names = {module: name for name, module in model.named_modules()}
    merged = False
    previous = None
    for leaf in collect_leaves(model):
        if isinstance(previous, AnyLinear) and isinstance(leaf, BatchNorm):
            if not (leaf.affine and leaf.track_running_stats):
                raise ValueError(
                    f"BatchNorm {names.get(leaf, '?')!r} has no affine parameters or no running statistics, which "
                    "zennit's SequentialMergeBatchNorm needs to fold it into the preceding layer; pass a zennit "
                    "composite object (e.g. nodeprune.scorers.relevance.alpha2beta1_composite()) instead of a name"
                )
            merged = True
        previous = leaf
    return [SequentialMergeBatchNorm()] if merged else []


def build_composite(spec: Any, model: nn.Module, bounds: Callable[[], tuple[float, float]]) -> Any:
    """The zennit composite for ``spec`` (a name or a zennit composite object) and ``model``.

    A name gets zennit's ``SequentialMergeBatchNorm`` canonizer when the model has BatchNorm layers; an object
    is used as given. ``bounds()`` gives the input range for ``"epsilon_gamma_box"`` (called only then).
    """
    from zennit.composites import COMPOSITES
    from zennit.core import Composite

    if isinstance(spec, Composite):
        return spec
    if not isinstance(spec, str):
        raise invalid("Relevance", "composite", "a composite name or a zennit Composite", spec, TypeError)
    if spec != THESIS and spec not in COMPOSITES:
        raise invalid("Relevance", "composite", f"one of {composite_names()} or a zennit Composite", spec)
    canonizers = _batchnorm_canonizers(model)
    if spec == THESIS:
        return alpha2beta1_composite(canonizers=canonizers)
    if spec == "epsilon_gamma_box":
        low, high = bounds()
        return COMPOSITES[spec](low=low, high=high, canonizers=canonizers)
    return COMPOSITES[spec](canonizers=canonizers)
