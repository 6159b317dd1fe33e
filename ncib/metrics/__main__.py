"""``python -m ncib.metrics``: print the metric reference (``docs/metrics.md``)."""

from ncib.metrics.registry import markdown_table

print(markdown_table(), end="")
