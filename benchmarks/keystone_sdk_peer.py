"""The openstacksdk peer of benchmarks/keystone.py: the same no-op checks our
states make (project, role, and per service: user, its password, the grant,
the service, its three endpoints in the region), done the way an SDK-based
formula or Ansible's openstack.cloud modules do them, in ONE process.

Run by benchmarks/keystone.py with the benchmark's own venv (openstacksdk
pinned there); reads the records and the users' passwords as JSON on stdin
(never argv); prints {"seconds": [...], "requests": N, "logins": L} as JSON. The time
counts from the admin connection to the last check (interpreter start and
imports left out, as our side leaves out salt-call's start-up).
"""
import json
import sys
import time

import keystoneauth1.session
import openstack

_count = {"n": 0, "logins": 0}
_request = keystoneauth1.session.Session.request


def _counting(self, url, method, *args, **kwargs):
    _count["n"] += 1
    if method == "POST" and str(url).split("?")[0].endswith("/auth/tokens"):
        _count["logins"] += 1  # a password login
    return _request(self, url, method, *args, **kwargs)


keystoneauth1.session.Session.request = _counting


def check(bench, cloud):
    admin = openstack.connect(cloud=cloud)
    ident = admin.identity
    domain = ident.find_domain("Default", ignore_missing=False)
    project = ident.find_project(bench["project"], domain_id=domain.id, ignore_missing=False)
    role = ident.find_role("admin", ignore_missing=False)
    auth = admin.config.get_auth_args()
    for svc in bench["services"]:
        user = ident.find_user(svc["name"], domain_id=domain.id, ignore_missing=False)
        # the password: a login as the user (what our user_present does too)
        as_user = openstack.connect(auth_url=auth["auth_url"], username=svc["name"],
                                    password=svc["password"], user_domain_id=domain.id,
                                    project_name=None, load_yaml_config=False,
                                    load_envvars=False)
        as_user.authorize()
        if not ident.validate_user_has_project_role(project, user, role):
            sys.exit(f"grant missing for {svc['name']}")
        service = ident.find_service(svc["name"], ignore_missing=False)
        found = {e.interface: e.url for e in ident.endpoints(service_id=service.id,
                                                             region_id=bench["region"])}
        if found != {i: svc["url"] for i in ("public", "internal", "admin")}:
            sys.exit(f"endpoints differ for {svc['name']}: {found}")


def main():
    args = json.load(sys.stdin)
    seconds, counts = [], []
    for _ in range(args["runs"]):
        _count["n"] = _count["logins"] = 0
        start = time.perf_counter()
        check(args["bench"], args["cloud"])
        seconds.append(time.perf_counter() - start)
        counts.append((_count["n"], _count["logins"]))
    json.dump({"seconds": seconds, "requests": counts[0][0], "logins": counts[0][1]},
              sys.stdout)


if __name__ == "__main__":
    main()
