"""Names of everything ncib logs (:mod:`~ncib.metrics.registry`) and the mapping from analysis
results to those names (:mod:`~ncib.metrics.outputs`, imported on demand: it needs torch)."""

from ncib.metrics.registry import (
    AXES,
    GROUPS,
    MEMBERS,
    METRICS,
    Metric,
    key,
    keys,
    logged_name,
    markdown_table,
    member_name,
)

__all__ = [
    "AXES",
    "GROUPS",
    "MEMBERS",
    "METRICS",
    "Metric",
    "key",
    "keys",
    "logged_name",
    "markdown_table",
    "member_name",
]
