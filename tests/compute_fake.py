"""A fake Keystone + Nova + Placement on 127.0.0.1, for the openstack_compute
unit tests: a real HTTP server in a thread of the test process, so the real
keystoneauth1 Session, catalog lookup, microversion headers and timeouts are
all exercised.

It models what the engine relies on, with Nova 26.x's rules: nova-compute
services (PUT/DELETE by UUID from 2.53 on; DELETE refused while instances
remain, else the host leaves its aggregates, its provider tree and host mapping
go), servers (live migration only ACTIVE/PAUSED, migrate only ACTIVE/SHUTOFF,
neither while a task runs; paged lists), migrations (progressing one step per
``GET /os-migrations``, newest first), aggregates, hypervisors and Placement
resource provider trees with allocations. Each server says how its live and
cold migrations go (``live``/``cold``: ok, error, hang, refuse409, refuse400).
"""
import datetime
import json
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ADMIN_PW = "Adm1n-fake-S3cret"
WRITES = {"POST", "PUT", "PATCH", "DELETE"}
# The oldest microversion each route needs; the fake refuses older ones.
NEEDS = {("PUT", "os-services"): "2.53", ("DELETE", "os-services"): "2.53",
         ("GET", "os-migrations"): "2.59", ("POST", "action"): "2.25",
         ("GET", "os-aggregates"): "2.41", ("GET", "os-hypervisors"): "2.53"}


def _mv(text):
    return tuple(int(x) for x in text.split("."))


class Cloud:
    """The fake's data and rules; ``handle`` answers one request."""

    def __init__(self):
        self.lock = threading.RLock()
        self.base = None  # http://127.0.0.1:port, set by serve()
        self.log = []  # (method, api, path, query, microversion)
        self.tokens = set()
        self.services, self.servers, self.aggregates = {}, {}, {}
        self.migrations, self.hypervisors, self.providers = [], {}, {}
        self.allocations = {}  # provider uuid -> {consumer: resources}
        self.host_mappings = set()
        self.page_size = 3
        self.nova_drops_provider_delete = False  # nova-api only logs a failed delete
        self.hang_seconds = 0  # every compute request sleeps this long
        self.echo_password = False  # errors quote the admin password (masking test)
        self.placement_down = False  # Placement answers 503
        self.drop = set()  # (method, route) whose next request gets its connection closed
        self.on_migrations_get = None
        self.on_services_get = None  # called before each service list
        self.canary_outcome = {}  # host -> ok, error or hang (a canary server's fate)

    # ---- set-up helpers --------------------------------------------------
    def add_compute(self, host, state="up", status="enabled", reason=None):
        sid = str(uuid.uuid4())
        self.services[sid] = {"id": sid, "binary": "nova-compute", "host": host, "zone": "nova",
                              "status": status, "state": state, "disabled_reason": reason,
                              "forced_down": False, "updated_at": "2026-12-02T10:00:00.000000"}
        node = str(uuid.uuid4())
        self.hypervisors[node] = {"id": node, "hypervisor_hostname": f"{host}.example",
                                  "service": {"host": host, "id": sid}, "state": state}
        self.providers[node] = {"uuid": node, "name": f"{host}.example",
                                "parent_provider_uuid": None}
        self.host_mappings.add(host)
        return sid, node

    def add_server(self, name, host, status="ACTIVE", live="ok", cold="ok", task=None,
                   busy_polls=0, project="p1"):
        sid = str(uuid.uuid4())
        self.servers[sid] = {"id": sid, "name": name, "host": host, "status": status,
                             "task_state": task, "tenant_id": project, "live": live,
                             "cold": cold, "busy_polls": busy_polls, "created": len(self.servers)}
        return sid

    def add_migration(self, server_id, kind, status, source, dest):
        mig = {"id": len(self.migrations) + 1, "uuid": str(uuid.uuid4()),
               "instance_uuid": server_id, "migration_type": kind, "status": status,
               "source_compute": source, "dest_compute": dest, "plan": "ok", "steps": 0}
        self.migrations.append(mig)
        return mig

    def on_host(self, host):
        return sorted(s["name"] for s in self.servers.values() if s["host"] == host)

    def requests(self, api=None):
        return [e for e in self.log if api is None or e[1] == api]

    def writes(self):
        return [(m, api, p) for m, api, p, _, _ in self.log
                if m in WRITES and not p.endswith("/auth/tokens")]

    # ---- dispatch ---------------------------------------------------------
    def handle(self, method, raw_path, headers, body):
        url = urllib.parse.urlsplit(raw_path)
        query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query, True).items()}
        parts = [p for p in url.path.split("/") if p]
        api = {"identity": "identity", "compute": "compute", "int-compute": "compute",
               "placement": "placement"}.get(parts[0] if parts else "", "?")
        version = headers.get("OpenStack-API-Version") or ""
        mv = version.split(" ", 1)[1] if " " in version else None
        with self.lock:
            self.log.append((method, api, "/" + "/".join(parts), query, mv))
        if api == "identity" and parts[1:] == ["v3", "auth", "tokens"] and method == "POST":
            return self.token(body)
        if headers.get("X-Auth-Token") not in self.tokens:
            return 401, {"error": {"code": 401, "message": "authentication required"}}, {}
        if api == "compute":
            if self.hang_seconds:
                time.sleep(self.hang_seconds)
            if version and not version.startswith("compute ") or \
                    headers.get("X-OpenStack-Nova-API-Version") != mv:
                return self.nova_err(400, f"bad version header {version!r}")
            with self.lock:
                return self.compute(method, parts[2:], query, body, mv)
        if api == "placement":
            if self.placement_down:
                return 503, {"errors": [{"status": 503, "title": "Service Unavailable",
                                         "detail": "placement is down"}]}, {}
            if not version.startswith("placement ") or _mv(mv) < (1, 14):
                return 400, {"errors": [{"status": 400, "title": "Bad Request",
                                         "detail": "in_tree needs 1.14"}]}, {}
            with self.lock:
                return self.placement(method, parts[1:], query)
        return 404, None, {}

    def token(self, body):
        user = body["auth"]["identity"]["password"]["user"]
        if user.get("name") != "admin" or user.get("password") != ADMIN_PW:
            return 401, {"error": {"code": 401, "message": "authentication required"}}, {}
        tok = uuid.uuid4().hex
        self.tokens.add(tok)
        expires = (datetime.datetime.utcnow() + datetime.timedelta(hours=1)).strftime(
            "%Y-%m-%dT%H:%M:%S.000000Z")
        dom = {"id": "default", "name": "Default"}

        def endpoints(paths):
            return [{"id": uuid.uuid4().hex, "interface": i, "region_id": "RegionOne",
                     "region": "RegionOne", "url": self.base + p} for i, p in paths]
        catalog = [
            {"type": "compute", "name": "nova", "id": "c", "endpoints": endpoints(
                [("public", "/compute/v2.1"), ("internal", "/int-compute/v2.1")])},
            {"type": "placement", "name": "placement", "id": "p",
             "endpoints": endpoints([("public", "/placement"), ("internal", "/placement")])},
            {"type": "identity", "name": "keystone", "id": "i",
             "endpoints": endpoints([("public", "/identity/v3")])}]
        token = {"methods": ["password"], "expires_at": expires, "catalog": catalog,
                 "user": {"id": "u", "name": "admin", "domain": dom},
                 "project": {"id": "p", "name": "admin", "domain": dom},
                 "roles": [{"id": "r", "name": "admin"}]}
        return 201, {"token": token}, {"X-Subject-Token": tok}

    @staticmethod
    def nova_err(status, msg):
        key = {400: "badRequest", 404: "itemNotFound", 409: "conflictingRequest"}.get(
            status, "computeFault")
        return status, {key: {"code": status, "message": msg}}, {}

    # ---- Nova -------------------------------------------------------------
    def compute(self, method, parts, query, body, mv):
        root = parts[0] if parts else ""
        need = NEEDS.get((method, "action" if parts[-1:] == ["action"] and root == "servers"
                          else root))
        if need and (mv is None or _mv(mv) < _mv(need)):
            return self.nova_err(404 if method in ("PUT", "DELETE") else 400,
                                 f"{method} {root} needs microversion {need}, got {mv}")
        if root == "os-services":
            return self.os_services(method, parts, query, body)
        if root == "servers" and parts[1:] == ["detail"]:
            return self.server_list(query)
        if root == "servers" and parts[2:] == ["action"]:
            return self.server_action(parts[1], body)
        if root == "os-migrations":
            return self.migration_list(query)
        if root == "os-aggregates":
            return self.os_aggregates(method, parts, body)
        if root == "os-hypervisors":
            return self.hypervisor_list(query)
        if root in ("flavors", "images", "os-availability-zone") or (
                root == "servers" and method in ("POST", "DELETE")) or (
                root == "servers" and len(parts) == 2 and method == "GET"):
            return self.canary(method, parts, body, mv)
        return self.nova_err(404, "no such route")

    # ---- what a canary uses: flavors, images, zones, one server's life ----
    def canary(self, method, parts, body, mv):
        root = parts[0]
        if root == "flavors":
            return 200, {"flavors": [{"id": "f1", "name": "m1.tiny"}]}, {}
        if root == "images":
            return 200, {"images": [{"id": "i1", "name": "cirros"}]}, {}
        if root == "os-availability-zone":
            hosts = {s["host"]: {} for s in self.services.values()}
            return 200, {"availabilityZoneInfo": [{"zoneName": "internal", "hosts": {"ctl": {}}},
                                                  {"zoneName": "nova", "hosts": hosts}]}, {}
        if method == "POST":
            srv = body["server"]
            assert _mv(mv) >= (2, 37) and srv["networks"] == "none", (mv, srv)
            zone, host = srv["availability_zone"].split(":")
            outcome = self.canary_outcome.get(host, "ok")
            if any(s["host"] == host and s["status"] == "disabled"
                   for s in self.services.values()):
                outcome = "novalidhost"  # Nova 26: a disabled compute's trait
            sid = self.add_server(srv["name"], host, status="BUILD")
            self.servers[sid].update(canary=outcome, polls=0)
            return 202, {"server": {"id": sid}}, {}
        srv = self.servers.get(parts[1])
        if srv is None:
            return self.nova_err(404, f"Instance {parts[1]} could not be found.")
        if method == "DELETE":
            del self.servers[parts[1]]
            return 204, None, {}
        srv["polls"] += 1
        if srv["polls"] >= 2 and srv["canary"] != "hang":
            srv["status"] = "ACTIVE" if srv["canary"] == "ok" else "ERROR"
        view = {"id": srv["id"], "status": srv["status"]}
        if srv["status"] == "ERROR":
            view["fault"] = {"message": "No valid host was found." if srv["canary"] ==
                             "novalidhost" else "Failed to spawn: broken driver setting"}
        return 200, {"server": view}, {}

    def hosts_of_services(self, host):
        return [s for s in self.services.values() if s["host"] == host]

    def os_services(self, method, parts, query, body):
        if method == "GET":
            if self.on_services_get:
                self.on_services_get()
            found = [s for s in self.services.values()
                     if all(s.get(k) == v for k, v in query.items() if k in ("binary", "host"))]
            return 200, {"services": [dict(s) for s in found]}, {}
        svc = self.services.get(parts[1])
        if svc is None:
            return self.nova_err(404, f"Service {parts[1]} not found.")
        if method == "PUT":
            if body.get("status") == "enabled":
                if "disabled_reason" in body:
                    return self.nova_err(400, "disabled_reason only with status disabled")
                svc.update(status="enabled", disabled_reason=None)
            else:
                svc.update(status="disabled", disabled_reason=body.get("disabled_reason"))
            return 200, {"service": dict(svc)}, {}
        host = svc["host"]
        if any(s["host"] == host for s in self.servers.values()):
            return self.nova_err(409, "Unable to delete compute service that is hosting "
                                      "instances. Migrate or delete the instances first.")
        if any(m["status"] in ("running", "accepted", "pre-migrating", "finished")
               and m["source_compute"] == host for m in self.migrations):
            return self.nova_err(409, "Unable to delete compute service that has in-progress "
                                      "migrations.")
        for agg in self.aggregates.values():
            if host in agg["hosts"]:
                agg["hosts"].remove(host)
        for node in [n for n in self.hypervisors.values() if n["service"]["host"] == host]:
            if not self.nova_drops_provider_delete:
                for rp in self.tree(node["id"]):
                    self.providers.pop(rp["uuid"], None)
            del self.hypervisors[node["id"]]
        self.host_mappings.discard(host)
        del self.services[parts[1]]
        return 204, None, {}

    def server_view(self, srv):
        return {"id": srv["id"], "name": srv["name"], "status": srv["status"],
                "tenant_id": srv["tenant_id"], "OS-EXT-SRV-ATTR:host": srv["host"],
                "OS-EXT-STS:task_state": srv["task_state"],
                "OS-EXT-STS:vm_state": srv["status"].lower()}

    def server_list(self, query):
        assert query.get("all_tenants") == "1", query
        for srv in self.servers.values():  # someone else's task ends after some polls
            if srv["busy_polls"]:
                srv["busy_polls"] -= 1
                if not srv["busy_polls"]:
                    srv["task_state"] = None
        found = sorted((s for s in self.servers.values()
                        if "host" not in query or s["host"] == query["host"]),
                       key=lambda s: s["created"])
        if "marker" in query:
            ids = [s["id"] for s in found]
            found = found[ids.index(query["marker"]) + 1:]
        page = found[:self.page_size]
        links = [{"rel": "next", "href": "..."}] if len(page) == self.page_size else []
        return 200, {"servers": [self.server_view(s) for s in page], "servers_links": links}, {}

    def dest_for(self, srv):
        hosts = sorted(s["host"] for s in self.services.values()
                       if s["status"] == "enabled" and s["host"] != srv["host"])
        return hosts[0] if hosts else None

    def server_action(self, sid, body):
        srv = self.servers.get(sid)
        if srv is None:
            return self.nova_err(404, f"Instance {sid} could not be found.")
        (action, args), = body.items()
        if action == "os-migrateLive":
            assert args == {"host": None, "block_migration": "auto"}, args
            return self.start(srv, "live-migration", srv["live"], ("ACTIVE", "PAUSED"),
                              "migrating")
        if action == "migrate":
            assert args is None
            return self.start(srv, "migration", srv["cold"], ("ACTIVE", "SHUTOFF"),
                              "resize_prep")
        if action == "confirmResize":
            if srv["status"] != "VERIFY_RESIZE":
                return self.nova_err(409, "Cannot 'confirmResize' instance while it is in "
                                          f"vm_state {srv['status'].lower()}")
            mig = next(m for m in reversed(self.migrations) if m["instance_uuid"] == sid
                       and m["status"] == "finished")
            mig["status"] = "confirming"
            srv["status"] = srv.pop("was")
            return 204, None, {}
        return self.nova_err(400, f"unknown action {action}")

    def start(self, srv, kind, plan, statuses, task):
        if plan.startswith("refuse"):
            status = int(plan[len("refuse"):])
            return self.nova_err(status, f"{kind} of {srv['name']} refused by the fake "
                                 + (ADMIN_PW if self.echo_password else ""))
        if srv["status"] not in statuses or srv["task_state"]:
            return self.nova_err(409, f"Cannot '{kind}' instance while it is in vm_state "
                                      f"{srv['status'].lower()} task_state {srv['task_state']}")
        srv["task_state"] = task
        live = kind == "live-migration"
        mig = self.add_migration(srv["id"], kind, "accepted" if live else "pre-migrating",
                                 srv["host"], self.dest_for(srv))
        mig["plan"] = plan if mig["dest_compute"] else "error"  # NoValidHost
        # nova-api writes a live migration's record; the conductor a cold one's, later.
        mig["hidden"] = 0 if live else 2
        return 202, None, {}

    def tick(self):
        """One step of every migration under way (Nova's work between two polls)."""
        for mig in self.migrations:
            if mig["status"] in ("completed", "confirmed", "error", "failed", "finished"):
                continue
            if mig.get("hidden"):  # the conductor has not written the record yet
                mig["hidden"] -= 1
                continue
            srv = self.servers[mig["instance_uuid"]]
            mig["steps"] += 1
            live = mig["migration_type"] == "live-migration"
            if mig["status"] == "confirming":
                mig["status"] = "confirmed"
            elif mig["plan"] == "error":
                mig["status"] = "error"
                srv["task_state"] = None
            elif mig["plan"] == "hang" or mig["steps"] < 2:
                mig["status"] = "running" if live else "migrating"
            elif live:
                mig["status"] = "completed"
                srv.update(host=mig["dest_compute"], task_state=None)
            else:
                mig["status"] = "finished"
                srv.update(host=mig["dest_compute"], task_state=None, was=srv["status"],
                           status="VERIFY_RESIZE")

    def migration_list(self, query):
        assert set(query) <= {"source_compute", "limit"}, query
        self.tick()
        if self.on_migrations_get:
            self.on_migrations_get(self)
        found = [m for m in reversed(self.migrations) if not m.get("hidden")
                 and m["source_compute"] == query.get("source_compute", m["source_compute"])]
        keys = ("id", "uuid", "instance_uuid", "migration_type", "status", "source_compute",
                "dest_compute")
        return 200, {"migrations": [{k: m[k] for k in keys}
                                    for m in found[:int(query.get("limit", 1000))]]}, {}

    def hypervisor_list(self, query):
        pattern = query.get("hypervisor_hostname_pattern")
        found = [h for h in self.hypervisors.values()
                 if pattern is None or pattern in h["hypervisor_hostname"]]
        if pattern is not None and not found:
            return self.nova_err(404, f"No hypervisor matching '{pattern}' could be found.")
        return 200, {"hypervisors": [dict(h) for h in found]}, {}

    def os_aggregates(self, method, parts, body):
        if len(parts) == 1 and method == "GET":
            return 200, {"aggregates": [self.agg_view(a) for a in self.aggregates.values()]}, {}
        if len(parts) == 1 and method == "POST":
            new = body["aggregate"]
            if any(a["name"] == new["name"] for a in self.aggregates.values()):
                return self.nova_err(409, f"Aggregate {new['name']} already exists.")
            aid = max(self.aggregates, default=0) + 1
            self.aggregates[aid] = {"id": aid, "uuid": str(uuid.uuid4()), "name": new["name"],
                                    "hosts": [], "metadata": {}}
            if new.get("availability_zone"):
                self.aggregates[aid]["metadata"]["availability_zone"] = new["availability_zone"]
            return 200, {"aggregate": self.agg_view(self.aggregates[aid])}, {}
        agg = self.aggregates.get(int(parts[1]))
        if agg is None:
            return self.nova_err(404, f"Aggregate {parts[1]} could not be found.")
        if method == "DELETE":
            if agg["hosts"]:
                return self.nova_err(400, "Cannot delete aggregate: it has hosts")
            del self.aggregates[agg["id"]]
            return 200, None, {}
        (action, args), = body.items()
        zone = args if method == "PUT" else args["metadata"] if action == "set_metadata" else None
        if zone and "availability_zone" in zone and not zone["availability_zone"]:
            return self.nova_err(400, f"Cannot update aggregate {agg['id']}. Reason: Aggregate "
                                      f"{agg['name']} does not support empty named "
                                      "availability zone.")
        if method == "PUT":
            agg["metadata"]["availability_zone"] = zone["availability_zone"]
            return 200, {"aggregate": self.agg_view(agg)}, {}
        if action == "add_host":
            if not any(s["host"] == args["host"] for s in self.services.values()):
                return self.nova_err(404, f"Compute host {args['host']} could not be found.")
            if args["host"] in agg["hosts"]:
                return self.nova_err(409, "already there")
            zones = [a["metadata"].get("availability_zone") for a in self.aggregates.values()
                     if args["host"] in a["hosts"] and a["metadata"].get("availability_zone")]
            mine = agg["metadata"].get("availability_zone")
            if mine and any(z != mine for z in zones):
                return self.nova_err(409, "Cannot add host to aggregate. Reason: One or more "
                                          f"hosts already in availability zone(s) {zones}.")
            agg["hosts"].append(args["host"])
        elif action == "remove_host":
            if args["host"] not in agg["hosts"]:
                return self.nova_err(404, "not in the aggregate")
            agg["hosts"].remove(args["host"])
        elif action == "set_metadata":
            for key, value in args["metadata"].items():
                assert value is None or isinstance(value, str), value
                if value is None:
                    agg["metadata"].pop(key, None)
                else:
                    agg["metadata"][key] = value
        return 200, {"aggregate": self.agg_view(agg)}, {}

    @staticmethod
    def agg_view(agg):
        return {"id": agg["id"], "uuid": agg["uuid"], "name": agg["name"],
                "availability_zone": agg["metadata"].get("availability_zone"),
                "hosts": list(agg["hosts"]), "metadata": dict(agg["metadata"])}

    # ---- Placement ----------------------------------------------------------
    def tree(self, root_uuid):
        if root_uuid not in self.providers:
            return []
        root = root_uuid
        while self.providers[root]["parent_provider_uuid"]:
            root = self.providers[root]["parent_provider_uuid"]
        found, todo = [], [root]
        while todo:
            cur = todo.pop()
            found.append(self.providers[cur])
            todo += [p for p, rp in self.providers.items() if rp["parent_provider_uuid"] == cur]
        return found

    def placement(self, method, parts, query):
        if parts == ["resource_providers"] and method == "GET":
            return 200, {"resource_providers": [dict(p) for p in self.tree(query["in_tree"])]}, {}
        rp = parts[1] if len(parts) > 1 else None
        if rp not in self.providers:
            return 404, {"errors": [{"status": 404, "title": "Not Found",
                                     "detail": f"No resource provider with uuid {rp} found"}]}, {}
        if parts[2:] == ["allocations"]:
            return 200, {"allocations": self.allocations.get(rp, {})}, {}
        if method == "DELETE":
            if self.allocations.get(rp) or any(p["parent_provider_uuid"] == rp
                                               for p in self.providers.values()):
                return 409, {"errors": [{"status": 409, "title": "Conflict",
                                         "detail": f"Unable to delete resource provider {rp}: "
                                                   "in use"}]}, {}
            del self.providers[rp]
            return 204, None, {}
        return 405, None, {}


def serve(cloud):
    """Start the fake on 127.0.0.1 (a free port) in a daemon thread; the server."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go in two writes

        def _any(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            route = (self.command, self.path.split("?")[0].rsplit("/", 1)[-1])
            if route in cloud.drop:  # a reset, as from a server that closed the connection
                cloud.drop.discard(route)
                cloud.log.append((self.command, "dropped", self.path, {}, None))
                self.close_connection = True
                return
            status, data, headers = cloud.handle(self.command, self.path, self.headers, body)
            out = json.dumps(data).encode() if data is not None else b""
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            if out:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            try:
                self.wfile.write(out)
            except (BrokenPipeError, ConnectionResetError):  # the client timed out first
                pass

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _any

        def log_message(self, *args):  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    cloud.base = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    return server
