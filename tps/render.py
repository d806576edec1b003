"""Rendering driving keypoints into frames: prepare a source once, render frames in batches.

The official demo (demo.py) calls the dense motion and inpainting networks once per frame,
redoing for every frame the work that depends on the source alone. `Renderer` splits that work
off: `Renderer.prepare` computes the source keypoints, the inpainting encoder features, the
anti-aliased source at the motion resolution and the source keypoints' Gaussians once;
`Renderer.iter_render` then renders driving keypoints chunk by chunk under
``torch.inference_mode``, with the up-sampling convolutions in their sub-pixel form
(`tps.fast`, 2.25x fewer FLOPs). The flow (dense-motion hourglass) is computed one frame per call
with the official up-convolutions, because it is the one quantity whose rounding shows in the
output; the rest runs ``compute_batch`` frames per call. The frames equal the official
frame-by-frame path (`official_render`) up to float rounding (tests/tps/test_render.py checks
<= 1e-5 in every mode; about 5e-7 measured on ted widths).

Keypoint modes (as the official demo's ``--mode``):
- ``"standard"``: the driving keypoints as they are;
- ``"relative"``: ``kp_source + (kp_driving - kp_initial) * sqrt(area(hull(kp_source)) /
  area(hull(kp_initial)))``, the driving motion since ``kp_initial`` (default: the first
  driving frame) scaled to the source's size (`relative_keypoints`);
- ``"avd"``: the AVD network re-targets the driving pose onto the source identity (only for
  models that have an AVD network).

Output-changing speed options (off by default here; benchmarks/tps_cpu.py reports their error):
``bfloat16`` (autocast of the inpainting network; ``"auto"``: where the hardware has bfloat16
units, the difftted pipeline's default), ``channels_last`` (NHWC activations) and
``backend="onnxruntime"`` (the per-frame networks as ONNX Runtime sessions, `tps.onnx_backend`;
optional packages, imported only when asked for).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from tps.fast import shift_add_conv, subpixel_upsampling
from tps.inpainting import deform_input
from tps.model import TPSMotionModel
from tps.optimize import inference_copy
from tps.parts import PartLayout, apply_part_masks, fill_holes, ghost_mask, part_visibility

__all__ = ["BACKENDS", "MODES", "PreparedSource", "RenderedChunk", "Renderer", "native_bfloat16", "relative_keypoints",
           "official_render"]

logger = logging.getLogger(__name__)

MODES = ("standard", "relative", "avd")
BACKENDS = ("torch", "onnxruntime", "auto")
# Keypoints live in [-1, 1]; relative motion may leave it a little. Values past this bound mean
# the caller passed pixel coordinates or garbage, which the TPS fit would silently accept.
KEYPOINT_LIMIT = 4.0


#: `Renderer._fill_ghosts`: the fill takes a pixel whole from this fraction of ghost on (its soft
#: edge half-decoder would draw a light outline around every moved hand).
GHOST_FILL_GAIN = 3.0


def native_bfloat16(device: torch.device | str) -> bool:
    """True where ``device`` computes bfloat16 in hardware: a CPU with AVX512-BF16 or AMX-BF16
    instructions (`torch.cpu.get_capabilities`), a CUDA device for which
    `torch.cuda.is_bf16_supported` holds; False elsewhere (other CPUs emulate bfloat16, slower
    than float32)."""
    device = torch.device(device)
    if device.type == "cpu":
        try:
            capabilities = torch.cpu.get_capabilities()
        except (AttributeError, RuntimeError):  # older torch: no capability query, so no claim
            return False
        return bool(capabilities.get("avx512_bf16") or capabilities.get("amx_bf16"))
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return False


def _mask_at(mask: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """``mask [B, 1, H, W]`` at ``size``: area-averaged down, bilinear up, as is when equal."""
    if mask.shape[-2:] == size:
        return mask
    if mask.shape[-2] > size[0]:
        return F.adaptive_avg_pool2d(mask, size)
    return F.interpolate(mask, size=size, mode="bilinear", align_corners=False)


@dataclass(frozen=True)
class PreparedSource:
    """Everything about a source image that driving frames do not change (batch 1, no grad).

    Attributes:
        source: ``[1, 3, H, W]`` in [0, 1].
        kp_source: ``[1, K*5, 2]`` (x, y) in [-1, 1].
        encoder_maps: the inpainting encoder's features, fine to coarse
            (``[1, be, H, W]``, ``[1, 2be, H/2, W/2]``, ...).
        source_down: ``[1, 3, h, w]``: the anti-aliased source at the motion resolution.
        source_gaussians: ``[1, K*5, h, w]``: the source keypoints' Gaussians.
        foreground: ``[1, 1|P, H, W]`` in [0, 1], the person in the source (a segmentation; or one
            mask per part, `tps.parts.part_foreground`), or None; used only by a renderer with
            ``parts`` (`tps.parts.apply_part_masks`).
        extent: ``[1, P, H, W]`` in [0, 1], the source pixels each part owns beyond its capsule
            (a held object that reaches past a hand's; `tps.parts.part_extent`), or None.
    """

    source: torch.Tensor
    kp_source: torch.Tensor
    encoder_maps: list[torch.Tensor]
    source_down: torch.Tensor
    source_gaussians: torch.Tensor
    foreground: torch.Tensor | None = None
    extent: torch.Tensor | None = None

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the source and of every rendered frame."""
        return int(self.source.shape[-2]), int(self.source.shape[-1])


@dataclass(frozen=True)
class RenderedChunk:
    """A chunk of rendered frames with the maps that made them (`Renderer.iter_render_maps`).

    Attributes:
        frames: ``[b, 3, H, W]`` in [0, 1], the model's output (what `Renderer.iter_render` yields).
        generated: ``[b, 3, H, W]`` the inpainting decoder's own pixels, before the blend.
        deformation: ``[b, h, w, 2]`` the flow: source (x, y) in [-1, 1] for each output pixel.
        occlusion: ``[b, 1, H, W]`` the finest occlusion map (1 = the warped source is visible).
        ghost: ``[b, 1, H, W]`` or None (a renderer without parts): where a moved part uncovered
            its old place (`tps.parts.ghost_mask`; already in ``occlusion``). Composition that
            divides the occlusion by the rest pose's (`tps.compose.visibility`) must apply it
            again after the division, or the old place shows through.
    """

    frames: torch.Tensor
    generated: torch.Tensor
    deformation: torch.Tensor
    occlusion: torch.Tensor
    ghost: torch.Tensor | None = None


def _hull_area(points: torch.Tensor, name: str) -> float:
    from scipy.spatial import ConvexHull, QhullError

    try:
        area = ConvexHull(points.detach().cpu().double().numpy()).volume  # a 2-D hull's volume is its area
    except QhullError as err:
        raise ValueError(f"{name}: its keypoints span no area (collinear or repeated points)") from err
    if not area > 0:
        raise ValueError(f"{name}: its keypoints' convex hull has zero area")
    return float(area)


def relative_keypoints(
    kp_source: torch.Tensor, kp_driving: torch.Tensor, kp_initial: torch.Tensor
) -> torch.Tensor:
    """The official demo's relative motion transfer.

    ``kp_source + (kp_driving - kp_initial) * sqrt(area(hull(kp_source))) /
    sqrt(area(hull(kp_initial)))``, hull areas by scipy's ``ConvexHull`` over all K*5 points.

    Args:
        kp_source: ``[1, N, 2]``; kp_driving: ``[T, N, 2]``; kp_initial: ``[1, N, 2]``.

    Returns:
        ``[T, N, 2]``.
    """
    scale = np.sqrt(_hull_area(kp_source[0], "kp_source")) / np.sqrt(_hull_area(kp_initial[0], "kp_driving_initial"))
    return (kp_driving - kp_initial) * float(scale) + kp_source


def _as_keypoints(name: str, value: torch.Tensor | np.ndarray, num_kp: int, frames: bool) -> torch.Tensor:
    """``[T, N, 2]`` (``frames``) or ``[1, N, 2]`` float32 tensor, checked."""
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(value).__name__}")
    if not frames and value.dim() == 2:
        value = value[None]
    expected = f"[T, {num_kp}, 2]" if frames else f"[{num_kp}, 2] or [1, {num_kp}, 2]"
    if value.dim() != 3 or tuple(value.shape[1:]) != (num_kp, 2) or (not frames and value.shape[0] != 1):
        raise ValueError(f"{name} must be {expected}, got shape {tuple(value.shape)}")
    if value.shape[0] == 0:
        raise ValueError(f"{name} holds no frame (shape {tuple(value.shape)})")
    if not (value.is_floating_point() or value.dtype in (torch.int32, torch.int64)):
        raise TypeError(f"{name} must hold real numbers, got dtype {value.dtype}")
    value = value.detach().float()
    if not torch.isfinite(value).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    peak = float(value.abs().max())
    if peak > KEYPOINT_LIMIT:
        raise ValueError(
            f"{name} must be normalised (x, y) coordinates in [-1, 1], got a value of magnitude {peak:.4g}"
        )
    return value


class Renderer:
    """Animate prepared sources with driving keypoints, in batches.

    Args:
        model: a `TPSMotionModel` (put in eval mode here; its weights are not changed).
        fast: sub-pixel up-convolutions (`tps.fast.nearest_up_conv`; equal output up to float
            rounding; default on).
        shift_add: with ``fast``, the dense motion's single-output occlusion heads (7x7
            convolutions) as one GEMM and shifted sums (`tps.fast.shift_add_conv`; default on).
            Equal output up to float rounding: 1.5e-7 largest frame difference with the bundled
            weights in float32; 4.2x faster for those heads, which were 37% of the dense
            motion's time at 256 (30 of 81 ms per frame on two AMD EPYC cores).
        compute_batch: frames per network call; None (default): on a CPU one frame for models
            larger than 128x128 and the whole chunk (``batch_size``) for 128x128 and smaller,
            the whole chunk on other devices. On a 2-core CPU one frame per call measured
            fastest at 256 (ted-384 widths: 924 ms/frame against 1318 ms in batches of 4;
            lite-256: 191 against 218 in batches of 8; one frame's activations stay in cache),
            while at 128 the chunk is faster (lite-256 weights: 44 against 50 ms/frame, the
            per-call overhead weighs more on 32x32 maps; the lite-256 figures from an ad-hoc
            script timing `render`, min of 4 interleaved runs), and GPUs want batches.
            benchmarks/tps_cpu.py prints both. The frames are the same either way (0 difference
            measured); chunks are yielded ``batch_size`` frames at a time either way.
        bfloat16: run the inpainting network under bfloat16 autocast (the keypoints and the
            dense motion, whose flow places every pixel, stay float32). ``True``, ``False``
            (default here: the official numerics) or ``"auto"``: on where the device computes
            bfloat16 natively (`native_bfloat16`: a CPU with AVX512-BF16 or AMX-BF16, a CUDA
            device with bfloat16 support), decided per render. It changes the generated
            pixels by float rounding only: the render moved by at most 1.8e-3 with the bundled
            weights (benchmarks/tps_cpu.py's options table; under half a uint8 step, and only
            pixels the source does not show come from the decoder), while an AMD EPYC with
            AVX512-BF16 rendered them 1.16-1.26x faster (214 -> 170 ms/frame,
            benchmarks/pipeline_e2e.py --modes float32 default). CPUs without
            bfloat16 units emulate it and are slower (an Intel Xeon measured 388 against 231
            ms/frame), which is why ``"auto"`` asks the CPU.
        channels_last: NHWC activations (changes the output by float rounding only, but
            oneDNN picks other kernels; off by default, measured by benchmarks/tps_cpu.py).
        backend: ``"torch"`` (default), ``"onnxruntime"`` or ``"auto"``. ``"onnxruntime"``:
            the inpainting decoder (and with ``onnx_motion`` the dense motion's hourglass
            onwards) runs as an ONNX Runtime session on the CPU, exported on first use and
            cached in ``onnx_cache_dir`` (`tps.onnx_backend`); the keypoint work, the flow, the
            warps and `prepare` stay in torch. Needs the ``onnxruntime`` and ``onnx`` packages
            (ImportError naming them and the pip command otherwise); not combinable with
            ``bfloat16`` or ``channels_last``; a model on another device is a ValueError.
            ``"auto"``: onnxruntime where it can run (both packages installed, the model on
            the CPU, neither bfloat16 nor channels_last), torch otherwise, decided per render.
            The decoder's frames equal torch's up to float rounding (<= 1e-5,
            tests/tps/test_onnx_backend.py; 3.6e-7 measured with the bundled weights), 1.1x
            faster per frame on this project's loaded 2-core CPU at one thread; not the default
            (docs/tps.md says why; benchmarks/tps_cpu.py --onnxruntime measures it).
        onnx_motion: with backend ``"onnxruntime"``, run the dense motion there too, in
            batches. Output-changing: onnxruntime's convolutions round the flow differently,
            and the flow amplifies its last bits (one float32 ulp moves edge pixels by ~1e-5;
            see `_dense_motion`) to 5.3e-5 in the frames with the bundled weights; off by default.
        onnx_cache_dir: folder of the exported graphs (backends ``"onnxruntime"`` and
            ``"auto"``); None: a per-user folder under the system temp folder.
        fold_batchnorm: detect source keypoints with a copy of the detector whose batch norms
            are folded into its convolutions (`tps.optimize.inference_copy`; the model keeps its
            norms). Off by default: it saves nothing per frame (the dense motion and inpainting
            networks use instance norms, which cannot be folded; the detector runs once per
            photo), and the keypoints' rounding (2.4e-7) reaches the frames at up to 3.2e-5 with
            the bundled weights, over the 1e-5 bound of the equal-output paths.
        parts: a `tps.PartLayout` for keypoints anchored on body parts: the pixels inside each
            part's capsule take its transform and the pixels a moved part uncovers count as
            occluded (`tps.parts`); None (default): the network's contribution maps alone, as
            the official model. Needs kp_source/kp_driving in the layout's keypoint order.
    """

    def __init__(
        self,
        model: TPSMotionModel,
        *,
        fast: bool = True,
        shift_add: bool = True,
        compute_batch: int | None = None,
        bfloat16: bool | str = False,
        channels_last: bool = False,
        fold_batchnorm: bool = False,
        backend: str = "torch",
        onnx_motion: bool = False,
        onnx_cache_dir: str | None = None,
        parts: PartLayout | None = None,
    ) -> None:
        if not isinstance(model, TPSMotionModel):
            raise TypeError(f"model must be a tps.TPSMotionModel, got {type(model).__name__}")
        if compute_batch is not None and (
            isinstance(compute_batch, bool) or not isinstance(compute_batch, int) or compute_batch < 1
        ):
            raise ValueError(f"compute_batch must be None or an int >= 1, got {compute_batch!r}")
        self.compute_batch = compute_batch
        self.model = model.eval()
        self.fast = bool(fast)
        self.shift_add = bool(shift_add)
        if bfloat16 not in (True, False, "auto"):
            raise ValueError(f"bfloat16 must be True, False or 'auto', got {bfloat16!r}")
        self.bfloat16: bool | str = bfloat16 if bfloat16 == "auto" else bool(bfloat16)
        self.channels_last = bool(channels_last)
        self.fold_batchnorm = bool(fold_batchnorm)
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if onnx_motion and backend != "onnxruntime":
            raise ValueError(f"onnx_motion is only used by backend='onnxruntime', got backend={backend!r}")
        if onnx_cache_dir is not None and backend == "torch":
            raise ValueError("onnx_cache_dir is only used by backend='onnxruntime' or 'auto', got backend='torch'")
        if parts is not None:
            if not isinstance(parts, PartLayout):
                raise TypeError(f"parts must be a tps.PartLayout or None, got {type(parts).__name__}")
            parts.check(model.config.num_tps)
            if backend == "onnxruntime":
                raise ValueError("parts draws into the dense motion's maps and fills its holes in torch: "
                                 "backend must be 'torch' or 'auto' (which then renders in torch)")
        self.parts = parts
        self.backend = backend
        self.onnx_motion = bool(onnx_motion)
        self.onnx_cache_dir = onnx_cache_dir
        self._onnx = None
        if backend == "onnxruntime":
            if self.bfloat16 is True or self.channels_last:
                raise ValueError("backend='onnxruntime' runs float32 NCHW graphs: bfloat16 and channels_last must be off")
            self._onnx_backend()  # fails now, naming the package, when it is not installed

    def _onnx_backend(self):
        if self._onnx is None:
            from tps.onnx_backend import OnnxRuntimeBackend  # optional packages: imported only here

            self._onnx = OnnxRuntimeBackend(self.model, fast=self.fast, cache_dir=self.onnx_cache_dir)
        return self._onnx

    def backend_for(self, device: torch.device) -> str:
        """The backend that renders on ``device``: ``"torch"`` or ``"onnxruntime"`` (resolves ``"auto"``)."""
        if self.backend == "onnxruntime":
            if device.type != "cpu":
                raise ValueError(f"backend='onnxruntime' runs on the CPU; the model is on {device}")
            return "onnxruntime"
        if (self.backend == "auto" and device.type == "cpu" and self.parts is None
                and not (self.bfloat16_for(device) or self.channels_last)):
            from tps.onnx_backend import available

            if available():
                return "onnxruntime"
        return "torch"

    def bfloat16_for(self, device: torch.device) -> bool:
        """Whether renders on ``device`` autocast the inpainting network to bfloat16 (resolves
        ``"auto"`` with `native_bfloat16`; the ONNX Runtime backend always runs float32)."""
        if self.backend == "onnxruntime":
            return False
        return native_bfloat16(device) if self.bfloat16 == "auto" else bool(self.bfloat16)

    def default_compute_batch(self, device: torch.device, batch_size: int) -> int:
        """Frames per network call when ``compute_batch`` is None (see the class docstring)."""
        if device.type == "cpu" and max(self.model.config.image_size) > 128:
            return 1
        return batch_size

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x

    @contextlib.contextmanager
    def _context(self, motion: bool = False) -> Iterator[None]:
        """Inference mode, sub-pixel up-convolutions, and bfloat16 autocast unless ``motion``.

        bfloat16 stays out of keypoints and motion: a flow rounded to 8 bits of mantissa
        misplaces pixels (max error ~0.5 measured); the inpainting tolerates it far better.
        """
        with contextlib.ExitStack() as stack:
            stack.enter_context(torch.inference_mode())
            stack.enter_context(subpixel_upsampling(self.model, self.fast))
            if not motion and self.bfloat16_for(self.device):
                stack.enter_context(torch.autocast(self.device.type, dtype=torch.bfloat16))
            yield

    def prepare(self, source: torch.Tensor, kp_source: torch.Tensor | None = None,
                foreground: torch.Tensor | None = None, extent: torch.Tensor | None = None) -> PreparedSource:
        """Compute everything that depends on the source alone.

        Args:
            source: ``[1, 3, H, W]`` float in [0, 1], H and W multiples of the model's
                ``config.size_multiple``.
            kp_source: optional ``[1, K*5, 2]`` keypoints; detected from ``source`` when None.
                Required for a model trained on given keypoints (``config.keypoint_source ==
                "given"``): its detector was never trained.
            foreground: optional ``[1, 1, H', W']`` (or ``[H', W']``) in [0, 1]: where the person is
                in the source (any size; resized to the source's). With ``parts`` a part then owns
                only the person's pixels inside its capsule (`tps.parts`); ignored without parts.
                ``[1, P, H', W']`` (P: the parts' count) gives each part its own mask.
            extent: optional ``[1, P, H', W']`` in [0, 1] (needs ``parts``; resized to the
                source's size): the source pixels each part owns beyond its capsule, a phone held
                past a hand's (`tps.parts.apply_part_masks`). Zero everywhere is the same as None.
        """
        self.model.check_image("source", source)
        if kp_source is None and self.model.config.keypoint_source == "given":
            raise ValueError("kp_source is required: this renderer was trained on keypoints given from outside "
                             "(config.keypoint_source 'given'), its detector is unused")
        if source.shape[0] != 1:
            raise ValueError(f"source must hold one image [1, 3, H, W], got shape {tuple(source.shape)}")
        dmn = self.model.dense_motion_network
        source = source.detach().float().to(self.device)
        detector = self.model.kp_detector
        if kp_source is None and self.fold_batchnorm:
            detector = inference_copy(detector)
        with self._context(motion=True):
            if kp_source is None:
                kp_source = detector(source)["fg_kp"].float()
            kp_source = _as_keypoints("kp_source", kp_source, self.model.config.num_kp, frames=False).to(self.device)
            source_down = dmn.downsample_source(source)
            h, w = source_down.shape[-2:]
            source_gaussians = dmn.kp_gaussians(kp_source, h, w)
        with self._context():
            encoder_maps = [self._layout(m) for m in self.model.inpainting_network.encode(self._layout(source))]
        if foreground is not None:
            foreground = torch.as_tensor(foreground).detach().float().to(self.device)
            foreground = foreground[None, None] if foreground.dim() == 2 else foreground
            parts = len(self.parts.parts) if self.parts is not None else 1
            if foreground.dim() != 4 or foreground.shape[0] != 1 or foreground.shape[1] not in (1, parts):
                raise ValueError(f"foreground must be [1, 1, H, W] or [H, W] (or [1, {parts}, H, W], one per part, "
                                 f"with parts), got shape {tuple(foreground.shape)}")
            if not bool(torch.isfinite(foreground).all()) or foreground.min() < 0 or foreground.max() > 1:
                raise ValueError("foreground must hold finite values in [0, 1]")
            if foreground.shape[-2:] != source.shape[-2:]:
                foreground = F.interpolate(foreground, size=source.shape[-2:], mode="bilinear", align_corners=False)
        if extent is not None:
            extent = torch.as_tensor(extent).detach().float().to(self.device)
            if self.parts is None:
                raise ValueError("extent needs a renderer with parts (Renderer(..., parts=PartLayout))")
            parts = len(self.parts.parts)
            if extent.dim() != 4 or extent.shape[:2] != (1, parts):
                raise ValueError(f"extent must be [1, {parts}, H, W] (one per part), got shape {tuple(extent.shape)}")
            if not bool(torch.isfinite(extent).all()) or extent.min() < 0 or extent.max() > 1:
                raise ValueError("extent must hold finite values in [0, 1]")
            if extent.shape[-2:] != source.shape[-2:]:
                extent = F.interpolate(extent, size=source.shape[-2:], mode="bilinear", align_corners=False)
        return PreparedSource(source, kp_source, encoder_maps, source_down, source_gaussians, foreground, extent)

    def driving_keypoints(
        self,
        prepared: PreparedSource,
        kp_driving: torch.Tensor | np.ndarray,
        mode: str = "standard",
        kp_driving_initial: torch.Tensor | np.ndarray | None = None,
    ) -> torch.Tensor:
        """``[T, K*5, 2]`` keypoints the networks are driven with in ``mode`` (see module doc)."""
        if not isinstance(prepared, PreparedSource):
            raise TypeError(f"prepared must be a PreparedSource from Renderer.prepare, got {type(prepared).__name__}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        num_kp = self.model.config.num_kp
        kp_driving = _as_keypoints("kp_driving", kp_driving, num_kp, frames=True).to(self.device)
        if kp_driving_initial is not None and mode != "relative":
            raise ValueError(f"kp_driving_initial is only used by mode='relative', got mode={mode!r}")
        if mode == "standard":
            return kp_driving
        if mode == "relative":
            initial = kp_driving[:1] if kp_driving_initial is None else _as_keypoints(
                "kp_driving_initial", kp_driving_initial, num_kp, frames=False
            ).to(self.device)
            return relative_keypoints(prepared.kp_source, kp_driving, initial)
        if self.model.avd_network is None:
            raise ValueError("mode='avd' needs an AVD network, and this model has none (config.avd is None)")
        with self._context(motion=True):
            # One frame per call, as the official demo: the networks after it amplify the last-bit
            # differences of a batched GEMM (~1e-8) to ~1e-5, and the MLP costs nothing.
            return torch.cat([self.model.avd_network(prepared.kp_source, kp[None]) for kp in kp_driving]).float()

    def iter_render(
        self,
        prepared: PreparedSource,
        kp_driving: torch.Tensor | np.ndarray,
        mode: str = "standard",
        kp_driving_initial: torch.Tensor | np.ndarray | None = None,
        batch_size: int = 8,
        progress: bool = True,
    ) -> Iterator[torch.Tensor]:
        """Render ``kp_driving [T, K*5, 2]`` chunk by chunk: yields ``[<=batch_size, 3, H, W]`` in [0, 1].

        ``batch_size`` frames make a chunk (the unit of memory and of the caller's pipeline);
        the networks take ``compute_batch`` of them per call (see `Renderer`).

        The mode's keypoints are computed for the whole clip before the first chunk (relative
        mode scales every frame by the same hull ratio), so chunking never changes a frame.
        """
        chunks = self.iter_render_maps(prepared, kp_driving, mode, kp_driving_initial, batch_size, progress)
        return (chunk.frames for chunk in chunks)

    def iter_render_maps(
        self,
        prepared: PreparedSource,
        kp_driving: torch.Tensor | np.ndarray,
        mode: str = "standard",
        kp_driving_initial: torch.Tensor | np.ndarray | None = None,
        batch_size: int = 8,
        progress: bool = True,
    ) -> Iterator[RenderedChunk]:
        """As `iter_render`, but each chunk carries its flow, occlusion and generated pixels
        (`RenderedChunk`), for composition at another resolution (`tps.compose`)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        keypoints = self.driving_keypoints(prepared, kp_driving, mode, kp_driving_initial)
        return self._render_chunks(prepared, keypoints, batch_size, progress)

    def _motion_inputs(
        self, prepared: PreparedSource, kp_driving: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(heatmap, deformed_source, transformations)``: the dense motion's per-frame inputs."""
        dmn = self.model.dense_motion_network
        h, w = prepared.source_down.shape[-2:]
        heatmap = dmn.heatmaps(kp_driving, prepared.kp_source, h, w, prepared.source_gaussians)
        transformations = dmn.transformations(kp_driving, prepared.kp_source, h, w)
        return heatmap, dmn.deform_source(prepared.source_down, transformations), transformations

    def _dense_motion(self, prepared: PreparedSource, kp_driving: torch.Tensor) -> dict:
        """`DenseMotionNetwork.predict`'s steps for a batch, with the flow computed frame by frame.

        The flow is the sensitive part: one float32 ulp in the hourglass output moves the warp
        by ~1e-7 and output pixels at image edges by ~1e-5. A batched GEMM or a sub-pixel
        up-convolution rounds differently from the official batch-1 path, so the hourglass and
        the contribution-map convolution (~3% of the FLOPs at 384) run per frame with the
        official up-convolutions. Everything else is bitwise equal when batched (checked in
        tests/tps/test_render.py) or only feeds the occlusion masks, which tolerate rounding.
        """
        dmn = self.model.dense_motion_network
        heatmap, deformed, transformations = self._motion_inputs(prepared, kp_driving)
        b, n, c, h, w = deformed.shape
        hourglass_input = torch.cat([heatmap, deformed.reshape(b, n * c, h, w)], dim=1)
        outs, logits = [], []
        with subpixel_upsampling(dmn.hourglass, False):
            for frame in hourglass_input.split(1):
                frame_outs = dmn.hourglass(frame)
                outs.append(frame_outs[-2:])
                logits.append(dmn.maps(frame_outs[-1]))
        finest = self._layout(torch.cat([o[1] for o in outs]))
        contribution_maps = torch.softmax(torch.cat(logits), dim=1)
        if self.parts is not None:  # drawn at the model's resolution: a hand is a few motion pixels wide
            height, width = prepared.source.shape[-2:]
            fine = dmn.transformations(kp_driving, prepared.kp_source, height, width)
            contribution_maps, deformation = apply_part_masks(
                self.parts, contribution_maps, fine, kp_driving, prepared.kp_source, prepared.foreground,
                prepared.extent)
        else:
            deformation = (transformations * contribution_maps.unsqueeze(-1)).sum(dim=1)
        occlusion_map = [
            torch.sigmoid(self._occlusion_head(dmn.occlusion[0], self._layout(torch.cat([o[0] for o in outs])))),
            torch.sigmoid(self._occlusion_head(dmn.occlusion[1], finest)),
        ]
        features = finest
        for i, up in enumerate(dmn.up):
            features = up(features)
            occlusion_map.append(torch.sigmoid(self._occlusion_head(dmn.occlusion[i + 2], features)))
        motion = {"contribution_maps": contribution_maps, "deformation": deformation, "occlusion_map": occlusion_map}
        if self.parts is not None:
            # every occlusion map times 1 - ghost (at the finest map's size, area-averaged to the coarser)
            ghost = ghost_mask(self.parts, deformation, kp_driving, prepared.kp_source,
                               tuple(occlusion_map[-1].shape[-2:]), prepared.foreground, contribution_maps,
                               prepared.extent)
            keep = 1 - ghost
            visible = part_visibility(self.parts, contribution_maps)
            motion["occlusion_map"] = [
                torch.maximum(o, _mask_at(visible, o.shape[-2:])) * _mask_at(keep, o.shape[-2:])
                for o in occlusion_map
            ]
            motion["ghost"] = ghost
            motion["parts_visible"] = visible
        return motion

    def _occlusion_head(self, conv: torch.nn.Conv2d, features: torch.Tensor) -> torch.Tensor:
        """One occlusion head's logits: with ``fast`` and ``shift_add``, single-output heads as a
        GEMM and shifted sums (`tps.fast.shift_add_conv`: oneDNN runs a 1-output 7x7 convolution
        at a tenth of its speed)."""
        if self.fast and self.shift_add and conv.out_channels == 1:
            return self._layout(shift_add_conv(features, conv))
        return conv(features)

    @staticmethod
    def _fill_ghosts(out: dict, ghost: torch.Tensor, parts_visible: torch.Tensor | None = None) -> dict:
        """The decoder's pixels where a moved part uncovered something (``ghost``) replaced by a
        fill from the visible pixels around (`tps.parts.fill_holes`): the decoder was never
        trained on such holes and paints them in bright blotches. The moved parts' own pixels
        (``parts_visible``, `tps.parts.part_visibility`) give the fill no colour: a hole between
        two hands is filled from the clothes around, not from the hands' skin."""
        occlusion = out["occlusion_map"][-1]
        hole = (GHOST_FILL_GAIN * ghost).clamp(max=1.0)  # a ghost's soft edge, too, is no decoder pixel
        exclude = None if parts_visible is None else _mask_at(parts_visible.float(), tuple(hole.shape[-2:]))
        generated = torch.lerp(out["generated"], fill_holes(out["prediction"].float(), hole, exclude)
                               .to(out["generated"].dtype), hole.to(out["generated"].dtype))
        prediction = out["prediction"] + (1 - occlusion) * (generated - out["generated"])
        return {**out, "generated": generated, "prediction": prediction}

    def _render_onnx(self, prepared: PreparedSource, kp_driving: torch.Tensor) -> list[torch.Tensor]:
        """``[prediction, generated, deformation, finest occlusion, ghost or None]`` with the
        decoder (and with ``onnx_motion`` the dense motion) in onnxruntime; the keypoint work and
        the warps in torch (see `tps.onnx_backend`)."""
        inpainting = self.model.inpainting_network
        ghost = None
        if self.onnx_motion:
            with torch.inference_mode():
                deformation, occlusion_map = self._onnx_backend().motion(*self._motion_inputs(prepared, kp_driving))
        else:
            with self._context(motion=True):
                motion = self._dense_motion(prepared, kp_driving)
            deformation, occlusion_map, ghost = motion["deformation"], motion["occlusion_map"], motion.get("ghost")
        with torch.inference_mode():
            warped, _ = inpainting.warp_encoder_maps(prepared.encoder_maps, deformation, occlusion_map)
            deformed = deform_input(prepared.source, deformation)
        generated, prediction = self._onnx_backend().decode(warped, deformed, occlusion_map[-1])
        return [prediction, generated, deformation, occlusion_map[-1], ghost]

    def _render_chunks(
        self, prepared: PreparedSource, keypoints: torch.Tensor, batch_size: int, progress: bool
    ) -> Iterator[RenderedChunk]:
        inpainting = self.model.inpainting_network
        source = self._layout(prepared.source)
        step = self.compute_batch or self.default_compute_batch(source.device, batch_size)
        onnx = self.backend_for(source.device) == "onnxruntime"
        keys = ("prediction", "generated", "deformation")
        with tqdm(total=len(keypoints), desc="rendering", unit="frame", disable=not progress) as bar:
            for start in range(0, len(keypoints), batch_size):
                parts: list[list[torch.Tensor | None]] = [[], [], [], [], []]
                for kp in keypoints[start : start + batch_size].split(step):
                    if onnx:
                        for part, value in zip(parts, self._render_onnx(prepared, kp)):
                            part.append(value)
                        bar.update(len(kp))
                        continue
                    with self._context(motion=True):
                        motion = self._dense_motion(prepared, kp)
                    with self._context():
                        out = inpainting.decode(source, prepared.encoder_maps, motion)
                        if "ghost" in motion:
                            out = self._fill_ghosts(out, motion["ghost"], motion.get("parts_visible"))
                        for part, value in zip(parts, [out[k] for k in keys] + [out["occlusion_map"][-1],
                                                                                motion.get("ghost")]):
                            part.append(None if value is None else value.float().contiguous())
                    bar.update(len(kp))
                yield RenderedChunk(*(None if any(v is None for v in part) else torch.cat(part) for part in parts))

    def render(
        self,
        prepared: PreparedSource,
        kp_driving: torch.Tensor | np.ndarray,
        mode: str = "standard",
        kp_driving_initial: torch.Tensor | np.ndarray | None = None,
        batch_size: int = 8,
        progress: bool = True,
    ) -> torch.Tensor:
        """All frames at once: ``[T, 3, H, W]`` in [0, 1] (see `iter_render` for bounded memory)."""
        chunks = list(self.iter_render(prepared, kp_driving, mode, kp_driving_initial, batch_size, progress))
        return torch.cat(chunks)


def official_render(
    model: TPSMotionModel,
    source: torch.Tensor,
    kp_driving: torch.Tensor,
    mode: str = "standard",
    kp_driving_initial: torch.Tensor | None = None,
    kp_source: torch.Tensor | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """The official demo's frame-by-frame path (demo.py ``make_animation``), the reference.

    Per frame: normalise the keypoints for ``mode``, then ``dense_motion_network(source,
    kp_norm, kp_source, bg_param=None)`` and ``inpainting_network(source, dense_motion)`` under
    ``torch.no_grad``, recomputing everything source-dependent every frame. ``[T, 3, H, W]``.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    model.eval()
    frames = []
    with torch.no_grad():
        if kp_source is None:
            kp_source = model.detect(source)
        kp_initial = kp_driving[:1] if kp_driving_initial is None else kp_driving_initial.view(1, -1, 2)
        for t in tqdm(range(len(kp_driving)), desc="official", unit="frame", disable=not progress):
            kp_d = kp_driving[t : t + 1]
            if mode == "relative":
                kp_norm = relative_keypoints(kp_source, kp_d, kp_initial)
            elif mode == "avd":
                if model.avd_network is None:
                    raise ValueError("mode='avd' needs an AVD network, and this model has none (config.avd is None)")
                kp_norm = model.avd_network(kp_source, kp_d)
            else:
                kp_norm = kp_d
            dense_motion = model.dense_motion_network(source, kp_norm, kp_source, bg_param=None, dropout_flag=False)
            frames.append(model.inpainting_network(source, dense_motion)["prediction"])
    return torch.cat(frames)
