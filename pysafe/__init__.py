"""pysafe: make the sessions of chosen PostgreSQL roles strictly read-only."""

__version__ = "0.1.0"
