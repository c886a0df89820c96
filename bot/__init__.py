"""opencomputer: a self-hosted agent reachable from the messengers people already use."""

__version__ = "0.1.0"
