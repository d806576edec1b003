"""The inside of a mouth that opens wider than the photo's.

A photo of a speaker usually has the lips closed. The renderer can only move the photo's pixels
and make up pixels where its occlusion map says the source is hidden; the mouth transform of the
body keypoints (`difftted.motion.body_keypoints`, transform ``"mouth"``: the corners, the outer
upper and lower lip and the chin) moves the lower lip and the jaw down, and its TPS stretches
the closed lips: a thicker lip, never a gap. Nothing in the photo shows the inside of the mouth,
and the decoder, trained on head-and-shoulder clips, never learned to draw one. So the lips did
not visibly open, however the sampled keypoints moved (mouth-opening std 0.007-0.010 of the face
height measured from the pixels, against 0.021 for real speech: issue 10).

`MouthInterior` draws it. In each frame the driving keypoints give the extra opening

    ``o = (D - U) . n - s * h0``  (pixels of the crop),

with ``U``, ``D`` the outer upper and lower lip, ``n`` the unit normal of the corner-to-corner
line (pointing down the face), ``h0`` the photo's lip height and ``s`` the head's scale (its eye
corners' distance over the photo's), so a head that comes closer does not open the mouth.

Where ``o > 0`` the mouth is cut open at the lip seam. The renderer stretched the lips, from
the outer upper lip to the outer lower lip, over ``s * h0 + o`` pixels; in each column between
the corners (the lips' outlines taken as parabolas through the corners, ``U`` and ``D``) the
painter draws the part above the seam (the upper lip, and the teeth of a smile) back at the
photo's height under the upper lip, the part below (the lower lip) at the photo's height over
the lower lip, both resampled from the frame itself, and fills the gap between them, ``o`` tall
at the middle and thinning towards the corners, with the mouth's interior colour (the seam's
own darkest pixels, darkened) and a soft edge of ``edge`` pixels. So the lips keep their
thickness and the opening is a gap between them. (An earlier version painted a lens of that
height over the stretched lips, centred where the seam went along ``U -> D``; on a smile it
covered the lower lip and the teeth's lower half.) A frame whose keypoints are the photo's (or
closed further) is returned unchanged, so the first frame is still the photo.

The seam is the darkest row between the photo's lips, or, where the photo shows teeth between
them (a bright, grey run, found by `_find_seam`), the upper teeth's lower edge: the teeth stay
with the upper lip, and the jaw that drops shows the dark below them (on the astronaut and the
smiling portrait the darkest row lies *above* the teeth, in the upper lip's shadow).

Plain torch on ``float32 [b, 3, s, s]`` crops in ``[0, 1]``; the keypoints in the crop's
``[-1, 1]`` (align_corners=True) coordinates, as the renderer's.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from difftted.motion.body_keypoints import NUM_KEYPOINTS, keypoint_index

__all__ = ["MouthInterior", "MOUTH_POINTS"]

#: The body keypoints it reads: (transform, label) of the mouth corners, the outer lips, and
#: the head's eye corners (its scale).
MOUTH_POINTS = {"right": ("mouth", "mouth right"), "left": ("mouth", "mouth left"),
                "upper": ("mouth", "upper lip"), "lower": ("mouth", "lower lip"),
                "right_eye": ("head", "right eye outer"), "left_eye": ("head", "left eye outer")}


class MouthInterior:
    """Paint the mouth's interior where the driving keypoints open it past the photo's.

    Args:
        crop: ``float32 [1, 3, s, s]`` (or ``[3, s, s]``) the photo's crop in ``[0, 1]`` at the
            size the frames will have.
        kp_source: ``[50, 2]`` (or ``[1, 50, 2]``) the photo's body keypoints in the crop's
            ``[-1, 1]`` coordinates.
        width: the gap's half width as a fraction of half the corner-to-corner distance (the
            inside of a mouth stops short of its corners).
        edge: the soft edge of the gap, in pixels of the crop (at least 0.5).
        darkness: the interior colour is the seam's darkest colour times this (its luma at most
            `MAX_INTERIOR_LUMA`).
        min_opening: openings below this many pixels draw nothing (landmark noise).
    """

    def __init__(self, crop: torch.Tensor, kp_source: torch.Tensor, *, width: float = 0.9, edge: float = 1.0,
                 darkness: float = 0.45, min_opening: float = 0.5) -> None:
        crop = crop[None] if crop.dim() == 3 else crop
        if crop.dim() != 4 or crop.shape[:2] != (1, 3) or crop.shape[2] != crop.shape[3]:
            raise ValueError(f"crop must be [1, 3, s, s], got {tuple(crop.shape)}")
        kp = kp_source[0] if kp_source.dim() == 3 else kp_source
        if tuple(kp.shape) != (NUM_KEYPOINTS, 2) or not torch.isfinite(kp).all():
            raise ValueError(f"kp_source must be finite [{NUM_KEYPOINTS}, 2] body keypoints, got {tuple(kp_source.shape)}")
        for name, value, low, high in (("width", width, 0.1, 1.0), ("edge", edge, 0.5, 50.0),
                                       ("darkness", darkness, 0.0, 1.0), ("min_opening", min_opening, 0.0, 1e3)):
            if not low <= float(value) <= high:
                raise ValueError(f"{name} must be in [{low}, {high}], got {value!r}")
        self.size = crop.shape[-1]
        self.width, self.edge, self.min_opening = float(width), float(edge), float(min_opening)
        self._index = {k: keypoint_index(*v) for k, v in MOUTH_POINTS.items()}
        p = self._points(kp[None].float())
        self.eye_distance = float((p["left_eye"] - p["right_eye"]).norm(dim=-1)[0])
        self.lip_height = float(((p["lower"] - p["upper"]) * _normal(p)).sum(-1)[0])
        if self.eye_distance < 1.0 or self.lip_height <= 0:
            raise ValueError(f"kp_source has no usable face: eye distance {self.eye_distance:.2f} px, "
                             f"lip height {self.lip_height:.2f} px")
        self.seam, colour, self.teeth = _find_seam(crop[0].float(), p["upper"][0], p["lower"][0])
        colour = colour * float(darkness)
        luma = float(_luma(colour[:, None]))
        if luma > MAX_INTERIOR_LUMA:  # a pale seam (a smile's lip shadow) still gives a dark mouth
            colour = colour * (MAX_INTERIOR_LUMA / luma)
        self.colour = colour.view(1, 3, 1, 1)

    def _points(self, kp: torch.Tensor) -> dict[str, torch.Tensor]:
        """``[b, 50, 2]`` in [-1, 1] -> named ``[b, 2]`` in crop pixels (x, y)."""
        pixels = (kp.float() + 1) * 0.5 * (self.size - 1)
        return {k: pixels[:, i] for k, i in self._index.items()}

    def opening(self, kp_driving: torch.Tensor) -> torch.Tensor:
        """``[b]`` the extra opening, in pixels of the crop, of ``kp_driving [b, 50, 2]`` (module
        docstring; negative: closed further than the photo)."""
        p = self._points(kp_driving)
        scale = (p["left_eye"] - p["right_eye"]).norm(dim=-1) / self.eye_distance
        return ((p["lower"] - p["upper"]) * _normal(p)).sum(-1) - scale * self.lip_height

    def _geometry(self, kp_driving: torch.Tensor) -> Iterator[tuple[int, tuple[int, int, int, int], dict]]:
        """For each frame that opens: ``(frame index, window (y0, y1, x0, x1), maps)``, the maps
        ``[h, w]`` over the window: ``gap`` (the interior's coverage, soft-edged), ``src_x``,
        ``src_y`` (where each window pixel takes its colour from in the same frame, see
        `__call__`) and ``moved`` (the pixels either of them changes)."""
        kp_driving = _check_driving(kp_driving)
        p = self._points(kp_driving)
        opening = self.opening(kp_driving)
        normals = _normal(p)
        s = self.size
        for i in torch.nonzero(opening > self.min_opening).flatten().tolist():
            right, left, upper, lower = (p[k][i] for k in ("right", "left", "upper", "lower"))
            centre = (right + left) / 2
            half = float((left - right).norm() / 2)
            if half < 1:
                continue
            u_axis, n_axis = (left - right) / (2 * half), normals[i]
            depth_u, depth_d = float((upper - centre) @ n_axis), float((lower - centre) @ n_axis)
            o = float(opening[i])
            reach = abs(depth_u) + abs(depth_d) + 2 * self.edge + 2
            x0, x1 = int(max(0, centre[0] - half - reach)), int(min(s, centre[0] + half + reach + 1))
            y0, y1 = int(max(0, centre[1] - half - reach)), int(min(s, centre[1] + half + reach + 1))
            if x1 <= x0 or y1 <= y0:
                continue
            ys, xs = torch.meshgrid(torch.arange(y0, y1, dtype=torch.float32),
                                    torch.arange(x0, x1, dtype=torch.float32), indexing="ij")
            d = torch.stack([xs - centre[0], ys - centre[1]], -1)
            u, v = d @ u_axis, d @ n_axis
            bow = (1 - (u / half).clamp(-1, 1) ** 2)  # the lips' curves meet at the corners
            top, band = depth_u * bow, (depth_d - depth_u) * bow  # the outer upper lip; the lips' height
            gap = o * (1 - (u / (self.width * half)).clamp(-1, 1) ** 2)  # <= the band's extra height
            rest = (band - gap).clamp(min=1e-3)  # the photo's lips, at the frame's scale
            g0 = top + self.seam * rest  # the seam: the upper lip (and teeth) end here
            g1 = g0 + gap
            # the photo's fraction of the lips at each pixel: the upper piece above the gap, the
            # lower piece below it, both at the photo's height; the frame stretched the lips
            # uniformly, so that fraction lies at top + fraction * band in the frame
            fraction = torch.where(v < g0, (v - top) / rest, self.seam + (v - g1) / rest)
            inside_band = (v >= top) & (v <= top + band) & (gap > 0)
            v_src = torch.where(inside_band, top + fraction.clamp(0, 1) * band, v)
            src = centre + u[..., None] * u_axis + v_src[..., None] * n_axis
            coverage = ((torch.minimum(v - g0, g1 - v) / self.edge) + 0.5).clamp(0, 1) * (gap > 0)
            yield i, (y0, y1, x0, x1), {"gap": coverage, "src_x": src[..., 0], "src_y": src[..., 1],
                                        "moved": inside_band | (coverage > 0)}

    def alpha(self, kp_driving: torch.Tensor) -> torch.Tensor:
        """``float32 [b, 1, s, s]`` the interior's coverage in each frame (0 where closed)."""
        kp_driving = _check_driving(kp_driving)
        out = torch.zeros(len(kp_driving), 1, self.size, self.size)
        for i, (y0, y1, x0, x1), maps in self._geometry(kp_driving):
            out[i, 0, y0:y1, x0:x1] = maps["gap"]
        return out

    def __call__(self, frames: torch.Tensor, kp_driving: torch.Tensor) -> torch.Tensor:
        """``frames [b, 3, s, s]`` in [0, 1] with the mouth opened where ``kp_driving [b, 50, 2]``
        opens it past the photo's; frames where it does not are returned unchanged.

        The renderer stretched the lips between the driving outer upper and lower lip. Here the
        part above the seam (the upper lip, with the teeth of a smile) is drawn back at the
        photo's height under the upper lip, the part below (the lower lip) at the photo's height
        over the lower lip, both resampled from the frame itself, and the gap between them, as
        tall as the opening, takes the interior's colour."""
        if frames.dim() != 4 or frames.shape[1] != 3 or tuple(frames.shape[-2:]) != (self.size, self.size):
            raise ValueError(f"frames must be [b, 3, {self.size}, {self.size}], got {tuple(frames.shape)}")
        kp_driving = _check_driving(kp_driving)
        if len(kp_driving) != len(frames):
            raise ValueError(f"kp_driving has {len(kp_driving)} frames, frames has {len(frames)}")
        out = None
        for i, (y0, y1, x0, x1), maps in self._geometry(kp_driving):
            if out is None:
                out = frames.clone()
            grid = torch.stack([maps["src_x"], maps["src_y"]], -1) * (2.0 / (self.size - 1)) - 1
            window = torch.nn.functional.grid_sample(frames[i : i + 1], grid[None].to(frames.dtype), mode="bilinear",
                                                     padding_mode="border", align_corners=True)
            gap = maps["gap"].to(frames.dtype)
            painted = torch.lerp(window[0], self.colour[0].to(frames.dtype).expand_as(window[0]), gap)
            # pixels the lips' resampling leaves where they are keep their exact values
            out[i, :, y0:y1, x0:x1] = torch.where(maps["moved"], painted, frames[i, :, y0:y1, x0:x1])
        return frames if out is None else out


def _normal(p: dict[str, torch.Tensor]) -> torch.Tensor:
    """``[b, 2]`` unit normal of the corner-to-corner line, pointing down the face (image y)."""
    u = p["left"] - p["right"]
    n = torch.stack([-u[:, 1], u[:, 0]], -1)
    n = n / n.norm(dim=-1, keepdim=True).clamp(min=1e-6)
    return torch.where((n[:, 1:] < 0), -n, n)


def _check_driving(kp: torch.Tensor) -> torch.Tensor:
    if kp.dim() != 3 or tuple(kp.shape[1:]) != (NUM_KEYPOINTS, 2):
        raise ValueError(f"kp_driving must be [b, {NUM_KEYPOINTS}, 2] body keypoints, got {tuple(kp.shape)}")
    return kp.float().cpu()


#: The interior is never lighter than this luma (0-1): the seam of a closed mouth is dark, 0.13-0.15
#: after ``darkness`` on the project's photos, but a smiling photo's darkest point between the lips
#: is the upper lip's shadow (0.26 on the astronaut), which painted a brown, not a dark, mouth.
MAX_INTERIOR_LUMA = 0.18

#: Teeth between the lips (`_find_seam`): samples brighter than the lips themselves by this much
#: luma (0-1) and greyer than this saturation ((max - min) / max of RGB). Lips and skin measured
#: 0.30-0.55 in saturation on the project's photos; teeth 0.05-0.25, and 0.15-0.2 brighter than
#: the lips in luma (the astronaut, the smiling portrait); closed lips no more than 0.12.
TEETH_LUMA = 0.12
TEETH_SATURATION = 0.3


def _luma(pixels: torch.Tensor) -> torch.Tensor:
    """``[3, n]`` RGB in [0, 1] -> ``[n]`` luma (ITU-R 601)."""
    return (pixels * torch.tensor([0.299, 0.587, 0.114]).view(3, 1)).sum(0)


def _find_seam(crop: torch.Tensor, upper: torch.Tensor, lower: torch.Tensor) -> tuple[float, torch.Tensor, bool]:
    """The lip seam on the photo, as the fraction of the way from the outer upper lip to the outer
    lower lip, its colour ``[3]`` (the darkest third of the pixels at the darkest point) and
    whether teeth show.

    Along the way, rows of 5 pixels across are sampled at 25 points between 20% and 80%. Teeth
    show where samples are brighter than the two lips' own by `TEETH_LUMA` and greyer than
    `TEETH_SATURATION`: the seam is then the lower edge of the lowest such run (the upper teeth's
    edge, where a dropping jaw opens the mouth). Otherwise it is the darkest sample (the middle of
    the darkest run, within 0.01 of the minimum, where several tie): closed lips' seam."""
    s = crop.shape[-1]
    fractions = torch.linspace(0.2, 0.8, 25).tolist()

    def sample(f: float) -> torch.Tensor | None:
        c = upper + f * (lower - upper)
        x, y = int(round(float(c[0]))), int(round(float(c[1])))
        patch = crop[:, min(max(y, 0), s - 1), max(0, x - 2):min(s, x + 3)].reshape(3, -1)
        return None if patch.shape[1] == 0 else patch  # None: the lips outside the crop

    patches = [sample(f) for f in fractions]
    lumas = [float("inf") if p is None else float(_luma(p).mean()) for p in patches]
    best = min(range(len(lumas)), key=lumas.__getitem__)
    if not np.isfinite(lumas[best]):
        return 0.5, torch.full((3,), 0.25), False
    lo = hi = best
    while lo > 0 and lumas[lo - 1] <= lumas[best] + 0.01:
        lo -= 1
    while hi < len(lumas) - 1 and lumas[hi + 1] <= lumas[best] + 0.01:
        hi += 1
    patch = patches[best]
    luma = _luma(patch)
    colour = patch[:, luma.argsort()[: max(1, luma.numel() // 3)]].mean(1)
    seam = (fractions[lo] + fractions[hi]) / 2
    lips = [sample(f) for f in (0.0, 1.0)]
    if any(p is None for p in lips):
        return seam, colour, False
    lip_luma = float(np.mean([float(_luma(p).mean()) for p in lips]))
    teeth = [i for i, p in enumerate(patches) if p is not None and lumas[i] > lip_luma + TEETH_LUMA
             and float(((p.amax(0) - p.amin(0)) / p.amax(0).clamp(min=1e-6)).mean()) < TEETH_SATURATION]
    if not teeth:
        return seam, colour, False
    last = max(teeth)
    edge = fractions[last] if last == len(fractions) - 1 else (fractions[last] + fractions[last + 1]) / 2
    return edge, colour, True
