"""Tiny transformers with random weights (2 layers, hidden 32-64, eval mode) for the structure tests.

Nothing is downloaded: every model is built from a config. Each builder returns the model and one example
input (``input_ids`` or ``pixel_values``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

T = __import__("pytest").importorskip("transformers")

Builder = Callable[[], tuple[nn.Module, torch.Tensor]]


def _ids(vocab: int = 50) -> torch.Tensor:
    return torch.randint(1, vocab, (2, 7), generator=torch.Generator().manual_seed(3))


def bert() -> tuple[nn.Module, torch.Tensor]:
    config = T.BertConfig(
        vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
        max_position_embeddings=16, num_labels=3,
    )  # fmt: skip
    return T.BertForSequenceClassification(config).eval(), _ids()


def gpt2() -> tuple[nn.Module, torch.Tensor]:
    config = T.GPT2Config(vocab_size=50, n_embd=32, n_layer=2, n_head=4, n_positions=16, bos_token_id=0, eos_token_id=0)
    return T.GPT2LMHeadModel(config).eval(), _ids()


def llama(**extra: int) -> tuple[nn.Module, torch.Tensor]:
    config = T.LlamaConfig(
        vocab_size=50, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=48, max_position_embeddings=32, **extra,
    )  # fmt: skip
    return T.LlamaForCausalLM(config).eval(), _ids()


def llama_classifier() -> tuple[nn.Module, torch.Tensor]:
    config = T.LlamaConfig(
        vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=48, num_labels=3, pad_token_id=0,
    )  # fmt: skip
    return T.LlamaForSequenceClassification(config).eval(), _ids()


def mistral() -> tuple[nn.Module, torch.Tensor]:
    config = T.MistralConfig(
        vocab_size=50, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=48, max_position_embeddings=32,
    )  # fmt: skip
    return T.MistralForCausalLM(config).eval(), _ids()


def qwen2() -> tuple[nn.Module, torch.Tensor]:
    config = T.Qwen2Config(
        vocab_size=50, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=48,
    )  # fmt: skip
    return T.Qwen2ForCausalLM(config).eval(), _ids()


def roberta() -> tuple[nn.Module, torch.Tensor]:
    config = T.RobertaConfig(
        vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
        max_position_embeddings=20, num_labels=3, pad_token_id=1,
    )  # fmt: skip
    return T.RobertaForSequenceClassification(config).eval(), _ids()


def vit() -> tuple[nn.Module, torch.Tensor]:
    config = T.ViTConfig(
        image_size=16, patch_size=8, num_channels=3, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=48, num_labels=5,
    )  # fmt: skip
    return T.ViTForImageClassification(config).eval(), torch.randn(2, 3, 16, 16)


def t5() -> tuple[nn.Module, torch.Tensor]:
    config = T.T5Config(vocab_size=50, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_heads=4)
    return T.T5EncoderModel(config).eval(), _ids()


def timm_vit() -> tuple[nn.Module, torch.Tensor]:
    vision_transformer = __import__("pytest").importorskip("timm.models.vision_transformer")
    model = vision_transformer.VisionTransformer(
        img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=4, num_classes=10
    )
    return model.eval(), torch.randn(2, 3, 32, 32)


ARCHITECTURES: dict[str, Builder] = {
    "bert": bert,
    "gpt2": gpt2,
    "llama": llama,
    "mistral": mistral,
    "qwen2": qwen2,
    "roberta": roberta,
    "vit": vit,
    "t5-encoder": t5,
    "timm-vit": timm_vit,
}
