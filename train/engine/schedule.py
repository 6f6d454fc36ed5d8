"""Learning-rate schedule: linear warm-up, then poly (power 0.9) or cosine decay to 0."""

from __future__ import annotations

import math

import torch


class LRSchedule:
    """Sets each parameter group's lr to ``base_lr * factor(step)``; its state is the step."""

    def __init__(self, optimizer: torch.optim.Optimizer, total_steps: int, kind: str, warmup_steps: int) -> None:
        """``kind`` and ``warmup_steps``: ``train.optim.schedule`` / ``warmup_steps``; base lrs are the groups' current lrs."""
        if kind not in ("poly", "cosine"):
            raise ValueError(f"unknown schedule {kind!r}")
        self.optimizer = optimizer
        self.total = max(1, total_steps)
        self.kind = kind
        self.warmup = warmup_steps
        self.base = [group["lr"] for group in optimizer.param_groups]
        self.step_count = 0
        self._apply()

    def factor(self, step: int) -> float:
        """Multiplier of the base learning rates at ``step`` (0-based)."""
        warm = min(1.0, (step + 1) / self.warmup) if self.warmup > 0 else 1.0
        progress = min(1.0, step / self.total)
        decay = (1.0 - progress) ** 0.9 if self.kind == "poly" else 0.5 * (1.0 + math.cos(math.pi * progress))
        return warm * decay

    def _apply(self) -> None:
        f = self.factor(self.step_count)
        for group, base in zip(self.optimizer.param_groups, self.base):
            group["lr"] = base * f

    def step(self) -> None:
        """Advance one step and set the groups' learning rates."""
        self.step_count += 1
        self._apply()

    def state_dict(self) -> dict:
        """Step, base learning rates, total steps, kind and warm-up (checkpoints)."""
        return {"step": self.step_count, "base": list(self.base), "total": self.total, "kind": self.kind, "warmup": self.warmup}

    def load_state_dict(self, state: dict) -> None:
        """Restore the step and base learning rates of :meth:`state_dict` and apply them."""
        self.step_count = int(state["step"])
        self.base = [float(b) for b in state["base"]]
        self._apply()
