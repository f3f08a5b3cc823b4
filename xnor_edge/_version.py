"""The package version; pyproject.toml and the C library (XE_VERSION_*) must agree (tests check)."""

__version__ = "0.1.0"
