"""An IRC channel for opencomputer, shipped as its own package (see README.md)."""

__version__ = "0.1.0"
