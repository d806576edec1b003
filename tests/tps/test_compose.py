"""tps.compose: the model's flow applied to the source at its own resolution."""

from __future__ import annotations

import pytest
import torch

from tps.compose import compose, motion_mask, relative_flow, resize_flow, visibility, warp
from tps.transform import make_coordinate_grid


def edge_image(size: int, column: int) -> torch.Tensor:
    """``[1, 3, size, size]``: black left of ``column``, white from it on (a vertical edge)."""
    image = torch.zeros(1, 3, size, size)
    image[..., column:] = 1.0
    return image


def shifted_flow(low_res: int, shift: float, batch: int = 1) -> torch.Tensor:
    """A flow at ``low_res`` that samples the source ``shift`` (normalised units) to the right."""
    grid = make_coordinate_grid(low_res, low_res)
    grid[..., 0] += shift
    return grid[None].expand(batch, -1, -1, -1).contiguous()


@pytest.mark.parametrize("size", [64, 200, 517])
def test_resized_flow_is_the_same_warp_at_any_size(size):
    # The output at column j samples the source at j + shift * (size - 1) / 2: a 5-pixel shift in
    # the crop's own pixels, from a flow predicted at 16x16.
    pixels = 5
    flow = shifted_flow(16, 2.0 * pixels / (size - 1))
    edge = size // 2
    out = warp(edge_image(size, edge), flow)
    row = out[0, 0, size // 3]
    first_white = int(torch.nonzero(row > 0.5)[0])
    assert first_white == edge - pixels
    assert resize_flow(flow, (size, size)).shape == (1, size, size, 2)


def test_rest_pose_gives_the_source_back_exactly():
    torch.manual_seed(0)
    source = torch.rand(1, 3, 150, 150)
    rest_flow = make_coordinate_grid(32, 32)[None] + 0.01 * torch.randn(1, 32, 32, 2)  # a biased rest
    rest_occlusion = torch.rand(1, 1, 64, 64) * 0.5 + 0.5
    generated = torch.rand(1, 3, 64, 64)
    flow = relative_flow(rest_flow, rest_flow)
    out = compose(source, generated, flow, rest_occlusion, rest_occlusion)
    assert (out - source).abs().max() < 1e-4  # float rounding, far below half a uint8 step (2e-3)
    # Without the rest maps the same input is not the source: the calibration is what makes it exact.
    raw = compose(source, generated, rest_flow, rest_occlusion)
    assert (raw - source).abs().max() > 0.05


def test_occluded_pixels_come_from_the_generated_image():
    source = torch.zeros(1, 3, 128, 128)
    generated = torch.ones(2, 3, 32, 32)
    occlusion = torch.ones(2, 1, 32, 32)
    occlusion[1, :, :, :16] = 0.0  # frame 1: the left half is not visible in the source
    out = compose(source, generated, shifted_flow(8, 0.0, batch=2), occlusion)
    assert out[0].abs().max() < 1e-6
    assert out[1, :, :, :56].min() > 0.999 and out[1, :, :, 72:].max() < 1e-6


def test_visibility_is_relative_to_the_rest_occlusion():
    rest = torch.full((1, 1, 4, 4), 0.8)
    occ = torch.tensor([0.8, 0.4, 0.0, 0.9]).view(1, 1, 2, 2).repeat(1, 1, 2, 2)
    v = visibility(occ, rest)
    assert torch.allclose(v[0, 0, 0, :2], torch.tensor([1.0, 0.5]))
    assert v.min() == 0.0 and v.max() == 1.0
    with pytest.raises(ValueError, match="occlusion must be"):
        visibility(torch.zeros(4, 4))


def test_motion_mask_covers_the_person_where_they_were_and_where_they_move():
    person = torch.zeros(1, 1, 64, 64)
    person[..., 20:40, 10:20] = 1.0
    # Output column x samples source column x - 15: the person (columns 10-20) moves to 25-35.
    flow = shifted_flow(64, -2.0 * 15 / 63)
    mask = motion_mask(person, flow, dilate=0.0, feather=0.0)
    assert mask[0, 0, 30, 15] == 1.0  # where the person was (what they uncover is inpainted there)
    assert mask[0, 0, 30, 30] == 1.0  # where the flow moves them
    assert mask[0, 0, 30, 50] == 0.0 and mask[0, 0, 5, 15] == 0.0  # background stays
    soft = motion_mask(person, flow, dilate=0.05, feather=0.05)
    assert soft[0, 0, 30, 15] == 1.0 and soft[0, 0, 30, 30] == 1.0
    assert soft[0, 0, 30, 36] == 1.0  # grown by 3 px (to column 37); the ramp lies outside that
    assert 0.0 < soft[0, 0, 30, 42] < 1.0  # the feathered ramp
    assert soft[0, 0, 5, 55] == 0.0  # far away: untouched


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="deformation"):
        warp(torch.zeros(1, 3, 8, 8), torch.zeros(1, 8, 8))
    with pytest.raises(ValueError, match="generated"):
        compose(torch.zeros(1, 3, 8, 8), torch.zeros(1, 1, 8, 8), shifted_flow(8, 0.0), torch.ones(1, 1, 8, 8))
    with pytest.raises(ValueError, match="dilate"):
        motion_mask(torch.zeros(1, 1, 8, 8), shifted_flow(8, 0.0), dilate=0.7)
    with pytest.raises(ValueError, match="differ in size"):
        relative_flow(shifted_flow(8, 0.0), shifted_flow(4, 0.0))


def test_bicubic_warp_keeps_detail_that_bilinear_blurs():
    # A quarter pixel of shift: bilinear mixes a pixel with its neighbour 3:1 and halves the
    # contrast of fine detail; bicubic keeps more of it.
    size = 65
    checker = ((torch.arange(size)[:, None] + torch.arange(size)[None]) % 2).float().expand(1, 3, size, size)
    flow = shifted_flow(size, 0.25 * 2.0 / (size - 1))
    bilinear = warp(checker, flow)[..., 8:-8, 8:-8]
    bicubic = warp(checker, flow, mode="bicubic")[..., 8:-8, 8:-8]
    assert abs(float(bilinear.std()) - 0.25) < 0.01
    assert float(bicubic.std()) > 1.2 * float(bilinear.std())


def test_a_ghost_hides_the_source_even_where_the_rest_occlusion_is_low():
    """A moved part's old place (``ghost``) is already in the occlusion map, but dividing by the
    rest pose's occlusion undid it where the network was unsure at rest: the old hand showed
    through. The ghost applies after the division."""
    source = torch.zeros(1, 3, 64, 64)
    generated = torch.ones(1, 3, 32, 32)
    rest = torch.full((1, 1, 32, 32), 0.3)
    ghost = torch.zeros(1, 1, 32, 32)
    ghost[..., 8:16, 8:16] = 1.0
    occlusion = 0.9 * (1 - 0.7 * ghost)  # surer than at rest, times the ghost as the renderer leaves it
    flow = shifted_flow(16, 0.0)
    without = compose(source, generated, flow, occlusion, rest)
    assert without[..., 20:28, 20:28].max() < 0.5  # divided by the rest: mostly the source again
    with_ghost = compose(source, generated, flow, occlusion, rest, ghost=ghost)
    assert with_ghost[..., 20:28, 20:28].min() > 0.999  # the generated (filled) pixels
    assert with_ghost[..., 40:, 40:].max() < 1e-6 and torch.equal(with_ghost[..., 40:, :], without[..., 40:, :])
