"""The ablation engine on CUDA (marked ``gpu``: skipped where CUDA is not available).

The engine must run unchanged on a CUDA model and data: the same scores as on the CPU, and no per-sample
work left on the CPU (a hidden CPU tensor would make every pass copy across the bus and wait for it).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

import nodeprune as npr
from charpentier_reference import naive_scores
from test_loss_delta import MODELS, TOLERANCE, build

SAMPLES = 256


class CPUWork(TorchDispatchMode):
    """Records every operation that reads or writes a CPU tensor of at least ``SAMPLES`` elements."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        result = func(*args, **(kwargs or {}))
        tensors = [t for t in tree_flatten((args, kwargs, result))[0] if isinstance(t, torch.Tensor)]
        if any(t.device.type == "cpu" and t.numel() >= SAMPLES for t in tensors):
            self.seen.append(str(func))
        return result


@contextmanager
def exact_cuda_math() -> Iterator[None]:
    """No TF32 in CUDA matrix products and convolutions, so that CUDA and CPU float32 results agree closely."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def on_cuda(name: str) -> tuple[npr.Masker, tuple[torch.Tensor, torch.Tensor], npr.Masker, tuple]:
    model, masker, data = build(name, samples=SAMPLES)
    cuda_model = copy.deepcopy(model).cuda()
    cuda_data = (data[0].cuda(), data[1].cuda())
    return masker, data, npr.Masker(cuda_model, cuda_data[0][:1]), cuda_data


@pytest.mark.gpu
@pytest.mark.parametrize("name", list(MODELS))
def test_cuda_scores_equal_cpu_scores_and_the_naive_definition(name: str) -> None:
    masker, data, cuda_masker, cuda_data = on_cuda(name)
    with exact_cuda_math():
        for layer in masker.layers:
            cpu = npr.LossDelta(data).score(masker, layer.name)
            cuda = npr.LossDelta(cuda_data).score(cuda_masker, layer.name)
            assert cuda.dtype == torch.float64
            assert torch.allclose(cuda.cpu(), cpu, atol=1e-6, rtol=0), (layer.name, cuda.cpu() - cpu)
            expected = naive_scores(cuda_masker, layer.name, cuda_data)
            assert torch.allclose(cuda.cpu(), expected.cpu(), atol=TOLERANCE, rtol=0), layer.name


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["MLP relu", "CNN BN Flatten", "residual", "untraced"])
def test_cuda_scoring_does_no_per_sample_work_on_the_cpu(name: str) -> None:
    _, _, cuda_masker, cuda_data = on_cuda(name)
    for layer in cuda_masker.layers:
        with CPUWork() as work:
            npr.LossDelta(cuda_data).score(cuda_masker, layer.name)
        assert work.seen == [], (layer.name, sorted(set(work.seen)))


def test_the_cpu_work_recorder_sees_per_sample_work_on_the_cpu() -> None:
    """The recorder the gpu test relies on does see the engine's per-sample CPU work (here, a CPU model)."""
    _, masker, data = build("MLP relu", samples=SAMPLES)
    with CPUWork() as work:
        npr.LossDelta(data).score(masker, masker.layers[0].name)
    assert any("addmm" in op or "linear" in op or "mm" in op for op in work.seen)
