"""Agent graphs (LangGraph). Graphs never import connectors."""
