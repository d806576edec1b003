"""part_response: per transform, how far the pixels next to its keypoints follow a shift of them."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from difftted.evaluation.part_response import format_responses, part_response, transform_names
from difftted.motion.body_keypoints import TRANSFORMS


class FakeRenderer:
    """Flows of a renderer that gives the pixels near transform ``owner``'s keypoints to it and
    keeps every other pixel still: a known answer for part_response."""

    def __init__(self, source: torch.Tensor, owner: int, size: int = 64) -> None:
        self.source, self.owner, self.size = source, owner, size

    def prepare(self, crop, kp):
        return SimpleNamespace(kp_source=self.source[None])

    def iter_render_maps(self, prepared, drives, batch_size, progress):
        h = w = self.size
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
        cells = torch.stack([xs, ys], dim=-1)
        part = self.source[5 * self.owner:5 * self.owner + 5]
        mask = (torch.cdist(cells.reshape(-1, 2), part) < 0.15).any(dim=1).reshape(h, w).float()
        grids = []
        for drive in drives:
            moved = (drive - self.source)[5 * self.owner:5 * self.owner + 5].mean(dim=0)  # the owner's shift
            grids.append(cells - mask[..., None] * moved)  # those pixels sample from against the shift
        yield SimpleNamespace(deformation=torch.stack(grids))


def _pipeline(owner: int):
    gen = torch.Generator().manual_seed(0)
    source = torch.rand(50, 2, generator=gen) * 1.2 - 0.6
    renderer = FakeRenderer(source, owner)
    return SimpleNamespace(crop_person=lambda photo: (None, None), keypoint_source="body", frame_renderer=renderer,
                           prepare_source=lambda photo, box, crop: renderer.prepare(crop, None))


@pytest.mark.parametrize("owner", [0, 6])
def test_only_the_part_that_owns_its_pixels_responds(owner):
    responses = part_response(_pipeline(owner), np.zeros((8, 8, 3), np.uint8), shift=0.1, radius=0.05)
    assert [r.name for r in responses] == list(TRANSFORMS)
    assert responses[owner].near == pytest.approx(1.0, abs=1e-5)
    assert responses[owner].anywhere == pytest.approx(1.0, abs=1e-5)
    for k, r in enumerate(responses):
        if k != owner:
            assert r.anywhere == pytest.approx(0.0, abs=1e-6)
    table = format_responses({"photo": responses})
    assert TRANSFORMS[owner] in table and "1.00 / 1.00" in table


def test_names_and_bad_arguments():
    assert transform_names(10, "detector") == [f"tps{k}" for k in range(10)]
    assert transform_names(10, "body") == list(TRANSFORMS)
    with pytest.raises(ValueError, match="shift"):
        part_response(_pipeline(0), np.zeros((8, 8, 3), np.uint8), shift=0.0)
