"""Chapter 5 of Charpentier (2020) on a user's image folder: loading, the 70:15:15 split, VGG-16 training.

An image folder is one sub-folder per class with image files (Kvasir v2: ``kvasir-dataset-v2/<class>/*.jpg``,
8 classes × 1000 images). Images are decoded, scaled to [0, 1] and resized to ``size × size`` (the thesis:
224), as ``tf.image.convert_image_dtype`` and ``resize`` do (the author's chapter-5 code). The thesis trains
``VGG16(weights=None)`` with SGD (lr 1e-3, momentum 0.5, Nesterov), batch 32, categorical cross-entropy, up
to 200 epochs with early stopping on the validation loss (patience 7, best weights restored).
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import torch
from torch import nn

from ...evaluate import evaluate

__all__ = ["EXTENSIONS", "find_image_folder", "load_image_folder", "train_sgd"]

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff")


def _classes(folder: Path) -> list[Path]:
    return sorted(
        sub
        for sub in folder.iterdir()
        if sub.is_dir() and any(f.suffix.lower() in EXTENSIONS for f in sub.iterdir() if f.is_file())
    )


def find_image_folder(directory: Path) -> Path | None:
    """``directory`` or one of its sub-folders that holds at least two class folders of images; None if none."""
    if not directory.is_dir():
        return None
    candidates = [directory, *sorted(p for p in directory.iterdir() if p.is_dir())]
    for candidate in candidates:
        if len(_classes(candidate)) >= 2:
            return candidate
    return None


def load_image_folder(folder: Path, size: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Every image as float32 ``(N, 3, size, size)`` in [0, 1], its class index (folders in name order), the names."""
    from PIL import Image

    classes = _classes(folder)
    images, labels = [], []
    for index, sub in enumerate(classes):
        for file in sorted(f for f in sub.iterdir() if f.suffix.lower() in EXTENSIONS):
            with Image.open(file) as image:
                rgb = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
                data = torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8)
            images.append(data.reshape(size, size, 3).permute(2, 0, 1))
            labels.append(index)
    inputs = torch.stack(images).to(torch.float32) / 255.0
    return inputs, torch.tensor(labels, dtype=torch.int64), [c.name for c in classes]


def train_sgd(
    model: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    validation: tuple[torch.Tensor, torch.Tensor],
    *,
    epochs: int = 200,
    patience: int = 7,
    batch_size: int = 32,
    seed: int = 0,
) -> dict[str, float]:
    """The thesis's chapter-5 training, in place: SGD(1e-3, momentum 0.5, Nesterov) with early stopping.

    Returns the number of epochs run, the best epoch and its validation loss. The weights of the epoch with
    the lowest validation loss are restored (Keras ``EarlyStopping(patience=7, restore_best_weights=True)``).
    """
    device = next(model.parameters()).device
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.5, nesterov=True)
    generator = torch.Generator().manual_seed(seed)
    inputs, targets = train
    best, best_epoch, best_state, waited, ran = math.inf, 0, copy.deepcopy(model.state_dict()), 0, 0
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(inputs.shape[0], generator=generator)
        for start in range(0, inputs.shape[0], batch_size):
            index = order[start : start + batch_size]
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(inputs[index].to(device)), targets[index].to(device))
            loss.backward()
            optimizer.step()
        ran = epoch + 1
        model.eval()
        loss_value = evaluate(model, validation, batch_size=64)[0]
        if loss_value < best:
            best, best_epoch, best_state, waited = loss_value, ran, copy.deepcopy(model.state_dict()), 0
        else:
            waited += 1
            if waited >= patience:
                break
    model.load_state_dict(best_state)
    model.eval()
    return {"epochs": ran, "best_epoch": best_epoch, "best_validation_loss": best}
