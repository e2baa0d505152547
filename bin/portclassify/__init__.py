"""Pure classification logic behind the `| classifyport` search command.

Nothing here imports splunklib: bin/classifyport.py wires these functions to
the Search Command Protocol, and the tests call them directly.
"""

__all__ = ["allowlist", "classifier", "csvfile", "lookups", "networks", "ports", "profiles"]
