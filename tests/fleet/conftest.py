"""Fixtures of tests/fleet.

``fleet`` (session scope, fleet_plugin.py): a running fleet for tests that
bring their own deploy. ``nf`` (session scope): the deployed fleet that
test_fleet_1_rollout, test_fleet_2_* and test_fleet_3_* carry on with, in that
order, when they run in one session (each module's own fixture brings the
fleet to the state it starts from, so a module also runs alone: tests/run-all.sh
runs test_fleet_3_day2 in a session and on a fleet of its own, $NF_NAME).
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fleet import Fleet  # noqa: E402
from fleet_plugin import fleet  # noqa: E402,F401  (fixture)
from nova_fleet import NovaFleet  # noqa: E402

NF_HOSTS = ["ctl", "cmp1", "cmp2"]
NF_SYSTEMD = ["cmp2"]  # Salt's systemd_service path proven on one compute


@pytest.fixture(scope="session")
def nf():
    """ctl (support layer, MariaDB on loopback and ctl's address: a conductor
    host joins later), cmp1 (init scripts), cmp2 (systemd), Nova not yet
    deployed; ``$NF_NAME`` names the fleet (default nfroll)."""
    f = Fleet(name=os.environ.get("NF_NAME", "nfroll"))
    f.down(purge=True)  # what an interrupted earlier run left
    try:
        f.up(NF_HOSTS, systemd=NF_SYSTEMD)
        f.support_up(mariadb_bind=f"127.0.0.1,{f.address('ctl')}")
        nova = NovaFleet(f)
        nova.prepare()
    except BaseException:
        f.down(purge=True)
        raise
    yield nova
    if os.environ.get("FLEET_KEEP") != "1":
        f.down(purge=True)
