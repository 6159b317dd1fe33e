"""Test helpers (fake datasets in the real on-disk formats)."""


def load_script(path, name: str):
    """The module of a script outside the package (``experiments/…``), loaded from its file."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
