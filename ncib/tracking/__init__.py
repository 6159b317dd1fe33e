"""Everything ncib sends to or declares in W&B, in one place.

* :mod:`~ncib.tracking.mode` — online for a logged-in user, offline otherwise;
* :mod:`~ncib.tracking.wandb_run` — the training run's W&B logger: names, group, steps;
* :mod:`~ncib.tracking.uploads` — the run report's tables and figures, and a sweep's summary
  runs (Tables 1 and 2 over seed pairs);
* :mod:`~ncib.tracking.dashboard` — the W&B report (dashboard) whose panels plot the
  registered keys (``python -m ncib.dashboard``).
"""
