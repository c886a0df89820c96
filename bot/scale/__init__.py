"""Scale-out: gateway processes (connectors) and worker processes (graphs) over Redis Streams.

``opencomputer run`` does everything in one process with in-process lanes; ``opencomputer
gateway`` and ``opencomputer worker`` split the same runtime in two, sharing PostgreSQL and Redis.
"""
