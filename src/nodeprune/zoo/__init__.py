"""Models of the source documents, channels-first, with layer names that read well in tables.

* Charpentier (2020): the ANN, MLP and CNN of chapter 4 and the VGG-16 of chapter 5, with Keras semantics
  (Glorot-uniform kernels, zero biases, ``padding='same'``; Adam with ε = 1e-7 is in
  :func:`nodeprune.training.fit`);
* Zhao (2024): torchvision's VGG-16 with the added classifier head;
* the CIFAR VGG-16-BN of the pruning literature (the performance anchor of the benchmarks);
* Ma: the 64-H-10 sigmoid network and the small CNN;
* Dutta & Mitra: the CNNs with AdaptiveDropout;
* small HuggingFace transformers trained here (``nodeprune[transformers]``): a LLaMA-style decoder LM with
  grouped-query attention on an offline text corpus and a ViT on Fashion-MNIST (:mod:`nodeprune.zoo.transformers`).

Prunable layers are named ``conv1…``/``conv1_1…`` and ``fc1…``; the output layer is ``out``.
"""

from ._common import ACTIVATIONS, VGG16_CHANNELS, keras_init_
from ._trained import LM_CONFIG, LM_RECIPE, VIT_CONFIG, VIT_RECIPE, Trained, cache_folder, trained_llama_lm, trained_vit
from .charpentier import mlp, thesis_ann, thesis_cnn, thesis_mlp
from .dutta import DUTTA_FILTERS, dutta_cnn_cifar, dutta_cnn_mnist
from .ma import ma_cnn, ma_net
from .transformers import (
    TINY_LM,
    TINY_VIT,
    LMConfig,
    Recipe,
    TrainingLog,
    ViTSpec,
    cache_key,
    classifier_accuracy,
    llama_lm,
    lm_perplexity,
    parameter_count,
    train_causal_lm,
    train_classifier,
    vit_classifier,
)
from .vgg import VGG_LAYOUTS, narrow_vgg, thesis_vgg16, vgg16_bn_cifar, zhao_vgg16

__all__ = [
    "ACTIVATIONS",
    "DUTTA_FILTERS",
    "LM_CONFIG",
    "LM_RECIPE",
    "TINY_LM",
    "TINY_VIT",
    "VGG16_CHANNELS",
    "VGG_LAYOUTS",
    "VIT_CONFIG",
    "VIT_RECIPE",
    "LMConfig",
    "Recipe",
    "Trained",
    "TrainingLog",
    "ViTSpec",
    "cache_folder",
    "cache_key",
    "classifier_accuracy",
    "dutta_cnn_cifar",
    "dutta_cnn_mnist",
    "keras_init_",
    "llama_lm",
    "lm_perplexity",
    "ma_cnn",
    "ma_net",
    "mlp",
    "narrow_vgg",
    "parameter_count",
    "thesis_ann",
    "thesis_cnn",
    "thesis_mlp",
    "thesis_vgg16",
    "train_causal_lm",
    "train_classifier",
    "trained_llama_lm",
    "trained_vit",
    "vgg16_bn_cifar",
    "vit_classifier",
    "zhao_vgg16",
]
