"""On-demand reliability runs (chaos, soak, database outage); CI runs small versions.

Each module is a command: ``python -m tests.reliability.chaos --help``.
See docs/reliability.md.
"""
