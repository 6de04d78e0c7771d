"""Transformer structure: attention heads and MLP hidden units, recognised by module types and attributes.

torch-pruning sees a transformer's query/key/value projections as ordinary layers whose channels are
consumed by the attention product, so masking them zeroes only the value features, and removing them one
by one breaks the reshape into heads; on rotary, grouped-query families (LLaMA, Mistral, Qwen2) building
its dependency groups takes minutes. nodeprune therefore recognises the families directly, without
tracing, and names the nodes a transformer is pruned by (Michel, Levy & Neubig, "Are Sixteen Heads Really
Better than One?", NeurIPS 2019; Voita et al., ACL 2019):

* an attention **head**: its rows of the query, key and value projections (fused or not) and its
  ``head_dim`` input columns of the output projection. Its context vector reaches nothing but those
  columns, so zeroing them at the output projection's input equals removing the head.
* an MLP **neuron**: one row of the up projection (``fc1``, ``intermediate.dense``, ``c_fc``, ``wi``) and
  one column of the down projection; a **gated neuron** (SwiGLU, Shazeer 2020) is one row of both the
  gate and the up projection. An elementwise activation lies between, so zeroing the down projection's
  input column equals removing the unit.

Recognised families: Hugging Face BERT/RoBERTa (``query``/``key``/``value`` + ``output.dense``), the
``q_proj``/``k_proj``/``v_proj``/``o_proj`` families (LLaMA, Mistral, Qwen2, ViT, …; grouped-query attention
through ``num_key_value_groups``), GPT-2 (fused ``c_attn``, ``Conv1D``), T5 (``q``/``k``/``v``/``o``,
relative position bias), timm's ``Attention`` (fused ``qkv``) and their MLPs. Only modules defined by
``transformers`` or ``timm`` are recognised: an unknown module with the same attribute names may compute
something else.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

__all__ = ["HeadBlock", "MlpBlock", "Structure", "is_conv1d", "recognise"]


@dataclass(frozen=True)
class HeadBlock:
    """One attention module: where its heads live.

    ``q``, ``k``, ``v`` name the projections (the same fused module three times for ``fused``, whose rows
    are ``[q heads | k heads | v heads]``); ``out`` the output projection; ``heads`` query heads,
    ``kv_heads`` key/value heads (fewer under grouped-query attention), ``head_dim`` features per head.
    ``bias_table`` names T5's relative position bias (one column per head), shared by the later layers.
    """

    name: str
    family: str
    q: str
    k: str
    v: str
    out: str
    heads: int
    kv_heads: int
    head_dim: int
    fused: bool = False
    bias_table: str | None = None

    @property
    def projections(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.q, self.k, self.v)))


@dataclass(frozen=True)
class MlpBlock:
    """One MLP: ``inputs`` (the up projection, or gate and up) produce the hidden units that ``out`` reads."""

    name: str
    family: str
    inputs: tuple[str, ...]
    out: str
    size: int

    @property
    def gated(self) -> bool:
        return len(self.inputs) == 2


@dataclass(frozen=True)
class Structure:
    """The recognised attention modules and MLPs of a model (empty tuples: not a recognised transformer).

    ``unknown`` names the ``transformers``/``timm`` attention modules of a model none of whose attention
    modules is recognised: torch-pruning is not run on it either (it can take minutes on such families).
    """

    heads: tuple[HeadBlock, ...] = ()
    mlps: tuple[MlpBlock, ...] = ()
    unknown: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.heads)

    def describe(self) -> str:
        families = sorted({block.family for block in self.heads})
        return f"{len(self.heads)} attention modules ({', '.join(families)}), {len(self.mlps)} MLPs"


def is_conv1d(module: nn.Module) -> bool:
    """Whether ``module`` is transformers' ``Conv1D`` (GPT-2): a Linear with a transposed (in, out) weight."""
    return type(module).__name__ == "Conv1D" and _library(module) == "transformers"


def _library(module: nn.Module) -> str:
    return type(module).__module__.split(".")[0]


def _linear(module: object) -> bool:
    return isinstance(module, nn.Linear) or (isinstance(module, nn.Module) and is_conv1d(module))


def width(module: nn.Module) -> int:
    """Output features of a Linear or Conv1D."""
    return int(module.weight.shape[1] if is_conv1d(module) else module.weight.shape[0])  # type: ignore[index]


def _children(module: nn.Module, *names: str) -> bool:
    return all(_linear(getattr(module, name, None)) for name in names)


def _heads(name: str, module: nn.Module, parent: nn.Module | None) -> HeadBlock | None:
    kind = type(module).__name__
    at = f"{name}." if name else ""
    if _children(module, "q_proj", "k_proj", "v_proj", "o_proj") and isinstance(getattr(module, "head_dim", None), int):
        d = int(module.head_dim)  # type: ignore[arg-type]
        heads, kv = width(module.q_proj) // d, width(module.k_proj) // d  # type: ignore[arg-type]
        if heads * d != width(module.q_proj) or kv == 0 or heads % kv:  # type: ignore[arg-type]
            return None
        family = kind.removesuffix("Attention").lower() or "qkvo"
        return HeadBlock(name, family, f"{at}q_proj", f"{at}k_proj", f"{at}v_proj", f"{at}o_proj", heads, kv, d)
    if _children(module, "query", "key", "value") and hasattr(module, "attention_head_size"):
        output = getattr(parent, "output", None) if parent is not None else None
        if output is None or not _children(output, "dense"):
            return None
        d, heads = int(module.attention_head_size), int(module.num_attention_heads)  # type: ignore[arg-type]
        base = name.rsplit(".", 1)[0]
        return HeadBlock(name, "bert", f"{at}query", f"{at}key", f"{at}value", f"{base}.output.dense", heads, heads, d)
    if _children(module, "c_attn", "c_proj") and hasattr(module, "split_size"):
        if getattr(module, "is_cross_attention", False):
            return None
        d, heads = int(module.head_dim), int(module.num_heads)  # type: ignore[arg-type]
        qkv = f"{at}c_attn"
        return HeadBlock(name, "gpt2", qkv, qkv, qkv, f"{at}c_proj", heads, heads, d, fused=True)
    if _children(module, "q", "k", "v", "o") and hasattr(module, "key_value_proj_dim"):
        d, heads = int(module.key_value_proj_dim), int(module.n_heads)  # type: ignore[arg-type]
        table = f"{at}relative_attention_bias" if getattr(module, "has_relative_attention_bias", False) else None
        return HeadBlock(name, "t5", f"{at}q", f"{at}k", f"{at}v", f"{at}o", heads, heads, d, bias_table=table)
    if _children(module, "qkv", "proj") and kind == "Attention" and hasattr(module, "num_heads"):
        if not isinstance(getattr(module, "norm", nn.Identity()), nn.Identity) or getattr(module, "gate", None):
            return None  # a norm over every head's context, or a gate: the heads are not separate
        d, heads = int(module.head_dim), int(module.num_heads)  # type: ignore[arg-type]
        qkv = f"{at}qkv"
        return HeadBlock(name, "timm", qkv, qkv, qkv, f"{at}proj", heads, heads, d, fused=True)
    return None


def _mlp(name: str, module: nn.Module, parent: nn.Module | None) -> MlpBlock | None:
    kind = type(module).__name__
    at = f"{name}." if name else ""
    if kind.endswith("MLP") and _children(module, "gate_proj", "up_proj", "down_proj"):
        inputs = (f"{at}gate_proj", f"{at}up_proj")
        return MlpBlock(name, "gated", inputs, f"{at}down_proj", width(module.gate_proj))  # type: ignore[arg-type]
    if kind == "T5DenseGatedActDense" and _children(module, "wi_0", "wi_1", "wo"):
        return MlpBlock(name, "gated", (f"{at}wi_0", f"{at}wi_1"), f"{at}wo", width(module.wi_0))  # type: ignore[arg-type]
    if kind == "T5DenseActDense" and _children(module, "wi", "wo"):
        return MlpBlock(name, "t5", (f"{at}wi",), f"{at}wo", width(module.wi))  # type: ignore[arg-type]
    if kind.endswith("MLP") and _children(module, "c_fc", "c_proj"):
        return MlpBlock(name, "gpt2", (f"{at}c_fc",), f"{at}c_proj", width(module.c_fc))  # type: ignore[arg-type]
    if (kind.endswith("MLP") or kind == "Mlp") and _children(module, "fc1", "fc2"):
        if not isinstance(getattr(module, "norm", nn.Identity()), nn.Identity):
            return None  # timm's Mlp with a norm over the hidden units: they are not separate
        return MlpBlock(name, "fc", (f"{at}fc1",), f"{at}fc2", width(module.fc1))  # type: ignore[arg-type]
    if kind.endswith("Intermediate") and _children(module, "dense") and parent is not None:
        output = getattr(parent, "output", None)
        if output is not None and _children(output, "dense") and type(output).__name__.endswith("Output"):
            base = name.rsplit(".", 1)[0]
            return MlpBlock(name, "bert", (f"{at}dense",), f"{base}.output.dense", width(module.dense))  # type: ignore[arg-type]
    return None


def recognise(model: nn.Module) -> Structure:
    """The attention modules and MLPs of ``model`` defined by ``transformers`` or ``timm``, in module order."""
    modules = dict(model.named_modules())
    heads: list[HeadBlock] = []
    mlps: list[MlpBlock] = []
    for name, module in modules.items():
        if _library(module) not in ("transformers", "timm"):
            continue
        parent = modules.get(name.rsplit(".", 1)[0] if "." in name else "") if name else None
        block = _heads(name, module, parent)
        if block is not None:
            heads.append(block)
            continue
        mlp = _mlp(name, module, parent)
        if mlp is not None:
            mlps.append(mlp)
    unknown = () if heads else tuple(n for n, m in modules.items() if _attention_like(m))
    return Structure(tuple(heads), tuple(mlps), unknown)


def _attention_like(module: nn.Module) -> bool:
    return "Attention" in type(module).__name__ and _library(module) in ("transformers", "timm")
