"""The world's networks behind the interfaces the unlearning core and the metrics already speak.

ID loss = the `id_loss` identity network; ID metric = the differently seeded `id_metric` network
(as GUIDE optimises IR-SE50 but measures CurricularFace); LPIPS = LPIPS's uncalibrated form on
the `id_loss` trunk; FID features = the pooled last stage of the `id_metric` trunk. None of them is
a stand-in: they are trained, in the world, on renderer images (docs/world.md says what that does
and does not mean). None of them needs face alignment: renders are framed as the training data.
"""

from __future__ import annotations

from torch import Tensor

from guide_ray.models.nets.base import FrozenNet, LossNets
from guide_ray.world.idnet import EMBED_DIM, CHANNELS, WorldIdentityNet, fid_features, perceptual_distance


class WorldPerceptual(FrozenNet):
    name = "world:lpips-idnet-trunk"
    stand_in = False

    def __init__(self, net: WorldIdentityNet) -> None:
        super().__init__()
        self.net = net
        self.freeze()

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return perceptual_distance(self.net, x, y)


class WorldIdentity(FrozenNet):
    stand_in = False
    dim = EMBED_DIM

    def __init__(self, net: WorldIdentityNet, role: str) -> None:
        super().__init__()
        self.net, self.name = net, f"world:idnet-{role}"
        self.freeze()

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class WorldFidFeatures(FrozenNet):
    """uint8 [B, 3, H, W] → float32 [B, 128] on the CPU, like the Inception extractors."""

    name = "world:idnet-metric-trunk-pool"
    stand_in = False
    dim = CHANNELS[-1]

    def __init__(self, net: WorldIdentityNet) -> None:
        super().__init__()
        self.net = net
        self.freeze()

    def forward(self, images: Tensor) -> Tensor:
        if images.dtype.is_floating_point or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected uint8 [B, 3, H, W] images, got {images.dtype} {tuple(images.shape)}")
        x = images.to(next(self.net.parameters()).device).float() / 127.5 - 1
        return fid_features(self.net, x).float().cpu()


def world_loss_nets(id_loss: WorldIdentityNet) -> LossNets:
    """GUIDE's loss networks in the world: its LPIPS and its ID loss, both on the `id_loss` network."""
    return LossNets(WorldPerceptual(id_loss), WorldIdentity(id_loss, "id_loss"))
