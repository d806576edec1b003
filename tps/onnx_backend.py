"""Optional ONNX Runtime backend of `tps.Renderer` (``Renderer(model, backend="onnxruntime")``).

Needs the ``onnxruntime`` and ``onnx`` packages (``pip install onnxruntime onnx "protobuf<5"``;
the protobuf bound keeps mediapipe working); neither is imported until a renderer asks for this
backend, so ``import tps`` works without them.

What runs where, per batch of driving frames:
- torch: the driving keypoints' heatmaps, the TPS fit (its 8x8 inverse has no ONNX operator),
  the dense motion (the same per-frame hourglass as the torch renderer, see
  `Renderer._dense_motion`) and the warps (``grid_sample``: onnxruntime's GridSample measured
  about 6x slower than torch's on these maps, lite-256 at 256x256: ~60 against ~10 ms a frame;
  the warps depend on the flow and the source only, never on the decoder:
  `InpaintingNetwork.warp_encoder_maps`);
- onnxruntime, graph ``decode``: the inpainting decoder (`InpaintingNetwork.decode_warped`);
- with ``onnx_motion``, onnxruntime graph ``motion`` as well: the dense motion's hourglass
  onwards (`DenseMotionNetwork.predict`), in batches. Output-changing: the flow's rounding
  differs from torch's, and the warps amplify it (docs/tps.md).

`Renderer.prepare` (detector, encoder) stays in torch: it runs once per photo.

Both graphs are exported with the legacy TorchScript exporter (``torch.onnx.export(...,
dynamo=False)``, deprecated but present in torch 2.13; the dynamo exporter would also need
``onnxscript``), opset 17, with a dynamic batch axis and fixed spatial sizes. The up-sampling
blocks are exported as the torch renderer runs them: the official nearest-x2 + 3x3 convolution in
the hourglass, the sub-pixel form (`tps.fast`) elsewhere when ``fast``. Exported files are cached
in ``cache_dir`` (default: a per-user folder under the system temp folder), named by a hash of
the network's weights and config, the input sizes, the export options and the torch version, so a
changed model never reuses a stale graph. The graphs hold a snapshot of the weights: build a new
`Renderer` after changing them.

Sessions run on the CPU with ``intra_op_num_threads = torch.get_num_threads()`` (read when a
graph is first loaded).
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import logging
import os
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tps.blocks import UpBlock2d
from tps.fast import subpixel_kernels

__all__ = ["INSTALL_HINT", "OnnxRuntimeBackend", "available", "require_onnxruntime", "weights_digest"]

logger = logging.getLogger(__name__)

INSTALL_HINT = 'pip install onnxruntime onnx "protobuf<5"'
OPSET = 17
# Bump when the exported graphs change for the same weights (part of every cache key).
FORMAT_VERSION = 1


def _require(package: str, purpose: str) -> Any:
    import importlib

    try:
        return importlib.import_module(package)
    except ImportError as err:
        raise ImportError(
            f"{purpose} needs the {package!r} package, which is not installed; install it with: {INSTALL_HINT}",
            name=package,
        ) from err


def require_onnxruntime() -> Any:
    """The ``onnxruntime`` module, or an ImportError that names it and the pip command."""
    return _require("onnxruntime", "Renderer(backend='onnxruntime')")


def available() -> bool:
    """Whether onnxruntime and onnx are installed (looked up, not imported)."""
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx"))


def weights_digest(module: nn.Module) -> str:
    """sha256 over ``module``'s state dict: every entry's name, dtype, shape and bytes."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class _SubpixelUpExport(nn.Module):
    """`UpBlock2d` in its sub-pixel form (`tps.fast.nearest_up_conv`), written with ops the
    exporter maps to plain ONNX: one 2x2 convolution for the four phases, the phases' crops
    stacked and interleaved by reshape/transpose (instead of strided slice assignment, which
    exports to scatters). Shares the block's norm; the phase kernels are computed once."""

    def __init__(self, block: UpBlock2d) -> None:
        super().__init__()
        conv = block.conv
        self.out_channels = conv.out_channels
        self.norm = block.norm
        self.register_buffer("kernels", subpixel_kernels(conv.weight.detach()))
        self.register_buffer("bias", conv.bias.detach().repeat(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        c = self.out_channels
        y = F.conv2d(F.pad(x, (1, 1, 1, 1)), self.kernels, self.bias)
        # phase (a, q) lives in channels [(2a+q)c, (2a+q+1)c) and at offset (a, q)
        phases = [y[:, (2 * a + q) * c : (2 * a + q + 1) * c, a : a + h, q : q + w] for a in (0, 1) for q in (0, 1)]
        out = torch.stack(phases, dim=1).view(b, 2, 2, c, h, w)
        out = out.permute(0, 3, 4, 1, 5, 2).reshape(b, c, 2 * h, 2 * w)  # [b, c, h, a, w, q]
        return F.relu(self.norm(out))


def _with_subpixel(module: nn.Module) -> None:
    """Replace every `UpBlock2d` under ``module`` (in place) by its export form."""
    for name, child in module.named_children():
        if isinstance(child, UpBlock2d):
            setattr(module, name, _SubpixelUpExport(child))
        else:
            _with_subpixel(child)


class _MotionGraph(nn.Module):
    """Hourglass onwards: ``(heatmap, deformed_source, transformations) -> (deformation,
    occlusion_0 (coarse) .. occlusion_n (fine))``."""

    def __init__(self, dense_motion: nn.Module, fast: bool) -> None:
        super().__init__()
        self.dense_motion = copy.deepcopy(dense_motion).eval()
        if fast:  # as Renderer._dense_motion: the hourglass keeps the official up-convolutions
            _with_subpixel(self.dense_motion.up)

    def forward(self, heatmap: torch.Tensor, deformed_source: torch.Tensor, transformations: torch.Tensor):
        out = self.dense_motion.predict(heatmap, deformed_source, transformations)
        return (out["deformation"], *out["occlusion_map"])


class _DecodeGraph(nn.Module):
    """``(deformed, occlusion, warped_0 (coarse) .. warped_n (fine)) -> (generated, prediction)``."""

    def __init__(self, inpainting: nn.Module, fast: bool) -> None:
        super().__init__()
        self.inpainting = copy.deepcopy(inpainting).eval()
        if fast:
            _with_subpixel(self.inpainting.up_blocks)

    def forward(self, deformed: torch.Tensor, occlusion: torch.Tensor, *warped: torch.Tensor):
        return self.inpainting.decode_warped(list(warped), deformed, occlusion)


def default_cache_dir() -> Path:
    """``<system temp>/tps-onnx-<user id>``: exported graphs are a cache, safe to delete."""
    uid = os.getuid() if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    return Path(tempfile.gettempdir()) / f"tps-onnx-{uid}"


class OnnxRuntimeBackend:
    """The per-frame networks of a `TPSMotionModel` as onnxruntime sessions (see module doc).

    Args:
        model: the model; its dense motion and inpainting networks are exported.
        fast: export the sub-pixel up-sampling form (as `Renderer`'s ``fast``).
        cache_dir: where exported graphs are kept; None: `default_cache_dir`.
    """

    def __init__(self, model: nn.Module, fast: bool = True, cache_dir: str | os.PathLike | None = None) -> None:
        self.ort = require_onnxruntime()
        self.model = model
        self.fast = bool(fast)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._digests: dict[str, str] = {}
        self._sessions: dict[tuple, Any] = {}
        self._lock = threading.Lock()

    # ---- per-batch calls ------------------------------------------------------------------
    def motion(
        self, heatmap: torch.Tensor, deformed_source: torch.Tensor, transformations: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """`DenseMotionNetwork.predict` (inference): ``(deformation, occlusion maps coarse to fine)``."""
        inputs = {"heatmap": heatmap, "deformed_source": deformed_source, "transformations": transformations}
        outputs = self._run("motion", inputs)
        return outputs[0], outputs[1:]

    def decode(
        self, warped: list[torch.Tensor], deformed: torch.Tensor, occlusion: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`InpaintingNetwork.decode_warped`: ``(generated, prediction)``."""
        inputs = {"deformed": deformed, "occlusion": occlusion}
        inputs.update({f"warped_{i}": m for i, m in enumerate(warped)})
        generated, prediction = self._run("decode", inputs)
        return generated, prediction

    # ---- sessions -------------------------------------------------------------------------
    def _run(self, graph: str, inputs: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        for name, value in inputs.items():
            if value.device.type != "cpu":
                raise ValueError(f"backend='onnxruntime' runs on the CPU; {name} is on {value.device}")
        shapes = tuple((name, tuple(value.shape[1:])) for name, value in inputs.items())
        session = self.session(graph, shapes)
        feed = {name: np.ascontiguousarray(value.detach().float().numpy()) for name, value in inputs.items()}
        return [torch.from_numpy(out) for out in session.run(None, feed)]

    def session(self, graph: str, shapes: tuple[tuple[str, tuple[int, ...]], ...]) -> Any:
        """The session of ``graph`` for inputs of these per-item shapes, exported if not cached."""
        key = (graph, shapes)
        with self._lock:
            if key not in self._sessions:
                self._sessions[key] = self._load(graph, shapes)
            return self._sessions[key]

    def _network(self, graph: str) -> nn.Module:
        name = "dense_motion_network" if graph == "motion" else "inpainting_network"
        return getattr(self.model, name)

    def _cache_key(self, graph: str, shapes: tuple) -> str:
        if graph not in self._digests:
            self._digests[graph] = weights_digest(self._network(graph))
        description = {
            "format": FORMAT_VERSION,
            "graph": graph,
            "opset": OPSET,
            "torch": torch.__version__,
            "fast": self.fast,
            "shapes": [[name, list(shape)] for name, shape in shapes],
            "config": self.model.config.to_dict(),
            "weights": self._digests[graph],
        }
        return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:32]

    def _load(self, graph: str, shapes: tuple) -> Any:
        path = self.cache_dir / f"{graph}-{self._cache_key(graph, shapes)}.onnx"
        if path.is_file():
            logger.debug("onnxruntime backend: cached %s", path)
            data = path.read_bytes()
        else:
            data = self._export(graph, shapes)
            try:
                self.cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
                with tempfile.NamedTemporaryFile(dir=self.cache_dir, suffix=".tmp", delete=False) as handle:
                    handle.write(data)
                os.replace(handle.name, path)  # atomic: a concurrent reader sees all or nothing
                logger.info("onnxruntime backend: exported %s", path)
            except OSError as err:
                logger.warning("onnxruntime backend: could not cache %s (%s); using it from memory", path, err)
        options = self.ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.execution_mode = self.ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = self.ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return self.ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])

    def _export(self, graph: str, shapes: tuple) -> bytes:
        _require("onnx", "exporting the renderer to ONNX (torch.onnx.export)")
        network = self._network(graph)
        module = _MotionGraph(network, self.fast) if graph == "motion" else _DecodeGraph(network, self.fast)
        module = module.to("cpu").float()
        batch = 2  # not 1, so the tracer cannot mistake the batch axis for a broadcast one
        example = tuple(torch.zeros(batch, *shape) for _, shape in shapes)
        names = [name for name, _ in shapes]
        if graph == "motion":
            outputs = ["deformation"] + [f"occlusion_{i}" for i in range(len(network.occlusion))]
        else:
            outputs = ["generated", "prediction"]
        buffer = io.BytesIO()
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notes
            torch.onnx.export(
                module,
                example,
                buffer,
                input_names=names,
                output_names=outputs,
                dynamic_axes={name: {0: "batch"} for name in names + outputs},
                opset_version=OPSET,
                dynamo=False,
            )
        return buffer.getvalue()
