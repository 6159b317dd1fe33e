"""ncib's Hydra configuration tree, shipped in the wheel as the package ``ncib.conf``.

The files live at the top of the repository (``conf/``) and are mapped to ``ncib.conf`` by
``pyproject.toml``; ``python -m ncib.run`` reads them with ``pkg://ncib.conf``, so an installed
wheel runs from any directory. See ``docs/configuration.md``.
"""
