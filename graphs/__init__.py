"""Agent graphs (LangGraph). Graphs never import connectors."""

from opencomputer.graphs.deferred import install

install()  # before LangGraph is imported: see graphs/deferred.py
