"""Exceptions shared across subpackages, in a module that imports nothing of densitylab (so any
module can import them without an import cycle; ``densitylab.TrainingDiverged`` re-exports)."""

from __future__ import annotations

__all__ = ["TrainingDiverged"]


class TrainingDiverged(RuntimeError):
    """Training produced a non-finite loss; the model keeps its last finite parameters."""

    def __init__(self, step: int, loss: float, message: str | None = None):
        self.step = step
        self.loss = loss
        super().__init__(
            message
            or f"training diverged at step {step}: loss = {loss}; the model keeps its last finite "
            "parameters (lower the learning rate or clip gradients)"
        )
