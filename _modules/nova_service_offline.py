"""``service.offline`` on minions whose service provider lacks it.

Salt's ``service.running`` / ``service.dead`` ask ``"service.offline" in
__salt__`` first. Only ``systemd_service`` defines it; with any other
provider (Debian's sysvinit ``debian_service`` on a host not booted with
systemd: containers, the test fleet) that lookup misses, and a miss makes
Salt's lazy loader import every execution module it has (~1-2 s, once per
run, charged to the first service state). This module answers the lookup
(systemd is not "offline" here: there is no systemd), so the loader stops at
the modules whose file name holds ``service``. Where systemd_service loads
(booted or offline systemd, not disabled) this module does not, and that
one answers.
"""
import salt.utils.systemd

__virtualname__ = "service"


def __virtual__():
    if __grains__.get("kernel") != "Linux":
        return (False, "only needed on Linux")
    if salt.utils.systemd.booted(__context__):
        return (False, "systemd_service provides service.offline here")
    if (salt.utils.systemd.offline(__context__)
            and "systemd_service" not in (__opts__.get("disable_modules") or [])):
        return (False, "systemd_service (offline mode) provides service.offline here")
    return __virtualname__


def offline():
    """False: this host has no systemd, so it is not a systemd "offline"
    (chroot) image either; what Salt's service states assume when the
    provider has no ``offline``.

    CLI Example:

    .. code-block:: bash

        salt '*' service.offline
    """
    return False
