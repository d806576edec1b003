"""Coordinate grid and TPS math (no data needed)."""

from __future__ import annotations

import math

import pytest
import torch

from tps.transform import TPS, make_coordinate_grid, radial_basis, validate_image, validate_keypoints


def _keypoints(batch: int, num_tps: int, seed: int, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, num_tps * 5, 2, generator=g, dtype=dtype) * 1.6 - 0.8)


def test_grid_is_xy_with_align_corners_semantics() -> None:
    grid = make_coordinate_grid(3, 5)
    assert grid.shape == (3, 5, 2)
    assert grid[0, 0].tolist() == [-1.0, -1.0]
    assert grid[0, 4].tolist() == [1.0, -1.0]  # last column: x = 1
    assert grid[2, 0].tolist() == [-1.0, 1.0]  # last row: y = 1
    assert grid[1, 1].tolist() == [-0.5, 0.0]


def test_radial_basis_is_r2_log_r2() -> None:
    d2 = torch.tensor([0.0, 0.25, 1.0, 4.0], dtype=torch.float64)
    expected = torch.tensor([0.0, 0.25 * math.log(0.25), 0.0, 4 * math.log(4.0)], dtype=torch.float64)
    torch.testing.assert_close(radial_basis(d2), expected, atol=1e-7, rtol=0)  # the 1e-9 inside the log


def test_fit_without_regularisation_passes_through_control_points() -> None:
    kp_driving, kp_source = _keypoints(2, 3, 0), _keypoints(2, 3, 1)
    tps = TPS.fit(kp_driving, kp_source, regularisation=0.0)
    warped = tps.warp_coordinates(kp_driving.view(2, 15, 2))  # [B, K, 15, 2]
    for k in range(3):
        torch.testing.assert_close(warped[:, k, 5 * k : 5 * k + 5], kp_source[:, 5 * k : 5 * k + 5], atol=1e-9, rtol=0)


def test_official_regularised_fit_misses_control_points_by_exactly_its_term() -> None:
    # (Kmat + 0.01 I) w + P a = t  =>  f(c_i) = t_i - 0.01 w_i: the official fit is a smoothing spline
    kp_driving, kp_source = _keypoints(1, 4, 2), _keypoints(1, 4, 3)
    tps = TPS.fit(kp_driving, kp_source)
    warped = tps.warp_coordinates(kp_driving)
    for k in range(4):
        expected = kp_source.view(1, 4, 5, 2)[:, k] - 0.01 * tps.control_params[:, k]
        torch.testing.assert_close(warped[:, k, 5 * k : 5 * k + 5], expected, atol=1e-9, rtol=0)
    assert (warped[:, 0, :5] - kp_source[:, :5]).abs().max() > 1e-6  # the miss is real, not zero


def test_equal_keypoints_without_regularisation_give_the_identity_everywhere() -> None:
    kp = _keypoints(2, 2, 4)
    grid = make_coordinate_grid(9, 13, dtype=torch.float64).view(1, -1, 2)
    warped = TPS.fit(kp, kp, regularisation=0.0).warp_coordinates(grid)
    torch.testing.assert_close(warped, grid[:, None].expand_as(warped), atol=1e-9, rtol=0)


def test_fit_accepts_grouped_and_flat_keypoints_and_checks_shapes() -> None:
    kp_d, kp_s = _keypoints(1, 2, 5, torch.float32), _keypoints(1, 2, 6, torch.float32)
    a = TPS.fit(kp_d, kp_s)
    b = TPS.fit(kp_d.view(1, 2, 5, 2), kp_s.view(1, 2, 5, 2))
    torch.testing.assert_close(a.theta, b.theta, atol=0, rtol=0)
    assert a.theta.shape == (1, 2, 2, 3) and a.control_params.shape == (1, 2, 5, 2)
    with pytest.raises(ValueError, match=r"kp_driving must be \[B, K\*5, 2\].*\(1, 7, 2\)"):
        TPS.fit(torch.zeros(1, 7, 2), torch.zeros(1, 7, 2))
    with pytest.raises(ValueError, match="differ"):
        TPS.fit(kp_d, kp_s[:, :5])


def test_transform_frame_is_the_warped_grid_on_non_square_frames() -> None:
    tps = TPS.fit(_keypoints(1, 3, 7, torch.float32), _keypoints(1, 3, 8, torch.float32))
    frame = tps.transform_frame(6, 10)
    assert frame.shape == (1, 3, 6, 10, 2)
    direct = tps.warp_coordinates(make_coordinate_grid(6, 10).view(1, 60, 2))
    torch.testing.assert_close(frame.view(1, 3, 60, 2), direct, atol=0, rtol=0)


def test_random_tps_is_seeded_and_adds_one_kernel_term_to_both_axes() -> None:
    a = TPS.random(3, generator=torch.Generator().manual_seed(11))
    b = TPS.random(3, generator=torch.Generator().manual_seed(11))
    torch.testing.assert_close(a.theta, b.theta, atol=0, rtol=0)
    assert a.theta.shape == (3, 2, 3) and a.control_params.shape == (3, 1, 25)
    coords = make_coordinate_grid(7, 7).view(1, 49, 2)
    warped = a.warp_coordinates(coords)
    affine = torch.einsum("bij,nj->bni", a.theta[:, :, :2], coords[0]) + a.theta[:, None, :, 2]
    kernel = warped - affine
    torch.testing.assert_close(kernel[..., 0], kernel[..., 1], atol=1e-6, rtol=0)
    assert kernel.abs().max() > 0
    assert a.transform_frame(8, 12).shape == (3, 8, 12, 2)


def test_validate_image_names_argument_and_bad_value() -> None:
    with pytest.raises(ValueError, match=r"source values must be in \[0, 1\].*max 255"):
        validate_image("source", torch.full((1, 3, 8, 8), 255.0), 3)
    with pytest.raises(ValueError, match=r"driving must have 3 channels.*\(1, 4, 8, 8\)"):
        validate_image("driving", torch.zeros(1, 4, 8, 8), 3)
    with pytest.raises(ValueError, match=r"image must be \[B, C, H, W\].*\(3, 8, 8\)"):
        validate_image("image", torch.zeros(3, 8, 8))
    with pytest.raises(TypeError, match="image must be a float tensor"):
        validate_image("image", torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"kp must be \[B, 50, 2\].*\(1, 49, 2\)"):
        validate_keypoints("kp", torch.zeros(1, 49, 2), 50)
    kp = torch.zeros(2, 50, 2)
    assert validate_keypoints("kp", {"fg_kp": kp}, 50) is kp
