"""The product's defaults, each in one place: every signature, command option and config that
needs one imports it from here (no torch import, so command ``--help`` stays fast).

A pipeline folder's ``pipeline.json`` may carry its own ``num_inference_steps`` and
``guidance_scale`` (the weights' defaults); these are what is used where it does not.
"""

#: Classifier-free guidance scale (DiffTED's value).
DEFAULT_GUIDANCE_SCALE = 1.15
#: Diffusion sampling steps.
DEFAULT_STEPS = 50
#: Longer side of full-photo videos; larger photos are downscaled (the app uses its own, smaller).
DEFAULT_MAX_SIDE = 1920
#: Frames rendered (and encoded) per chunk; `tps.render.Renderer` has the same default of its own.
DEFAULT_RENDER_BATCH = 8
#: Time constant of the drift removal (`difftted.motion.keypoints.remove_drift`) where pipeline.json
#: names none: posture held longer than a few seconds is pulled back to the photo's.
DEFAULT_DRIFT_SECONDS = 4.0
#: Arithmetic of the renderer's inpainting network (`DiffTEDPipeline.render_precision`): "auto" takes
#: bfloat16 where the device computes it natively (a CPU with AVX512-BF16 or AMX, a CUDA device with
#: bfloat16), float32 elsewhere; "float32" and "bfloat16" force one.
DEFAULT_RENDER_PRECISION = "auto"
#: Every value `DiffTEDPipeline.render_precision` and ``generate --render-precision`` take.
RENDER_PRECISIONS = ("auto", "float32", "bfloat16")
