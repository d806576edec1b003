"""The motion model: keypoint statistics and coding (``keypoints``), the denoiser (``denoiser``) and
diffusion sampling with classifier-free guidance (``sampling``)."""
