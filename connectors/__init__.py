"""Platform connectors: each package turns one platform's events into core events and back."""
