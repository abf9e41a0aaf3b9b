"""Named generator configurations: the official ffhq512-128 and the embedded `tiny` stand-in world.

`tiny` is the same architecture with small channel counts, 64² tri-planes (so num_ws = 10
instead of 14), 12+12 depth samples, a 32² neural rendering and a 2× SR head to 128². Its weights are an UNTRAINED seeded initialisation (with
w_avg set to the mean mapping output, as training would): it renders noise-like volumes, not
faces. It exists so the whole pipeline runs on a fresh CPU machine with nothing downloaded.
"""

from __future__ import annotations

import copy

import torch

from guide_ray.models.eg3d.camera import frontal_camera
from guide_ray.models.eg3d.triplane import TriPlaneGenerator

_FFHQ_RENDERING = {
    "image_resolution": 512, "disparity_space_sampling": False, "clamp_mode": "softplus",
    "superresolution_module": "training.superresolution.SuperresolutionHybrid8XDC",
    "c_gen_conditioning_zero": False, "gpc_reg_prob": 0.8, "c_scale": 1, "superresolution_noise_mode": "none",
    "density_reg": 0.25, "density_reg_p_dist": 0.004, "reg_type": "l1", "decoder_lr_mul": 1,
    "sr_antialias": True, "depth_resolution": 48, "depth_resolution_importance": 48,
    "ray_start": 2.25, "ray_end": 3.3, "box_warp": 1, "avg_camera_radius": 2.7, "avg_camera_pivot": [0, 0, 0.2],
}

# NVlabs/eg3d train.py with --cfg=ffhq --gen_pose_cond=True --neural_rendering_resolution_final=128.
FFHQ512_128 = {
    "z_dim": 512, "w_dim": 512, "mapping_kwargs": {"num_layers": 2}, "channel_base": 32768, "channel_max": 512,
    "fused_modconv_default": "inference_only", "rendering_kwargs": _FFHQ_RENDERING, "num_fp16_res": 0,
    "sr_num_fp16_res": 4, "sr_kwargs": {"channel_base": 32768, "channel_max": 512,
                                        "fused_modconv_default": "inference_only"},
    "conv_clamp": None, "c_dim": 25, "img_resolution": 512, "img_channels": 3,
}

TINY = {
    **FFHQ512_128,
    "z_dim": 64, "mapping_kwargs": {"num_layers": 2, "layer_features": 64}, "plane_resolution": 64,
    "channel_base": 1024, "channel_max": 32, "img_resolution": 128,
    "sr_kwargs": {"channel_base": 1024, "channel_max": 32, "fused_modconv_default": "inference_only"},
    "rendering_kwargs": {**_FFHQ_RENDERING, "image_resolution": 128, "depth_resolution": 12,
                         "depth_resolution_importance": 12,
                         "superresolution_module": "training.superresolution.SuperresolutionHybrid2X"},
}

PRESETS: dict[str, tuple[dict, int]] = {  # name -> (init_kwargs, neural_rendering_resolution)
    "ffhq512-128": (FFHQ512_128, 128),
    "tiny": (TINY, 32),
}
TINY_SEED = 0
W_AVG_SAMPLES = 1000


def build_generator(name: str, seed: int = TINY_SEED) -> TriPlaneGenerator:
    """A freshly initialised generator of preset `name` (eval mode, CPU), reproducible from `seed`.

    Weights come from `seed` (construction never touches the global RNG), and `w_avg` is set to the
    mean mapping output of 1000 seeded latents. For ffhq512-128 this is an untrained network of the
    official shape; real weights come from `load_eg3d`.
    """
    if name not in PRESETS:
        raise KeyError(f"unknown generator preset {name!r}; available: {', '.join(PRESETS)}")
    init_kwargs, neural_rendering_resolution = PRESETS[name]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        G = TriPlaneGenerator(**copy.deepcopy(init_kwargs))
    G.neural_rendering_resolution = neural_rendering_resolution
    rng = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        z = torch.randn([W_AVG_SAMPLES, G.z_dim], generator=rng)
        w = G.backbone.mapping(z, frontal_camera(W_AVG_SAMPLES))[:, 0]
        G.backbone.mapping.w_avg.copy_(w.mean(0))
    return G.eval().requires_grad_(False)
