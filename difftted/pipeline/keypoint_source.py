"""Where the photo's keypoints come from, and per-part intensity (pipeline.json ``"keypoints"``).

``"detector"``: the renderer's learned keypoint detector (the weights of earlier releases; the
renderer finds them itself). ``"body"``: mediapipe landmarks of the photo through the body
keypoint table (`difftted.motion.body_keypoints`, docs/body_keypoints.md), for a renderer trained
on them (``tps train`` with ``"keypoint_source": "given"``). Only body keypoints belong to body
parts, so only they take ``part_scales``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from difftted.pipeline.person import CropBox

#: Where the photo's keypoints come from (pipeline.json ``"keypoints"``): the renderer's learned
#: ``"detector"``, or ``"body"``: mediapipe landmarks through the body keypoint table
#: (`difftted.motion.body_keypoints`, for a renderer trained on them, ``keypoint_source "given"``).
KEYPOINT_SOURCES = ("detector", "body")
#: The parts ``part_scales`` may scale: body keypoint groups (`difftted.motion.body_keypoints.PART_GROUPS`:
#: head = the head and neck transforms, mouth = the mouth's, arms = both upper arms, forearms, hands).
PART_SCALES = ("head", "mouth", "arms")
#: Body keypoints are not clipped to the crop (a hand below it has y > 1, docs/body_keypoints.md):
#: sampled ones are clamped to this bound, detector keypoints to the crop's [-1, 1].
BODY_KEYPOINT_LIMIT = 3.0


def keypoint_limit(keypoint_source: str) -> float:
    """The bound sampled keypoints are clamped to: 1 (the crop) for the detector's, else
    `BODY_KEYPOINT_LIMIT`."""
    return 1.0 if keypoint_source == "detector" else BODY_KEYPOINT_LIMIT


def body_source_keypoints(photo: np.ndarray, box: CropBox, resolution: tuple[int, int]) -> np.ndarray:
    """Body keypoints of ``photo`` (uint8 ``[H, W, 3]``) in the square ``box``, as the renderer sees
    that crop resized to ``resolution`` (h, w): float32 ``[1, 50, 2]`` in [-1, 1]. mediapipe runs
    on the whole photo (`difftted.motion.body_landmarks.image_body_keypoints`); the keypoints are
    carried through the crop's resize by `tps.given_keypoints.map_keypoints`. ValueError when no
    person is found."""
    from difftted.motion.body_landmarks import image_body_keypoints
    from tps.given_keypoints import map_keypoints

    body = image_body_keypoints(photo, crop=(box.x0, box.y0, box.x0 + box.size, box.y0 + box.size))
    return map_keypoints(body.keypoints, (box.size, box.size), None, tuple(resolution))


def body_video_keypoints(video: str | Path, resolution: tuple[int, int]) -> np.ndarray:
    """Body keypoints of every frame of a driving ``video``, as a renderer trained on them sees
    that clip: in the TED square `difftted.pipeline.person.find_crop` places on its first frame
    (`difftted.data.body_dataset.detect_body_clip`, as ``build-dataset --keypoints body`` and the
    renderer's training clips take it), resized to ``resolution`` (h, w). float32 ``[T, 50, 2]``
    in [-1, 1] (not clipped: a hand below the crop has y > 1). ValueError naming the video when
    no frame shows a person."""
    from difftted.data.body_dataset import detect_body_clip
    from difftted.data.dataset_layouts import ClipSource, SkipClip
    from tps.given_keypoints import map_keypoints

    path = Path(video)
    try:
        keypoints, _, info = detect_body_clip(ClipSource(path.stem, path))
    except SkipClip as err:
        raise ValueError(f"video {str(path)!r}: {err}") from err
    x0, y0, x1, y1 = info["crop"]
    return map_keypoints(keypoints, (y1 - y0, x1 - x0), None, tuple(resolution))


def check_part_scales(part_scales: Mapping[str, float] | None, keypoint_source: str,
                      names: Mapping[str, str] | None = None) -> dict[str, float]:
    """``part_scales`` checked: a dict of `PART_SCALES` keys to finite numbers >= 0 (``{}`` for
    None). With ``"detector"`` keypoints any scale other than 1 is a ValueError. Messages name
    ``names[part]`` (e.g. ``"--head-scale"``), else ``part_scales['part']``."""
    if part_scales is None:
        return {}
    if not isinstance(part_scales, Mapping):
        raise TypeError(f"part_scales must be a dict of {PART_SCALES} to numbers, got {type(part_scales).__name__}")
    unknown = sorted(set(part_scales) - set(PART_SCALES))
    if unknown:
        raise ValueError(f"part_scales has unknown parts {unknown}; known: {PART_SCALES}")
    out = {}
    for part, value in part_scales.items():
        name = (names or {}).get(part, f"part_scales[{part!r}]")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if keypoint_source == "detector" and value != 1:
            raise ValueError(f"{name} = {value!r}: per-part scales need a pipeline with body keypoints "
                             "(pipeline.json \"keypoints\": \"body\"); these weights use the learned detector, "
                             "whose keypoints belong to no body part (use the overall motion scale)")
        out[part] = float(value)
    return out


def keypoint_scales(part_scales: Mapping[str, float], num_keypoints: int) -> torch.Tensor:
    """Per-keypoint factors ``[num_keypoints, 1]``: ``part_scales[part]`` on the 5 keypoints of
    each transform of that part (`difftted.motion.body_keypoints.PART_GROUPS`), 1 elsewhere."""
    scale = torch.ones(num_keypoints, 1)
    if part_scales:
        from difftted.motion.body_keypoints import PART_GROUPS

        for part, value in part_scales.items():
            for k in PART_GROUPS[part]:
                scale[5 * k: 5 * k + 5] = value
    return scale


def scale_offsets(kp_source: torch.Tensor, offsets: torch.Tensor, part_scales: Mapping[str, float],
                  keypoint_source: str) -> torch.Tensor:
    """Driving keypoints ``kp_source [N, 2] + scaled offsets [T, N, 2]`` -> ``[T, N, 2]``.

    Each part's offsets are multiplied by its scale (`keypoint_scales`), except the mouth's with
    body keypoints: the lips ride on the head, so a mouth scaled on its own would drift off a
    head scaled differently (at mouth 3, head 1.5 it bulged out of the face when the head
    turned). The mouth's motion is split into what the head carries (the least-squares
    similarity of the head transform's 5 keypoints, photo -> frame, applied to the photo's mouth
    keypoints) and the lips' own articulation (the rest); the carried part follows the *scaled*
    head exactly, the articulation takes the mouth's scale (all scales 1: the offsets as sampled).
    """
    scale = keypoint_scales(part_scales, kp_source.shape[0]).to(offsets)
    kp = kp_source + scale * offsets
    if keypoint_source != "body":
        return kp
    from difftted.motion.body_keypoints import TRANSFORMS

    head = slice(5 * TRANSFORMS.index("head"), 5 * TRANSFORMS.index("head") + 5)
    mouth = slice(5 * TRANSFORMS.index("mouth"), 5 * TRANSFORMS.index("mouth") + 5)
    source_mouth = kp_source[mouth]
    carried_raw = apply_similarity(fit_similarity(kp_source[head], kp_source[head] + offsets[:, head]), source_mouth)
    carried = apply_similarity(fit_similarity(kp_source[head], kp[:, head]), source_mouth)
    articulation = kp_source[mouth] + offsets[:, mouth] - carried_raw
    kp = kp.clone()
    kp[:, mouth] = carried + mouth_articulation(articulation, carried_raw, float(part_scales.get("mouth", 1.0)))
    return kp


#: The scale of the lips' *closing* (a lip or the chin moving towards the other lip, past where
#: the photo has it), whatever the mouth scale: lips stop where they meet, so a closing amplified
#: like an opening pushes chin and lower lip up into the face. At mouth scale 3 it shortened the
#: astronaut's nose-to-chin by up to 9% and squashed her smile (docs/demo_weights.md).
MOUTH_CLOSING_SCALE = 1.0


def mouth_articulation(articulation: torch.Tensor, carried: torch.Tensor, scale: float) -> torch.Tensor:
    """The lips' own motion ``articulation [T, 5, 2]`` (the mouth transform's keypoints: right and
    left corner, upper lip, lower lip, chin; minus what the head carries) scaled by ``scale``,
    except each lip point's *closing* component, which takes `MOUTH_CLOSING_SCALE`.

    Closing is measured along the face's down axis in each frame: upper lip -> chin of the photo's
    mouth keypoints as the head carries them (``carried [T, 5, 2]``). The upper lip closes moving down, the lower lip and the
    chin moving up; the corners and every opening take ``scale``. Continuous in the motion (the
    two scales meet at zero), so a lip crossing its photo position does not jump. Scale 1 with
    a closing scale of 1: ``articulation`` unchanged.
    """
    if scale == MOUTH_CLOSING_SCALE:
        return scale * articulation
    down = carried[:, 4] - carried[:, 2]                                   # [T, 2] upper lip -> chin
    down = down / down.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    along = (articulation[:, 2:5] * down[:, None]).sum(-1)                 # [T, 3] downward motion
    sign = articulation.new_tensor([1.0, -1.0, -1.0])                      # closing: upper lip down, others up
    closing = torch.clamp(sign * along, min=0.0) * sign                    # [T, 3] signed downward closing
    out = scale * articulation
    out[:, 2:5] -= (scale - MOUTH_CLOSING_SCALE) * closing[..., None] * down[:, None]
    return out


def fit_similarity(src: torch.Tensor, dst: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares 2-D similarity (rotation, uniform scale, shift) mapping ``src [P, 2]`` to each
    ``dst [T, P, 2]``: ``(a [T], b [T])`` complex, ``z -> a z + b`` with ``z = x + iy``. The same
    least squares as `tps.parts.similarity_frame`, which evaluates it on the renderer's grids in
    its working precision; this one works on points, in float64 (the keypoints it moves are
    sampled once per video)."""
    z = torch.complex(src[:, 0].double(), src[:, 1].double())
    w = torch.complex(dst[..., 0].double(), dst[..., 1].double())
    zc = z - z.mean()
    a = ((w - w.mean(-1, keepdim=True)) * zc.conj()).sum(-1) / (zc.abs() ** 2).sum().clamp(min=1e-12)
    b = w.mean(-1) - a * z.mean()
    return a, b


def apply_similarity(similarity: tuple[torch.Tensor, torch.Tensor], points: torch.Tensor) -> torch.Tensor:
    """``points [P, 2]`` through each of ``fit_similarity``'s ``T`` similarities -> ``[T, P, 2]``."""
    a, b = similarity
    z = torch.complex(points[:, 0].double(), points[:, 1].double())
    w = a[:, None] * z + b[:, None]
    return torch.stack([w.real, w.imag], -1).to(points.dtype)


def check_keypoint_source(source: Any, renderer_config: Any) -> None:
    if source not in KEYPOINT_SOURCES:
        raise ValueError(f"keypoint_source must be one of {KEYPOINT_SOURCES}, got {source!r}")
    if source == "body" and renderer_config.num_kp != 50:
        raise ValueError(f"keypoint_source 'body' needs a renderer of 50 keypoints, this one has {renderer_config.num_kp}")
    if source == "detector" and getattr(renderer_config, "keypoint_source", "detector") == "given":
        raise ValueError("keypoint_source 'detector' needs a renderer with a trained detector; this one was "
                         "trained on given keypoints (its config.json keypoint_source 'given'): use 'body'")
