"""tps.parts: capsules drawn into the contribution maps, ghosts of moved parts occluded."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tps.model import TPSMotionModel
from tps.parts import (Part, PartLayout, apply_part_masks, capsule_masks, fill_holes, ghost_mask, ghost_weight,
                       part_shift, part_visibility, similarity_frame)
from tps.render import Renderer
from tps.transform import make_coordinate_grid

# A 2-transform layout on 10 keypoints: transform 0 = "torso" (keypoints 0-4, the unit is the
# distance of keypoints 0 and 1), transform 1 = "hand" with a capsule along keypoints 5 -> 6.
TORSO = torch.tensor([[-0.5, -0.2], [0.5, -0.2], [0.0, 0.3], [-0.3, 0.6], [0.3, 0.6]])
HAND = torch.tensor([[-0.6, 0.2], [-0.6, 0.5], [-0.75, 0.35], [-0.45, 0.35], [-0.6, 0.65]])
LAYOUT = PartLayout((Part(1, ((5, 6, 0.0, 1.0),), radius=0.15),), unit=(0, 1), feather=0.5)


def keypoints(hand_shift: tuple[float, float] = (0.0, 0.0)) -> torch.Tensor:
    return torch.cat([TORSO, HAND + torch.tensor(hand_shift)])[None]


def transformations(kp_driving: torch.Tensor, kp_source: torch.Tensor, size: int) -> torch.Tensor:
    from tps.dense_motion import DenseMotionNetwork

    dmn = DenseMotionNetwork(8, 2, 16, num_tps=2)
    return dmn.transformations(kp_driving, kp_source, size, size)


def at(image: torch.Tensor, x: float, y: float) -> torch.Tensor:
    """Value of ``image [..., H, W]`` at the grid point nearest (x, y) in [-1, 1]."""
    h, w = image.shape[-2:]
    return image[..., round((y + 1) / 2 * (h - 1)), round((x + 1) / 2 * (w - 1))]


def test_capsule_is_one_on_its_axis_and_zero_far_away() -> None:
    kp = keypoints()
    grid = make_coordinate_grid(65, 65)[None]
    mask = capsule_masks(LAYOUT, kp, LAYOUT.unit_length(kp), grid)[0, 0]
    assert at(mask, -0.6, 0.35) == 1.0  # on the axis (unit 1.0, radius 0.15)
    assert at(mask, -0.6 + 0.1, 0.35) == 1.0  # inside the solid part (radius * 0.75)
    assert at(mask, 0.5, 0.35) == 0.0
    assert 0.0 < at(mask, -0.6 + 0.156, 0.35) < 1.0  # the feathered edge


def test_a_part_may_have_its_own_soft_edge() -> None:
    """`Part.feather` overrides the layout's: with 1.5 the mask is whole only within a quarter of
    the radius and reaches to 1.75 radii, where the layout's 0.5 ends at 1.25; bad values named."""
    kp = keypoints()
    grid = make_coordinate_grid(129, 129)[None]
    soft = PartLayout((Part(1, ((5, 6, 0.0, 1.0),), radius=0.15, feather=1.5),), unit=(0, 1), feather=0.5)
    hard = capsule_masks(LAYOUT, kp, LAYOUT.unit_length(kp), grid)[0, 0]
    wide = capsule_masks(soft, kp, soft.unit_length(kp), grid)[0, 0]
    for r, expected_hard, expected_wide in ((0.02, 1.0, 1.0), (0.1, 1.0, None), (0.2, None, None), (0.25, 0.0, None),
                                           (0.27, 0.0, 0.0)):
        h, w = float(at(hard, -0.6 + r, 0.35)), float(at(wide, -0.6 + r, 0.35))
        if expected_hard is not None:
            assert h == expected_hard, (r, h)
        if expected_wide is not None:
            assert w == expected_wide, (r, w)
    assert 0 < float(at(wide, -0.6 + 0.1, 0.35)) < 1 and 0 < float(at(wide, -0.6 + 0.25, 0.35)) < 1
    with pytest.raises(ValueError, match="feather"):
        Part(1, ((5, 6, 0.0, 1.0),), radius=0.15, feather=0.0)


def test_a_moved_hand_carries_its_pixels_and_its_old_place_is_occluded() -> None:
    source, shift = keypoints(), (0.25, -0.1)
    driving = keypoints(shift)
    net = torch.zeros(1, 3, 16, 16)
    net[:, 1] = 1.0  # the "network" gives everything to the torso transform (identity here)
    grids = transformations(driving, source, 64)
    maps, flow = apply_part_masks(LAYOUT, net, grids, driving, source)
    assert maps.shape == (1, 3, 64, 64)
    torch.testing.assert_close(maps.sum(1), torch.ones(1, 64, 64))
    # inside the driving hand the pixel samples the source hand: p - shift (the hand's TPS is a translation)
    x, y = -0.6 + shift[0], 0.35 + shift[1]
    displacement = at((flow - make_coordinate_grid(64, 64)).permute(0, 3, 1, 2), x, y)[0]
    torch.testing.assert_close(displacement, -torch.tensor(shift), atol=1e-5, rtol=0)
    # where the hand was, the torso's identity samples the old hand: a ghost, occluded
    ghost = ghost_mask(LAYOUT, flow, driving, source, (64, 64))[0, 0]
    assert at(ghost, -0.6, 0.35) > 0.9
    assert at(ghost, 0.5, -0.5) == 0.0  # far from both
    assert at(ghost, x, y) == 0.0  # the hand at its new place is no ghost


def test_a_part_with_ghost_shift_leaves_a_ghost_only_as_far_as_it_moved() -> None:
    """The hand's radius is 0.15 (the unit, keypoints 0 -> 1, is 1.0): moved by 0.3 radii it leaves
    no ghost with ghost_shift (0.4, 0.8) though it does without; moved by 0.6 radii its old place
    at half weight (the smoothstep's middle); by 1.8 radii the whole ghost, as without."""
    sliding = PartLayout((Part(1, ((5, 6, 0.0, 1.0),), radius=0.15, ghost_shift=(0.4, 0.8)),), unit=(0, 1),
                         feather=0.5)
    net = torch.zeros(1, 3, 16, 16)
    net[:, 1] = 1.0
    source = keypoints()
    ghosts = {}
    for radii in (0.3, 0.6, 1.8):
        driving = keypoints((0.15 * radii, 0.0))
        torch.testing.assert_close(part_shift(sliding, driving, source), torch.tensor([[radii]]), atol=1e-5, rtol=0)
        grids = transformations(driving, source, 64)
        for name, layout in (("plain", LAYOUT), ("sliding", sliding)):
            _, flow = apply_part_masks(layout, net, grids, driving, source)
            ghosts[name, radii] = ghost_mask(layout, flow, driving, source, (64, 64))[0, 0]
    assert float(ghosts["plain", 0.3].max()) > 0.3  # the soft edge of a sliver
    assert float(ghosts["sliding", 0.3].max()) == 0.0
    # half the old place's weight (less where the moved hand's own capsule covers some of it)
    assert bool((ghosts["sliding", 0.6] <= 0.5 * ghosts["plain", 0.6] + 1e-6).all())
    assert float(ghosts["sliding", 0.6].max()) > 0.4 * float(ghosts["plain", 0.6].max())
    torch.testing.assert_close(ghosts["sliding", 1.8], ghosts["plain", 1.8], atol=1e-6, rtol=0)
    assert float(at(ghosts["sliding", 1.8], -0.6, 0.35)) > 0.9
    torch.testing.assert_close(ghost_weight(LAYOUT, keypoints((0.01, 0.0)), source), torch.ones(1, 1))


def test_with_a_foreground_a_part_carries_only_the_person_and_leaves_no_background_ghost() -> None:
    """The source's person mask: the hand capsule's left half is background (sofa), its right half
    person. Moved, the hand's transform owns only the person's pixels; the sofa inside the capsule
    stays with the network (the identity here) and is no ghost where it was."""
    source, shift = keypoints(), (0.25, -0.1)
    driving = keypoints(shift)
    net = torch.zeros(1, 3, 16, 16)
    net[:, 1] = 1.0
    grids = transformations(driving, source, 64)
    foreground = (make_coordinate_grid(64, 64)[None, None, ..., 0] > -0.6).float()  # [1, 1, 64, 64]: x > -0.6
    maps, flow = apply_part_masks(LAYOUT, net, grids, driving, source, foreground)
    plain, _ = apply_part_masks(LAYOUT, net, grids, driving, source)
    torch.testing.assert_close(maps.sum(1), torch.ones(1, 64, 64))
    person_x, sofa_x = -0.6 + 0.08 + shift[0], -0.6 - 0.08 + shift[0]  # where each half of the hand went
    y = 0.35 + shift[1]
    assert at(maps[:, 2], person_x, y) == 1.0 and at(plain[:, 2], person_x, y) == 1.0
    assert at(maps[:, 2], sofa_x, y) == 0.0 and at(plain[:, 2], sofa_x, y) == 1.0
    ghost = ghost_mask(LAYOUT, flow, driving, source, (64, 64), foreground)[0, 0]
    ghost_plain = ghost_mask(LAYOUT, flow, driving, source, (64, 64))[0, 0]
    assert at(ghost, -0.6 + 0.08, 0.35 + 0.2) > 0.9  # the person's old place: still a ghost
    assert at(ghost, -0.6 - 0.08, 0.35 + 0.2) == 0.0 and at(ghost_plain, -0.6 - 0.08, 0.35 + 0.2) > 0.9


def test_a_capsule_pixel_the_part_did_not_take_can_be_a_ghost() -> None:
    """With the person mask a driving capsule's pixel may stay with the network (its part's source
    there is sofa); if the network's identity then shows the hand's old (person) pixels, it is a
    ghost: judged on the weights the parts took (``maps``), not on the capsules."""
    source, shift = keypoints(), (0.1, 0.0)
    driving = keypoints(shift)
    net = torch.zeros(1, 3, 16, 16)
    net[:, 1] = 1.0
    foreground = (make_coordinate_grid(64, 64)[None, None, ..., 0] > -0.6).float()
    maps, flow = apply_part_masks(LAYOUT, net, transformations(driving, source, 64), driving, source, foreground)
    x, y = -0.55, 0.35  # in the driving capsule; its hand source (x - 0.1) is sofa, so not taken
    assert at(maps[:, 2], x, y) == 0.0
    taken = ghost_mask(LAYOUT, flow, driving, source, (64, 64), foreground, maps)[0, 0]
    capsules = ghost_mask(LAYOUT, flow, driving, source, (64, 64), foreground)[0, 0]
    assert at(taken, x, y) > 0.9 and at(capsules, x, y) == 0.0


def test_each_part_may_have_its_own_foreground() -> None:
    """``[1, P, H, W]``: part p owns only channel p's pixels. The same mask in every channel is
    the one-channel foreground exactly; a part given an empty channel takes nothing and the
    other parts keep what they took; a channel count that is neither 1 nor P is named."""
    layout = PartLayout((Part(0, ((2, 3, 0.0, 1.0),), radius=0.15), Part(1, ((5, 6, 0.0, 1.0),), radius=0.15)),
                        unit=(0, 1), feather=0.5)
    source, driving = keypoints(), keypoints((0.25, -0.1))
    net = torch.zeros(1, 3, 16, 16)
    net[:, 0] = 1.0
    grids = transformations(driving, source, 64)
    person = (make_coordinate_grid(64, 64)[None, None, ..., 0] > -0.6).float()
    one_maps, one_flow = apply_part_masks(layout, net, grids, driving, source, person)
    two_maps, two_flow = apply_part_masks(layout, net, grids, driving, source, person.repeat(1, 2, 1, 1))
    torch.testing.assert_close(two_maps, one_maps)
    torch.testing.assert_close(ghost_mask(layout, two_flow, driving, source, (64, 64), person.repeat(1, 2, 1, 1)),
                               ghost_mask(layout, one_flow, driving, source, (64, 64), person))
    own = torch.cat([torch.zeros_like(person), person], dim=1)  # the torso part owns nothing
    own_maps, _ = apply_part_masks(layout, net, grids, driving, source, own)
    assert one_maps[:, 1].max() > 0.9 and own_maps[:, 1].max() == 0.0
    torch.testing.assert_close(own_maps[:, 2], one_maps[:, 2])  # the hand, on top, is unchanged
    torch.testing.assert_close(own_maps.sum(1), torch.ones(1, 64, 64))
    with pytest.raises(ValueError, match=r"foreground must be .*one per part"):
        apply_part_masks(layout, net, grids, driving, source, person.repeat(1, 3, 1, 1))


def test_a_part_owns_its_extent_beyond_its_capsule_and_leaves_a_ghost_there() -> None:
    """A held phone reaching past the hand's capsule: a patch marked in the hand's extent moves
    with the hand and its old place is a ghost; without the extent the patch stays (not taken)
    and is no ghost. An extent of zeros is no extent; a channel count other than P is named."""
    source, shift = keypoints(), (0.25, -0.1)
    driving = keypoints(shift)
    net = torch.zeros(1, 3, 16, 16)
    net[:, 1] = 1.0
    grids = transformations(driving, source, 64)
    grid = make_coordinate_grid(64, 64)
    # past the capsule's end (y 0.5 + radius 0.15 + half the feather 0.0375 < 0.72)
    patch = ((grid[..., 0] - -0.6).abs() < 0.06) & (grid[..., 1] > 0.72) & (grid[..., 1] < 0.84)
    extent = patch.float()[None, None]  # [1, P=1, 64, 64]
    assert capsule_masks(LAYOUT, source, LAYOUT.unit_length(source), grid[None])[0, 0][patch].max() == 0.0
    maps, flow = apply_part_masks(LAYOUT, net, grids, driving, source, extent=extent)
    plain, plain_flow = apply_part_masks(LAYOUT, net, grids, driving, source)
    torch.testing.assert_close(maps.sum(1), torch.ones(1, 64, 64))
    x, y = -0.6 + shift[0], 0.78 + shift[1]  # where the patch went
    assert at(maps[:, 2], x, y) > 0.99 and at(plain[:, 2], x, y) == 0.0
    displacement = at((flow - grid[None]).permute(0, 3, 1, 2), x, y)[0]
    torch.testing.assert_close(displacement, -torch.tensor(shift), atol=1e-5, rtol=0)
    ghost = ghost_mask(LAYOUT, flow, driving, source, (64, 64), maps=maps, extent=extent)[0, 0]
    ghost_plain = ghost_mask(LAYOUT, plain_flow, driving, source, (64, 64), maps=plain)[0, 0]
    assert at(ghost, -0.6, 0.78) > 0.9 and at(ghost_plain, -0.6, 0.78) == 0.0
    assert at(ghost, x, y) == 0.0  # the patch at its new place is no ghost
    zero, _ = apply_part_masks(LAYOUT, net, grids, driving, source, extent=torch.zeros_like(extent))
    torch.testing.assert_close(zero, plain)
    with pytest.raises(ValueError, match=r"extent must be .*one per part"):
        apply_part_masks(LAYOUT, net, grids, driving, source, extent=extent.repeat(1, 2, 1, 1))


def test_renderer_prepare_checks_and_resizes_the_extent(model: TPSMotionModel) -> None:
    source = torch.rand(1, 3, 64, 64)
    kp = model.detect(source).detach()
    renderer = Renderer(model, parts=PartLayout((Part(6, ((30, 31, 0.0, 1.0),), radius=0.2),), unit=(0, 1)))
    assert renderer.prepare(source, kp, extent=torch.zeros(1, 1, 32, 32)).extent.shape == (1, 1, 64, 64)
    assert renderer.prepare(source, kp).extent is None
    for bad, message in ((torch.zeros(1, 2, 8, 8), r"extent must be \[1, 1, H, W\]"),
                         (torch.full((1, 1, 8, 8), -1.0), r"\[0, 1\]")):
        with pytest.raises(ValueError, match=message):
            renderer.prepare(source, kp, extent=bad)
    with pytest.raises(ValueError, match="extent needs a renderer with parts"):
        Renderer(model).prepare(source, kp, extent=torch.zeros(1, 1, 8, 8))


def test_renderer_prepare_checks_and_resizes_the_foreground(model: TPSMotionModel) -> None:
    source = torch.rand(1, 3, 64, 64)
    kp = model.detect(source).detach()
    renderer = Renderer(model, parts=PartLayout((Part(6, ((30, 31, 0.0, 1.0),), radius=0.2),), unit=(0, 1)))
    prepared = renderer.prepare(source, kp, foreground=torch.ones(32, 32))
    assert prepared.foreground.shape == (1, 1, 64, 64)
    assert renderer.prepare(source, kp).foreground is None
    assert renderer.prepare(source, kp, foreground=torch.ones(1, 1, 32, 32)).foreground.shape == (1, 1, 64, 64)
    with pytest.raises(ValueError, match=r"\[1, 1, H, W\]"):  # one part: one channel or one per part (also 1)
        renderer.prepare(source, kp, foreground=torch.ones(1, 2, 8, 8))
    for bad, message in ((torch.ones(2, 1, 8, 8), "foreground must be"), (torch.full((8, 8), 2.0), r"\[0, 1\]")):
        with pytest.raises(ValueError, match=message):
            renderer.prepare(source, kp, foreground=bad)


def test_rendered_chunks_carry_the_ghost_with_parts_only(model: TPSMotionModel) -> None:
    source = torch.rand(1, 3, 64, 64)
    kp = model.detect(source).detach()
    moved = kp.clone()
    moved[:, 30:35] += 0.3
    parted = Renderer(model, parts=PartLayout((Part(6, ((30, 31, 0.0, 1.0),), radius=0.2),), unit=(0, 1)))
    chunk = next(parted.iter_render_maps(parted.prepare(source, kp), moved, progress=False))
    assert chunk.ghost is not None and chunk.ghost.shape == chunk.occlusion.shape and chunk.ghost.max() > 0.5
    plain = Renderer(model)
    assert next(plain.iter_render_maps(plain.prepare(source, kp), moved, progress=False)).ghost is None


def test_similarity_frame_is_the_least_squares_similarity() -> None:
    """Checked against numpy's least squares on s = [[a, -b], [b, a]] d + t, for points that are
    no exact similarity of each other; equal points give the identity."""
    import numpy as np

    gen = torch.Generator().manual_seed(0)
    src = torch.rand(1, 2, 5, 2, generator=gen) - 0.5
    drv = src.flip(-1) * 0.8 + 0.05 * torch.rand(1, 2, 5, 2, generator=gen)
    got = similarity_frame(drv, src, 7, 9)
    grid = make_coordinate_grid(7, 9).numpy()
    for p in range(2):
        d, t = drv[0, p].double().numpy(), src[0, p].double().numpy()
        rows = np.concatenate([np.stack([d[:, 0], -d[:, 1], np.ones(5), np.zeros(5)], 1),
                               np.stack([d[:, 1], d[:, 0], np.zeros(5), np.ones(5)], 1)])
        a, b, tx, ty = np.linalg.lstsq(rows, np.concatenate([t[:, 0], t[:, 1]]), rcond=None)[0]
        expect = np.stack([a * grid[..., 0] - b * grid[..., 1] + tx, b * grid[..., 0] + a * grid[..., 1] + ty], -1)
        np.testing.assert_allclose(got[0, p].numpy(), expect, atol=1e-5)
    torch.testing.assert_close(similarity_frame(src, src, 7, 9)[0, 0], make_coordinate_grid(7, 9), atol=1e-6, rtol=0)


def test_a_rigid_part_moves_by_the_similarity_of_its_points_not_their_tps() -> None:
    """One hand point pulled off a rigid copy: the TPS bends through it, the rigid part does not."""
    source = keypoints()
    driving = keypoints((0.2, 0.0))
    driving[0, 9] += torch.tensor([0.0, 0.15])  # the fifth hand point pulled down alone
    net = torch.zeros(1, 3, 16, 16)
    net[:, 1] = 1.0
    rigid = PartLayout((Part(1, ((5, 6, 0.0, 1.0),), radius=0.15, rigid=True),), unit=(0, 1))
    grids = transformations(driving, source, 64)
    _, flow_rigid = apply_part_masks(rigid, net, grids, driving, source)
    _, flow_tps = apply_part_masks(LAYOUT, net, grids, driving, source)
    expect = similarity_frame(driving[:, None, 5:10], source[:, None, 5:10], 64, 64)[0, 0]
    x, y = -0.6 + 0.2, 0.35  # inside the driving hand's capsule
    probe = lambda flow: at(flow.permute(0, 3, 1, 2), x, y)[0]  # noqa: E731
    torch.testing.assert_close(probe(flow_rigid), at(expect.permute(2, 0, 1), x, y), atol=1e-5, rtol=0)
    assert (probe(flow_tps) - probe(flow_rigid)).abs().max() > 0.01  # the TPS does bend


def test_part_visibility_is_the_occluding_parts_weight() -> None:
    maps = torch.zeros(1, 3, 8, 8)
    maps[:, 0] = 1.0
    maps[:, 0, 2:4, 2:4], maps[:, 2, 2:4, 2:4] = 0.25, 0.75  # the hand (transform 1) takes 0.75 there
    vis = part_visibility(LAYOUT, maps)
    assert vis.shape == (1, 1, 8, 8) and vis[0, 0, 3, 3] == 0.75 and vis[0, 0, 6, 6] == 0.0
    inner = PartLayout((Part(1, ((5, 6, 0.0, 1.0),), radius=0.15, occludes=False),), unit=(0, 1))
    assert part_visibility(inner, maps).max() == 0.0  # a part that deforms in place claims nothing


def test_at_the_source_pose_a_part_stays_still_and_leaves_no_ghost() -> None:
    """The official TPS fit is regularised (not the identity at rest); the parts' refit is exact."""
    kp = keypoints()
    grids = transformations(kp, kp, 32)
    assert (grids[:, 2] - make_coordinate_grid(32, 32)).abs().max() > 1e-3  # the official hand fit
    background = F.one_hot(torch.zeros(1, 16, 16, dtype=torch.long), 3).permute(0, 3, 1, 2).float()
    _, flow = apply_part_masks(LAYOUT, background, grids, kp, kp)
    torch.testing.assert_close(flow, make_coordinate_grid(32, 32)[None], atol=1e-5, rtol=0)
    assert ghost_mask(LAYOUT, flow, kp, kp, (32, 32)).max() < 1e-4


def test_a_part_sampling_off_the_image_is_occluded() -> None:
    source = keypoints((0.0, 0.6))  # the hand reaching below the frame in the photo (wrist in view)
    driving = keypoints((0.0, 0.0))  # raised into view
    net = F.one_hot(torch.ones(1, 16, 16, dtype=torch.long), 3).permute(0, 3, 1, 2).float()
    grids = transformations(driving, source, 64)
    _, flow = apply_part_masks(LAYOUT, net, grids, driving, source)
    ghost = ghost_mask(LAYOUT, flow, driving, source, (64, 64))[0, 0]
    assert at(ghost, -0.6, 0.45) == 1.0  # samples y = 1.05: off the source image


def test_a_part_the_photo_does_not_show_stays_with_the_network() -> None:
    source = keypoints((0.0, 1.2))  # the whole hand below the frame
    driving = keypoints((0.0, 0.0))
    net = torch.full((1, 3, 16, 16), 1 / 3)
    maps, _ = apply_part_masks(LAYOUT, net, transformations(driving, source, 32), driving, source)
    torch.testing.assert_close(maps[:, 2], torch.zeros(1, 32, 32))  # the hand's channel: nothing
    torch.testing.assert_close(maps[:, 0], torch.full((1, 32, 32), 2 / 3))  # its share went to the background


def test_holes_are_filled_from_their_surroundings() -> None:
    image = torch.zeros(1, 3, 32, 32)
    image[:, 0, :, :16] = 1.0  # red left half, black right half
    image[:, :, 10:20, 10:14] = torch.tensor([0.0, 0.0, 1.0])[:, None, None]  # a blue "hand" in the red
    hole = torch.zeros(1, 1, 32, 32)
    hole[:, :, 9:21, 9:15] = 1.0
    filled = fill_holes(image, hole)
    torch.testing.assert_close(filled[hole.expand_as(filled) == 0], image[hole.expand_as(image) == 0])
    centre = filled[0, :, 15, 11]
    assert centre[0] > 0.8 and centre[2] < 0.05  # red like around it, no blue left


def test_each_side_of_a_hole_takes_the_colour_beside_it() -> None:
    """A hand uncovers the edge between the sofa (grey, left) and the shirt (red, right): the
    hole's left part is filled grey and its right part red, not both with their mix; a hole in
    an image with nothing known around takes the mean of what is known."""
    grey, red = torch.tensor([0.5, 0.5, 0.5]), torch.tensor([0.8, 0.1, 0.1])
    image = grey[None, :, None, None].repeat(1, 1, 48, 48)
    image[..., 24:] = red[None, :, None, None]
    hole = torch.zeros(1, 1, 48, 48)
    hole[..., 12:36, 12:36] = 1.0
    filled = fill_holes(image, hole)
    assert (filled[0, :, 24, 14] - grey).abs().max() < 0.05
    assert (filled[0, :, 24, 33] - red).abs().max() < 0.05
    torch.testing.assert_close(filled[hole.expand_as(filled) == 0], image[hole.expand_as(image) == 0])
    walled = torch.ones(1, 1, 48, 48)
    walled[..., :4, :] = 0.0  # known: the top four rows only, excluded but for one pixel
    exclude = torch.ones(1, 1, 48, 48)
    exclude[..., 0, 0] = 0.0
    torch.testing.assert_close(fill_holes(image, walled, exclude)[0, :, 40, 40], image[0, :, 0, 0])


def test_a_hole_between_two_hands_is_filled_from_the_dress_not_the_hands() -> None:
    """Excluded pixels (the moved parts) give the fill no colour: a hole with skin on two sides
    and dress above and below is filled skin-and-dress without, dress with the exclusion."""
    skin, dress = torch.tensor([0.9, 0.6, 0.5]), torch.tensor([0.1, 0.2, 0.8])
    image = dress[None, :, None, None].repeat(1, 1, 32, 32)
    hands = torch.zeros(1, 1, 32, 32)
    hands[:, :, 12:20, 4:12] = 1.0
    hands[:, :, 12:20, 20:28] = 1.0
    image = torch.lerp(image, skin[None, :, None, None].expand_as(image), hands)
    hole = torch.zeros(1, 1, 32, 32)
    hole[:, :, 12:20, 12:20] = 1.0
    centre = lambda x: x[0, :, 15, 15]  # noqa: E731
    assert (centre(fill_holes(image, hole)) - dress).abs().max() > 0.15  # skin mixed in
    torch.testing.assert_close(centre(fill_holes(image, hole, exclude=hands)), dress, atol=0.02, rtol=0)
    kept = hole == 0  # the hands too: excluded from the fill, not changed by it
    torch.testing.assert_close(fill_holes(image, hole, hands)[kept.expand_as(image)], image[kept.expand_as(image)])


def test_layers_later_parts_cover_earlier_ones() -> None:
    layout = PartLayout((Part(0, ((0, 1, 0.0, 1.0),), 0.3), Part(1, ((5, 6, 0.0, 1.0),), 0.3)), unit=(0, 1))
    kp = keypoints()
    kp[:, 5:7] = kp[:, 0:2]  # both capsules on the same axis
    maps, _ = apply_part_masks(layout, torch.full((1, 3, 8, 8), 1 / 3), transformations(kp, kp, 32), kp, kp)
    assert at(maps[0, 2], 0.0, -0.2) == 1.0 and at(maps[0, 1], 0.0, -0.2) == 0.0


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Part(-1, ((0, 1, 0.0, 1.0),), 0.1), "transform"),
        (lambda: Part(0, (), 0.1), "segments"),
        (lambda: Part(0, ((0, 1),), 0.1), "(i, j, t0, t1)"),
        (lambda: Part(0, ((0, 1, 0.0, 1.0),), 0.0), "radius"),
        (lambda: PartLayout((), (0, 1)), "at least one"),
        (lambda: PartLayout((Part(0, ((0, 1, 0, 1),), 0.1), Part(0, ((2, 3, 0, 1),), 0.1)), (0, 1)), "distinct"),
        (lambda: PartLayout((Part(0, ((0, 1, 0, 1),), 0.1),), (0, 0)), "unit"),
        (lambda: PartLayout((Part(0, ((0, 1, 0, 1),), 0.1),), (0, 1), feather=0.0), "feather"),
        (lambda: Part(0, ((0, 1, 0.0, 1.0),), 0.1, ghost_shift=(0.8, 0.4)), "ghost_shift"),
        (lambda: Part(0, ((0, 1, 0.0, 1.0),), 0.1, ghost_shift=(0.5, 0.5)), "ghost_shift"),
    ],
)
def test_bad_layouts_are_named(make, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make()


def test_a_layout_must_fit_the_model() -> None:
    model = TPSMotionModel.from_config("tiny-64")  # 10 transforms, 50 keypoints
    too_far = PartLayout((Part(3, ((0, 77, 0.0, 1.0),), 0.1),), unit=(0, 1))
    with pytest.raises(ValueError, match="keypoints outside 0..49"):
        Renderer(model, parts=too_far)
    with pytest.raises(TypeError, match="PartLayout"):
        Renderer(model, parts={"hand": 6})
    with pytest.raises(ValueError, match="backend must be 'torch' or 'auto'"):
        Renderer(model, parts=PartLayout((Part(3, ((0, 1, 0.0, 1.0),), 0.1),), unit=(0, 1)), backend="onnxruntime")


@pytest.fixture(scope="module")
def model() -> TPSMotionModel:
    torch.manual_seed(0)
    return TPSMotionModel.from_config("tiny-64").eval()


def test_renderer_with_parts_moves_the_hand_and_keeps_the_rest_pose(model: TPSMotionModel) -> None:
    """A tiny random renderer: at the source's keypoints the hand's pixels stay where they are;
    with the hand's keypoints moved, they follow them, and its old place is left to the decoder."""
    from skimage import data

    source = F.interpolate(torch.from_numpy(data.astronaut()).permute(2, 0, 1)[None].float() / 255,
                           size=(64, 64), mode="area")
    kp = model.detect(source).detach()
    # transform 6 ("hand") a capsule along its first two keypoints, the unit keypoints 0 and 1
    layout = PartLayout((Part(6, ((30, 31, 0.0, 1.0),), radius=0.2),), unit=(0, 1))
    kp[:, 30:35] = torch.tensor([[-0.3, 0.1], [-0.3, 0.4], [-0.4, 0.25], [-0.2, 0.25], [-0.3, 0.5]])
    unit = (kp[0, 0] - kp[0, 1]).norm()
    parted = Renderer(model, parts=layout)
    prepared = parted.prepare(source, kp)
    moved = kp.clone()
    moved[:, 30:35] += torch.tensor([0.3, 0.0])
    rest, chunk = parted.iter_render_maps(prepared, torch.cat([kp, moved]), batch_size=1, progress=False)
    identity = make_coordinate_grid(64, 64)[None]
    core = capsule_masks(layout, kp, layout.unit_length(kp), identity)[0, 0] == 1  # the solid capsule
    assert core.sum() > 20
    torch.testing.assert_close(rest.deformation[0][core], identity[0][core], atol=1e-5, rtol=0)
    assert chunk.deformation.shape == (1, 64, 64, 2)  # drawn at the model's resolution
    x, y = -0.3 + 0.3, 0.25
    displacement = at((chunk.deformation - make_coordinate_grid(64, 64)).permute(0, 3, 1, 2), x, y)[0]
    assert float(unit) * 0.2 > 0.03  # the probe lies well inside the capsule
    torch.testing.assert_close(displacement, torch.tensor([-0.3, 0.0]), atol=2e-3, rtol=0)
    assert at(chunk.occlusion[0, 0], -0.3, 0.25) < 0.05  # the hand's old place: a ghost, occluded
    assert at(chunk.occlusion[0, 0], 0.0, 0.25) > 0.99  # its new place shows its own source pixels
