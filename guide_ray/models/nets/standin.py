"""Stand-in loss networks for the embedded default: untrained, seeded, CPU-cheap, labelled.

They exist so that `make demo` and the test-suite run with nothing downloaded. Their numbers
are NOT comparable with the paper's: every output that used them says so (`stand_in=True`).
"""

from __future__ import annotations

import warnings

import lpips
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from guide_ray.models.nets.base import FrozenNet

STANDIN_SEED = 20240617


def _seeded(build):
    """Build a module under a private RNG state so construction never touches global randomness."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(STANDIN_SEED)
        return build()


class StandInPerceptual(FrozenNet):
    """LPIPS (the `lpips` package, v0.1 calibrated linear heads) on a seeded *random* AlexNet trunk.

    The real backend is LPIPS-VGG with ImageNet weights; AlexNet is used here because it is ~20x
    cheaper on CPU, and a random trunk because no ImageNet weights can be downloaded.
    """

    name = "stand-in:lpips-alex-random-trunk"
    stand_in = True

    def __init__(self) -> None:
        super().__init__()
        with warnings.catch_warnings():  # lpips passes torchvision the deprecated `pretrained=False`
            warnings.filterwarnings("ignore", category=UserWarning, module="torchvision.models._utils")
            self.lpips = _seeded(lambda: lpips.LPIPS(net="alex", pnet_rand=True, verbose=False))
        self.freeze()

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self.lpips(x, y).flatten()


class StandInIdentity(FrozenNet):
    """A seeded random 4-layer CNN → 512-d unit vectors, behind GUIDE's IDLoss crop.

    Preprocessing mirrors GUIDE's identity loss (bilinear 256, crop rows 35:223 and columns
    32:220, adaptive average pool to 112) so crops and resolutions behave as with IR-SE50.
    """

    name = "stand-in:random-cnn-512"
    stand_in = True

    def __init__(self, dim: int = 512) -> None:
        super().__init__()

        def build() -> nn.Sequential:
            chans = [3, 32, 64, 128, 256]
            layers: list[nn.Module] = []
            for c_in, c_out in zip(chans[:-1], chans[1:]):
                layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
            return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(chans[-1], dim))

        self.net = _seeded(build)
        self.pool = nn.AdaptiveAvgPool2d((112, 112))
        self.freeze()

    def forward(self, x: Tensor) -> Tensor:
        x = F.interpolate(x, size=(256, 256), mode="bilinear", align_corners=False)
        x = self.pool(x[:, :, 35:223, 32:220])
        return F.normalize(self.net(x), dim=1)
