"""Value types that cards pass along links, beyond plain torch and pandas objects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


#: Optimizer Step counts an optimizer's steps on the optimizer itself; the optimizer codec keeps the count.
OPTIMIZER_STEPS_ATTR = "_cardloop_steps"


@dataclass(frozen=True)
class Batch:
    """A batch (`batch` kind): float32 features `X` (rows, features) and targets `y` (rows, targets)."""

    X: Any
    y: Any

    def to(self, device: Any) -> "Batch":
        return Batch(self.X.to(device), self.y.to(device))
