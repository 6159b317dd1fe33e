"""How the pair is analysed (the ``analysis.*`` settings), apart from the engine so that the
configuration checks (:mod:`ncib.engine.plan`, :mod:`ncib.config`) build them without
importing Lightning or the feature extraction: a bad command line fails in seconds."""

from __future__ import annotations

from dataclasses import dataclass, field

from ncib.analysis.intervals import IntervalSettings, interval_settings

__all__ = ["PRECISIONS", "AnalysisSettings"]

PRECISIONS = ("float32", "float64")  # analysis.precision: the dtype of the analysis's products


@dataclass(frozen=True)
class AnalysisSettings:
    """How the pair is analysed (the ``analysis.*`` config keys).

    Attributes:
        k: dimension of T_K and number of leading canonical correlations summarised
            (None: the number of classes K).
        max_samples: analyse a stratified training subset of at most this many samples,
            the same rows at every epoch and for both members (None: all).
        ridge: relative ridge ε of every covariance.
        precision: the dtype of the analysis's products (one of :data:`PRECISIONS`):
            ``float32`` analyses the features as extracted (class-centred float32 products
            with float64 corrections); ``float64`` casts both members' features on both
            splits to float64 once after extraction, so that every product is float64 (a
            sharded analysis then gives the records of one process to ~1e-9; twice the
            feature memory, docs/design.md §3b).
        progress: log progress and show progress bars.
        intervals: how the held-out numbers' intervals are measured (an
            :class:`~ncib.analysis.IntervalSettings` or a mapping of its fields, the
            ``analysis.intervals`` keys; None: no intervals, their keys are NaN).
    """

    k: int | None = None
    max_samples: int | None = None
    ridge: float = 1e-6
    precision: str = "float32"
    progress: bool = True
    intervals: IntervalSettings | None = field(default_factory=IntervalSettings)

    def __post_init__(self) -> None:
        if self.k is not None and (isinstance(self.k, bool) or int(self.k) != self.k or self.k < 1):
            raise ValueError(f"analysis.k must be an integer >= 1 or null (K); got {self.k!r}")
        if self.max_samples is not None and (
            isinstance(self.max_samples, bool) or self.max_samples < 1
        ):
            raise ValueError(
                f"analysis.max_samples must be >= 1 or null (all); got {self.max_samples!r}"
            )
        if not self.ridge >= 0:
            raise ValueError(f"analysis.ridge must be >= 0; got {self.ridge!r}")
        if not isinstance(self.precision, str) or self.precision not in PRECISIONS:
            raise ValueError(
                f"analysis.precision must be 'float32' or 'float64'; got {self.precision!r}"
            )
        if self.intervals is not None and not isinstance(self.intervals, IntervalSettings):
            object.__setattr__(self, "intervals", interval_settings(self.intervals))  # frozen

    @property
    def dtype(self):
        """The ``torch`` dtype of :attr:`precision` (``torch.float32`` or ``torch.float64``)."""
        import torch

        return getattr(torch, self.precision)

    def same_analysis(self, other: AnalysisSettings) -> bool:
        """Whether two settings give the same numbers (``progress`` aside)."""
        return (self.k, self.max_samples, self.ridge, self.precision, self.intervals) == (
            other.k,
            other.max_samples,
            other.ridge,
            other.precision,
            other.intervals,
        )
