"""The plugin system: manifests, discovery, sandboxed execution, enablement, MCP.

Kept import-light: the sandbox worker imports this package before any plugin code.
"""
