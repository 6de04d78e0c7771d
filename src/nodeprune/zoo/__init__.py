"""Models of the source documents, channels-first, with layer names that read well in tables.

* Charpentier (2020): the ANN, MLP and CNN of chapter 4 and the VGG-16 of chapter 5, with Keras semantics
  (Glorot-uniform kernels, zero biases, ``padding='same'``; Adam with ε = 1e-7 is in
  :func:`nodeprune.training.fit`);
* Zhao (2024): torchvision's VGG-16 with the added classifier head;
* the CIFAR VGG-16-BN of the pruning literature (the performance anchor of the benchmarks);
* Ma: the 64-H-10 sigmoid network and the small CNN;
* Dutta & Mitra: the CNNs with AdaptiveDropout.

Prunable layers are named ``conv1…``/``conv1_1…`` and ``fc1…``; the output layer is ``out``.
"""

from ._common import ACTIVATIONS, VGG16_CHANNELS, keras_init_
from .charpentier import mlp, thesis_ann, thesis_cnn, thesis_mlp
from .dutta import DUTTA_FILTERS, dutta_cnn_cifar, dutta_cnn_mnist
from .ma import ma_cnn, ma_net
from .vgg import VGG_LAYOUTS, narrow_vgg, thesis_vgg16, vgg16_bn_cifar, zhao_vgg16

__all__ = [
    "ACTIVATIONS",
    "DUTTA_FILTERS",
    "VGG16_CHANNELS",
    "VGG_LAYOUTS",
    "dutta_cnn_cifar",
    "dutta_cnn_mnist",
    "keras_init_",
    "ma_cnn",
    "ma_net",
    "mlp",
    "narrow_vgg",
    "thesis_ann",
    "thesis_cnn",
    "thesis_mlp",
    "thesis_vgg16",
    "vgg16_bn_cifar",
    "zhao_vgg16",
]
