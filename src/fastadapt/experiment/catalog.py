"""Fill the registries by importing every module that registers algorithms, tasks or benchmarks.

Modules are found with pkgutil, so a new algorithm needs no edit here. Optional heavy dependencies are
imported lazily inside those modules, so this works on a minimal install.

Plugins: modules named in the environment variable ``FASTADAPT_PLUGINS`` (comma-separated, importable from
``sys.path``) are imported too, so users can register their own algorithms, tasks and benchmarks and use
them from the CLI without editing fastadapt.
"""

from __future__ import annotations

import importlib
import os
import pkgutil

from fastadapt.core.errors import ConfigError

_PACKAGES = ("fastadapt.tasks", "fastadapt.algos", "fastadapt.baselines", "fastadapt.eval", "fastadapt.bench")
_loaded = False


def iter_module_names() -> list[str]:
    names: list[str] = []
    for pkg_name in _PACKAGES:
        try:
            pkg = importlib.import_module(pkg_name)
        except ModuleNotFoundError as exc:
            if exc.name == pkg_name:
                continue
            raise
        names.append(pkg_name)
        for info in pkgutil.walk_packages(pkg.__path__, prefix=pkg_name + "."):
            names.append(info.name)
    return names


def load_all() -> None:
    """Import every registering module once."""
    global _loaded
    if _loaded:
        return
    for name in iter_module_names():
        importlib.import_module(name)
    for plugin in filter(None, (p.strip() for p in os.environ.get("FASTADAPT_PLUGINS", "").split(","))):
        try:
            importlib.import_module(plugin)
        except ModuleNotFoundError as exc:
            raise ConfigError(f"FASTADAPT_PLUGINS: cannot import plugin module {plugin!r} ({exc})") from None
    _loaded = True
