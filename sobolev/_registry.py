"""Method registries: a module-level dict name → implementation, looked up by :func:`lookup`.

A string option of the library (a loss's ``method``, a ``reduction``, a numerical derivative's
``method``, …) is a key of one such dict in the module that owns the concept; its keys are the
accepted values and the error message lists them. Adding a method is adding one entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

T = TypeVar("T")


def lookup(registry: Mapping[str, T], name: object, argument: str) -> T:
    """``registry[name]``; a ``ValueError`` naming ``argument`` and the registered
    names otherwise."""
    if isinstance(name, str) and name in registry:
        return registry[name]
    raise ValueError(f"{argument} must be one of {tuple(registry)}, got {name!r}")
