"""fc2conv's version (kept in step with pyproject.toml)."""

__version__ = "0.2.0"
