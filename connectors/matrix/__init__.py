"""Matrix connector (matrix-nio): DMs, rooms, threads, reactions, edits, persisted sync."""

from opencomputer.connectors.matrix.connector import MatrixConnector

__all__ = ["MatrixConnector"]
