"""The models Zhao (2024)'s experiments prune: her VGG-16 on CIFAR-10, or stand-ins on Fashion-MNIST or digits.

Without CIFAR-10 the run uses Fashion-MNIST when it is found (60,000 28×28 grey images padded to 32×32,
10 classes) and a VGG-11 at a quarter of its width (``zoo.narrow_vgg``: 16-M-32-M-64-64-M-128-128-M-128-128-M,
FC 256; 688 channels); scikit-learn's 8×8 digits and a 160-channel VGG-like net otherwise, or with
``--digits``. The settings on Fashion-MNIST mirror those on digits:

* ``"fashion-frozen"``: the VGG-11 trunk is trained on the classes 0–4 (T-shirt … coat), **frozen**, and a
  fresh head (ReLU, Linear 256→128, ReLU, Linear 128→10, Dropout 0.25 after the logits, as Zhao's) is
  trained on all ten classes, on the frozen part's outputs computed once;
* ``"fashion-trained"``: the same VGG-11 trained end to end on all ten classes.

Relevance and evaluation use the first ``fashion_test`` test images. Full runs on Fashion-MNIST keep the
trained models in a cache (``$XDG_CACHE_HOME/nodeprune/zhao/fashion-mnist/``; ``$NODEPRUNE_ZHAO_CACHE``
for every run when set), so that the three experiments train them once and a run can resume.

On digits:

* ``"frozen"`` (digits; "S4", the closest to the thesis's regime): a small VGG-like trunk
  (conv16-conv16-M-conv32-conv32-M-conv64, FC 256→64) is trained on the digits 0–4 of the training split,
  **frozen**, and a fresh head (ReLU, Linear 64→64, ReLU, Linear 64→10, Dropout 0.25 after the logits, as
  Zhao's) is trained on all ten digits — as Zhao froze ImageNet features and trained a head on CIFAR-10.
* ``"trained"`` (digits; "S3"): the same architecture with a 64→10 output, trained end to end.
* ``"cifar"`` (with ``--data`` holding CIFAR-10): ``zoo.zhao_vgg16`` with torchvision's ImageNet weights
  when their file is found locally (never downloaded), otherwise torchvision's random initialisation;
  the frozen part's outputs are computed once and the head is trained on them.

The convolution channels are the pruned nodes (Zhao §4.4.1); every list is built from one scoring pass.
"""

from __future__ import annotations

import copy
import os
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ... import datasets, zoo
from ...datasets import Pair, holdout_split
from ...masker import Masker, NodeLayer
from ...scorers.base import Scorer
from ...training import fit
from .._framework import Data, Run

__all__ = [
    "PROTOCOLS",
    "Protocol",
    "RandomScores",
    "Setting",
    "Stored",
    "build",
    "network",
    "setting_keys",
    "stand_in",
    "threads",
]

VGG16_FILE = "vgg16-397923af.pth"  # torchvision's IMAGENET1K_V1 checkpoint (Zhao: vgg16(pretrained=True))
VGG: Callable[..., nn.Sequential] = zoo.zhao_vgg16  # replaced by a small model in the tests
LABELS = {
    "frozen": "digits, frozen trunk + trained head (S4)",
    "trained": "digits, trained end to end (S3)",
    "cifar": "CIFAR-10, Zhao's VGG-16",
    "fashion-frozen": "Fashion-MNIST, VGG-11/4: frozen trunk + trained head",
    "fashion-trained": "Fashion-MNIST, VGG-11/4: trained end to end",
}
CACHE_VARIABLE = "NODEPRUNE_ZHAO_CACHE"
"""Environment variable: a folder for the model cache, used by every run (quick and digits runs too) when set."""
VGG_DEPTH, VGG_WIDTH, VGG_HIDDEN, HEAD_HIDDEN = 11, 4, 256, 128  # the Fashion-MNIST stand-in
PAPER_NETWORK = "VGG-16, frozen ImageNet features + trained head"


@dataclass(frozen=True)
class Protocol:
    """Sizes of a run: epochs on digits, and the CIFAR-10 subsets (the thesis's full sizes are infeasible on CPU)."""

    trunk_epochs: int  # digits: end-to-end training (S3) and the frozen trunk's pre-training (S4)
    head_epochs: int  # the trained head (S4 on digits; CIFAR-10); Zhao: 30 (§3.1)
    cifar_train: int  # CIFAR-10 images the head is trained on (Zhao: 40,000)
    cifar_test: int  # CIFAR-10 test images for relevance and evaluation (Zhao: 10,000)
    fashion_epochs: int = 6  # Fashion-MNIST: end-to-end training and the frozen trunk's pre-training
    fashion_train: int = 0  # Fashion-MNIST training images used (0: all 60,000)
    fashion_test: int = 1_000  # Fashion-MNIST test images for relevance and evaluation


PROTOCOLS = {
    "full": Protocol(trunk_epochs=40, head_epochs=30, cifar_train=40_000, cifar_test=1_000),
    "quick": Protocol(
        trunk_epochs=6,
        head_epochs=6,
        cifar_train=200,
        cifar_test=40,
        fashion_epochs=2,
        fashion_train=6_000,
        fashion_test=100,
    ),
}


@dataclass
class Setting:
    """One trained model of one seed and what a sweep needs: the pruned layers and the evaluation data."""

    key: str
    model: nn.Module
    layers: list[str]
    test: Pair
    classes: int
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return LABELS[self.key]

    def masker(self) -> Masker:
        return Masker(self.model, self.test[0][:1])


class Stored(Scorer):
    """Scores computed once (e.g. one relevance pass), served to several strategies without recomputing."""

    def __init__(self, scores: dict[str, torch.Tensor]) -> None:
        self.scores = scores

    def _score(self, masker: Masker, layer: NodeLayer, nodes: torch.Tensor) -> torch.Tensor:
        return self.scores[layer.name].to(torch.float64)[nodes]


class RandomScores(Scorer):
    """Zhao's random control (§4.4.3): uniform random scores, i.e. a random removal order, fixed by ``seed``."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def _score(self, masker: Masker, layer: NodeLayer, nodes: torch.Tensor) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + zlib.crc32(layer.name.encode()))
        return torch.rand(layer.size, generator=generator, dtype=torch.float64)[nodes]


@contextmanager
def threads(count: int | None) -> Iterator[None]:
    """Run with ``count`` torch threads (None: unchanged), restoring the previous number afterwards."""
    before = torch.get_num_threads()
    try:
        if count is not None:
            torch.set_num_threads(count)
        yield
    finally:
        torch.set_num_threads(before)


def stand_in(ctx: Run) -> None:
    """Put Fashion-MNIST in the place of digits when CIFAR-10 is missing and Fashion-MNIST is found.

    ``ctx.data`` is left as it is with CIFAR-10, with ``--digits``, and when Fashion-MNIST is not found
    (looked for as :func:`nodeprune.datasets.find` does, in the ``--data`` folder first).
    """
    data = ctx.data
    if data.name != "digits" or data.wanted != "cifar10" or data.requested:
        return
    try:
        folder = datasets.find("fashion-mnist", ctx.directory)
    except datasets.DatasetNotFoundError:
        return
    why = f"{data.fallback}. Fashion-MNIST was found ({folder}): the closest stand-in here (`--digits` for digits)"
    ctx.data = Data("fashion-mnist", data.wanted, str(folder), why, _folder=folder)


def network(ctx: Run) -> str:
    """The network that ran, for the report's first line ("" for Zhao's VGG-16 on CIFAR-10)."""
    both = "" if ctx.quick else ", and trained end to end"
    if ctx.data.name == "fashion-mnist":
        return f"VGG-11 at 1/{VGG_WIDTH} width, 688 channels: frozen trunk + trained head{both}"
    if ctx.data.name == "digits":
        return f"VGG-like conv16-conv16-M-conv32-conv32-M-conv64, 160 channels: frozen trunk + trained head{both}"
    return ""


def setting_keys(ctx: Run) -> list[str]:
    """The settings of a run, the one closest to the thesis first (its verdicts are the primary ones).

    A quick run on digits or Fashion-MNIST has only the first (CI time)."""
    if ctx.data.name == "cifar10":
        return ["cifar"]
    if ctx.data.name == "fashion-mnist":
        return ["fashion-frozen"] if ctx.quick else ["fashion-frozen", "fashion-trained"]
    return ["frozen"] if ctx.quick else ["frozen", "trained"]


def build(key: str, ctx: Run, seed: int, protocol: Protocol, cache: dict[str, Any]) -> Setting:
    """Train the model of ``key`` for ``seed`` (``cache`` keeps what seeds share, e.g. CIFAR-10 features)."""
    if key == "cifar":
        return _cifar(ctx, seed, protocol, cache)
    if key.startswith("fashion"):
        return _fashion(key, ctx, seed, protocol, cache)
    train, test = ctx.data.train, ctx.data.test
    torch.manual_seed(seed)
    if key == "trained":
        model = _digits_net(10)
        fit(model, train, epochs=protocol.trunk_epochs, seed=seed)
        notes = [f"Adam 1e-3, batch 32, {protocol.trunk_epochs} epochs on all {len(train[1])} training digits"]
    else:
        source = train[1] < 5
        trunk = _digits_net(5)
        fit(trunk, (train[0][source], train[1][source]), epochs=protocol.trunk_epochs, seed=seed)
        parts = [(name, module) for name, module in trunk.named_children() if name != "out"]
        for _, module in parts:
            module.requires_grad_(False)
        parts += [
            ("fc2", nn.Linear(64, 64)),
            ("act_fc2", nn.ReLU()),
            ("out", nn.Linear(64, 10)),
            ("drop_out", nn.Dropout(0.25)),
        ]
        model = nn.Sequential(OrderedDict(parts))
        fit(model, train, epochs=protocol.head_epochs, seed=seed)
        notes = [
            f"trunk: Adam 1e-3, batch 32, {protocol.trunk_epochs} epochs on the {int(source.sum())} training "
            f"digits 0–4; head: {protocol.head_epochs} epochs on all {len(train[1])} training digits"
        ]
    layers = [name for name, module in model.named_children() if isinstance(module, nn.Conv2d)]
    return Setting(key, model.eval(), layers, test, 10, notes)


def _digits_net(classes: int) -> nn.Sequential:
    """conv16-conv16-M-conv32-conv32-M-conv64 → FC 256→64 → ``classes``, ReLU, no BatchNorm (S3)."""
    parts: list[tuple[str, nn.Module]] = []
    channels = 1
    for block, widths in enumerate(((16, 16), (32, 32), (64,)), start=1):
        for index, width in enumerate(widths, start=1):
            parts += [
                (f"conv{block}_{index}", nn.Conv2d(channels, width, 3, padding=1)),
                (f"act{block}_{index}", nn.ReLU()),
            ]
            channels = width
        if block < 3:
            parts.append((f"pool{block}", nn.MaxPool2d(2)))
    parts += [("flatten", nn.Flatten()), ("fc1", nn.Linear(64 * 2 * 2, 64)), ("act_fc1", nn.ReLU())]
    parts.append(("out", nn.Linear(64, classes)))
    return nn.Sequential(OrderedDict(parts))


# ---------------------------------------------------------------------------------------------- Fashion-MNIST
FASHION_BATCH = 128  # nodeprune's choice: 4× fewer optimiser steps than batch 32 on the shared CPU


def model_cache(ctx: Run) -> Path | None:
    """Where trained models are kept: ``$NODEPRUNE_ZHAO_CACHE`` (every run), else full runs on real data only."""
    if os.environ.get(CACHE_VARIABLE):
        return Path(os.environ[CACHE_VARIABLE]) / ctx.data.name
    if ctx.quick or ctx.data.name == "digits":
        return None
    return datasets._lookup.cache() / "zhao" / ctx.data.name


def _cached(folder: Path | None, name: str, model: nn.Module, train: Callable[[], object]) -> tuple[float, bool]:
    """Train ``model`` with ``train()``, or load its state from ``folder/models/name.pt``; (seconds, loaded)."""
    path = None if folder is None else folder / "models" / f"{name}.pt"
    if path is not None and path.is_file():
        saved = torch.load(path, weights_only=True)
        model.load_state_dict(saved["state"])
        return float(saved["seconds"]), True
    start = time.perf_counter()
    train()
    seconds = time.perf_counter() - start
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        torch.save({"state": model.state_dict(), "seconds": seconds}, partial)
        os.replace(partial, path)
    return seconds, False


def _vgg(classes: int) -> nn.Sequential:
    return zoo.narrow_vgg(VGG_DEPTH, VGG_WIDTH, classes, (1, 32, 32), VGG_HIDDEN)


def _fashion(key: str, ctx: Run, seed: int, protocol: Protocol, cache: dict[str, Any]) -> Setting:
    if "fashion" not in cache:
        train, test = ctx.data.train, ctx.data.test
        count = protocol.fashion_train or len(train[1])
        pad = (2, 2, 2, 2)  # 28×28 → 32×32: VGG's five pools leave 1×1
        cache["fashion"] = (
            (F.pad(train[0][:count], pad), train[1][:count]),
            (F.pad(test[0][: protocol.fashion_test], pad), test[1][: protocol.fashion_test]),
        )
        cache["folder"] = model_cache(ctx)
    train, test = cache["fashion"]
    epochs, folder = protocol.fashion_epochs, cache["folder"]
    name = f"{key}-vgg{VGG_DEPTH}w{VGG_WIDTH}-e{epochs}-h{protocol.head_epochs}-n{len(train[1])}-seed{seed}"
    torch.manual_seed(seed)
    if key == "fashion-trained":
        model = _vgg(10)
        seconds, loaded = _cached(
            folder, name, model, lambda: fit(model, train, epochs=epochs, batch_size=FASHION_BATCH, seed=seed)
        )
        done = f"Adam 1e-3, batch {FASHION_BATCH}, {epochs} epochs on {len(train[1])} training images"
    else:
        trunk = _vgg(5)
        parts = [(n, m) for n, m in trunk.named_children() if n != "out"]
        for _, module in parts:
            module.requires_grad_(False)
        head = [
            ("fc2", nn.Linear(VGG_HIDDEN, HEAD_HIDDEN)),
            ("act_fc2", nn.ReLU()),
            ("out", nn.Linear(HEAD_HIDDEN, 10)),
            ("drop_out", nn.Dropout(0.25)),
        ]
        model = nn.Sequential(OrderedDict(parts + head))
        source = train[1] < 5

        def train_both() -> None:
            trunk.requires_grad_(True)
            fit(trunk, (train[0][source], train[1][source]), epochs=epochs, batch_size=FASHION_BATCH, seed=seed)
            trunk.requires_grad_(False)
            frozen = nn.Sequential(*[module for _, module in parts]).eval()
            with torch.no_grad():
                features = torch.cat([frozen(train[0][i : i + 500]) for i in range(0, len(train[1]), 500)])
            top = nn.Sequential(*[module for _, module in head])
            fit(top, (features, train[1]), epochs=protocol.head_epochs, batch_size=FASHION_BATCH, seed=seed)

        seconds, loaded = _cached(folder, name, model, train_both)
        done = (
            f"trunk: Adam 1e-3, batch {FASHION_BATCH}, {epochs} epochs on the {int(source.sum())} training images "
            f"of classes 0–4; head: {protocol.head_epochs} epochs on all {len(train[1])} (frozen part's outputs "
            "computed once)"
        )
    where = f"taken from the model cache {folder}, trained in {seconds:.0f} s" if loaded else f"{seconds:.0f} s"
    notes = [
        f"VGG-{VGG_DEPTH} at 1/{VGG_WIDTH} width (zoo.narrow_vgg), 28×28 images padded to 32×32",
        f"{done}; training time of seed {seed}: {where}",
        f"relevance and evaluation on the first {len(test[1])} Fashion-MNIST test images",
    ]
    layers = [n for n, m in model.named_children() if isinstance(m, nn.Conv2d)]
    return Setting(key, model.eval(), layers, test, 10, notes)


# ---------------------------------------------------------------------------------------------- CIFAR-10
def imagenet_weights(ctx: Run) -> Path | None:
    """torchvision's VGG-16 ImageNet checkpoint, if a local copy exists (nothing is downloaded)."""
    places = [Path(ctx.data.source), Path(ctx.data.source).parent]
    if os.environ.get("NODEPRUNE_DATA"):
        places.append(Path(os.environ["NODEPRUNE_DATA"]))
    places.append(Path(torch.hub.get_dir()) / "checkpoints")
    return next((place / VGG16_FILE for place in places if (place / VGG16_FILE).is_file()), None)


def _load_imagenet(model: nn.Sequential, path: Path) -> None:
    """Copy torchvision's ``features.*`` / ``classifier.*`` weights into the model's convolutions and fc1–fc3."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    prefixes = {key.rsplit(".", 1)[0] for key in state}  # features.0, …, features.28, classifier.0, .3, .6
    theirs = sorted(prefixes, key=lambda k: (not k.startswith("features."), int(k.split(".")[1])))
    ours = [m for m in model.children() if isinstance(m, (nn.Conv2d, nn.Linear))][: len(theirs)]
    with torch.no_grad():
        for module, prefix in zip(ours, theirs, strict=True):
            module.weight.copy_(state[f"{prefix}.weight"])
            if module.bias is not None:
                module.bias.copy_(state[f"{prefix}.bias"])


def _cifar(ctx: Run, seed: int, protocol: Protocol, cache: dict[str, Any]) -> Setting:
    if "base" not in cache:
        base = VGG(classes=10, weights=None, freeze=True)
        weights = imagenet_weights(ctx)
        if weights is not None:
            _load_imagenet(base, weights)
        names = [name for name, _ in base.named_children()]
        frozen = nn.Sequential(*list(base.children())[: names.index("act_fc3")]).eval()
        train, test = ctx.data.train, ctx.data.test
        (fit_x, fit_y), _ = holdout_split(*train, 0.2, seed=0)  # Zhao: 80:20 train/validation (§3.2)
        fit_x, fit_y = fit_x[: protocol.cifar_train], fit_y[: protocol.cifar_train]
        with torch.no_grad():
            features = torch.cat([frozen(2 * fit_x[i : i + 100] - 1) for i in range(0, len(fit_y), 100)])
        cache.update(
            base=base,
            head=names.index("act_fc3"),
            features=(features, fit_y),
            test=(2 * test[0][: protocol.cifar_test] - 1, test[1][: protocol.cifar_test]),
            weights=weights,
        )
    model = copy.deepcopy(cache["base"])
    head = nn.Sequential(*list(model.children())[cache["head"] :])
    torch.manual_seed(seed)
    for module in head.modules():
        if isinstance(module, nn.Linear):
            module.reset_parameters()
    fit(head, cache["features"], epochs=protocol.head_epochs, batch_size=20, seed=seed)
    convs = [name for name, module in model.named_children() if isinstance(module, nn.Conv2d)]
    weights = cache["weights"]
    notes = [
        f"VGG-16 convolutions and fc1–fc3: {'ImageNet weights from ' + str(weights) if weights else NO_WEIGHTS}",
        f"head: Adam 1e-3, batch 20, {protocol.head_epochs} epochs on the frozen part's outputs for "
        f"{len(cache['features'][1])} training images (computed once, without augmentation)",
        f"relevance and evaluation on the first {len(cache['test'][1])} CIFAR-10 test images",
    ]
    return Setting("cifar", model.eval(), convs[:-1], cache["test"], 10, notes)


NO_WEIGHTS = (
    f"torchvision's random initialisation: the ImageNet checkpoint {VGG16_FILE} was not found (looked in the "
    "data folder, its parent, $NODEPRUNE_DATA and torch's hub cache; it is never downloaded), so the frozen "
    "features are random, not ImageNet's"
)
