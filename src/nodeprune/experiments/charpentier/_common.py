"""The shared protocol of the Charpentier (2020) reproductions (``charpentier-*``): data, models, cache, statistics.

Chapter 4 of the thesis (§3.1; the author's notebooks): the Keras-initialised ANN 784-128-10, MLP 784-128-64-32-10 and
CNN of :mod:`nodeprune.zoo`, trained with Adam (1e-3, 0.9, 0.999, ε 1e-7), batch 32, 5 epochs
(:func:`nodeprune.training.fit`). *Validation-set* experiments train on the 85 % part of the 85:15 split of
the training set made after ``np.random.seed(2020)`` (:func:`nodeprune.datasets.thesis_split`: 51,000 /
9,000 on Fashion-MNIST) and estimate or prune on the 15 % part; *training-set* experiments train on the
whole training set and estimate or prune on it. Before/after numbers are measured on the test set.

On digits (the stand-in when the paper's dataset is missing) the same split gives 1221 / 216 of the 1437
training images (360 test images), and models train 30 epochs (nodeprune's choice): 5 epochs of
38 steps leave them far from converged (10 epochs in ``--quick`` runs, which only check that the pipeline
works).

Model seeds: seed ``s`` draws the initial weights after ``torch.manual_seed(s)`` and shuffles the training
batches with seed ``s`` (the thesis did not seed TensorFlow; every trial was a new random initialisation).
Full runs on the paper's datasets keep every trained model (and every census and pruning outcome) in a
cache, ``$XDG_CACHE_HOME/nodeprune/charpentier/`` (``~/.cache/...``), so that the experiments that use the
same models (census, pre-computed, exhaustive, greedy, per-class, re-initialisation) train them once. With
``$NODEPRUNE_CHARPENTIER_CACHE`` set, every run (quick and digits runs too) caches in that folder instead.
Delete the folder to retrain.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ... import datasets
from ...evaluate import evaluate
from ...masker import Masker
from ...scorers.census import classify
from ...scorers.loss_delta import LossDelta
from ...strategies.base import Strategy
from ...strategies.exhaustive import Exhaustive
from ...strategies.greedy import Greedy
from ...training import fit
from ...zoo import thesis_ann, thesis_cnn, thesis_mlp
from .._framework import Run

__all__ = [
    "ARCHITECTURES",
    "DOCUMENT",
    "LAYERS",
    "Setting",
    "band",
    "census",
    "describe",
    "label",
    "models",
    "setting",
    "status",
]

DOCUMENT = "L. G. Charpentier (2020), To prune or not to prune (MSc thesis, University of Oslo)"
ARCHITECTURES: dict[str, Callable[..., nn.Sequential]] = {"ann": thesis_ann, "mlp": thesis_mlp, "cnn": thesis_cnn}
NAMES = {"ann": "ANN", "mlp": "MLP", "cnn": "CNN"}
LAYERS: dict[str, tuple[str, ...]] = {
    "ann": ("fc1",),
    "mlp": ("fc1", "fc2", "fc3"),
    "cnn": ("conv1", "conv2", "conv3", "conv4", "fc1"),
}
LAYER_LABELS = {
    ("ann", "fc1"): "hidden (128)",
    ("mlp", "fc1"): "L1 (128)",
    ("mlp", "fc2"): "L2 (64)",
    ("mlp", "fc3"): "L3 (32)",
    ("cnn", "conv1"): "conv32",
    ("cnn", "conv2"): "conv64",
    ("cnn", "conv3"): "conv128",
    ("cnn", "conv4"): "conv256",
    ("cnn", "fc1"): "dense64",
}
CLASSES = ("zero", "worse", "important")
DIGITS_EPOCHS = 30
QUICK_DIGITS_EPOCHS = 10
QUICK_DIGITS_CNN_EPOCHS = 3
THESIS_EPOCHS = 5
CACHE_VARIABLE = "NODEPRUNE_CHARPENTIER_CACHE"
"""Environment variable: a folder for the cache, used by every run (quick and digits runs included) when set."""
NOT_COMPARABLE = "ran on digits: the thesis's values are Fashion-MNIST's, not comparable one to one"
Pair = tuple[torch.Tensor, torch.Tensor]


def label(arch: str, layer: str) -> str:
    """The thesis's name of a layer, e.g. ``"L2 (64)"`` or ``"conv256"``."""
    return LAYER_LABELS[(arch, layer)]


@contextmanager
def threads(count: int) -> Iterator[None]:
    """Run with ``count`` torch threads (one is fastest for the small batches of training, measured)."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class Setting:
    """The data of a run and where its models come from.

    ``train`` is the whole training set, ``fit``/``validation`` its 85:15 split, ``test`` the test set.
    ``cache`` is None when nothing is cached (quick runs and digits).
    """

    dataset: str
    label: str
    train: Pair
    fit: Pair
    validation: Pair
    test: Pair
    epochs: int
    cache: Path | None
    quick: bool = False
    trained: int = 0
    loaded: int = 0
    training_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def digits(self) -> bool:
        return self.dataset == "digits"

    def epochs_for(self, arch: str) -> int:
        """Training epochs: the thesis's 5; 30 on digits (10, and 3 for the CNN, in quick runs on digits)."""
        if self.digits and self.quick:
            return QUICK_DIGITS_CNN_EPOCHS if arch == "cnn" else QUICK_DIGITS_EPOCHS
        return self.epochs

    def pruned_layers(self, arch: str) -> tuple[str, ...]:
        """Layers the pruning algorithms visit: all hidden layers (quick runs on digits: the CNN's last two)."""
        if self.digits and self.quick and arch == "cnn":
            return ("conv4", "fc1")
        return LAYERS[arch]

    def data(self, which: str) -> Pair:
        """``"fit"``, ``"validation"``, ``"train"`` or ``"test"``."""
        return {"fit": self.fit, "validation": self.validation, "train": self.train, "test": self.test}[which]

    def estimation_set(self, on: str) -> Pair:
        """The set a model trained on ``on`` is estimated and pruned on: validation for ``fit``, else ``train``."""
        return self.validation if on == "fit" else self.train

    def memo(self, key: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """``compute()``, or its earlier result from the cache (a dict of tensors, numbers, strings, lists)."""
        if self.cache is None:
            return compute()
        path = self.cache / f"{key}.pt"
        if path.is_file():
            loaded: dict[str, Any] = torch.load(path, weights_only=True)
            return loaded
        value = compute()
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        torch.save(value, partial)
        os.replace(partial, path)
        return value

    def summary(self) -> str:
        """One paragraph for the report: data sizes, epochs, models trained or taken from the cache."""
        sizes = (
            f"{len(self.fit[1])} / {len(self.validation[1])} (85:15 of the {len(self.train[1])} training images, "
            f"seed 2020) and {len(self.test[1])} test images"
        )
        cache = (
            f"{self.trained} models trained by this run, {self.loaded} taken from the model cache "
            f"({self.cache}; trained earlier with the same protocol by another charpentier-* run); "
            f"training time of all of them as measured when trained: {self.training_seconds:.0f} s"
            if self.cache is not None
            else f"{self.trained} models trained ({self.training_seconds:.0f} s)"
        )
        epochs = f"{self.epochs} epochs of training" + (
            f" ({QUICK_DIGITS_CNN_EPOCHS} for the CNN: quick run)" if self.digits and self.quick else ""
        )
        return f"Data: {self.label}, {sizes}; {epochs}. {cache}."


def setting(ctx: Run) -> Setting:
    """The run's data, split as the thesis splits it; the model cache is used by full runs on real data."""
    train, test = ctx.data.train, ctx.data.test
    fit_part, validation = datasets.thesis_split(train)
    digits = ctx.data.name == "digits"
    cache = None
    if os.environ.get(CACHE_VARIABLE):
        cache = Path(os.environ[CACHE_VARIABLE]) / ctx.data.name
    elif not ctx.quick and not digits:
        cache = datasets._lookup.cache() / "charpentier" / ctx.data.name
    return Setting(
        dataset=ctx.data.name,
        label=ctx.data.label,
        train=train,
        fit=fit_part,
        validation=validation,
        test=test,
        epochs=(QUICK_DIGITS_EPOCHS if ctx.quick else DIGITS_EPOCHS) if digits else THESIS_EPOCHS,
        cache=cache,
        quick=ctx.quick,
    )


def _with_dropout(model: nn.Sequential, rate: float) -> nn.Sequential:
    """``Dropout(rate)`` after every hidden activation (thesis §4.4: after each hidden Dense layer)."""
    parts: list[tuple[str, nn.Module]] = []
    for name, module in model.named_children():
        parts.append((name, module))
        if name.startswith("act"):
            parts.append((f"drop{name[3:]}", nn.Dropout(rate)))
    return nn.Sequential(OrderedDict(parts))


def initial(setting: Setting, arch: str, seed: int) -> nn.Sequential:
    """The untrained model of ``seed``: ``torch.manual_seed(seed)``, then the zoo's Keras initialisation."""
    torch.manual_seed(seed)
    in_shape = tuple(setting.train[0].shape[1:])
    classes = int(setting.train[1].max()) + 1
    return ARCHITECTURES[arch](in_shape=in_shape, classes=classes)


def model_key(
    setting: Setting,
    arch: str,
    seed: int,
    on: str = "fit",
    batch_size: int = 32,
    dropout: float = 0.0,
    epochs: int | None = None,
) -> str:
    """The cache name of a trained model (and the prefix of its census and pruning outcomes)."""
    epochs = setting.epochs_for(arch) if epochs is None else epochs
    return f"{arch}-{on}-e{epochs}-b{batch_size}-p{dropout:g}-s{seed}"


def train(
    model: nn.Module,
    data: Pair,
    *,
    seed: int,
    epochs: int,
    batch_size: int = 32,
) -> float:
    """Train in place with :func:`nodeprune.training.fit` (one thread; CNNs channels-last); returns seconds."""
    start = time.perf_counter()
    convolutional = any(isinstance(m, nn.Conv2d) for m in model.modules())
    inputs, targets = data
    with threads(1):
        if convolutional:  # 2x faster on this CPU, same arithmetic up to rounding
            model.to(memory_format=torch.channels_last)
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        try:
            fit(model, (inputs, targets), epochs=epochs, batch_size=batch_size, seed=seed)
        finally:
            if convolutional:
                model.to(memory_format=torch.contiguous_format)
    return time.perf_counter() - start


def trained(
    setting: Setting,
    arch: str,
    seed: int,
    *,
    on: str = "fit",
    batch_size: int = 32,
    dropout: float = 0.0,
    epochs: int | None = None,
) -> nn.Sequential:
    """The model of ``seed`` trained on ``on`` ("fit": the 85 % part; "train": the whole training set).

    With ``dropout``, trained with ``Dropout(dropout)`` after every hidden layer and returned without it
    (same weights: the thesis's dropout-free tester model, §4.4). Taken from the cache when there.
    """
    epochs = setting.epochs_for(arch) if epochs is None else epochs
    key = model_key(setting, arch, seed, on, batch_size, dropout, epochs)
    model = initial(setting, arch, seed)
    path = None if setting.cache is None else setting.cache / "models" / f"{key}.pt"
    if path is not None and path.is_file():
        saved = torch.load(path, weights_only=True)
        model.load_state_dict(saved["state"])
        setting.loaded += 1
        setting.training_seconds += float(saved["seconds"])
        return model.eval()
    network = _with_dropout(model, dropout) if dropout else model  # shares the parameters with model
    seconds = train(network, setting.data(on), seed=seed, epochs=epochs, batch_size=batch_size)
    setting.trained += 1
    setting.training_seconds += seconds
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        torch.save({"state": model.state_dict(), "seconds": seconds}, partial)
        os.replace(partial, path)
    return model.eval()


def census(setting: Setting, model: nn.Module, arch: str, key: str, on: str) -> dict[str, torch.Tensor]:
    """Algorithm 4 on the estimation set of ``on``: ψ of every node per layer (float64), cached under ``key``."""

    def compute() -> dict[str, Any]:
        data = setting.estimation_set(on)
        masker = Masker(model, data[0][:1])
        start = time.perf_counter()
        result = LossDelta(data, verbose=False).census(masker, list(LAYERS[arch]))
        psi: dict[str, Any] = {layer: result[layer].psi for layer in LAYERS[arch]}
        psi["seconds"] = time.perf_counter() - start
        return psi

    value = setting.memo(f"census/{key}-{on}", compute)
    return {layer: value[layer] for layer in LAYERS[arch]}


def counts(psi: torch.Tensor) -> dict[str, int]:
    """``{"zero", "worse", "important"}`` counts of one layer's ψ (thesis boundaries ±1e-5)."""
    return classify(psi).counts()


def mean_psi(psi: torch.Tensor) -> dict[str, float]:
    """Mean ψ of each class (NaN for an empty class): the thesis's "average importance" (§4.3–4.4)."""
    classes = classify(psi)
    return {
        name: float(psi[getattr(classes, name)].mean()) if getattr(classes, name).numel() else math.nan
        for name in CLASSES
    }


def models(ctx: Run, full: dict[str, int], quick: dict[str, int]) -> dict[str, int]:
    """Models per architecture: the experiment's counts (``quick`` with ``--quick``), at most ``--seeds``."""
    caps = quick if ctx.quick else full
    return {arch: min(cap, len(ctx.seeds)) for arch, cap in caps.items()}


def describe(values: Sequence[float]) -> dict[str, float]:
    """pandas ``describe()``'s mean, std (n − 1), min and max, as the thesis's tables give them."""
    clean = [float(v) for v in values if not math.isnan(float(v))]
    if not clean:
        return {"n": 0, "mean": math.nan, "std": math.nan, "min": math.nan, "max": math.nan}
    return {
        "n": len(clean),
        "mean": statistics.fmean(clean),
        "std": statistics.stdev(clean) if len(clean) > 1 else 0.0,
        "min": min(clean),
        "max": max(clean),
    }


def band(ours: float, paper: float, spread: float, k: float = 2.0) -> bool:
    """Whether our mean lies within ``k`` standard deviations of the paper's (nodeprune's rule)."""
    return abs(ours - paper) <= k * spread


def status(hits: int, total: int) -> str:
    """All → "reproduced", at least half → "partly", fewer → "not"."""
    if total and hits == total:
        return "reproduced"
    return "partly" if total and 2 * hits >= total else "not"


def fmt(value: float, digits: int = 4) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def test_metrics(model: nn.Module, data: Pair, classes: int = 10) -> dict[str, Any]:
    """Test loss and accuracy (:func:`nodeprune.evaluate`) and the accuracy of every class."""
    loss, accuracy = evaluate(model, data)
    inputs, targets = data
    hits = torch.zeros(classes, dtype=torch.float64)
    totals = torch.zeros(classes, dtype=torch.float64)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, inputs.shape[0], 1024):
                predicted = model(inputs[start : start + 1024]).argmax(dim=1)
                target = targets[start : start + 1024]
                totals += torch.bincount(target, minlength=classes).double()
                hits += torch.bincount(target[predicted == target], minlength=classes).double()
    finally:
        model.train(was_training)
    return {"loss": loss, "acc": accuracy, "per_class": (hits / totals.clamp(min=1)).tolist()}


def prune(
    setting: Setting,
    model: nn.Module,
    arch: str,
    key: str,
    on: str,
    name: str,
    strategy: Callable[[LossDelta], Strategy],
) -> dict[str, Any]:
    """Prune a copy's masks with ``strategy(LossDelta(estimation set))``; test before and after; cached.

    Returns removed nodes per layer (removal order), single-node evaluations (``evaluations``: as the
    thesis's algorithms count them; ``computed``: with greedy's look-ahead), seconds, the pruning-set loss
    and accuracy after every removal (``losses``, ``accuracies``: the evolution curves), and
    ``before``/``after`` test metrics (:func:`test_metrics`). The model's weights are never changed.
    """

    def compute() -> dict[str, Any]:
        data = setting.estimation_set(on)
        masker = Masker(model, data[0][:1])
        before = test_metrics(model, setting.test)
        result = strategy(LossDelta(data, verbose=False)).prune(masker)
        with masker.applied():
            after = test_metrics(model, setting.test)
        baseline = result.baseline or (math.nan, math.nan)
        return {
            "removed": {layer: list(result.removed.get(layer, [])) for layer in LAYERS[arch]},
            "evaluations": result.evaluations,
            "computed": result.computed,
            "seconds": result.seconds,
            "losses": [baseline[0]] + [float(r.loss) if r.loss is not None else math.nan for r in result.trajectory],
            "accuracies": [baseline[1]]
            + [float(r.accuracy) if r.accuracy is not None else math.nan for r in result.trajectory],
            "before": before,
            "after": after,
        }

    return setting.memo(f"{name}/{key}-{on}", compute)


def exhaustive(setting: Setting, arch: str) -> Callable[[LossDelta], Strategy]:
    """Algorithm 8 with the thesis's tol −1e-5 (score threshold 1e-5), layers last hidden to first."""
    layers = list(setting.pruned_layers(arch))
    return lambda scorer: Exhaustive(scorer, threshold=1e-5, layers=layers, verbose=False)


def greedy(setting: Setting, arch: str, cutoff: float) -> Callable[[LossDelta], Strategy]:
    """Algorithm 9 with tol −1e-5 and the ignore cutoff ``cutoff`` (negative ψ: −1e-2, −1e-3 or −5e-5)."""
    layers = list(setting.pruned_layers(arch))
    return lambda scorer: Greedy(scorer, threshold=1e-5, ignore_above=-cutoff, layers=layers, verbose=False)
