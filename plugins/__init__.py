"""Built-in plugins, each a folder with ``plugin.json`` and its code."""
