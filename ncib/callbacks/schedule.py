"""When to analyse: an explicit list of epochs, or every n epochs (and optionally epoch 0)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["AnalysisSchedule"]


class AnalysisSchedule:
    """Epoch ``e`` means "after ``e`` completed training epochs"; ``0`` is the initialisation.

    Args:
        epochs: explicit epochs to analyse, exactly these (wins over ``every_n_epochs``;
            list 0 to analyse the initialisation).
        every_n_epochs: analyse at ``n, 2n, …`` and at the last epoch.
        at_init: with ``every_n_epochs``, also analyse epoch 0 (before any training).
    """

    def __init__(
        self,
        epochs: Sequence[int] | None = None,
        every_n_epochs: int | None = None,
        at_init: bool = False,
    ):
        if epochs is None and every_n_epochs is None:
            raise ValueError(
                "give analysis.epochs (a list) or analysis.every_n_epochs (an integer)"
            )
        if epochs is not None:
            epochs = sorted({int(e) for e in epochs})
            if epochs and epochs[0] < 0:
                raise ValueError(f"analysis.epochs must be >= 0; got {epochs}")
        elif int(every_n_epochs) < 1:
            raise ValueError(f"analysis.every_n_epochs must be >= 1; got {every_n_epochs}")
        self.epochs = epochs
        self.every_n_epochs = None if every_n_epochs is None else int(every_n_epochs)
        self.at_init = bool(at_init)

    def due(self, epoch: int, max_epochs: int | None = None) -> bool:
        if self.epochs is not None:
            return epoch in self.epochs
        if epoch == 0:
            return self.at_init
        return epoch % self.every_n_epochs == 0 or (max_epochs is not None and epoch == max_epochs)

    def planned(self, max_epochs: int) -> list[int]:
        """Every epoch in ``0..max_epochs`` that will be analysed."""
        return [e for e in range(max_epochs + 1) if self.due(e, max_epochs)]

    def __repr__(self) -> str:
        if self.epochs is not None:
            return f"AnalysisSchedule(epochs={self.epochs}, at_init={self.at_init})"
        return f"AnalysisSchedule(every_n_epochs={self.every_n_epochs}, at_init={self.at_init})"
