"""Volume rendering of tri-planes: ray sampler, importance renderer and Mip ray marcher (EG3D).

Randomness (stratified depth jitter, importance sampling) is drawn through `_uniform`, from the
caller's `torch.Generator` when one is given, so a seeded unlearning run is reproducible; with
no generator it draws from the global RNG exactly as EG3D does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _uniform(shape: tuple[int, ...], *, device: torch.device, generator: torch.Generator | None) -> Tensor:
    """U[0, 1) draws; the single seam through which the renderer's randomness enters."""
    return torch.rand(shape, device=device, generator=generator)


def generate_planes() -> Tensor:
    """Plane axes [3, 3, 3]. The projections are XY, XZ and ZX, not XY/XZ/YZ (eg3d#67):
    the third plane repeats an axis pair, but released checkpoints were trained this way."""
    return torch.tensor([[[1, 0, 0], [0, 1, 0], [0, 0, 1]],
                         [[1, 0, 0], [0, 0, 1], [0, 1, 0]],
                         [[0, 0, 1], [1, 0, 0], [0, 1, 0]]], dtype=torch.float32)


def project_onto_planes(planes: Tensor, coordinates: Tensor) -> Tensor:
    """coordinates [N, M, 3] → 2-D plane coordinates [N * n_planes, M, 2]."""
    n, m, _ = coordinates.shape
    n_planes = planes.shape[0]
    coordinates = coordinates.unsqueeze(1).expand(-1, n_planes, -1, -1).reshape(n * n_planes, m, 3)
    inv_planes = torch.linalg.inv(planes).unsqueeze(0).expand(n, -1, -1, -1).reshape(n * n_planes, 3, 3)
    return torch.bmm(coordinates, inv_planes)[..., :2]


def sample_from_planes(plane_axes: Tensor, plane_features: Tensor, coordinates: Tensor,
                       box_warp: float) -> Tensor:
    """Bilinear features [N, 3, M, C] at points [N, M, 3] from planes [N, 3, C, H, W] (zeros outside)."""
    n, n_planes, c, h, w = plane_features.shape
    m = coordinates.shape[1]
    plane_features = plane_features.view(n * n_planes, c, h, w)
    coordinates = (2 / box_warp) * coordinates
    projected = project_onto_planes(plane_axes, coordinates).unsqueeze(1)
    out = F.grid_sample(plane_features, projected.float(), mode="bilinear", padding_mode="zeros",
                        align_corners=False)
    return out.permute(0, 3, 2, 1).reshape(n, n_planes, m, c)


def ray_limits_box(rays_o: Tensor, rays_d: Tensor, box_side_length: float) -> tuple[Tensor, Tensor]:
    """Entry/exit distances of rays through the axis-aligned box (for ray_start = ray_end = 'auto');
    -1 / -2 where a ray misses."""
    shape = rays_o.shape
    rays_o, rays_d = rays_o.detach().reshape(-1, 3), rays_d.detach().reshape(-1, 3)
    half = box_side_length / 2
    bounds = torch.tensor([[-half] * 3, [half] * 3], dtype=rays_o.dtype, device=rays_o.device)
    is_valid = torch.ones(rays_o.shape[:-1], dtype=torch.bool, device=rays_o.device)
    invdir = 1 / rays_d
    sign = (invdir < 0).long()
    tmin = tmax = None
    for axis in range(3):
        t0 = (bounds.index_select(0, sign[..., axis])[..., axis] - rays_o[..., axis]) * invdir[..., axis]
        t1 = (bounds.index_select(0, 1 - sign[..., axis])[..., axis] - rays_o[..., axis]) * invdir[..., axis]
        if tmin is None:
            tmin, tmax = t0, t1
            continue
        is_valid[torch.logical_or(tmin > t1, t0 > tmax)] = False
        tmin, tmax = torch.max(tmin, t0), torch.min(tmax, t1)
    tmin[~is_valid] = -1
    tmax[~is_valid] = -2
    return tmin.reshape(*shape[:-1], 1), tmax.reshape(*shape[:-1], 1)


class RaySampler(nn.Module):
    """Pixel-centre rays for cam2world [N, 4, 4] (OpenCV convention) and normalised intrinsics [N, 3, 3]."""

    def forward(self, cam2world_matrix: Tensor, intrinsics: Tensor, resolution: int) -> tuple[Tensor, Tensor]:
        n, m = cam2world_matrix.shape[0], resolution ** 2
        device = cam2world_matrix.device
        cam_locs_world = cam2world_matrix[:, :3, 3]
        fx, fy = intrinsics[:, 0, 0], intrinsics[:, 1, 1]
        cx, cy, sk = intrinsics[:, 0, 2], intrinsics[:, 1, 2], intrinsics[:, 0, 1]
        axis = torch.arange(resolution, dtype=torch.float32, device=device)
        uv = torch.stack(torch.meshgrid(axis, axis, indexing="ij")) * (1.0 / resolution) + (0.5 / resolution)
        uv = uv.flip(0).reshape(2, -1).transpose(1, 0).unsqueeze(0).repeat(n, 1, 1)  # [N, M, 2] as (x, y)
        x_cam, y_cam = uv[:, :, 0].view(n, -1), uv[:, :, 1].view(n, -1)
        z_cam = torch.ones((n, m), device=device)
        fx, fy, cx, cy, sk = (t.unsqueeze(-1) for t in (fx, fy, cx, cy, sk))
        x_lift = (x_cam - cx + cy * sk / fy - sk * y_cam / fy) / fx * z_cam
        y_lift = (y_cam - cy) / fy * z_cam
        cam_rel_points = torch.stack((x_lift, y_lift, z_cam, torch.ones_like(z_cam)), dim=-1)
        world_rel_points = torch.bmm(cam2world_matrix, cam_rel_points.permute(0, 2, 1)).permute(0, 2, 1)[:, :, :3]
        ray_dirs = F.normalize(world_rel_points - cam_locs_world[:, None, :], dim=2)
        ray_origins = cam_locs_world.unsqueeze(1).repeat(1, ray_dirs.shape[1], 1)
        return ray_origins, ray_dirs


class MipRayMarcher2(nn.Module):
    """Midpoint-rule compositing with softplus(σ − 1) densities; colours mapped to [-1, 1]."""

    def forward(self, colors: Tensor, densities: Tensor, depths: Tensor,
                rendering_options: dict) -> tuple[Tensor, Tensor, Tensor]:
        deltas = depths[:, :, 1:] - depths[:, :, :-1]
        colors_mid = (colors[:, :, :-1] + colors[:, :, 1:]) / 2
        densities_mid = (densities[:, :, :-1] + densities[:, :, 1:]) / 2
        depths_mid = (depths[:, :, :-1] + depths[:, :, 1:]) / 2
        if rendering_options["clamp_mode"] != "softplus":
            raise ValueError("MipRayMarcher2 only supports clamp_mode='softplus'")
        densities_mid = F.softplus(densities_mid - 1)  # the -1 bias helps initialisation
        alpha = 1 - torch.exp(-densities_mid * deltas)
        alpha_shifted = torch.cat([torch.ones_like(alpha[:, :, :1]), 1 - alpha + 1e-10], -2)
        weights = alpha * torch.cumprod(alpha_shifted, -2)[:, :, :-1]
        composite_rgb = torch.sum(weights * colors_mid, -2)
        weight_total = weights.sum(2)
        composite_depth = torch.sum(weights * depths_mid, -2) / weight_total
        composite_depth = torch.nan_to_num(composite_depth, float("inf"))
        composite_depth = torch.clamp(composite_depth, torch.min(depths), torch.max(depths))
        if rendering_options.get("white_back", False):
            composite_rgb = composite_rgb + 1 - weight_total
        return composite_rgb * 2 - 1, composite_depth, weights


class ImportanceRenderer(nn.Module):
    """Coarse stratified pass, then importance samples from the coarse weights; both composited."""

    def __init__(self) -> None:
        super().__init__()
        self.ray_marcher = MipRayMarcher2()
        self.plane_axes = generate_planes()  # a plain attribute, not a buffer: absent from state_dict

    def forward(self, planes: Tensor, decoder: nn.Module, ray_origins: Tensor, ray_directions: Tensor,
                rendering_options: dict, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """planes [N, 3, C, H, W], rays [N, M, 3] → rgb/features [N, M, C'], depth [N, M, 1], weight sum [N, M, 1]."""
        self.plane_axes = self.plane_axes.to(ray_origins.device)
        opts = rendering_options
        if opts["ray_start"] == opts["ray_end"] == "auto":
            ray_start, ray_end = ray_limits_box(ray_origins, ray_directions, box_side_length=opts["box_warp"])
            is_ray_valid = ray_end > ray_start
            if torch.any(is_ray_valid).item():
                ray_start[~is_ray_valid] = ray_start[is_ray_valid].min()
                ray_end[~is_ray_valid] = ray_start[is_ray_valid].max()
        else:
            ray_start, ray_end = opts["ray_start"], opts["ray_end"]
        depths_coarse = self.sample_stratified(ray_origins, ray_start, ray_end, opts["depth_resolution"],
                                               opts["disparity_space_sampling"], generator=generator)
        batch_size, num_rays, samples_per_ray, _ = depths_coarse.shape
        colors_coarse, densities_coarse = self._evaluate(planes, decoder, ray_origins, ray_directions,
                                                         depths_coarse, opts)
        n_importance = opts["depth_resolution_importance"]
        if n_importance <= 0:
            rgb, depth, weights = self.ray_marcher(colors_coarse, densities_coarse, depths_coarse, opts)
            return rgb, depth, weights.sum(2)
        _, _, weights = self.ray_marcher(colors_coarse, densities_coarse, depths_coarse, opts)
        depths_fine = self.sample_importance(depths_coarse, weights, n_importance, generator=generator)
        colors_fine, densities_fine = self._evaluate(planes, decoder, ray_origins, ray_directions, depths_fine, opts)
        all_depths, all_colors, all_densities = self.unify_samples(depths_coarse, colors_coarse, densities_coarse,
                                                                   depths_fine, colors_fine, densities_fine)
        rgb, depth, weights = self.ray_marcher(all_colors, all_densities, all_depths, opts)
        return rgb, depth, weights.sum(2)

    def _evaluate(self, planes: Tensor, decoder: nn.Module, ray_origins: Tensor, ray_directions: Tensor,
                  depths: Tensor, opts: dict) -> tuple[Tensor, Tensor]:
        """Decode the samples at `depths` [N, M, S, 1] → colours [N, M, S, C], densities [N, M, S, 1]."""
        n, m, s, _ = depths.shape
        coordinates = (ray_origins.unsqueeze(-2) + depths * ray_directions.unsqueeze(-2)).reshape(n, -1, 3)
        directions = ray_directions.unsqueeze(-2).expand(-1, -1, s, -1).reshape(n, -1, 3)
        out = self.run_model(planes, decoder, coordinates, directions, opts)
        return out["rgb"].reshape(n, m, s, out["rgb"].shape[-1]), out["sigma"].reshape(n, m, s, 1)

    def run_model(self, planes: Tensor, decoder: nn.Module, sample_coordinates: Tensor,
                  sample_directions: Tensor, options: dict) -> dict[str, Tensor]:
        sampled = sample_from_planes(self.plane_axes, planes, sample_coordinates, box_warp=options["box_warp"])
        out = decoder(sampled, sample_directions)
        if options.get("density_noise", 0) > 0:
            out["sigma"] += torch.randn_like(out["sigma"]) * options["density_noise"]
        return out

    @staticmethod
    def unify_samples(depths1: Tensor, colors1: Tensor, densities1: Tensor, depths2: Tensor, colors2: Tensor,
                      densities2: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        all_depths = torch.cat([depths1, depths2], dim=-2)
        all_colors = torch.cat([colors1, colors2], dim=-2)
        all_densities = torch.cat([densities1, densities2], dim=-2)
        _, indices = torch.sort(all_depths, dim=-2)
        all_depths = torch.gather(all_depths, -2, indices)
        all_colors = torch.gather(all_colors, -2, indices.expand(-1, -1, -1, all_colors.shape[-1]))
        all_densities = torch.gather(all_densities, -2, indices.expand(-1, -1, -1, 1))
        return all_depths, all_colors, all_densities

    @staticmethod
    def sample_stratified(ray_origins: Tensor, ray_start: float | Tensor, ray_end: float | Tensor,
                          depth_resolution: int, disparity_space_sampling: bool = False,
                          generator: torch.Generator | None = None) -> Tensor:
        """Evenly spaced depths [N, M, D, 1] jittered by U[0, 1) × spacing."""
        n, m, _ = ray_origins.shape
        device = ray_origins.device
        if disparity_space_sampling:
            depths = torch.linspace(0, 1, depth_resolution, device=device).reshape(1, 1, depth_resolution, 1)
            depths = depths.repeat(n, m, 1, 1)
            depths += _uniform(depths.shape, device=device, generator=generator) * (1 / (depth_resolution - 1))
            return 1.0 / (1.0 / ray_start * (1.0 - depths) + 1.0 / ray_end * depths)
        if isinstance(ray_start, Tensor):
            steps = torch.arange(depth_resolution, dtype=torch.float32, device=device) / (depth_resolution - 1)
            steps = steps.reshape(-1, *([1] * ray_start.ndim))
            depths = (ray_start[None] + steps * (ray_end - ray_start)[None]).permute(1, 2, 0, 3)
            delta = ((ray_end - ray_start) / (depth_resolution - 1))[..., None]
        else:
            depths = torch.linspace(ray_start, ray_end, depth_resolution, device=device)
            depths = depths.reshape(1, 1, depth_resolution, 1).repeat(n, m, 1, 1)
            delta = (ray_end - ray_start) / (depth_resolution - 1)
        return depths + _uniform(depths.shape, device=device, generator=generator) * delta

    def sample_importance(self, z_vals: Tensor, weights: Tensor, n_importance: int,
                          generator: torch.Generator | None = None) -> Tensor:
        """Depths [N, M, n_importance, 1] drawn from the smoothed coarse weights (no gradient)."""
        with torch.no_grad():
            batch_size, num_rays, samples_per_ray, _ = z_vals.shape
            z_vals = z_vals.reshape(batch_size * num_rays, samples_per_ray)
            weights = weights.reshape(batch_size * num_rays, -1)
            weights = F.max_pool1d(weights.unsqueeze(1).float(), 2, 1, padding=1)
            weights = F.avg_pool1d(weights, 2, 1).squeeze()
            weights = weights + 0.01
            z_vals_mid = 0.5 * (z_vals[:, :-1] + z_vals[:, 1:])
            samples = self.sample_pdf(z_vals_mid, weights[:, 1:-1], n_importance, generator=generator)
            return samples.detach().reshape(batch_size, num_rays, n_importance, 1)

    @staticmethod
    def sample_pdf(bins: Tensor, weights: Tensor, n_importance: int, det: bool = False, eps: float = 1e-5,
                   generator: torch.Generator | None = None) -> Tensor:
        """Inverse-CDF sampling: bins [R, S+1], weights [R, S] → samples [R, n_importance]."""
        n_rays, n_samples = weights.shape
        weights = weights + eps
        pdf = weights / torch.sum(weights, -1, keepdim=True)
        cdf = torch.cat([torch.zeros_like(pdf[:, :1]), torch.cumsum(pdf, -1)], -1)
        if det:
            u = torch.linspace(0, 1, n_importance, device=bins.device).expand(n_rays, n_importance)
        else:
            u = _uniform((n_rays, n_importance), device=bins.device, generator=generator)
        u = u.contiguous()
        inds = torch.searchsorted(cdf, u, right=True)
        below, above = torch.clamp_min(inds - 1, 0), torch.clamp_max(inds, n_samples)
        inds_sampled = torch.stack([below, above], -1).view(n_rays, 2 * n_importance)
        cdf_g = torch.gather(cdf, 1, inds_sampled).view(n_rays, n_importance, 2)
        bins_g = torch.gather(bins, 1, inds_sampled).view(n_rays, n_importance, 2)
        denom = cdf_g[..., 1] - cdf_g[..., 0]
        denom[denom < eps] = 1  # a zero-weight bin is never sampled; any value works
        return bins_g[..., 0] + (u - cdf_g[..., 0]) / denom * (bins_g[..., 1] - bins_g[..., 0])
