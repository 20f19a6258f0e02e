"""The Python SDK: ``modelyard.Client(url=None, token=None)``."""

from modelyard.client.client import Client

__all__ = ["Client"]
