"""The package version, at the bottom of the package: records and caches read it without importing `sharpdepth`."""

__version__ = "0.1.0"
