"""Feature extractors for the perceptual loss: ImageNet VGG-19, or a download-free substitute.

The official TPSMM perceptual loss compares VGG-19 features (relu1_1 .. relu5_1) of the
prediction and the driving frame over an image pyramid. VGG-19 weights cannot be downloaded by
this package: pass a local file with `load_vgg19` (torchvision's ``vgg19-*.pth`` layout, a plain
state dict or safetensors with keys ``features.N.weight`` / ``features.N.bias``).

Without such a file, `RandomFeatures` stands in. Why this substitute:

* A perceptual loss needs features that respond to local structure (edges, texture) at several
  receptive-field sizes, so that a blurry or misaligned prediction costs more than a pixel L1
  alone says. Fixed, randomly initialised convolution + ReLU stacks have exactly that
  property; their usefulness as image representations is documented by He, Wang & Hopcroft,
  "A Powerful Generative Model Using Random Weights for the Deep Image Representation"
  (NeurIPS 2016) and Ustyuzhaninov et al., "What does it take to generate natural textures?"
  (ICLR 2017), who synthesise images and textures from random-weight conv features alone.
* It needs no download, is fully determined by a seed (the same on every process and every
  run, so losses of different runs compare), and is cheap: three conv stages of 16/32/64
  channels cost about 0.4 GFLOP per 256x256 image against about 50 GFLOP for VGG-19 up to
  relu5_1, which matters on a CPU.
* Its first "layer" is the image itself, so the loss always contains the plain L1 of the
  pyramid, the part of the official loss that pins colours.

Both extractors take images in [0, 1] and return a list of feature maps; the ImageNet
normalisation happens inside `VGG19Features`, the only place in the project where images are
mean/std normalised.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["VGG19Features", "RandomFeatures", "load_vgg19", "IMAGENET_MEAN", "IMAGENET_STD"]

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# torchvision's vgg19 "E" configuration up to relu5_1 (index 29): ints are conv widths, "M" max pools.
_VGG19_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512)
# Slices of `features` ending at relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 (official Vgg19).
_VGG19_SLICES = ((0, 2), (2, 7), (7, 12), (12, 21), (21, 30))


class VGG19Features(nn.Module):
    """VGG-19 ``features`` (torchvision parameter names) returning relu1_1 .. relu5_1.

    forward(x ``[B, 3, H, W]`` in [0, 1]) -> 5 maps with 64, 128, 256, 512, 512 channels at
    H, H/2, H/4, H/8, H/16. Parameters are frozen (``requires_grad=False``); gradients still flow
    to the input.
    """

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 3
        for item in _VGG19_LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(in_ch, int(item), kernel_size=3, padding=1), nn.ReLU(inplace=False)]
                in_ch = int(item)
        assert len(layers) == _VGG19_SLICES[-1][1]
        self.features = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = (x - self.mean) / self.std
        outs = []
        for start, stop in _VGG19_SLICES:
            for index in range(start, stop):
                h = self.features[index](h)
            outs.append(h)
        return outs


def load_vgg19(path: str | Path) -> VGG19Features:
    """Build `VGG19Features` from an ImageNet VGG-19 weights file.

    ``path``: ``*.safetensors`` or a torch state dict (``*.pth``/``*.pt``, loaded with
    ``weights_only=True``; never arbitrary pickles). Keys ``features.N.weight/bias`` as in
    torchvision's ``vgg19-dcbb9e9d.pth``; ``classifier.*`` keys are ignored, a ``module.`` prefix
    is stripped. A missing conv key (up to conv5_1) or a wrong shape is a ValueError naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"vgg19 weights file {str(path)!r} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises several types for bad or unsafe pickles
            raise ValueError(f"cannot load vgg19 weights {str(path)!r} with weights_only=True: {exc}") from exc
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"vgg19 weights {str(path)!r} must hold a state dict, got {type(state).__name__}")
    model = VGG19Features()
    wanted = model.state_dict()
    picked: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, expected in wanted.items():
        value = state.get(key, state.get(f"module.{key}"))
        if value is None:
            raise ValueError(f"vgg19 weights {str(path)!r} lack key {key!r} (torchvision layout features.N.*)")
        if tuple(value.shape) != tuple(expected.shape):
            raise ValueError(
                f"vgg19 weights {str(path)!r}: {key!r} has shape {tuple(value.shape)}, expected {tuple(expected.shape)}"
            )
        picked[key] = value.to(torch.float32)
    model.load_state_dict(picked, strict=True)
    logger.info("loaded VGG-19 features from %s", path)
    return model.eval()


class RandomFeatures(nn.Module):
    """Fixed random multi-scale conv features, the download-free perceptual substitute.

    forward(x ``[B, 3, H, W]`` in [0, 1]) -> ``[x, f1, f2, f3]``: the image itself, then
    ``relu(conv3x3)`` stages of ``channels`` widths, each after a 2x2 average pool except the first.
    The weights are Kaiming-normal draws from ``torch.Generator().manual_seed(seed)``, stored as
    non-persistent buffers: never trained, never saved, identical on every process.
    """

    def __init__(self, channels: tuple[int, ...] = (16, 32, 64), seed: int = 0) -> None:
        super().__init__()
        if not channels or any(int(c) < 1 for c in channels):
            raise ValueError(f"channels must be positive ints, got {channels!r}")
        generator = torch.Generator().manual_seed(int(seed))
        in_ch = 3
        self.num_stages = len(channels)
        for i, out_ch in enumerate(channels):
            fan_in = in_ch * 9
            weight = torch.randn(int(out_ch), in_ch, 3, 3, generator=generator) * (2.0 / fan_in) ** 0.5
            # Zero-mean filters respond to structure, not to the mean colour (which the L1 term covers).
            weight = weight - weight.mean(dim=(1, 2, 3), keepdim=True)
            self.register_buffer(f"weight{i}", weight, persistent=False)
            in_ch = int(out_ch)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = [x]
        h = x * 2 - 1
        for i in range(self.num_stages):
            if i > 0:
                h = F.avg_pool2d(h, 2)
            h = F.relu(F.conv2d(h, getattr(self, f"weight{i}"), padding=1))
            outs.append(h)
        return outs
