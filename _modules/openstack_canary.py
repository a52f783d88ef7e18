"""The canary of a new compute: a test server forced onto it
(``<zone>:<host>``: the scheduler's filters bypassed), ACTIVE within a
bounded time, then deleted. The openstack_canary state enables the host for
it and disables it again when it fails.

The connection (credentials, token, pool, run cache) is the compute
engine's (_utils/openstack_session.py), the service calls its functions.
"""
import time
import uuid

from salt.exceptions import CommandExecutionError

__virtualname__ = "openstack_canary"

MV_BOOT = "2.37"  # networks: "none"
MV_IMAGES = "2.1"  # the image proxy (gone after 2.35)
# Nova's reason for a service registered while enable_new_services = false
# (26.x, seen on the fleet; older releases said the second)
NEW_REASONS = ("New compute service disabled due to config option.",
               "New service disabled due to FLAG")
FAILED = "nova-formula canary failed: "
PREFIX = "nova-formula-canary-"


def __virtual__():
    if "openstack_compute.compute_service" not in __salt__:
        return (False, "openstack_canary: the openstack_compute execution module is not loaded")
    return __virtualname__


def _conn(auth=None, cloud=None):
    return __utils__["openstack_session.module_connect"](
        auth, cloud, __salt__["config.get"], ("openstack_compute", "openstack_keystone"), __context__,
        __utils__["openstack_state.mask"],
        __utils__["openstack_tokens.store_for"](
            __opts__, __salt__["config.get"], __utils__["openstack_files.atomic_write"]))


def _nova(conn, method, path, mv=MV_BOOT, **kwargs):
    return conn.call(method, path, service="compute", microversion=mv, **kwargs)


def waiting(service):
    """True when ``service`` (an openstack_compute.compute_service record) is
    a compute waiting for its canary: disabled since it registered, or by a
    failed canary.

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_canary.waiting "$(salt-call --out=json openstack_compute.compute_service cmp3)"
    """
    reason = service.get("disabled_reason") or ""
    return service.get("status") == "disabled" and (reason in NEW_REASONS
                                                    or reason.startswith(FAILED))


def _find(conn, path, key, wanted, mv):
    _, data = _nova(conn, "GET", path, mv)
    for rec in data.get(key) or []:
        if wanted in (rec.get("id"), rec.get("name")):
            return rec["id"]
    raise CommandExecutionError(f"no {key[:-1]} named {wanted!r}")


def _zone(conn, host):
    _, data = _nova(conn, "GET", "/os-availability-zone/detail", "2.1")
    for zone in data.get("availabilityZoneInfo") or []:
        if host in (zone.get("hosts") or {}) and zone.get("zoneName") != "internal":
            return zone["zoneName"]
    return "nova"


def prove(host, flavor, image, timeout=300, poll_interval=3, auth=None, cloud=None):
    """Boot a test server forced onto ``host``, wait for ACTIVE, delete it.
    ``(True, "...")`` or ``(False, why)``; no server is left either way (a
    delete that does not finish in time is named).

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_canary.prove cmp3 m1.tiny cirros cloud=admin
    """
    conn = _conn(auth, cloud)
    flavor_id = _find(conn, "/flavors/detail", "flavors", flavor, "2.1")
    image_id = _find(conn, "/images", "images", image, MV_IMAGES)
    body = {"server": {"name": f"{PREFIX}{host}-{uuid.uuid4().hex[:6]}", "imageRef": image_id,
                       "flavorRef": flavor_id, "networks": "none",
                       "availability_zone": f"{_zone(conn, host)}:{host}"}}
    _, data = _nova(conn, "POST", "/servers", body=body, ok=(202,))
    sid, started, why = data["server"]["id"], time.monotonic(), None
    try:
        while True:
            _, rec = _nova(conn, "GET", f"/servers/{sid}", "2.1")
            rec = rec["server"]
            if rec["status"] == "ACTIVE":
                break
            if rec["status"] == "ERROR":
                fault = (rec.get("fault") or {}).get("message") or "no fault recorded"
                why = f"the test server went to ERROR: {fault}"
                break
            if time.monotonic() - started > timeout:
                why = f"the test server was still {rec['status']} after {timeout} s"
                break
            time.sleep(poll_interval)
    finally:
        _nova(conn, "DELETE", f"/servers/{sid}", "2.1", ok=(204, 404))
        deadline = time.monotonic() + 120
        while _nova(conn, "GET", f"/servers/{sid}", "2.1", ok=(200, 404))[0] == 200:
            if time.monotonic() > deadline:
                why = (why or "") + f" (test server {sid} not deleted within 120 s)"
                break
            time.sleep(poll_interval)
    took = time.monotonic() - started
    return (why is None, why or f"a test server was ACTIVE on {host} in {took:.1f} s, deleted")
