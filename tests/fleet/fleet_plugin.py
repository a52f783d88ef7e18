"""pytest fixtures for tests that deploy to the fleet (tests/fleet/fleet.py).

``fleet`` (session scope): a running fleet -- ctl, cmp1, cmp2 by default, a salt-master on
ctl whose minions (every host) all answer, and the support layer (Keystone, Placement,
Glance, Neutron, MariaDB, RabbitMQ, memcached) up in ctl. It is a :class:`fleet.Fleet`::

    def test_something(fleet):
        fleet.salt(["salt", "cmp1", "test.ping"])
        fleet.run("cmp1", ["systemctl", "is-system-running"])
        fleet.pillar_dir()          # the master's pillar_roots (host side): write .sls here
        fleet.upper_dir("cmp1")     # everything cmp1 wrote (search it for secrets)

Tests under tests/fleet/ get it through tests/fleet/conftest.py. Elsewhere: put
tests/fleet on sys.path and load this module as a plugin (``-p fleet_plugin``, or
``pytest_plugins = ["fleet_plugin"]`` in the rootdir's conftest.py).

Environment (all optional):
  FLEET_HOSTS     hosts to start, space-separated (default "ctl cmp1 cmp2")
  FLEET_SYSTEMD   hosts of those with systemd as PID 1 (default: none)
  FLEET_SUPPORT   "0": no support layer in ctl (default "1")
  FLEET_KEEP      "1": leave the fleet running after the session, upper layers kept
                  (default: down --purge at the end)
  FLEET_NAME      fleet name (default "nftest": not the CLI's default "nffleet", so a
                  session never tears down a fleet someone runs by hand)
  FLEET_FORMULA   checkout bind-mounted at /srv/formula on ctl (default: this repository)
A fleet that cannot come up is an error of the first test that asks for it, never a skip.
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fleet import Fleet  # noqa: E402


def fleet_from_env():
    return Fleet(name=os.environ.get("FLEET_NAME", "nftest"),
                 formula=os.environ.get("FLEET_FORMULA") or None)


@pytest.fixture(scope="session")
def fleet():
    assert os.geteuid() == 0, "the fleet needs root"
    hosts = os.environ.get("FLEET_HOSTS", "ctl cmp1 cmp2").split()
    systemd = os.environ.get("FLEET_SYSTEMD", "").split()
    f = fleet_from_env()
    keep = os.environ.get("FLEET_KEEP") == "1"
    try:
        f.timings = f.up(hosts, systemd=systemd, formula=os.environ.get("FLEET_FORMULA") or None)
        if os.environ.get("FLEET_SUPPORT", "1") != "0" and "ctl" in hosts:
            f.support_up()
    except BaseException:
        f.down(purge=not keep)            # a fleet that failed to come up leaves nothing
        raise
    yield f
    if not keep:
        f.down(purge=True)
