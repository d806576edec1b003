"""Inference-only model transforms: batch-norm folded into the layer before it.

In eval mode a batch norm is an affine map per channel,
``y = (x - mean) / sqrt(var + eps) * gamma + beta``, so after a convolution (or a linear layer)
``W x + b`` it can be folded into that layer: ``W' = W * s`` and ``b' = (b - mean) * s + beta``
with ``s = gamma / sqrt(var + eps)`` per output channel. The folded layer computes the same
function up to float rounding (the folding itself is done in float64), with one pass over the
activations fewer.

Which networks have batch norms: the keypoint detector and background predictor (ResNet-18,
``conv -> bn`` pairs) and the AVD network (``Linear -> BatchNorm1d``). The dense motion and
inpainting networks normalise with *instance* norms, whose statistics are computed per image at
run time and cannot be folded; so folding speeds up `Renderer.prepare` (one detector pass per
photo), not the per-frame render. `inference_copy` never touches the model it is given:
training code keeps its batch norms and their running statistics.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from tps.resnet import BasicBlock, ResNet

__all__ = ["fold_batchnorm", "fold_layer", "inference_copy", "count_batchnorms"]

_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
# (layer, batch norm) attribute pairs of modules whose forward applies the norm right after the
# layer and nowhere else (checked against tps/resnet.py's forward methods).
_NAMED_PAIRS: dict[type, tuple[tuple[str, str], ...]] = {
    BasicBlock: (("conv1", "bn1"), ("conv2", "bn2")),
    ResNet: (("conv1", "bn1"),),
}


def fold_layer(layer: nn.Conv2d | nn.Linear, norm: nn.BatchNorm1d | nn.BatchNorm2d) -> nn.Conv2d | nn.Linear:
    """A new layer computing ``norm(layer(x))`` in eval mode (weights folded in float64).

    Args:
        layer: a ``Conv2d`` (weight ``[C_out, C_in/g, kh, kw]``) or ``Linear`` (``[C_out, C_in]``).
        norm: a batch norm over ``C_out`` features with running statistics.
    """
    if not isinstance(layer, (nn.Conv2d, nn.Linear)):
        raise TypeError(f"layer must be an nn.Conv2d or nn.Linear, got {type(layer).__name__}")
    if not isinstance(norm, _BATCHNORMS):
        raise TypeError(f"norm must be an nn.BatchNorm1d or nn.BatchNorm2d, got {type(norm).__name__}")
    out_features = layer.out_channels if isinstance(layer, nn.Conv2d) else layer.out_features
    if norm.num_features != out_features:
        raise ValueError(f"norm has {norm.num_features} features, the layer {out_features} outputs: {layer} / {norm}")
    if norm.running_mean is None or norm.running_var is None:
        raise ValueError(f"norm {norm} tracks no running statistics: nothing to fold in eval mode")
    weight = layer.weight.detach().double()
    mean, var = norm.running_mean.double(), norm.running_var.double()
    gamma = norm.weight.detach().double() if norm.weight is not None else torch.ones_like(mean)
    beta = norm.bias.detach().double() if norm.bias is not None else torch.zeros_like(mean)
    bias = layer.bias.detach().double() if layer.bias is not None else torch.zeros_like(mean)
    scale = gamma / torch.sqrt(var + norm.eps)
    folded = copy.deepcopy(layer)
    if layer.bias is None:  # the fold needs a bias
        folded.bias = nn.Parameter(torch.empty(out_features, dtype=layer.weight.dtype, device=layer.weight.device))
    with torch.no_grad():
        folded.weight.copy_(weight * scale.view(-1, *([1] * (weight.dim() - 1))))
        folded.bias.copy_((bias - mean) * scale + beta)
    return folded.eval().requires_grad_(False)


def fold_batchnorm(module: nn.Module) -> int:
    """Fold, in place, every batch norm that directly follows a conv/linear layer in ``module``.

    Folded norms become ``nn.Identity``. Pairs are consecutive ``(Conv2d | Linear, BatchNorm)``
    items of an ``nn.Sequential`` and the named pairs of the ResNet blocks. ``module`` must be in
    eval mode (a training-mode batch norm uses batch statistics, which cannot be folded).

    Returns:
        the number of batch norms folded.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be an nn.Module, got {type(module).__name__}")
    if any(m.training for m in module.modules() if isinstance(m, _BATCHNORMS)):
        raise ValueError("fold_batchnorm needs an eval-mode module: call .eval() first (training keeps its norms)")
    folded = 0
    for parent in list(module.modules()):
        for layer_name, norm_name in _NAMED_PAIRS.get(type(parent), ()):
            layer, norm = getattr(parent, layer_name), getattr(parent, norm_name)
            if isinstance(norm, _BATCHNORMS):
                setattr(parent, layer_name, fold_layer(layer, norm))
                setattr(parent, norm_name, nn.Identity())
                folded += 1
        if isinstance(parent, nn.Sequential):
            items = list(parent)
            for i in range(len(items) - 1):
                if isinstance(items[i], (nn.Conv2d, nn.Linear)) and isinstance(items[i + 1], _BATCHNORMS):
                    parent[i] = fold_layer(items[i], items[i + 1])
                    parent[i + 1] = nn.Identity()
                    items[i + 1] = parent[i + 1]
                    folded += 1
    return folded


def inference_copy(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` in eval mode, without gradients, with its batch norms folded.

    ``module`` itself is left as it was (mode, weights, running statistics).
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be an nn.Module, got {type(module).__name__}")
    twin = copy.deepcopy(module).eval().requires_grad_(False)
    fold_batchnorm(twin)
    return twin


def count_batchnorms(module: nn.Module) -> int:
    """Batch norms left in ``module`` (0 after `fold_batchnorm` on the TPS networks)."""
    return sum(isinstance(m, _BATCHNORMS) for m in module.modules())
