"""Charpentier (2020) chapter 5: greedy pruning on a small validation set overfits it (VGG-16, Kvasir).

``nodeprune reproduce charpentier-case-study [--data DIR]``. The thesis's protocol: a 70:15:15 split, the
model trained, the census (Algorithm 4) on the validation set, then greedy pruning (Algorithm 9, tol −1e-5,
ignore cutoff −5e-5) on the validation set, with the training and test sets evaluated after every removal
(the evolution curves, Figures 5.1–5.4) and the confusion matrices compared (Tables 5.3–5.5).

With ``--data DIR`` holding an image folder (one sub-folder of images per class, e.g. Kvasir v2): the thesis's
VGG-16 on 224×224 images, SGD with early stopping, on the GPU when there is one (``--quick``: 32×32 images,
2 epochs); the greedy run keeps a checkpoint and resumes after an interruption. Without it: nodeprune's
stand-in (our choice), scikit-learn's digits with the MLP 64-128-64-32-10 and a pruning (validation) set of
270 images, 10 seeds; and nodeprune's guard against the effect, a held-out selection set with rollback (the
validation set cut in two halves: pruning half and selection half), next to it.
"""

from __future__ import annotations

from typing import Any

import torch

import nodeprune as npr

from ... import datasets, zoo
from .._framework import Claim, Data, Experiment, Run
from . import _common as cp
from . import _images as images
from ._case_report import report, u_shaped

__all__ = ["EXPERIMENT", "u_shaped"]

CUTOFF = -5e-5  # the thesis's VGG-16 ignore cutoff (§5.2)
SETS = ("train", "validation", "test")


def prune_one(
    model: torch.nn.Module, parts: datasets.TrainValidationTest, layers: list[str], checkpoint: Any = None
) -> dict[str, Any]:
    """Census and greedy −5e-5 on the validation set, train and test monitored; everything Tables 5.1–5.5 need."""
    masker = npr.Masker(model, parts.validation[0][:1])
    scorer = npr.LossDelta(parts.validation, verbose=False)
    census = scorer.census(masker, layers)
    before = {name: npr.evaluate(model, getattr(parts, name)) for name in SETS}
    confusion_before = {name: confusion(model, getattr(parts, name)) for name in SETS}
    strategy = npr.Greedy(
        scorer,
        threshold=1e-5,
        ignore_above=-CUTOFF,
        layers=layers,
        monitor={"test": parts.test, "train": parts.train},
        checkpoint=checkpoint,
        verbose=checkpoint is not None,
    )
    result = strategy.prune(masker)
    with masker.applied():
        after = {name: npr.evaluate(model, getattr(parts, name)) for name in SETS}
        confusion_after = {name: confusion(model, getattr(parts, name)) for name in SETS}
    layer_rows = []
    for layer in layers:
        counts = census[layer].counts()
        layer_rows.append(
            {
                "layer": layer,
                "size": int(census[layer].nodes.numel()),
                "important": counts["important"],
                "zero": counts["zero"],
                "worse": counts["worse"],
                "unimportant": counts["zero"] + counts["worse"],
                "pruned": len(result.removed.get(layer, [])),
            }
        )
    return {
        "before": before,
        "after": after,
        "layers": layer_rows,
        "validation_curve": [v for v in result.losses() if v is not None],
        "test_curve": [loss for loss, _ in result.monitors["test"]],
        "train_curve": [loss for loss, _ in result.monitors["train"]],
        "removed": result.count,
        "evaluations": result.evaluations,
        "seconds": result.seconds,
        "confusion": {name: (confusion_after[name] - confusion_before[name]) for name in SETS},
        "class_sizes": {name: torch.bincount(getattr(parts, name)[1].cpu()).tolist() for name in SETS},
        "sizes": [len(getattr(parts, name)[1]) for name in SETS],
    }


def confusion(model: torch.nn.Module, data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Counts of (true class, predicted class)."""
    inputs, targets = data
    classes = int(targets.max()) + 1
    matrix = torch.zeros(classes, classes, dtype=torch.int64)
    model.eval()
    with torch.no_grad():
        for start in range(0, inputs.shape[0], 256):
            predicted = model(inputs[start : start + 256]).argmax(dim=1).cpu()
            target = targets[start : start + 256].cpu()
            matrix += torch.bincount(target * classes + predicted, minlength=classes * classes).reshape(
                classes, classes
            )
    return matrix


def selection_variant(
    model: torch.nn.Module, parts: datasets.TrainValidationTest, layers: list[str], seed: int
) -> dict[str, float]:
    """nodeprune's guard: prune on half the validation set, roll back to the best loss on the other half."""
    pruning, selection = datasets.holdout_split(*parts.validation, 0.5, seed=seed)
    masker = npr.Masker(model, pruning[0][:1])
    result = npr.Greedy(
        npr.LossDelta(pruning, verbose=False), 1e-5, -CUTOFF, layers=layers, selection=selection, verbose=False
    ).prune(masker)
    with masker.applied():
        loss, accuracy = npr.evaluate(model, parts.test)
    return {"test_loss": loss, "test_acc": accuracy, "kept": result.count, "made": len(result.trajectory)}


def digits_runs(ctx: Run) -> list[dict[str, Any]]:
    inputs, targets = datasets.load_digits()
    parts = datasets.stratified_split(inputs.reshape(-1, 1, 8, 8), targets, (0.70, 0.15, 0.15), seed=0)
    layers = ["fc1", "fc2", "fc3"]
    out = []
    for seed in ctx.seeds:
        torch.manual_seed(seed)
        model = zoo.mlp([64, 128, 64, 32, 10]).eval()
        cp.train(model, parts.train, seed=seed, epochs=cp.QUICK_DIGITS_EPOCHS if ctx.quick else cp.DIGITS_EPOCHS)
        model.eval()
        result = prune_one(model, parts, layers)
        result["seed"] = seed
        result["variant"] = selection_variant(model, parts, layers, seed)
        out.append(result)
        ctx.log(f"seed {seed}: {result['removed']} removed")
    return out


def folder_run(ctx: Run, folder: Any) -> list[dict[str, Any]]:
    size = 32 if ctx.quick else 224
    inputs, targets, names = images.load_image_folder(folder, size)
    parts = datasets.stratified_split(inputs, targets, (0.70, 0.15, 0.15), seed=0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    parts = datasets.TrainValidationTest(
        *((x.to(device), y.to(device)) for x, y in (parts.train, parts.validation, parts.test))
    )
    torch.manual_seed(ctx.seeds[0])
    model = build_vgg(len(names), size).to(device)
    history = images.train_sgd(model, parts.train, parts.validation, epochs=2 if ctx.quick else 200, seed=ctx.seeds[0])
    layers = [layer.name for layer in npr.Masker(model, parts.validation[0][:1]).layers]
    cache = datasets._lookup.cache() / "charpentier" / "case-study"
    checkpoint = cache / f"{folder.name}-{size}-seed{ctx.seeds[0]}.json"
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    result = prune_one(model, parts, layers, None if ctx.quick else checkpoint)
    result |= {"seed": ctx.seeds[0], "training": history, "classes": names, "device": str(device)}
    return [result]


def build_vgg(classes: int, size: int) -> torch.nn.Module:
    """The thesis's VGG-16 for ``classes`` classes and ``size × size`` images (replaced in tests)."""
    return zoo.thesis_vgg16(classes=classes, in_shape=(3, size, size))


def run(ctx: Run) -> None:
    folder = images.find_image_folder(ctx.directory) if ctx.directory is not None else None
    if folder is not None:
        ctx.data = Data(folder.name, "Kvasir v2", str(folder))
        runs = folder_run(ctx, folder)
    else:
        why = (
            f"no image folder (class sub-folders of images) in {ctx.directory}"
            if ctx.directory
            else "no --data DIR was given"
        )
        ctx.data = Data(
            "digits",
            "Kvasir v2 (an image folder given with --data)",
            "scikit-learn's bundled 8×8 digits, as a stand-in",
            why,
        )
        runs = digits_runs(ctx)
    report(ctx, runs, folder is not None)


EXPERIMENT = Experiment(
    name="charpentier-case-study",
    title="Chapter 5: greedy pruning overfits a small pruning set (Charpentier 2020, VGG-16 on Kvasir)",
    document=cp.DOCUMENT,
    reproduces=("Tables 5.1–5.5", "Figures 5.1–5.4"),
    claims=(
        Claim(
            "E15",
            "Pruning on a small validation set overfits it: the validation loss falls while the test loss does not, "
            "and the test loss along the removals is U-shaped.",
            "§5.2, Table 5.1, Figures 5.1–5.4",
        ),
        Claim(
            "T5.1",
            "After pruning, the validation loss falls and its accuracy rises, while the test accuracy falls.",
            "Table 5.1",
        ),
        Claim("E16", "Some layer ends with more nodes pruned than its initial zero + worse estimate.", "Table 5.2"),
    ),
    run=run,
    description=(
        "The chapter-5 protocol: 70:15:15 split, census and greedy pruning (cutoff −5e-5) on the validation set, "
        "train and test evaluated after every removal. With --data DIR (an image folder such as Kvasir v2): the "
        "thesis's VGG-16 at 224×224. Without it: digits with the pilot's MLP, 10 seeds, and a selection-set "
        "rollback next to it. --quick: 2 seeds (digits) or 32×32 images and 2 epochs (image folder)."
    ),
    dataset=None,
    seeds=10,
    quick_seeds=2,
    paper_seeds=1,
)
