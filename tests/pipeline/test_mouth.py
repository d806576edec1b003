"""The mouth's interior (`difftted.pipeline.mouth.MouthInterior`): drawn only where the driving
keypoints open the lips past the photo's, as tall as that opening, at the lip seam, between the
corners, with the lips above and below it drawn back at the photo's height (the renderer
stretched them); the photo's own pose (or a head that only comes closer) leaves the frame
untouched; and on a real photo a face-mesh judge sees the mouth open."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from difftted.motion.body_keypoints import NUM_KEYPOINTS, keypoint_index
from difftted.pipeline.mouth import MouthInterior

S = 200
RIGHT, LEFT, UPPER, LOWER = (keypoint_index("mouth", n) for n in ("mouth right", "mouth left", "upper lip", "lower lip"))
CHIN = keypoint_index("mouth", "chin")
R_EYE, L_EYE = keypoint_index("head", "right eye outer"), keypoint_index("head", "left eye outer")


def _unit(x: float, y: float) -> tuple[float, float]:
    return 2 * x / (S - 1) - 1, 2 * y / (S - 1) - 1


def _face() -> tuple[torch.Tensor, torch.Tensor]:
    """A skin-coloured crop with closed lips (a dark seam at row 120 between x 80 and 120) and its keypoints."""
    crop = torch.empty(1, 3, S, S)
    crop[:] = torch.tensor([0.85, 0.65, 0.55]).view(1, 3, 1, 1)
    crop[:, :, 113:128, 80:121] = torch.tensor([0.75, 0.4, 0.4]).view(1, 3, 1, 1)  # lips
    crop[:, :, 120, 80:121] = torch.tensor([0.35, 0.15, 0.12]).view(1, 3, 1)  # the seam
    kp = torch.from_numpy(np.random.default_rng(0).uniform(-0.8, 0.8, (NUM_KEYPOINTS, 2)).astype(np.float32))
    for i, (x, y) in {RIGHT: (80, 120), LEFT: (120, 120), UPPER: (100, 112), LOWER: (100, 128),
                      CHIN: (100, 150), R_EYE: (70, 70), L_EYE: (130, 70)}.items():
        kp[i] = torch.tensor(_unit(x, y))
    return crop, kp


def _open(kp: torch.Tensor, pixels: float) -> torch.Tensor:
    """The lower lip and chin ``pixels`` further down."""
    out = kp.clone()
    out[[LOWER, CHIN], 1] += 2 * pixels / (S - 1)
    return out


def _stretched(crop: torch.Tensor, pixels: float) -> torch.Tensor:
    """The crop as the renderer gives it when the lower lip goes ``pixels`` down: rows 112-128
    (the outer lips) stretched uniformly over 112-(128 + pixels), the rows below moved down."""
    y = torch.arange(S, dtype=torch.float32)
    src = torch.where(y < 112, y, torch.where(y <= 128 + pixels, 112 + (y - 112) * 16 / (16 + pixels), y - pixels))
    lo = src.floor().long().clamp(0, S - 1)
    hi = (lo + 1).clamp(max=S - 1)
    w = (src - lo.float()).view(1, 1, S, 1)
    return crop[:, :, lo] * (1 - w) + crop[:, :, hi] * w


def test_the_photos_pose_and_a_closer_head_leave_the_frame_unchanged() -> None:
    crop, kp = _face()
    mouth = MouthInterior(crop, kp)
    frames = torch.rand(3, 3, S, S)
    closer = (kp - kp[UPPER]) * 1.3 + kp[UPPER]  # every point 30% further from the lip: zoom, no opening
    closed = _open(kp, -4)
    driving = torch.stack([kp, closer, closed])
    assert torch.equal(mouth(frames, driving), frames)
    assert mouth.opening(driving).abs()[:2].max() < 1e-3 and mouth.opening(driving)[2] < -3


@pytest.mark.parametrize("pixels", [4.0, 10.0])
def test_an_opening_paints_a_lens_that_tall_on_the_seam_between_the_corners(pixels: float) -> None:
    crop, kp = _face()
    mouth = MouthInterior(crop, kp, edge=1.0)
    assert mouth.seam == pytest.approx(0.5, abs=0.05)  # the darkest row between the lips: 120 of 112..128
    driving = _open(kp, pixels)[None]
    assert mouth.opening(driving)[0] == pytest.approx(pixels, abs=1e-3)
    alpha = mouth.alpha(driving)[0, 0]
    # as tall as the opening in the middle, starting at the seam (the upper lip keeps its 8 rows)
    column = alpha[:, 100]
    assert float(column.sum()) == pytest.approx(pixels, abs=0.6)
    centre = float((column * torch.arange(S)).sum() / column.sum())
    assert centre == pytest.approx(120 + pixels / 2, abs=0.6)
    # between the corners only, thinner towards them, and nowhere else
    assert float(alpha[:, :80].sum() + alpha[:, 121:].sum()) == 0
    assert float(alpha[:, 85].sum()) < float(alpha[:, 100].sum())
    assert float(alpha[:100].sum() + alpha[140:].sum()) == 0
    # on the renderer's stretched lips: the upper lip above the gap and the lower lip below it
    # at the photo's colour and height, the gap darker than the photo's seam
    frames = _stretched(crop, pixels)
    painted = mouth(frames, driving)[0, :, :, 100]
    lip = crop[0, :, 115, 100]
    # (the rows next to the lips' outer edges mix with the skin: two linear resamplings)
    assert torch.allclose(painted[:, 114:119], lip[:, None].expand(3, 5), atol=0.01)  # upper lip: 114-118
    assert torch.allclose(painted[:, int(122 + pixels):int(127 + pixels)],
                          lip[:, None].expand(3, 5), atol=0.01)  # lower lip: at its 8 rows again, moved down
    gap = painted[:, 121:int(120 + pixels)]
    assert gap.shape[1] >= pixels - 2 and torch.all(gap < crop[0, :, 120, 100, None])
    assert torch.equal(painted[:, : 100], frames[0, :, :100, 100])
    assert torch.equal(painted[:, 140:], frames[0, :, 140:, 100])


def test_a_smile_opens_below_its_teeth_in_a_dark_colour() -> None:
    """A photo whose lips show teeth (a bright grey band, rows 116-123, over a pale lip shadow at
    row 114): the seam is the teeth's lower edge, the gap opens below the teeth (they keep their
    height, not stretched and not covered), the lower lip stays visible below it, and the gap's
    colour is dark even though the darkest point between the lips is pale."""
    from difftted.pipeline.mouth import MAX_INTERIOR_LUMA

    crop, kp = _face()
    crop[:, :, 113:128, 80:121] = torch.tensor([0.85, 0.6, 0.6]).view(1, 3, 1, 1)  # pale lips
    crop[:, :, 114, 80:121] = torch.tensor([0.7, 0.5, 0.5]).view(1, 3, 1)  # the upper lip's shadow
    crop[:, :, 116:124, 84:117] = torch.tensor([0.93, 0.92, 0.9]).view(1, 3, 1, 1)  # the teeth
    mouth = MouthInterior(crop, kp, edge=1.0)
    assert mouth.teeth and 123 <= 112 + 16 * mouth.seam <= 125, mouth.seam
    luma = float(mouth.colour.flatten() @ torch.tensor([0.299, 0.587, 0.114]))
    assert luma == pytest.approx(MAX_INTERIOR_LUMA, abs=1e-4)
    pixels = 6.0
    driving = _open(kp, pixels)[None]
    alpha = mouth.alpha(driving)[0, 0]
    column = alpha[:, 100]
    top = 112 + mouth.seam * 16  # the teeth's edge, where it is on the photo
    assert float(column.sum()) == pytest.approx(pixels, abs=0.6)  # the gap is as tall as the opening
    assert float(column[: int(top) - 1].sum()) == 0  # nothing over the teeth
    centre = float((column * torch.arange(S)).sum() / column.sum())
    assert centre == pytest.approx(top + pixels / 2, abs=0.6)
    painted = mouth(_stretched(crop, pixels), driving)[0, :, :, 100]
    teeth, lip = crop[0, :, 118, 100], crop[0, :, 126, 100]
    assert torch.allclose(painted[:, 117:123], teeth[:, None].expand(3, 6), atol=0.01)  # teeth: rows 117-122
    below = painted[:, int(top + pixels) + 2 : int(127 + pixels)]  # the lower lip, below the gap
    assert below.shape[1] >= 2 and torch.allclose(below, lip[:, None].expand_as(below), atol=0.01)
    # closed lips keep the old rule: no teeth, the gap on the dark seam
    assert not MouthInterior(*_face()).teeth


def test_bad_inputs_are_named() -> None:
    crop, kp = _face()
    with pytest.raises(ValueError, match="crop"):
        MouthInterior(crop[:, :, :10], kp)
    with pytest.raises(ValueError, match="kp_source"):
        MouthInterior(crop, kp[:10])
    with pytest.raises(ValueError, match="edge"):
        MouthInterior(crop, kp, edge=0.0)
    flat = kp.clone()
    flat[LOWER] = flat[UPPER]
    with pytest.raises(ValueError, match="lip height"):
        MouthInterior(crop, flat)
    mouth = MouthInterior(crop, kp)
    with pytest.raises(ValueError, match="kp_driving"):
        mouth(torch.zeros(2, 3, S, S), kp[None])
    with pytest.raises(ValueError, match="frames"):
        mouth(torch.zeros(1, 3, S + 1, S), kp[None])


def test_a_face_mesh_sees_the_painted_mouth_open_on_a_real_photo(shared_data) -> None:
    """The couch speaker's first frame (closed lips): the lower lip 10 px down with its interior
    painted, judged by the evaluation's own face landmarks (inner-lip distance)."""
    from difftted.evaluation.judge_landmarks import LOWER_LIP, UPPER_LIP
    from difftted.pipeline.keypoint_source import body_source_keypoints
    from difftted.pipeline.person import find_crop
    from tps.video import iter_frames
    import mediapipe as mp

    clip = shared_data / "talking_more/upper_body/ub09_skyreelsA1_drv5_couch_youtuber.mp4"
    photo = next(iter(iter_frames(clip)))
    box = find_crop(photo).box
    crop = torch.from_numpy(photo[box.y0:box.y0 + box.size, box.x0:box.x0 + box.size].copy()).permute(2, 0, 1)[None] / 255.0
    kp = torch.from_numpy(body_source_keypoints(photo, box, (box.size, box.size))).float().reshape(NUM_KEYPOINTS, 2)
    mouth = MouthInterior(crop, kp)
    driving = kp.clone()
    driving[[LOWER, CHIN], 1] += 2 * 10 / (box.size - 1)
    painted = (mouth(crop, driving[None])[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)

    def inner_lips(image: np.ndarray) -> float:
        with mp.solutions.face_mesh.FaceMesh(static_image_mode=True) as mesh:
            lm = mesh.process(image).multi_face_landmarks[0].landmark
        h, w = image.shape[:2]
        return float(np.hypot((lm[UPPER_LIP].x - lm[LOWER_LIP].x) * w, (lm[UPPER_LIP].y - lm[LOWER_LIP].y) * h))

    closed, opened = inner_lips(np.ascontiguousarray(photo[box.y0:box.y0 + box.size, box.x0:box.x0 + box.size])), inner_lips(painted)
    # measured: 1.75 -> 6.26 px (the judge's mesh reads about half of a gap this thin); its jitter
    # on a still face is under 1 px
    assert opened > closed + 3, (closed, opened)


def test_a_composer_paints_the_mouth_only_once_given_one() -> None:
    """`FrameComposer.add_mouth_interior` builds the painter from the composer's own crop: an
    opened mouth in a chunk is painted, the same chunk without it is not; the model path and a
    faceless photo refuse, naming why; a composer with a mouth needs the driving keypoints."""
    from difftted.pipeline.composition import FrameComposer
    from difftted.pipeline.person import CropBox
    from tps.render import RenderedChunk

    crop, kp = _face()
    photo = (crop[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    zero = torch.from_numpy(np.stack(np.meshgrid(np.linspace(-1, 1, 64), np.linspace(-1, 1, 64)), -1)
                            .astype(np.float32))[None].repeat(2, 1, 1, 1)  # identity flow, (x, y)
    chunk = RenderedChunk(None, torch.full((2, 3, 64, 64), 0.5), zero, torch.ones(2, 1, 64, 64))
    driving = torch.stack([kp, _open(kp, 8)])
    plain = FrameComposer(photo, CropBox(0, 0, S), "native", crop_only=True)
    before = plain(chunk)
    assert np.abs(before.astype(int) - photo[:S - S % 2, :S - S % 2]).max() <= 1  # identity: the photo
    painted = plain.add_mouth_interior(kp[None])
    assert plain.mouth is painted and painted.size == S
    after = plain(chunk, driving)
    assert np.array_equal(after[0], before[0]) and not np.array_equal(after[1], before[1])
    with pytest.raises(ValueError, match="kp_driving"):
        plain(chunk)
    with pytest.raises(ValueError, match="composition='native'"):
        FrameComposer(photo, CropBox(0, 0, S), "model").add_mouth_interior(kp[None])
    flat = kp.clone()
    flat[LOWER] = flat[UPPER]
    with pytest.raises(ValueError, match="lip height"):
        FrameComposer(photo, CropBox(0, 0, S), "native").add_mouth_interior(flat[None])
