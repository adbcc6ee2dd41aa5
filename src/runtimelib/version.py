"""The version of runtimelib (also in pyproject.toml, which a test keeps equal)."""

__all__ = ["__version__"]

__version__ = "0.1.0"
