"""Coordinates, Thin-Plate-Spline transforms, and the input checks shared by the networks.

Coordinates are (x, y) in [-1, 1] with align_corners=True semantics: ``x = 2*col/(W-1) - 1``.

A TPS (Zhao & Zhang 2022, eq. 1-3) maps a point p to
``f(p) = A [x, y, 1]^T + sum_i w_i U(|p - c_i|^2)`` with the radial basis
``U(d2) = d2 * ln(d2 + 1e-9)`` (r^2 log r^2 on the squared distance, as the official code).
"""

from __future__ import annotations

import torch

__all__ = [
    "make_coordinate_grid",
    "radial_basis",
    "TPS",
    "validate_image",
    "validate_keypoints",
]

_REGULARISATION = 0.01  # added to the whole 8x8 diagonal of the TPS system, as the official fit
_LOG_EPS = 1e-9


def make_coordinate_grid(
    h: int, w: int, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> torch.Tensor:
    """Grid ``[h, w, 2]`` of (x, y) in [-1, 1]; ``grid[r, c] = (2c/(w-1) - 1, 2r/(h-1) - 1)``."""
    if h < 2 or w < 2:
        raise ValueError(f"make_coordinate_grid needs h, w >= 2, got ({h}, {w})")
    x = torch.arange(w, dtype=dtype, device=device)
    y = torch.arange(h, dtype=dtype, device=device)
    x = 2 * (x / (w - 1)) - 1
    y = 2 * (y / (h - 1)) - 1
    yy = y.view(-1, 1).expand(h, w)
    xx = x.view(1, -1).expand(h, w)
    return torch.stack([xx, yy], dim=-1)


def radial_basis(d2: torch.Tensor) -> torch.Tensor:
    """TPS kernel ``U(d2) = d2 * ln(d2 + 1e-9)`` of squared distances (``U(0) = 0``)."""
    return d2 * torch.log(d2 + _LOG_EPS)


class TPS:
    """A batch of thin-plate-spline transforms mapping driving coordinates to source coordinates.

    Two kinds, built by the class methods:
    - `TPS.fit` ('kp' mode): one TPS per group of 5 keypoints, ``[B, K]`` transforms; the
      control points are the driving keypoints, the targets the source keypoints.
    - `TPS.random` ('random' mode, equivariance loss): one random TPS per batch item on a
      regular grid of control points; its kernel term is one scalar per point, added to both
      x and y (a quirk of the official code, kept for equal numerics).

    Attributes: ``theta`` affine part (``[B, K, 2, 3]`` fit / ``[B, 2, 3]`` random),
    ``control_points`` (``[B, K, 5, 2]`` / ``[1, P, P, 2]``), ``control_params`` kernel weights
    (``[B, K, 5, 2]`` / ``[B, 1, P*P]``).
    """

    def __init__(
        self, mode: str, theta: torch.Tensor, control_points: torch.Tensor, control_params: torch.Tensor
    ) -> None:
        if mode not in ("kp", "random"):
            raise ValueError(f"mode must be 'kp' or 'random', got {mode!r}")
        self.mode = mode
        self.theta = theta
        self.control_points = control_points
        self.control_params = control_params

    @classmethod
    def fit(cls, kp_driving: torch.Tensor, kp_source: torch.Tensor, regularisation: float = _REGULARISATION) -> TPS:
        """Fit ``K`` TPS transforms on 5 point pairs each.

        kp_driving, kp_source: ``[B, K*5, 2]`` or ``[B, K, 5, 2]``, (x, y) in [-1, 1]. Keypoints
        ``5k .. 5k+4`` define transform k. Solves ``(L + 0.01 I) [W; A] = [t; 0]`` in float32
        with an explicit inverse (as the official code, whose numerics this reproduces). The
        regularisation on the whole diagonal (affine block included) makes the fit approximate:
        ``f(c_i) = t_i - regularisation * w_i``; with 0 it interpolates exactly.
        """
        kp_1 = _group_keypoints("kp_driving", kp_driving)
        kp_2 = _group_keypoints("kp_source", kp_source)
        if kp_1.shape != kp_2.shape:
            raise ValueError(f"kp_driving {tuple(kp_driving.shape)} and kp_source {tuple(kp_source.shape)} differ")
        b, k, n, _ = kp_1.shape
        dist = torch.norm(kp_1[:, :, :, None] - kp_1[:, :, None, :], dim=4, p=2)
        kmat = radial_basis(dist**2)  # [B, K, 5, 5]
        ones = torch.ones(b, k, n, 1, dtype=kp_1.dtype, device=kp_1.device)
        p = torch.cat([kp_1, ones], dim=3)  # [B, K, 5, 3]
        zeros = torch.zeros(b, k, 3, 3, dtype=kp_1.dtype, device=kp_1.device)
        top = torch.cat([kmat, p], dim=3)
        bottom = torch.cat([p.transpose(2, 3), zeros], dim=3)
        system = torch.cat([top, bottom], dim=2)  # [B, K, 8, 8]
        eye = torch.eye(n + 3, dtype=kp_1.dtype, device=kp_1.device)
        system = system + regularisation * eye.expand(b, k, n + 3, n + 3)
        targets = torch.cat([kp_2, torch.zeros(b, k, 3, 2, dtype=kp_2.dtype, device=kp_2.device)], dim=2)
        param = torch.matmul(torch.inverse(system), targets)  # [B, K, 8, 2]
        control_params = param[:, :, :n]
        theta = param[:, :, n:].transpose(2, 3)  # rows: x, y; columns: coef of x, coef of y, const
        return cls("kp", theta, kp_1, control_params)

    @classmethod
    def random(
        cls,
        batch_size: int,
        sigma_affine: float = 0.05,
        sigma_tps: float = 0.005,
        points_tps: int = 5,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> TPS:
        """Random TPS for the equivariance loss: ``theta = [I|0] + N(0, sigma_affine^2)``,
        control points on a ``points_tps x points_tps`` grid, kernel weights ``N(0, sigma_tps^2)``.

        Draw order (affine noise then kernel weights, both from ``generator`` or the global CPU
        RNG) matches the official code, so a seed gives the same transform.
        """
        if batch_size < 1 or points_tps < 2:
            raise ValueError(f"need batch_size >= 1 and points_tps >= 2, got {batch_size}, {points_tps}")
        noise = torch.randn(batch_size, 2, 3, generator=generator) * sigma_affine
        theta = noise + torch.eye(2, 3).view(1, 2, 3)
        control_points = make_coordinate_grid(points_tps, points_tps).unsqueeze(0)
        control_params = torch.randn(batch_size, 1, points_tps**2, generator=generator) * sigma_tps
        return cls("random", theta.to(device), control_points.to(device), control_params.to(device))

    def warp_coordinates(self, coordinates: torch.Tensor) -> torch.Tensor:
        """Map driving coordinates to source coordinates.

        coordinates: ``[1 or B, N, 2]`` (x, y). Returns ``[B, K, N, 2]`` ('kp' mode) or
        ``[B, N, 2]`` ('random' mode).
        """
        if coordinates.dim() != 3 or coordinates.shape[-1] != 2:
            raise ValueError(f"coordinates must be [B, N, 2], got {tuple(coordinates.shape)}")
        if self.mode == "kp":
            return self._warp_kp(coordinates)
        return self._warp_random(coordinates)

    def _warp_kp(self, coordinates: torch.Tensor) -> torch.Tensor:
        theta = self.theta.to(coordinates.dtype)  # [B, K, 2, 3]
        coords = coordinates[:, None, :, :]  # [B|1, 1, N, 2]
        affine = torch.matmul(coords, theta[..., :2].transpose(2, 3)) + theta[..., None, :, 2]
        diff = coords[:, :, :, None, :] - self.control_points[:, :, None, :, :].to(coordinates.dtype)
        basis = radial_basis((diff**2).sum(-1))  # [B, K, N, 5]
        return affine + torch.matmul(basis, self.control_params.to(coordinates.dtype))

    def _warp_random(self, coordinates: torch.Tensor) -> torch.Tensor:
        theta = self.theta.to(coordinates.dtype)[:, None]  # [B, 1, 2, 3]
        affine = torch.matmul(theta[..., :2], coordinates.unsqueeze(-1)).squeeze(-1) + theta[..., 2]
        points = self.control_points.to(coordinates.dtype).reshape(1, 1, -1, 2)
        diff = coordinates[:, :, None, :] - points  # [B, N, P*P, 2]
        basis = radial_basis((diff**2).sum(-1))
        kernel = (basis * self.control_params.to(coordinates.dtype)).sum(-1, keepdim=True)  # [B, N, 1]
        return affine + kernel

    def transform_frame(self, height: int, width: int) -> torch.Tensor:
        """Sampling grids of the transforms on an ``height x width`` frame.

        Returns ``[B, K, h, w, 2]`` ('kp') or ``[B, h, w, 2]`` ('random'), (x, y) source coordinates.
        """
        grid = make_coordinate_grid(height, width, dtype=self.theta.dtype, device=self.theta.device)
        warped = self.warp_coordinates(grid.view(1, height * width, 2))
        return warped.view(*warped.shape[:-2], height, width, 2)


def _group_keypoints(name: str, kp: torch.Tensor) -> torch.Tensor:
    if not isinstance(kp, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(kp).__name__}")
    if kp.dim() == 3 and kp.shape[-1] == 2 and kp.shape[1] % 5 == 0:
        return kp.view(kp.shape[0], kp.shape[1] // 5, 5, 2)
    if kp.dim() == 4 and kp.shape[2:] == (5, 2):
        return kp
    raise ValueError(f"{name} must be [B, K*5, 2] or [B, K, 5, 2], got {tuple(kp.shape)}")


def validate_image(name: str, image: torch.Tensor, channels: int | None = None, tol: float = 1e-3) -> None:
    """Raise if ``image`` is not a float ``[B, C, H, W]`` tensor with values in [0, 1].

    The range check is skipped for meta tensors (used to count FLOPs without data).
    """
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(image).__name__}")
    if image.dim() != 4:
        raise ValueError(f"{name} must be [B, C, H, W], got shape {tuple(image.shape)}")
    if channels is not None and image.shape[1] != channels:
        raise ValueError(f"{name} must have {channels} channels, got shape {tuple(image.shape)}")
    if not image.is_floating_point():
        raise TypeError(f"{name} must be a float tensor in [0, 1], got dtype {image.dtype}")
    if image.device.type == "meta" or image.numel() == 0:
        return
    with torch.no_grad():
        lo, hi = torch.aminmax(image.detach())
    lo, hi = float(lo), float(hi)
    if not (lo >= -tol and hi <= 1 + tol):
        raise ValueError(f"{name} values must be in [0, 1], got min {lo:.4g} and max {hi:.4g}")


def validate_keypoints(name: str, kp: torch.Tensor, num_kp: int | None = None) -> torch.Tensor:
    """Accept ``[B, N, 2]`` tensors or official ``{"fg_kp": tensor}`` dicts; return the tensor."""
    if isinstance(kp, dict):
        if "fg_kp" not in kp:
            raise ValueError(f"{name} dict must hold 'fg_kp', got keys {sorted(kp)}")
        kp = kp["fg_kp"]
    if not isinstance(kp, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor [B, N, 2] or {{'fg_kp': tensor}}, got {type(kp).__name__}")
    expected = f"[B, {num_kp}, 2]" if num_kp is not None else "[B, N, 2]"
    if kp.dim() != 3 or kp.shape[-1] != 2 or (num_kp is not None and kp.shape[1] != num_kp):
        raise ValueError(f"{name} must be {expected}, got shape {tuple(kp.shape)}")
    if not kp.is_floating_point():
        raise TypeError(f"{name} must be a float tensor, got dtype {kp.dtype}")
    return kp
