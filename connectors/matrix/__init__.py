"""Matrix connector (matrix-nio): DMs, rooms, threads, reactions, edits, persisted sync."""

from connectors.matrix.connector import MatrixConnector

__all__ = ["MatrixConnector"]
