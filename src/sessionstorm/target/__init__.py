"""The reference target: a real session gateway on PostgreSQL and Redis with a bug zoo.

``python -m sessionstorm.target serve [--bugs a,b]``; see docs/architecture.md.
"""
from sessionstorm.target.bugs import BUGS, parse_bugs

__all__ = ["BUGS", "parse_bugs"]
