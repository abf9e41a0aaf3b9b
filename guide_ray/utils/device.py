"""The one device resolution: a job's or the CLI's 'auto' / 'cpu' / 'cuda' → a torch device string."""

from __future__ import annotations


def pick_device(requested: str, gpu_ids: tuple[str, ...] | None = None) -> str:
    """'cpu' or 'cuda:0'.

    `gpu_ids` are the GPUs Ray gave an actor (Ray sets CUDA_VISIBLE_DEVICES, so the first is
    cuda:0); None outside Ray, where every local GPU is usable. 'auto' falls back to the CPU when
    an actor got no GPU or the GPUs are only logical (a CPU-only test cluster). 'cuda' is passed
    through even without CUDA: the Pipeline then refuses it with a clear error.
    """
    if requested == "cpu" or (requested == "auto" and gpu_ids is not None and not gpu_ids):
        return "cpu"
    if requested == "cuda":
        return "cuda:0"
    import torch  # only callers that may use a GPU pay for this import

    return "cuda:0" if torch.cuda.is_available() else "cpu"
