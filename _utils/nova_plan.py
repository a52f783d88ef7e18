"""The states of each concern, as data for the SLS files to loop over.

``states(nova, facts)`` turns the merged map and the facts ``nova_formula``
worked out (roles, fleet placement, the concerns that run, the INI sections
of each file, host facts) into ``{concern: {kind: [{"id", "args"}]}}``, plus
``needs`` (the SLS each concern's requisites name, for its ``include``) and
``clean`` (the same for ``nova.clean``). Every state id, argument and
requisite is decided here; an SLS names the state function of each kind.
"""
import hashlib
import hmac
import json
import secrets
import shlex
from collections.abc import Mapping, Sequence

# Nova's own daemons, in the guide's order (the metadata API and the console
# proxy run beside the Compute API); each starts after the DB sync
NOVA_SERVICES = ("api", "metadata", "novncproxy", "scheduler", "conductor", "compute")
SERVICE_ORDER = ("messagebus", "libvirt") + NOVA_SERVICES
REQUISITES = ("require", "watch", "prereq", "onchanges")
POLICY_RC_D = "#!/bin/sh\n# nova-formula: no daemon starts while Nova's packages install\nexit 101\n"
_DIGEST_KEY = secrets.token_bytes(16)  # the digest covers secrets: keyed, per process


def digest(*inputs):
    """A keyed digest of the plan's inputs (a cache key that reveals nothing)."""
    text = json.dumps(inputs, sort_keys=True, default=str).encode()
    return hmac.new(_DIGEST_KEY, text, hashlib.sha256).hexdigest()


def _state(sid, **args):
    return {"id": sid, "args": {k: v for k, v in args.items() if v is not None}}


class _Plan:
    def __init__(self, nova, facts):
        self.nova, self.facts = nova, facts
        self.look = nova["lookup"]
        self.roles = set(facts["roles"])
        facts["packages"] = self._packages()
        self._day2_options()
        facts["files"] = self._files()

    def _packages(self):
        pkgs = [self.look["pkgs"][r] for r in self.facts["roles"]]
        if "compute" in self.roles and self.nova["compute"]["block_storage"]:
            pkgs.append(self.look["pkgs"]["cinderclient"])
        if self._console_proxy() and self.look["pkgs"].get("novncproxy"):
            pkgs.append(self.look["pkgs"]["novncproxy"])
        return pkgs

    def _day2_options(self):
        """[libvirt] migration settings on computes that trust each other;
        enable_new_services = false where a new compute's service record is
        made (the conductor; the API and scheduler read it too) when new
        computes wait for their canary."""
        conf = self.facts["sections"].setdefault("nova_conf", {})
        if "migration" in self.facts["concerns"]:
            mig = self.nova["migration"]
            addr = mig["inbound_addr"] or conf.get("DEFAULT", {}).get("my_ip")
            libvirt = conf.setdefault("libvirt", {})
            libvirt["live_migration_inbound_addr"] = addr
            if mig["transport"] == "ssh":
                libvirt.update(live_migration_scheme="ssh")
            else:
                libvirt.update(live_migration_with_native_tls=True)
        if self.nova["canary"]["enabled"] and self.roles & {"api", "scheduler", "conductor"}:
            conf.setdefault("DEFAULT", {})["enable_new_services"] = False

    def _console_proxy(self):
        return "api" in self.roles and self.nova["console"]["enabled"]

    def _metadata(self):
        return "api" in self.roles and self.nova["metadata"]["enabled"]

    def _files(self):
        """[(file id, path, sections)] of the INI files this minion manages,
        nova:config's raw overrides merged last."""
        overrides = {self.facts["files_of"][name]: sections
                     for name, sections in (self.nova.get("config") or {}).items()}
        out = []
        for fid, sections in self.facts["sections"].items():
            for section, keys in overrides.get(fid, {}).items():
                sections.setdefault(section, {}).update(keys)
            sections = {s: keys for s, keys in sections.items() if keys}
            path = self.look["files"].get(fid)
            if path and sections and self.roles:
                out.append((fid, path, sections))
        return out

    def sls(self, *concerns):
        """sls requisites on the concerns that run here (others are left out)."""
        return [{"sls": f"{self.facts['tplroot']}.{c}"} for c in concerns
                if c in self.facts["concerns"]]

    # ------------------------------------------------------------ one-off jobs
    def database(self):
        db = self.nova["database"]
        conn = {"connection": db["admin"] or None}
        names = self.facts["databases"]
        users = [_state(f"nova-db-user-{h}", name=db["user"], host=h, password=db["password"],
                        **conn) for h in db["grant_hosts"]]
        return {
            "databases": [_state(f"nova-db-{n}", name=n, **conn,
                                 character_set=self.look["db_character_set"]) for n in names],
            "users": users,
            "grants": [_state(f"nova-db-grant-{n}-{h}", name=db["user"], host=h, database=n,
                              privileges="ALL", **conn, require=[f"nova-db-{n}", f"nova-db-user-{h}"])
                       for h in db["grant_hosts"] for n in names],
        }

    def _credentials(self):
        ks = self.nova["identity"]
        return {"auth": ks["admin"]} if ks["admin"] else {"cloud": ks["cloud"]}

    def identity(self):
        ks, cred = self.nova["identity"], self._credentials()
        who = {"user": ks["user"], "project": ks["project"], "user_domain": ks["user_domain"],
               "project_domain": ks["project_domain"]}
        roles = [("nova-keystone-role", ks["role"])]
        if ks["service_role"] and ks["service_role"] != ks["role"]:
            roles.append(("nova-keystone-service-role", ks["service_role"]))
        return {
            "projects": [_state("nova-keystone-project", name=ks["project"],
                                domain=ks["project_domain"], **cred)],
            "users": [_state("nova-keystone-user", name=ks["user"], password=ks["password"],
                             domain=ks["user_domain"], default_project=ks["project"], **cred,
                             require=["nova-keystone-project"])],
            "roles": [_state(sid, name=role, **cred) for sid, role in roles],
            "grants": [_state(f"{sid}-grant", name=role, **who, **cred,
                              require=["nova-keystone-user", sid]) for sid, role in roles],
            "services": [_state("nova-keystone-service", name=ks["service"]["name"],
                                type=ks["service"]["type"],
                                description=ks["service"]["description"], **cred)],
            "endpoints": [_state("nova-keystone-endpoints", name=ks["service"]["name"],
                                 region=ks["region"], **ks["endpoints"], **cred,
                                 require=["nova-keystone-service"])],
        }

    # ------------------------------------------------------------ the host
    def _nova_pkgs(self):
        """The Nova packages of this minion (one version for all of them): its
        role packages, the console proxy's, and the common and python ones."""
        extra = [self.look["pkgs"].get(p) for p in ("common", "python")]
        cinder = self.look["pkgs"]["cinderclient"]
        return [p for p in dict.fromkeys(self.facts["packages"] + extra) if p and p != cinder]

    def packages(self):
        pkgs, version = self.facts["packages"], self.nova["version"]
        recommends = self.look["install_recommends"]
        nova_pkgs = self._nova_pkgs()
        others = [p for p in pkgs if p not in nova_pkgs]
        out = {"hold": [], "installed": [], "latest": [], "release": []}
        if version is None:
            # the candidate, once; never moved by a later run
            out["installed"] = [_state("nova-packages", pkgs=pkgs,
                                       install_recommends=recommends)]
        elif version == "latest":
            out["latest"] = [_state("nova-packages", pkgs=nova_pkgs,
                                    install_recommends=recommends)]
        else:
            # exactly this version of every Nova package, held there (Debian:
            # apt-mark hold; RedHat: the versionlock plugin); a new version
            # lifts the hold, installs, and holds again; an older one (a
            # rollback of the pin) is installed too
            lock = self.look["versionlock_pkg"]
            if lock:
                out["installed"].append(_state("nova-packages-versionlock", name=lock))
            out["installed"].append(_state(
                "nova-packages", pkgs=[{p: str(version)} for p in nova_pkgs], hold=True,
                update_holds=True, allow_downgrades=True, install_recommends=recommends,
                require=["nova-packages-versionlock"] if lock else None))
        if others and version is not None:
            out["installed"].append(_state("nova-packages-others", pkgs=others,
                                           install_recommends=recommends,
                                           require=["nova-packages"]))
        policy = self.look["policy_rc_d"]
        if policy:
            # Debian's maintainer scripts would start each daemon half-configured
            # while the package installs: a policy-rc.d holds them, only while
            # packages actually install (prereq), and never replaces one that
            # was there before (Docker images ship one). An update installs
            # under it too: the old daemons keep running until the formula
            # restarts them (each once).
            out["hold"] = [_state("nova-packages-hold-daemons", name=policy,
                                  contents=POLICY_RC_D, mode="0755", user="root",
                                  group="root", replace=False, prereq=["nova-packages"])]
            out["release"] = [_state("nova-packages-release-daemons", name=policy,
                                     onchanges=["nova-packages-hold-daemons"])]
        return out

    def config(self):
        perms, options, plain = [], [], []
        for fid, path, sections in self.facts["files"]:
            perms.append(_state(f"nova-config-{fid}-permissions", name=path, mode="0640",
                                user="root", group=self.look["group"],
                                require=self.sls("packages") or None))
            options.append(_state(f"nova-config-{fid}", name=path, sections=sections,
                                  secret_keys=list(self.nova["secret_keys"]),
                                  require=[f"nova-config-{fid}-permissions"]))
        for fid, spec in sorted(self.facts["server_files"].items()):
            plain.append(_state(f"nova-config-{fid}", name=spec["path"],
                                contents=spec["contents"], mode="0644", user="root",
                                group="root", require=self.sls("packages") or None))
        return {"permissions": perms, "options": options, "plain": plain}

    def firewall(self):
        fw, look = self.nova["firewall"], self.look
        ports = {}
        if "compute" in self.roles:
            ports["vnc"] = fw["vnc_ports"]
        if "api" in self.roles:
            ports["api"] = fw["api_port"]
        if self._console_proxy():
            ports["console"] = self.nova["console"]["proxy_port"]
        if self._metadata():
            ports["metadata"] = self.nova["metadata"]["port"]
        boot = look["iptables_boot"] if fw["persist"] else {}
        pkgs = [look["iptables_pkg"]] + [p for p in [boot.get("pkg")] if p and p != look["iptables_pkg"]]
        return {
            "packages": [_state("nova-firewall-package", pkgs=pkgs)],
            "rules": [_state(f"nova-firewall-{name}", table="filter", chain="INPUT", position=1,
                             proto="tcp", match="multiport", dports=str(port), jump="ACCEPT",
                             save=look["iptables_save"], require=["nova-firewall-package"])
                      for name, port in sorted(ports.items())],
            # enabled only: starting it would reload the saved file over the live rules
            "boot": [_state("nova-firewall-boot", name=boot["service"],
                            require=["nova-firewall-package"])] if boot.get("service") else [],
        }

    def nova_network(self):
        return {"dead": [_state("nova-network-dead", name=self.look["services"]["nova_network"],
                                enable=False)],
                "removed": [_state("nova-network-removed", name=self.look["pkgs"]["nova_network"],
                                   require=["nova-network-dead"])]}

    def sysctl(self):
        present, missing = [], []
        for key, value in sorted(self.nova["sysctl"].items()):
            if key in self.facts["sysctl_missing"]:
                hint = (": load the br_netfilter module (modprobe br_netfilter) first"
                        if key.startswith("net.bridge.") else "")
                missing.append(_state(f"nova-sysctl-{key}", name=key, comment=(
                    f"The running kernel has no {key} (no /proc/sys entry){hint}; "
                    f"nova:sysctl:{key} was not set.")))
            else:
                present.append(_state(f"nova-sysctl-{key}", name=key, value=value,
                                      config=self.look["sysctl_conf"]))
        return {"present": present, "missing": missing}

    def _qemu_lines(self):
        return sorted(self.nova["libvirt"]["linuxbridge_qemu_conf"].items())

    def libvirt(self):
        return {"lines": [_state(f"nova-libvirt-qemu-{key}", name=self.look["qemu_conf"],
                                 pattern=f"^#?{key}\\s*=.*$", repl=f"{key} = {value}",
                                 append_if_not_found=True, require=self.sls("packages") or None)
                          for key, value in self._qemu_lines()]}

    # ------------------------------------------------------------ Nova itself
    def db_sync(self):
        after, conf = self.sls("config", "database"), self.look["files"]["nova_conf"]
        if self.nova["dialect"] == "legacy":
            return {"api_db": [], "cells": [],
                    "db": [_state("nova-db-sync", name="db", config=conf, require=after)]}
        return {
            "api_db": [_state("nova-api-db-sync", name="api_db", config=conf, require=after)],
            "cells": [_state("nova-cell0-mapped", name="cell0", config=conf,
                             require=["nova-api-db-sync"]),
                      _state("nova-cell1-present", name="cell1", config=conf,
                             require=["nova-cell0-mapped"])],
            "db": [_state("nova-db-sync", name="db", config=conf, require=["nova-cell1-present"])],
        }

    def _services(self):
        """The services of this minion in the guide's order (8.2.14)."""
        wanted = {"messagebus": "compute" in self.roles, "libvirt": self.facts["libvirt"],
                  "metadata": self._metadata(), "novncproxy": self._console_proxy()}
        return [svc for svc in SERVICE_ORDER if (wanted.get(svc) or svc in self.roles)
                and self.look["services"].get(svc)]

    def _ours_runs(self, svc):
        """A command that succeeds when this host's own ``svc`` runs, for a
        service whose init script cannot tell (None elsewhere). Debian's
        script for a uwsgi-served API asks `pidof uwsgi` when the formula's
        status override (nova_dialects.server_files) is gone, and so reports Keystone's
        or Placement's uwsgi as nova-api: stopping then "fails" forever."""
        pidfile = self.look["service_pidfiles"].get(svc)
        if not pidfile:
            return None
        return (f"start-stop-daemon --status --pidfile {shlex.quote(pidfile)} || "
                f"systemctl is-active --quiet {shlex.quote(self.look['services'][svc])}")

    def service(self):
        running, enabled, previous = [], [], []
        files = {fid for fid, _, _ in self.facts["files"]}
        for svc in self._services():
            require = self.sls("config") + previous
            if svc in NOVA_SERVICES:
                require += self.sls("db_sync")
            # exactly the config states of the files it reads: it restarts
            # only when one of them changed (not on a mode fix)
            watch = [f"nova-config-{fid}" for fid in self.look["service_files"].get(svc, [])
                     if fid in files]
            watch += [f"nova-config-{fid}" for fid, spec in
                      sorted(self.facts["server_files"].items()) if spec["service"] == svc]
            if svc == "libvirt":
                watch += self.sls("libvirt")
            elif svc in NOVA_SERVICES and "packages" in self.facts["concerns"]:
                # a new version of Nova's packages: each daemon restarts once
                watch.append("nova-packages")
            running.append(_state(f"nova-service-{svc}", name=self.look["services"][svc],
                                  sig=self.look["service_sigs"].get(svc),
                                  init_delay=self.look.get("service_init_delay"),
                                  require=require, watch=watch or None))
            # started at boot too; a state of its own, because service.running
            # with enable would report a start as "already enabled, and is running"
            enabled.append(_state(f"nova-service-{svc}-enabled", name=self.look["services"][svc],
                                  require=[f"nova-service-{svc}"]))
            previous = [f"nova-service-{svc}"]
        # a daemon the api package ships that pillar switched off (Debian's
        # nova-api-metadata): stopped, and not started at boot
        stopped, disabled = [], []
        if "api" in self.roles and not self._metadata() and self.look["services"].get("metadata"):
            name = self.look["services"]["metadata"]
            stopped.append(_state("nova-service-metadata-dead", name=name,
                                  onlyif=self._ours_runs("metadata"),
                                  require=self.sls("packages") or None))
            disabled.append(_state("nova-service-metadata-disabled", name=name,
                                   require=["nova-service-metadata-dead"]))
        return {"running": running, "enabled": enabled, "stopped": stopped,
                "disabled": disabled}

    def policy(self):
        """API policy overrides (nova:policy) in policy.yaml: only the rules
        given. Their names are checked against the installed Nova's defaults
        (prereq: only when the file would change, so a no-op reads nothing and
        starts nothing); nothing restarts, oslo.policy reloads a changed file."""
        path, contents = self.facts["policy_file"]
        return {
            "known": [_state("nova-policy-rules-known", name=path,
                             rules=sorted(self.nova["policy"]),
                             sample=self.look["policy_sample"], prereq=["nova-policy-file"])],
            "file": [_state("nova-policy-file", name=path, contents=contents, mode="0640",
                            user="root", group=self.look["group"],
                            require=self.sls("packages") or None)],
        }

    def aggregates(self):
        """Host aggregates and zones (nova:aggregates), after the computes are
        mapped: removed aggregates first, then every host that leaves an
        aggregate, then each aggregate as pillar says (a host moving between
        zones is out of the old one before it joins the new one)."""
        cred, after = self._credentials(), self.sls("service", "discover")
        absent, leavers, present = [], [], []
        for name, agg in sorted(self.nova["aggregates"].items()):
            if agg is None:
                absent.append(_state(f"nova-aggregate-{name}-absent", name=name, **cred,
                                     require=after or None))
                continue
            hosts = sorted(agg.get("hosts") or [])
            leavers.append(_state(f"nova-aggregate-{name}-leavers", name=name, hosts=hosts,
                                  **cred, require=after or None))
            present.append(_state(f"nova-aggregate-{name}", name=name, hosts=hosts,
                                  availability_zone=agg.get("availability_zone"),
                                  metadata=agg.get("metadata"), **cred))
        first = [s["id"] for s in absent + leavers]
        for state in present:
            state["args"]["require"] = first
        return {"absent": absent, "leavers": leavers, "present": present}

    def discover(self):
        fleet = self.nova["fleet"]
        expect = fleet["discover"]["expect"]
        count = len(expect) if isinstance(expect, list) else int(expect)
        retry = ({"attempts": int(fleet["discover"]["attempts"]),
                  "interval": int(fleet["discover"]["interval"]), "until": True}
                 if count > 0 else None)
        # the compute minion ids name the missing ones (not a target expression)
        hosts = [] if isinstance(fleet["computes"], str) else list(fleet["computes"] or [])
        return {"hosts": [_state("nova-discover-hosts", name="computes", expect=expect,
                                 hosts=hosts, config=self.look["files"]["nova_conf"], retry=retry,
                                 require=self.sls("db_sync", "service"))]}

    # ------------------------------------------------------------ nova.upgrade
    def upgrade(self):
        """The steps nova.orch.upgrade runs here (nova/upgrade/*.sls): on the
        sync conductor the pre-check with the new packages, the wait for every
        service's new service version and the online data migrations; the
        daemons nova:upgrade:restart names (in that order), each restarted
        only when older than its packages or a file it reads; on the identity
        minion, the compute hosts of nova:upgrade:disable/enable."""
        up, conf, where = self.nova["upgrade"], self.look["files"]["nova_conf"], self.facts["where"]
        out = {k: [] for k in ("check", "restart", "disable", "enable", "versions", "migrations")}
        pkgs = self.sls("packages")
        if where["db_sync"]:
            out["check"] = [_state("nova-upgrade-check", name="nova-status upgrade check",
                                   config=conf, require=pkgs or None)]
            out["versions"] = [_state("nova-upgrade-services-current", name="service versions",
                                     config=conf, timeout=int(up["timeout"]))]
            out["migrations"] = [_state("nova-upgrade-online-migrations",
                                        name="online data migrations", config=conf,
                                        timeout=int(up["timeout"]))]
        files = {fid: path for fid, path, _ in self.facts["files"]}
        nova_pkgs = self._nova_pkgs() if pkgs else []
        here, previous = self._services(), []
        for svc in up["restart"]:
            if svc not in here or svc not in NOVA_SERVICES:
                continue
            name = self.look["services"][svc]
            paths = [files[f] for f in self.look["service_files"].get(svc, []) if f in files]
            paths += [spec["path"] for _, spec in sorted(self.facts["server_files"].items())
                      if spec["service"] == svc]
            sid = f"nova-upgrade-{svc}-current"
            # the init script's pidfile (else systemd's MainPID is asked)
            out["restart"].append(_state(
                sid, name=name, files=paths, packages=nova_pkgs,
                pidfile=self.look["service_pidfiles"].get(svc) or f"/run/nova/{name}.pid",
                require=(pkgs + previous) or None))
            previous = [sid]
        if where["identity"]:
            cred = self._credentials()
            out["disable"] = [_state(f"nova-upgrade-{h}-disabled", name=h,
                                     reason="nova.orch.upgrade: updating", **cred)
                              for h in up["disable"]]
            out["enable"] = [_state(f"nova-upgrade-{h}-enabled", name=h, **cred)
                             for h in up["enable"]]
        return out

    def migration(self):
        """Migration trust among the computes: the nova user's SSH key, its
        public key and the host keys published through the mine, the
        others' keys in authorized_keys and known_hosts (read from the mine,
        for the computes of nova:fleet), sshd serving sftp (OpenSSH 9's scp
        needs it for resize and cold migration)."""
        look, user = self.look, self.look["user"]
        fleet = self.nova["fleet"]["computes"]
        tgt = ({"tgt": fleet, "tgt_type": "compound"} if isinstance(fleet, str)
               else {"tgt": sorted(fleet), "tgt_type": "list"})
        after = self.sls("packages") or None
        return {
            "sshd_pkg": [_state("nova-migration-sshd-package", name=look["ssh_pkg"])],
            "sftp": [_state("nova-migration-sftp", name=look["sshd_config"],
                            require=["nova-migration-sshd-package"])],
            "sshd": [_state("nova-migration-sshd", name=look["ssh_service"], enable=True,
                            reload=True, watch=["nova-migration-sftp"])],
            "key": [_state("nova-migration-key", name=user, require=after)],
            "published": [_state("nova-migration-published", name=user, **tgt,
                                 require=["nova-migration-key", "nova-migration-sshd"])],
            "trust": [_state("nova-migration-trust", name=user, **tgt,
                             require=["nova-migration-published"])],
        }

    def day2(self):
        """The states the day-2 orchestrates run on the identity minion (it
        holds the admin credentials): a drain or an enable
        (nova.orch.maintenance), a decommission (nova.orch.remove_compute),
        the canary of new computes (nova.orch.deploy)."""
        if not self.facts["where"]["identity"]:
            return {}
        cred, mt, canary = self._credentials(), self.nova["maintenance"], self.nova["canary"]
        hosts = sorted(mt["hosts"])
        drained = [_state(f"nova-maintenance-{h}-drained", name=h, reason=mt["reason"],
                          timeout=int(mt["timeout"]), cold_migration=mt["cold_migration"],
                          **cred) for h in hosts]
        drain = mt["action"] == "drain"
        return {
            "drained": drained if drain else [],
            "enabled": [] if drain else [_state(f"nova-maintenance-{h}-enabled", name=h, **cred)
                                         for h in hosts],
            # a rerun after the service is gone: nothing to drain
            "removing": [dict(s, args=dict(s["args"], missing_ok=True)) for s in drained],
            # Nova marks a stopped nova-compute down after service_down_time
            "decommission": [_state(f"nova-maintenance-{h}-decommissioned", name=h, **cred,
                                    wait_down=240) for h in hosts],
            "canary": [_state(f"nova-canary-{h}", name=h, flavor=canary["flavor"],
                              image=canary["image"], timeout=int(canary["timeout"]), **cred)
                       for h in sorted(canary["hosts"])] if canary["enabled"] else [],
        }

    # ------------------------------------------------------------ nova.clean
    def clean(self):
        """The states of nova.clean for each concern that runs here, in the
        reverse order of the deploy (nova/clean.sls includes them in this
        order, which is the order they run in)."""
        look, concerns = self.look, self.facts["concerns"]
        data = self.nova["clean"]["data"]
        out = {}
        if "aggregates" in concerns and data:
            # first: through the Compute API, before its services stop
            out["aggregates"] = {"absent": [
                _state(f"nova-aggregate-{name}-absent", name=name, **self._credentials())
                for name, agg in sorted(self.nova["aggregates"].items()) if agg is not None]}
        if "service" in concerns:
            nova_services = [svc for svc in reversed(self._services()) if svc in NOVA_SERVICES]
            out["service"] = {
                "dead": [_state(f"nova-service-{svc}-dead", name=look["services"][svc],
                                sig=look["service_sigs"].get(svc), onlyif=self._ours_runs(svc))
                         for svc in nova_services],
                "disabled": [_state(f"nova-service-{svc}-disabled", name=look["services"][svc],
                                    require=[f"nova-service-{svc}-dead"])
                             for svc in nova_services]}
        if "migration" in concerns:
            # off the others' files: nova.orch.remove_compute reruns their trust
            out["migration"] = {"unpublished": [_state("nova-migration-unpublished",
                                                       name=look["user"])]}
        if "firewall" in concerns:
            rules = self.firewall()["rules"]
            out["firewall"] = {"deleted": [_state(f"{r['id']}-deleted", **{
                k: v for k, v in r["args"].items() if k not in ("position", "require")})
                for r in rules]}
        if "sysctl" in concerns:
            out["sysctl"] = {"lines": [_state(f"{s['id']}-line", name=look["sysctl_conf"],
                                              pattern=f"^{_re(s['args']['name'])}\\s*=.*\\n?",
                                              repl="", ignore_if_missing=True)
                                       for s in self.sysctl()["present"]]}
        if "libvirt" in concerns:
            out["libvirt"] = {"lines": [_state(f"nova-libvirt-qemu-{key}-default",
                                               name=look["qemu_conf"],
                                               pattern=f"^{_re(key)} = {_re(str(value))}$",
                                               repl=f"#{key} = {value}", ignore_if_missing=True)
                                        for key, value in self._qemu_lines()]}
        if "policy" in concerns:
            # before the purge: a file of ours in /etc/nova would keep dpkg
            # from removing the folder
            out["policy"] = {"absent": [_state("nova-policy-file-absent",
                                               name=self.facts["policy_file"][0])]}
        if "packages" in concerns:
            pkgs = self.facts["packages"] + [look["pkgs"][p] for p in ("common", "python")]
            # a nova:version pin holds them (apt-mark hold / versionlock): a
            # held package is never purged, so the hold goes first
            out["packages"] = {
                "unheld": [_state("nova-packages-unheld", pkgs=pkgs)],
                "purged": [_state("nova-packages-purged", pkgs=pkgs,
                                  require=["nova-packages-unheld"])]}
        if "config" in concerns:
            files = [(fid, path) for fid, path, _ in self.facts["files"]]
            files += [(fid, spec["path"]) for fid, spec in sorted(self.facts["server_files"].items())]
            out["config"] = {"absent": [_state(f"nova-config-{fid}-absent", name=path)
                                        for fid, path in files]}
        if "identity" in concerns and data:
            ks, cred = self.nova["identity"], self._credentials()
            out["identity"] = {
                "endpoints": [_state("nova-keystone-endpoints-absent",
                                     name=ks["service"]["name"], region=ks["region"], **cred)],
                "services": [_state("nova-keystone-service-absent", name=ks["service"]["name"],
                                    type=ks["service"]["type"], **cred,
                                    require=["nova-keystone-endpoints-absent"])],
                "users": [_state("nova-keystone-user-absent", name=ks["user"],
                                 domain=ks["user_domain"], **cred)]}
        if "database" in concerns and data:
            db = self.nova["database"]
            conn = {"connection": db["admin"] or None}
            out["database"] = {
                "users": [_state(f"nova-db-user-{h}-absent", name=db["user"], host=h, **conn)
                          for h in db["grant_hosts"]],
                "databases": [_state(f"nova-db-{n}-absent", name=n, **conn)
                              for n in self.facts["databases"]]}
        return out


def _re(text):
    """``text`` as a literal inside a regular expression."""
    return "".join("\\" + c if not c.isalnum() and c not in "_ " else c for c in str(text))


def _needs(kinds):
    """The SLS named by requisites of a concern's states (its ``include``)."""
    found = []
    for states in kinds.values():
        for state in states:
            for req in REQUISITES:
                for item in state["args"].get(req) or []:
                    if isinstance(item, dict) and item.get("sls") and item["sls"] not in found:
                        found.append(item["sls"])
    return found


def _compound(specs):
    """One target for several (ids lists, compound strings): a list target
    when all are lists, else a compound one ("L@a,b or ( G@x:y )")."""
    lists = [s for s in specs if not isinstance(s, str)]
    exprs = [s for s in specs if isinstance(s, str)]
    ids = sorted({i for ids in lists for i in ids if i})
    if not exprs:
        return {"tgt": ids, "tgt_type": "list"}
    parts = ([f"L@{','.join(ids)}"] if ids else []) + [f"( {e} )" for e in exprs]
    return {"tgt": " or ".join(parts), "tgt_type": "compound"}


def sync_conductor(fleet):
    """The one conductor that runs the DB sync: ``nova:fleet:sync_conductor``,
    else the first by id of the conductors (else the controllers); None when
    they are a target (the validator then asks for sync_conductor). The one
    rule for the minions' plan and the orchestrate's targets."""
    if fleet.get("sync_conductor"):
        return fleet["sync_conductor"]
    conductors = fleet.get("conductors") or fleet.get("controllers") or []
    if isinstance(conductors, str):
        return None
    return sorted(conductors)[0] if conductors else None


def fleet_targets(fleet, resolved, aggregates=None, day2=None):
    """The orchestrate's targets from ``nova:fleet``. ``resolved``: the minion
    ids of each role given as a compound target ({role: [ids]}, matched on the
    master), so the one-off jobs and host discovery know them. With
    ``aggregates`` (nova:aggregates), a last step makes them on the identity
    minion once the computes are mapped (its earlier run leaves them out)."""
    def ids(role):
        spec = fleet.get(role) or []
        return list(resolved.get(role, [])) if isinstance(spec, str) else list(spec)

    sync = sync_conductor(fleet)
    database, identity = fleet.get("database") or sync, fleet.get("identity") or sync
    errors = []
    if not sync:
        errors.append("nova:fleet needs controllers or conductors (minion ids), or "
                      "sync_conductor when they are a target")
    if not ids("computes"):
        errors.append("nova:fleet:computes names no minion (ids, or a target that matches)")
    control = [fleet.get(r) for r in ("controllers", "conductors") if fleet.get(r)]
    computes = fleet.get("computes") or []
    # the rest of the control plane: after the sync conductor, which runs the
    # DB sync in its own `nova` run (config, sync and services in one run, so
    # a config change restarts its services)
    rest = _compound(control)
    if rest["tgt_type"] == "list":
        rest["tgt"] = [m for m in rest["tgt"] if m != sync]
    elif sync:
        rest["tgt"] = f"( {rest['tgt']} ) and not L@{sync}"
    # the computes in batches of their own steps: a failed batch stops the
    # rollout there (Salt's own batch mode lets the next batches run)
    compute_ids, size = sorted(ids("computes")), int(fleet.get("batch") or 1)
    # the databases and Keystone records get a step of their own only on a
    # minion other than the sync conductor, whose `nova` run makes them anyway
    one_off = [{"step": f"nova-orch-{job}", "tgt": where, "sls": f"nova.{job}"}
               for job, where in (("database", database), ("identity", identity))
               if where and where != sync]
    day2 = day2 or {}
    canary = day2.get("canary") or {}
    # the canary needs running services; the trust needs two computes
    services = (day2.get("manage") or {}).get("services", True)
    trust = (day2.get("migration") or {}).get("enabled", True) and \
        (day2.get("manage") or {}).get("migration", True) and len(compute_ids) > 1
    mt = day2.get("maintenance") or {}
    hosts = sorted(mt.get("hosts") or [])
    if day2.get("need_hosts") and not hosts:
        errors.append("nova:maintenance:hosts: name the computes to work on, e.g. "
                      "pillar='{nova: {maintenance: {hosts: [cmp1], action: drain}}}'")
    unknown = [h for h in hosts if h not in compute_ids]
    if unknown:
        errors.append(f"nova:maintenance:hosts: not in nova:fleet:computes: {', '.join(unknown)}")
    removal = [("nova-orch-remove-drained", [identity], "nova.maintenance.removing"),
               ("nova-orch-remove-stopped", hosts, ["nova.service.clean", "nova.migration.clean"]),
               ("nova-orch-remove-decommissioned", [identity], "nova.maintenance.decommission")]
    keep = [h for h in compute_ids if h not in hosts]
    if trust and keep:
        removal.append(("nova-orch-remove-trust", keep, "nova.migration"))
    maintenance = [("nova-orch-maintenance", [identity], "nova.maintenance")]
    if mt.get("action") == "enable":  # nova-compute running again first
        maintenance.insert(0, ("nova-orch-maintenance-hosts", hosts, "nova"))
    return {
        "removal": [{"id": i, "tgt": t, "sls": sls} for i, t, sls in removal],
        "maintenance": [{"id": i, "tgt": t, "sls": sls} for i, t, sls in maintenance],
        "canary": identity if canary.get("enabled") and services else None,
        "trust": trust, "hosts": hosts, "action": mt.get("action") or "drain",
        "keep": keep,
        "errors": errors, "sync": sync, "database": database, "identity": identity,
        "one_off": one_off, "aggregates": identity if aggregates else None,
        # the control plane's runs leave host aggregates out: they wait for the computes
        "hold": {"nova": {"manage": {"aggregates": False}}} if aggregates else {},
        "control": rest, "computes": _compound([computes]),
        "everyone": _compound(control + [computes, [database, identity]]),
        "compute_ids": compute_ids, "max_fail": int(fleet.get("max_fail") or 0),
        "batches": [compute_ids[i:i + size] for i in range(0, len(compute_ids), size)],
    }


def rollout_failures(running):
    """Every failure of an orchestrate's finished steps (its ``__running__``),
    in run order, as {"step", "minion", "why"}: each minion a ``salt.state``
    step targeted that did not return, returned errors or has a failed state,
    even when the step passed because ``allow_fail`` (nova:fleet:max_fail) let
    it (Salt then says "States ran successfully"); a failed step with no
    minion to name (a ``salt.function`` step, a render error) as itself."""
    found = []
    for tag, step in sorted(running.items(), key=lambda kv: kv[1].get("__run_num__", 0)):
        parts = tag.split("_|-")
        if len(parts) != 4 or parts[0] != "salt" or parts[3] not in ("state", "function"):
            continue
        sid = step.get("__id__") or parts[1]
        minions = []
        if parts[3] == "state":
            for minion, ret in sorted(((step.get("changes") or {}).get("ret") or {}).items()):
                why = _minion_failure(ret)
                if why:
                    minions.append({"step": sid, "minion": minion, "why": why})
        if step.get("result") is False and not minions:
            minions.append({"step": sid, "minion": None,
                            "why": str(step.get("comment") or "failed")})
        found += minions
    return found


def _minion_failure(ret):
    """Why one minion's return of a ``state.sls`` job is a failure; None when
    it is not (every state True, or None in a dry run)."""
    # Salt hands a state its __running__ frozen (ImmutableDict, ImmutableList)
    if ret is False or ret is None:
        return "no return (minion down or not answering)"
    if isinstance(ret, Sequence) and not isinstance(ret, str):
        return "errors: " + "; ".join(str(e) for e in ret)[:500]
    if not isinstance(ret, Mapping):
        return f"returned {str(ret)[:200]!r}"
    bad = sorted(r.get("__id__") or k.split("_|-")[1 if "_|-" in k else 0]
                 for k, r in ret.items() if isinstance(r, Mapping) and r.get("result") is False)
    return f"failed states: {', '.join(bad)}" if bad else None

def upgrade_targets(to, installed, version):
    """nova.orch.upgrade's targets: ``to`` (fleet_targets), ``installed``
    ({minion: the version of its Nova code, '' when none; for ``latest``:
    the newer version it could install, '' when none}) and the version
    to roll to. Hosts behind it are rolled; with none behind, only the end
    runs (the pin lifted, migrations), so a rerun changes nothing."""
    errors = list(to["errors"])
    if version is None:
        errors.append("nova:version: nova.orch.upgrade needs the version to roll to "
                      "(a package version, or latest), in the master's pillar too")
    control = to["control"]["tgt"] if to["control"]["tgt_type"] == "list" else []
    nova_hosts = {to["sync"], *control, *to["compute_ids"]} - {None}
    if to["control"]["tgt_type"] != "list":  # a compound target: whoever answered
        nova_hosts |= set(installed) - {to["database"], to["identity"]}
    missing = sorted(h for h in nova_hosts if h not in installed)
    if missing and not errors:
        errors.append("no answer about the installed Nova from " + ", ".join(missing)
                      + " (minion down?)")

    def behind(host):
        have = installed.get(host) or ""
        return bool(have) if version == "latest" else have != str(version)

    late = sorted(h for h in nova_hosts if behind(h))
    return {**to, "errors": errors, "version": version, "pending": bool(late), "behind": late,
            "nova_hosts": _compound([[to["sync"]], to["control"]["tgt"], to["computes"]["tgt"]]),
            "controllers": _compound([[to["sync"]], to["control"]["tgt"]]),
            "compute_batches": [
                {"hosts": b, "disable": {"nova": {"upgrade": {"disable": b}}},
                 "enable": {"nova": {"upgrade": {"enable": b}}}}
                for b in ([h for h in batch if behind(h)] for batch in to["batches"]) if b],
            # the RPC pin for the roll; the config-only run leaves packages alone
            "pin": {"nova": {"upgrade_levels": {"compute": "auto"}}},
            "pin_config": {"nova": {"upgrade_levels": {"compute": "auto"},
                                    "manage": {"packages": False}}},
            # conductors first, then schedulers, then the APIs (Nova's order)
            "restart": [{"step": step, "services": svcs,
                         "pillar": {"nova": {"upgrade": {"restart": svcs}}}}
                        for step, svcs in (("conductors", ["conductor"]),
                                           ("schedulers", ["scheduler"]),
                                           ("apis", ["api", "metadata", "novncproxy"]))]}


def states(nova, facts):
    """{concern: {kind: [state]}} for the concerns in ``facts["concerns"]``,
    with ``needs`` and ``clean``."""
    plan = _Plan(nova, facts)
    out = {concern: getattr(plan, concern)() for concern in facts["concerns"]}
    if facts["roles"] or facts["where"]["identity"]:
        out["upgrade"] = plan.upgrade()
    out["needs"] = {concern: _needs(kinds) for concern, kinds in out.items()}
    out["clean"] = plan.clean()
    out["day2"] = plan.day2()
    return out
