"""A fused CPU pass for the commonest suffix: a Linear first site, then ReLUs and Linears, then class cross-entropy.

On an MLP the engine's torch passes are bound by per-element work, not arithmetic: the rank-one gather, each
ReLU, each small matrix product and the loss over a handful of classes is one memory pass over a (pairs ×
width) tensor. For a suffix that is nothing but a chain of ``nn.ReLU`` / ``F.relu`` and ``nn.Linear`` ending
in class logits scored with the default cross-entropy, ``chain_kernel.c`` (next to this module) takes four
samples of one node at a time through the whole pass in a few cache-resident buffers: the rank-one update
``y − x_j · W[:, j]``, the chain, ``loss = (m − z_y) + log Σ_c exp(z_c − m)`` and the first arg-max, and sums
each node's changes over its active samples in sample order (the same sums with any number of threads). Its
threads are ``torch.get_num_threads()`` OpenMP threads (torch's own pool where torch loaded the same runtime)
or, without OpenMP, POSIX threads. Its arithmetic is the same (float32
values, float64 per-sample sums), in another order, and exponentials within 2 ulp of float32's; losses and
hits of the baseline are computed by the same code, so a removal's change is the difference of two values
computed alike (scores equal the naive loop within 1e-7 in the tests).

The chain is recognised only where it is exactly what the model computes: every module of the suffix a plain
``nn.Linear``/``nn.ReLU``/``nn.Identity``/evaluation-mode ``nn.Dropout``, no hooks other than this masker's
(whose masks are folded into the weights: zeroing an input feature is zeroing its weight column), no merged
nodes on the chain, float32 on the CPU, integer class targets. Anything else runs the torch passes as before.

The kernel is plain C compiled at first use with the machine's C compiler (``$CC``, else ``cc``) into
nodeprune's cache (``$XDG_CACHE_HOME/nodeprune/kernels``), keyed by its source, compiler and CPU. Without a
compiler, or with ``NODEPRUNE_FUSED=0`` in the environment, the engine runs its torch passes (same scores up
to rounding, several times slower on MLPs).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import logging
import os
import platform
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import fx, nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from .._masking.inputs import HOOK_MARK, foreign_hooks
from ..datasets._lookup import cache
from ..masker import Masker
from .plan import Baseline, LayerPlan
from .sites import linear_like

__all__ = ["Chain", "available", "build", "enabled"]

log = logging.getLogger("nodeprune")

SOURCE = Path(__file__).with_name("chain_kernel.c")
FLAGS = ("-O3", "-fPIC", "-shared", "-pthread", "-std=gnu99")
RELU = -1
CHUNK = 64
"""Nodes per call of the kernel (the progress bar's step)."""
_ENABLED = [os.environ.get("NODEPRUNE_FUSED", "1") != "0"]
_LIBRARY: list[Any] = []  # [] not tried yet; [None] failed; [lib]


class _Chain(ctypes.Structure):
    _fields_ = [
        ("table", ctypes.c_void_p),
        ("n_rows", ctypes.c_int64),
        ("width0", ctypes.c_int64),
        ("columns", ctypes.c_void_p),
        ("n_ops", ctypes.c_int32),
        ("ops", ctypes.c_void_p),
        ("in_dims", ctypes.c_void_p),
        ("out_dims", ctypes.c_void_p),
        ("weights", ctypes.c_void_p),
        ("biases", ctypes.c_void_p),
        ("max_width", ctypes.c_int64),
        ("classes", ctypes.c_int64),
        ("targets", ctypes.c_void_p),
        ("base_losses", ctypes.c_void_p),
        ("base_hits", ctypes.c_void_p),
    ]


@contextlib.contextmanager
def enabled(flag: bool) -> Iterator[None]:
    """Within the block, use the fused pass (``True``, where it applies) or always the torch passes."""
    previous = _ENABLED[0]
    _ENABLED[0] = flag
    try:
        yield
    finally:
        _ENABLED[0] = previous


def _cpu_key() -> str:
    """What ``-march=native`` compiled for: the CPU's model and feature flags (Linux), else the platform."""
    text = platform.machine() + platform.processor()
    with contextlib.suppress(OSError):
        info = Path("/proc/cpuinfo").read_text(errors="replace")
        wanted = [line for line in info.splitlines() if line.startswith(("model name", "flags", "Features"))]
        text += "\n".join(sorted(set(wanted)))
    return text


def _compile(compiler: str, target: Path) -> bool:
    # OpenMP where the compiler has it (torch's own threads), -march=native where the compiler and CPU take it
    for extra in (("-fopenmp", "-march=native"), ("-march=native",), ("-fopenmp",), ()):
        with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
            built = Path(scratch) / target.name
            command = [*shlex.split(compiler), *FLAGS, *extra, str(SOURCE), "-o", str(built), "-lm"]
            try:
                done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
            except (OSError, subprocess.SubprocessError) as error:
                log.info("nodeprune: compiling the fused ablation kernel failed (%s); using torch passes", error)
                return False
            if done.returncode == 0:
                os.replace(built, target)  # atomic: ranks compiling at once each install a whole file
                return True
            log.debug("nodeprune: %s failed: %s", " ".join(command), done.stderr[-2000:])
    log.info("nodeprune: the C compiler %s could not build the fused ablation kernel; using torch passes", compiler)
    return False


def _load() -> Any:
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        log.info("nodeprune: no C compiler for the fused ablation kernel; using torch passes")
        return None
    try:
        version = subprocess.run(
            [*shlex.split(compiler), "--version"], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError, ValueError):
        log.info("nodeprune: the C compiler %r does not run; using torch passes", compiler)
        return None
    try:
        source = SOURCE.read_text()
    except OSError as error:  # an installation without the package data
        log.info("nodeprune: the fused ablation kernel's source is missing (%s); using torch passes", error)
        return None
    key = hashlib.sha256("\0".join([source, compiler, version, " ".join(FLAGS), _cpu_key()]).encode()).hexdigest()[:20]
    folder = cache() / "kernels"
    target = folder / f"chain-{key}.so"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not target.exists() and not _compile(compiler, target):
            return None
        library = ctypes.CDLL(str(target))
    except OSError as error:
        log.info("nodeprune: the fused ablation kernel could not be loaded (%s); using torch passes", error)
        return None
    pointer = ctypes.c_void_p
    rows, nodes = library.nodeprune_chain_rows, library.nodeprune_chain_nodes
    rows.argtypes = [ctypes.POINTER(_Chain), pointer, ctypes.c_int64, pointer, pointer, ctypes.c_int32]
    nodes.argtypes = [ctypes.POINTER(_Chain), pointer, ctypes.c_int64, pointer, ctypes.c_int64]
    nodes.argtypes += [pointer, pointer, pointer, ctypes.c_int32]
    rows.restype = nodes.restype = ctypes.c_int
    return library


def available() -> bool:
    """Whether the fused kernel is enabled and compiled (compiles it on the first call)."""
    if not _ENABLED[0]:
        return False
    if not _LIBRARY:
        _LIBRARY.append(_load())
    return _LIBRARY[0] is not None


_RELU_FUNCTIONS = (F.relu, torch.relu, torch.relu_, F.relu_)


def _hooks_are_the_maskers(masker: Masker, name: str, module: nn.Module) -> bool:
    """Whether the only hooks on ``module`` are ``masker``'s: its consumer pre-hook, its output-mask hook."""
    state = masker._state
    built = state._hooks.get(name)
    for hook in module._forward_pre_hooks.values():
        if built is None or hook is not built[1]:
            return False
    owners = {layer.module for layer in state.unconsumed}
    for hook in module._forward_hooks.values():
        if not getattr(hook, HOOK_MARK, False) or module not in owners:
            return False
    if module._backward_hooks or module._forward_pre_hooks_with_kwargs or module._forward_hooks_with_kwargs:
        return False
    own = module.__dict__.get("forward")  # a forward set on the instance: only this masker's inline mask
    return own is None or own is state._inlined.get(name)


def _plain_linear(masker: Masker, name: str, module: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """The Linear's weight transposed (in, out) and bias with the masker's masks folded in; None if not plain."""
    if type(module) is not nn.Linear or not _hooks_are_the_maskers(masker, name, module):
        return None
    weight = module.weight.detach()
    bias = None if module.bias is None else module.bias.detach()
    if weight.dtype != torch.float32 or weight.device.type != "cpu":
        return None
    if not bool(torch.isfinite(weight).all()) or (bias is not None and not bool(torch.isfinite(bias).all())):
        return None  # the kernel skips zero inputs: 0 · inf must not arise
    state = masker._state
    if name in state.consumer_slices:
        if state.input_substitution(name) is not None:
            return None  # merges on the chain: not folded
        mask = state.input_mask(name)
        if mask is not None:
            weight = weight * mask.to(weight.dtype)
    for layer in state.unconsumed:
        if layer.module is module:
            out_mask = state.output_mask(layer)
            if out_mask is not None:
                weight = weight * out_mask.to(weight.dtype).unsqueeze(1)
                bias = None if bias is None else bias * out_mask.to(bias.dtype)
    return weight.t().contiguous(), None if bias is None else bias.contiguous()


def _chain_ops(masker: Masker, plan: LayerPlan) -> list[int | tuple[torch.Tensor, torch.Tensor | None]] | None:
    """The suffix as ReLU / Linear steps, or None when it is anything else."""
    assert plan.split is not None
    graph: fx.Graph = plan.split.suffix.graph
    nodes = list(graph.nodes)
    placeholders = [n for n in nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        return None
    current = placeholders[0]
    steps: list[int | tuple[torch.Tensor, torch.Tensor | None]] = []
    for node in nodes:
        if node.op == "placeholder":
            continue
        if node.op == "output":
            return steps if node.args == (current,) else None
        if not node.args or node.args[0] is not current or len(node.args) != 1:
            return None
        if node.op == "call_module":
            module = plan.split.suffix.get_submodule(str(node.target))
            if node.kwargs:
                return None
            if type(module) in (nn.ReLU, nn.Identity, nn.Dropout):
                if module._forward_pre_hooks or module._forward_hooks or "forward" in module.__dict__:
                    return None
                if type(module) is nn.Dropout and module.training and module.p > 0:
                    return None
                if type(module) is nn.ReLU:
                    steps.append(RELU)
            else:
                linear = _plain_linear(masker, str(node.target), module)
                if linear is None:
                    return None
                steps.append(linear)
        elif node.op == "call_function" and node.target in _RELU_FUNCTIONS:
            if set(node.kwargs) - {"inplace"}:
                return None
            steps.append(RELU)
        elif node.op == "call_method" and node.target in ("relu", "relu_") and not node.kwargs:
            steps.append(RELU)
        else:
            return None
        current = node
    return None


def _padded(width: int) -> int:
    return (width + 15) // 16 * 16


@dataclass(frozen=True)
class Chain:
    """The fused pass for one baseline: the chain's folded weights, the kernel's own baseline losses and hits.

    ``struct`` points into the tensors held here (``tensors``), which are never changed (a Baseline is
    immutable); ``losses`` and ``hits`` are the kernel's per-sample values of the model as masked, the reference of
    every change it sums.
    """

    tensors: tuple[torch.Tensor, ...]
    pointers: tuple[Any, ...]
    struct: _Chain
    single: torch.Tensor
    rows: int
    losses: torch.Tensor
    hits: torch.Tensor

    def fill(
        self,
        candidates: torch.Tensor,
        live: torch.Tensor,
        base: Baseline,
        delta: torch.Tensor,
        hits: torch.Tensor,
        progress: bool,
    ) -> bool:
        """Write each candidate's loss-change sum and hit change into ``delta`` and ``hits`` at the positions where
        ``live`` is True, in chunks of :data:`CHUNK` nodes (the progress bar's step); False when the kernel could
        not run (memory, threads), and then the engine runs its torch passes."""
        if not candidates.numel():
            return True
        position = torch.nonzero(live).reshape(-1)
        with tqdm(
            total=int(candidates.numel()),
            desc="LossDelta (fused)",
            unit="node",
            leave=False,
            disable=True if not progress else None,
        ) as bar:
            for start in range(0, candidates.numel(), CHUNK):
                chunk = candidates[start : start + CHUNK]
                done = self.node_sums(chunk, base.active)
                if done is None:
                    return False
                delta[position[start : start + CHUNK]] = done[0]
                hits[position[start : start + CHUNK]] = done[1]
                bar.update(int(chunk.numel()))
        return True

    def node_sums(
        self, nodes: torch.Tensor, active: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """Per node: the float64 sum of loss changes and the int64 hit change over its active rows, the rows.

        ``active`` is the baseline's (rows, size) activity; None if the kernel could not run (memory, threads).
        """
        nodes = nodes.to(torch.int64)
        features = self.single.index_select(0, nodes).contiguous()
        columns = active.t().index_select(0, nodes).contiguous()  # each node's rows contiguous: read in order
        count = int(nodes.shape[0])
        sums = torch.empty(count, dtype=torch.float64)
        hits = torch.empty(count, dtype=torch.int64)
        rows = torch.empty(count, dtype=torch.int64)
        status = _LIBRARY[0].nodeprune_chain_nodes(
            ctypes.byref(self.struct),
            features.data_ptr(),
            count,
            columns.data_ptr(),
            int(columns.shape[1]),
            sums.data_ptr(),
            hits.data_ptr(),
            rows.data_ptr(),
            torch.get_num_threads(),
        )
        return None if status else (sums, hits, rows)


def _row_values(struct: _Chain, rows: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    indices = torch.arange(rows, dtype=torch.int64)
    losses = torch.empty(rows, dtype=torch.float64)
    hits = torch.empty(rows, dtype=torch.int64)
    status = _LIBRARY[0].nodeprune_chain_rows(
        ctypes.byref(struct), indices.data_ptr(), rows, losses.data_ptr(), hits.data_ptr(), torch.get_num_threads()
    )
    return None if status else (losses, hits)


def build(masker: Masker, plan: LayerPlan, base: Baseline, loss_fn: Any, choice: Any) -> Chain | None:
    """The fused pass for ``plan`` and ``base`` when it applies (see the module docstring), else None."""
    if not _ENABLED[0] or loss_fn is not None or choice is not None or plan.split is None:
        return None
    if plan.later or plan.cut or len(plan.sites) != 1 or plan.single is None or not linear_like(plan.first.module):
        return None
    if base.stacked is None or base.columns is None or base.stacked.dtype != torch.float32:
        return None
    if base.stacked.device.type != "cpu" or base.losses is None or base.correct is None or base.offsets:
        return None
    targets = plan.targets
    if targets.dim() != 1 or targets.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        return None
    if foreign_hooks(None) or not available():
        return None
    steps = _chain_ops(masker, plan)
    if steps is None:
        return None
    width = int(base.stacked.shape[1])
    widths = [_padded(width)]
    ops: list[int] = []
    weights: list[torch.Tensor] = []
    biases: list[torch.Tensor | None] = []
    for step in steps:
        if isinstance(step, int):
            ops.append(step)
            continue
        weight, bias = step
        if int(weight.shape[0]) != width:
            return None
        ops.append(len(weights))
        width = int(weight.shape[1])
        padded = weight.new_zeros(widths[-1], _padded(width))  # zero rows and columns: the kernel's blocks of 16
        padded[: weight.shape[0], :width] = weight
        weights.append(padded)
        biases.append(None if bias is None else torch.cat([bias, bias.new_zeros(_padded(width) - width)]))
        widths.append(_padded(width))
    targets = targets.to(torch.int64).contiguous()
    if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= width):
        return None
    if not (base.stacked.is_contiguous() and base.columns.is_contiguous()):
        return None
    if base.active.dtype != torch.bool or base.active.device.type != "cpu" or base.active.stride(1) != 1:
        return None
    weight_pointers = (ctypes.c_void_p * max(1, len(weights)))(*[w.data_ptr() for w in weights])
    bias_pointers = (ctypes.c_void_p * max(1, len(biases)))(*[None if b is None else b.data_ptr() for b in biases])
    ops_t = torch.tensor(ops or [0], dtype=torch.int32)
    in_dims = torch.tensor([int(w.shape[0]) for w in weights] or [0], dtype=torch.int64)
    out_dims = torch.tensor([int(w.shape[1]) for w in weights] or [0], dtype=torch.int64)
    struct = _Chain(
        table=base.stacked.data_ptr(),
        n_rows=plan.rows,
        width0=int(base.stacked.shape[1]),
        columns=base.columns.data_ptr(),
        n_ops=len(ops),
        ops=ops_t.data_ptr(),
        in_dims=in_dims.data_ptr(),
        out_dims=out_dims.data_ptr(),
        weights=ctypes.cast(weight_pointers, ctypes.c_void_p),
        biases=ctypes.cast(bias_pointers, ctypes.c_void_p),
        max_width=max(widths),
        classes=width,
        targets=targets.data_ptr(),
    )
    values = _row_values(struct, plan.rows)
    if values is None:
        return None
    losses, hits = values
    struct.base_losses, struct.base_hits = losses.data_ptr(), hits.data_ptr()
    kept = (base.stacked, base.columns, targets, ops_t, in_dims, out_dims, losses, hits, *weights)
    kept += tuple(b for b in biases if b is not None)
    return Chain(
        tensors=kept,
        pointers=(weight_pointers, bias_pointers),
        struct=struct,
        single=plan.single.to(torch.int64).cpu(),
        rows=plan.rows,
        losses=losses,
        hits=hits,
    )
