"""Fixtures of tests/fleet: the session-scoped ``fleet`` (see fleet_plugin.py)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fleet_plugin import fleet  # noqa: E402,F401  (fixture)
