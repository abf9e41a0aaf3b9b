"""GUIDE's face alignment for the ID metric: MTCNN landmarks → similarity warp onto a 112×112 crop.

GUIDE's `IDSimNet` detects faces with MTCNN (P/R/O-Net of Zhang et al. 2016, stage thresholds
0.15 / 0.25 / 0.35, pyramid factor 0.707, smallest face 20 px), takes the best face's five
landmarks and warps the image with the similarity transform (least squares) that maps them onto
the five InsightFace / TreB1eN `default_square` reference points of a 112×112 crop (bilinear,
black border). The networks and their original weights come from the facenet-pytorch wheel
(`facenet_pytorch/data/{pnet,rnet,onet}.pt`, loaded here with weights_only=True); fitting and
warping are batched torch (`affine_grid` / `grid_sample`). The transform excludes reflections.
Non-maximum suppression is facenet-pytorch's: 0.5 within one pyramid scale, then 0.7, 0.7 and
0.7 ("min" overlap) after the stages, where GUIDE's port uses 0.7 at every step; both keep the
best-scoring face, which is the one used.

Detection runs on the image as saved (8-bit RGB), as GUIDE's metric reads its PNGs. Must not
import ray.
"""

from __future__ import annotations

import functools
from importlib import resources

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

THRESHOLDS = (0.15, 0.25, 0.35)   # GUIDE's P-, R-, O-Net score thresholds (mtcnn/mtcnn.py)
FACTOR = 0.707                    # image-pyramid scale step
MIN_FACE = 20                     # smallest face searched, in pixels
CROP = 112
# InsightFace's 96×112 five points (eyes, nose, mouth corners) with default_square: x + 8 → 112×112
REFERENCE_POINTS = torch.tensor([
    [38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041],
])


class FaceDetector(nn.Module):
    """MTCNN's three networks with GUIDE's detection settings; `landmarks(images)` per image."""

    def __init__(self) -> None:
        super().__init__()
        from facenet_pytorch.models.mtcnn import ONet, PNet, RNet

        self.pnet, self.rnet, self.onet = PNet(pretrained=False), RNet(pretrained=False), ONet(pretrained=False)
        data = resources.files("facenet_pytorch") / "data"
        for net, name in ((self.pnet, "pnet"), (self.rnet, "rnet"), (self.onet, "onet")):
            with resources.as_file(data / f"{name}.pt") as path:
                net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        self.requires_grad_(False).eval()

    @torch.no_grad()
    def landmarks(self, pixels: Tensor) -> tuple[Tensor, Tensor]:
        """pixels [B, H, W, 3] float in [0, 255] → (points [B, 5, 2] in pixels (x, y), found [B] bool).

        Of several faces, the one with the highest O-Net score is kept (GUIDE takes the first
        returned, which is the same after its score-ordered NMS). No face: zeros, found False.
        """
        from facenet_pytorch.models.utils.detect_face import detect_face

        device = next(self.parameters()).device
        boxes, points = detect_face(pixels.to(device), MIN_FACE, self.pnet, self.rnet, self.onet,
                                    list(THRESHOLDS), FACTOR, device)
        out = torch.zeros(len(pixels), 5, 2)
        found = torch.zeros(len(pixels), dtype=torch.bool)
        for i, (b, p) in enumerate(zip(boxes, points, strict=True)):
            if len(b):
                best = int(np.argmax(b[:, 4]))
                out[i] = torch.as_tensor(np.asarray(p[best], dtype=np.float32))
                found[i] = True
        return out, found


@functools.lru_cache(maxsize=4)
def face_detector(device: str) -> FaceDetector:
    """One detector per device per process (the weights are read once)."""
    return FaceDetector().to(device)


def similarity_transform(src: Tensor, dst: Tensor) -> Tensor:
    """Least-squares similarity (scale, rotation, translation; no reflection) mapping src → dst.

    src, dst [B, N, 2] → M [B, 2, 3] with dst ≈ M @ [x, y, 1]: x' = a x − b y + tx, y' = b x + a y + ty,
    the linear form of MATLAB's cp2tform('nonreflective similarity').
    """
    x, y = src[..., 0], src[..., 1]
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    rows_x = torch.stack([x, -y, one, zero], dim=-1)                    # [B, N, 4]
    rows_y = torch.stack([y, x, zero, one], dim=-1)
    A = torch.cat([rows_x, rows_y], dim=1).double()                      # [B, 2N, 4]
    rhs = torch.cat([dst[..., 0], dst[..., 1]], dim=1).double().unsqueeze(-1)
    a, b, tx, ty = torch.linalg.lstsq(A, rhs).solution.squeeze(-1).unbind(-1)
    M = torch.stack([torch.stack([a, -b, tx], -1), torch.stack([b, a, ty], -1)], dim=1)
    return M.to(src.dtype)


def warp_affine(images: Tensor, M: Tensor, size: int) -> Tensor:
    """OpenCV-style warpAffine: out[v, u] = images at M⁻¹(u, v) (pixel-centre coordinates),
    bilinear, black border. images [B, C, H, W] in [-1, 1], M [B, 2, 3] → [B, C, size, size]."""
    B, _, H, W = images.shape
    full = torch.cat([M.double(), M.new_tensor([0.0, 0.0, 1.0]).double().expand(B, 1, 3)], dim=1)
    inv = torch.linalg.inv(full)                                          # crop pixel → image pixel
    # normalised output coords (align_corners=False) → crop pixels → image pixels → normalised input
    to_pixels = full.new_tensor([[size / 2, 0, (size - 1) / 2], [0, size / 2, (size - 1) / 2], [0, 0, 1]])
    to_norm = full.new_tensor([[2 / W, 0, 1 / W - 1], [0, 2 / H, 1 / H - 1], [0, 0, 1]])
    theta = (to_norm @ inv @ to_pixels)[:, :2].to(images.dtype)            # [B, 2, 3]
    grid = F.affine_grid(theta, [B, images.shape[1], size, size], align_corners=False)
    warped = F.grid_sample(images + 1, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return warped - 1                                                     # zero padding = black (-1)


@torch.no_grad()
def align_faces(images: Tensor) -> tuple[Tensor, Tensor]:
    """images [B, 3, H, W] in [-1, 1] → (aligned [B, 3, 112, 112] in [-1, 1], found [B] bool).

    Where no face is found the crop is black (all −1) and found is False; the caller decides the
    fallback (the ID metric uses the ID-loss crop and counts the view).
    """
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"expected [B, 3, H, W] images, got {tuple(images.shape)}")
    pixels = (images.float() * 127.5 + 128).clamp(0, 255).floor()        # the saved 8-bit image
    points, found = face_detector(str(images.device)).landmarks(pixels.permute(0, 2, 3, 1))
    M = similarity_transform(points, REFERENCE_POINTS.expand(len(images), 5, 2))
    M[~found] = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]])                  # keep the solve finite
    aligned = warp_affine(images.float(), M.to(images.device), CROP)
    aligned[~found.to(images.device)] = -1
    return aligned, found.to(images.device)
