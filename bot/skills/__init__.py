"""Skills: folders with a ``SKILL.md`` (the Agent Skills format), offered to the model by name
and description and loaded only when it decides to use one (``docs/skills.md``).
"""
