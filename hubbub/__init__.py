"""hubbub: a realtime backend for multi-tenant products."""

__all__ = ["__version__"]

__version__ = "0.1.0"
