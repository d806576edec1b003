"""A motion autoencoder: the feature space of Diversity and FGD, and its training command.

Like the FGD of co-speech gesture work (Yoon et al. 2020), a clip's motion is described by the
bottleneck of an autoencoder trained to reconstruct windows of keypoints of the dataset: a 1-D
convolutional encoder over time (``num_down`` stride-2 blocks), flattened to a ``feature_dim``
vector, and a mirrored decoder used only for training.

    python -m difftted train-motion-ae --data DATASET_DIR --out DIR [--window 32] [--steps 2000]

The keypoint statistics of the dataset are stored in the model (buffers saved with the weights),
so `MotionAutoencoder.encode` takes raw keypoints in ``[-1, 1]`` and a saved model needs nothing
else to measure motion.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn
from tqdm.auto import tqdm
from tps.commands import print_error

logger = logging.getLogger(__name__)


def _block(cin: int, cout: int, down: bool) -> nn.Sequential:
    conv = (nn.Conv1d(cin, cout, 4, stride=2, padding=1) if down
            else nn.ConvTranspose1d(cin, cout, 4, stride=2, padding=1))
    return nn.Sequential(conv, nn.GroupNorm(8 if cout % 8 == 0 else 1, cout), nn.LeakyReLU(0.2))


class MotionAutoencoder(ModelMixin, ConfigMixin):
    """``[M, T, N*2]`` keypoint windows ``<->`` ``[M, feature_dim]`` features (``T = window``)."""

    @register_to_config
    def __init__(self, num_keypoints: int = 50, window: int = 32, hidden_dim: int = 128,
                 feature_dim: int = 32, num_down: int = 3, fps: float = 25.0) -> None:
        super().__init__()
        for name, value in (("num_keypoints", num_keypoints), ("window", window), ("hidden_dim", hidden_dim),
                            ("feature_dim", feature_dim), ("num_down", num_down)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps!r}")
        if window % (2 ** num_down):
            raise ValueError(f"window ({window}) must be divisible by 2**num_down ({2 ** num_down})")
        dim, steps = num_keypoints * 2, window // 2 ** num_down
        self.register_buffer("kp_mean", torch.zeros(dim))
        self.register_buffer("kp_std", torch.ones(dim))
        self.encoder = nn.Sequential(nn.Conv1d(dim, hidden_dim, 3, padding=1), nn.LeakyReLU(0.2),
                                     *[_block(hidden_dim, hidden_dim, down=True) for _ in range(num_down)])
        self.to_feature = nn.Linear(hidden_dim * steps, feature_dim)
        self.from_feature = nn.Linear(feature_dim, hidden_dim * steps)
        self.decoder = nn.Sequential(*[_block(hidden_dim, hidden_dim, down=False) for _ in range(num_down)],
                                     nn.Conv1d(hidden_dim, dim, 3, padding=1))

    def set_stats(self, stats) -> None:
        """Normalise inputs with ``stats`` (a `KeypointStats`) from now on, and save them with the model."""
        self.kp_mean.copy_(torch.as_tensor(stats.mean.reshape(-1)))
        self.kp_std.copy_(torch.as_tensor(stats.std.reshape(-1)))

    def _check(self, windows: torch.Tensor) -> torch.Tensor:
        c = self.config
        if not isinstance(windows, torch.Tensor):
            raise TypeError(f"windows must be a torch tensor, got {type(windows).__name__}")
        if windows.ndim == 4 and windows.shape[-2:] == (c.num_keypoints, 2):
            windows = windows.flatten(2)
        if windows.ndim != 3 or tuple(windows.shape[1:]) != (c.window, 2 * c.num_keypoints):
            raise ValueError(f"windows must have shape [M, {c.window}, {2 * c.num_keypoints}] or "
                             f"[M, {c.window}, {c.num_keypoints}, 2], got {tuple(windows.shape)}")
        return windows.to(self.kp_mean.dtype)

    def encode_normalized(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised windows ``[M, T, N*2]`` -> features ``[M, feature_dim]``."""
        return self.to_feature(self.encoder(x.transpose(1, 2)).flatten(1))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Features ``[M, feature_dim]`` -> normalised windows ``[M, T, N*2]``."""
        h = self.from_feature(z).view(z.shape[0], self.config.hidden_dim, -1)
        return self.decoder(h).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised windows ``[M, T, N*2]`` -> ``(reconstruction [M, T, N*2], features [M, F])``."""
        z = self.encode_normalized(x)
        return self.decode(z), z

    @torch.no_grad()
    def encode(self, windows: torch.Tensor) -> torch.Tensor:
        """Raw keypoint windows ``[M, T, N*2]`` or ``[M, T, N, 2]`` in ``[-1, 1]`` -> ``[M, feature_dim]``."""
        x = self._check(windows).to(self.kp_mean.device)
        return self.encode_normalized((x - self.kp_mean) / self.kp_std)

    def clip_features(self, keypoints: np.ndarray | torch.Tensor, fps: float | None = None,
                      batch_size: int = 256) -> np.ndarray:
        """Features of the non-overlapping windows of one clip ``[T, N, 2]``: ``[T' // window, F]``
        (empty ``[0, F]`` for a clip shorter than one window).

        A clip at another ``fps`` than the model's (``config.fps``) is first resampled to it, so
        ``T'`` is its length at ``config.fps``.
        """
        kp = np.asarray(keypoints, dtype=np.float32)
        if fps is not None and abs(fps - self.config.fps) > 1e-6:
            from difftted.data.dataset import resample_keypoints

            kp = resample_keypoints(kp, fps, self.config.fps)
        kp = torch.as_tensor(kp)
        w = self.config.window
        m = kp.shape[0] // w
        if m == 0:
            return np.zeros((0, self.config.feature_dim), dtype=np.float32)
        windows = kp[: m * w].reshape(m, w, -1)
        was_training = self.training
        self.eval()
        out = torch.cat([self.encode(windows[i:i + batch_size]) for i in range(0, m, batch_size)])
        self.train(was_training)
        return out.float().cpu().numpy()


def reconstruction_loss(model: MotionAutoencoder, x: torch.Tensor) -> torch.Tensor:
    """MSE of the reconstruction plus MSE of its frame-to-frame velocity (normalised units)."""
    recon, _ = model(x)
    return nn.functional.mse_loss(recon, x) + nn.functional.mse_loss(recon.diff(dim=1), x.diff(dim=1))


def train_motion_ae(dataset_dir: str | Path, out_dir: str | Path, *, window: int = 32, feature_dim: int = 32,
                    hidden_dim: int = 128, steps: int = 2000, batch_size: int = 64, learning_rate: float = 1e-3,
                    seed: int = 0, device: str = "cpu", progress: bool = True) -> MotionAutoencoder:
    """Train on the dataset's ``train`` windows, save to ``out_dir`` and return the model.

    ``out_dir/losses.jsonl`` gets the training loss every 50 steps and the held-out ``test``
    reconstruction loss at the end (where the dataset has a test split).
    """
    from difftted.data.windows import KeypointWindowDataset

    torch.manual_seed(seed)
    data = KeypointWindowDataset(dataset_dir, "train", window=window, context_frames=0, source_frame="start")
    model = MotionAutoencoder(num_keypoints=data.keypoint_dim // 2, window=window, hidden_dim=hidden_dim,
                              feature_dim=feature_dim, fps=float(data.manifest["fps"]))
    model.set_stats(data.stats)
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    loader = torch.utils.data.DataLoader(data, batch_size=min(batch_size, len(data)), shuffle=True, drop_last=True)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    log = (out_dir / "losses.jsonl").open("w")
    step, bar = 0, tqdm(total=steps, desc="train-motion-ae", disable=not progress)
    while step < steps:
        for batch in loader:
            loss = reconstruction_loss(model, batch["keypoints"].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            bar.update(1)
            if step % 50 == 0 or step == steps or step == 1:
                log.write(json.dumps({"step": step, "loss": loss.item()}) + "\n")
                bar.set_postfix(loss=f"{loss.item():.4f}")
            if step == steps:
                break
    bar.close()
    model.eval()
    if any(e["split"] == "test" for e in data.manifest["clips"]):
        try:
            test = KeypointWindowDataset(dataset_dir, "test", window=window, context_frames=0,
                                         stats=data.stats, stride=window, source_frame="start")
            with torch.no_grad():
                x = torch.stack([test[i]["keypoints"] for i in range(len(test))]).to(device)
                log.write(json.dumps({"step": step, "test_loss": reconstruction_loss(model, x).item()}) + "\n")
        except ValueError as err:  # test clips shorter than one window
            logger.warning("no held-out reconstruction loss: %s", err)
    log.close()
    model.save_pretrained(out_dir, safe_serialization=True)
    return model


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m difftted train-motion-ae", description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, type=Path, help="dataset folder from build-dataset")
    p.add_argument("--out", required=True, type=Path, help="folder for the model (config.json + safetensors)")
    p.add_argument("--window", type=int, default=32, help="frames per window (divisible by 8)")
    p.add_argument("--feature-dim", type=int, default=32)
    p.add_argument("--hidden-dim", type=int, default=128)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        train_motion_ae(args.data, args.out, window=args.window, feature_dim=args.feature_dim,
                        hidden_dim=args.hidden_dim, steps=args.steps, batch_size=args.batch_size,
                        learning_rate=args.lr, seed=args.seed, device=args.device, progress=not args.no_progress)
    except ValueError as err:
        print_error(err)
        return 2
    print(f"motion autoencoder saved to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
