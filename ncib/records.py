"""Moved to :mod:`ncib.rundir.records`; this path stays because notebooks written against the
first releases read their records with ``from ncib.records import read_records``."""

from ncib.rundir.records import *  # noqa: F403
from ncib.rundir.records import __all__  # noqa: F401
