"""Modelyard: a self-hosted AI development platform.

The package root stays light: ``import modelyard`` must not import torch, FastAPI or SQLAlchemy.
``modelyard.Client`` and ``modelyard.run`` (tracked runs) are resolved lazily.
"""

from __future__ import annotations

from modelyard.core.version import __version__

__all__ = ["Client", "__version__", "run"]


def __getattr__(name: str):
    if name == "Client":
        from modelyard.client import Client

        return Client
    if name == "run":
        from modelyard.client.client import run

        return run
    raise AttributeError(f"module 'modelyard' has no attribute {name!r}")
