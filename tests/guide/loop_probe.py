"""Two unlearning steps observed from outside: which parameters trained, and what changed."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from guide_ray.config.guide import GuideConfig
from guide_ray.guide.loop import unlearn


@dataclass
class TwoSteps:
    trainable: set[str]                   # G_u's parameters with requires_grad during the steps
    before: dict[str, torch.Tensor]       # G_u's state before
    after: dict[str, torch.Tensor]        # G_u's state after
    source_unchanged: bool                # G_s bit-identical afterwards

    @property
    def changed(self) -> set[str]:
        return {k for k in self.after if not torch.equal(self.after[k], self.before[k])}

    def untouched(self, keys) -> bool:
        return all(torch.equal(self.after[k], self.before[k]) for k in keys)


def two_steps(G_s, G_u, w_u, rng: torch.Generator, nets) -> TwoSteps:
    """Run 2 steps at lr 1e-3 and record what the loop trained and changed."""
    before = {k: v.clone() for k, v in G_u.state_dict().items()}
    source = {k: v.clone() for k, v in G_s.state_dict().items()}
    seen: set[str] = set()

    def spy(step, parts) -> bool:
        seen.update(n for n, p in G_u.named_parameters() if p.requires_grad)
        return False

    unlearn(G_u, G_s, w_u, GuideConfig(iterations=2, lr=1e-3), nets, rng=rng, on_step=spy)
    unchanged = all(torch.equal(v, source[k]) for k, v in G_s.state_dict().items())
    return TwoSteps(seen, before, G_u.state_dict(), unchanged)
