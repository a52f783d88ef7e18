"""Unit tests of the migration trust (openstack_ssh module and states): a
real ssh-keygen, real files in a temporary home, the Salt mine replaced by a
dict (minion -> published identity). On real hosts, through a real mine,
sshd and ssh/sftp with StrictHostKeyChecking=yes: tests/fleet/test_fleet_3_day2.py."""
import os
import pwd
import stat
import uuid

import pytest

from harness import load_module

OTHER = "# a key someone else put here\nssh-rsa AAAAB3NzaOTHER admin@laptop\n"


class Minion:
    """One compute: the module and states with their dunders, sharing ``mine``."""

    def __init__(self, mid, home, sshd_dir, mine, monkeypatch):
        tag = uuid.uuid4().hex
        self.mod = load_module("modules", "openstack_ssh", f"ossh_m_{tag}")
        self.states = load_module("states", "openstack_ssh", f"ossh_s_{tag}")
        self.home, self.sshd_dir, self.mine = home, sshd_dir, mine
        me = pwd.getpwuid(os.getuid())
        acct = pwd.struct_passwd((me.pw_name, "x", me.pw_uid, me.pw_gid, "", str(home),
                                  "/bin/sh"))
        monkeypatch.setattr(self.mod, "_account", lambda user: acct)
        self.opts = {"id": mid, "test": False}
        self.mod.__opts__ = self.states.__opts__ = self.opts
        self.mod.__grains__ = {"id": mid, "host": mid, "fqdn": f"{mid}.example",
                               "ipv4": ["127.0.0.1", f"10.0.0.1{mid[-1]}"]}
        self.mod.__salt__ = {"mine.get": self.mine_get, "mine.send": self.mine_send,
                             "mine.delete": self.mine_delete}
        self.states.__salt__ = {f"openstack_ssh.{n}": getattr(self.mod, n) for n in dir(self.mod)
                                if not n.startswith("_") and callable(getattr(self.mod, n))}
        self.mid = mid
        self.mod.__context__ = {}
        self.mine_gets = 0

    def mine_get(self, tgt, fun, tgt_type="glob"):
        assert fun == "nova_migration" and tgt_type == "list"
        self.mine_gets += 1
        tgt = [tgt] if isinstance(tgt, str) else tgt
        return {m: dict(v) for m, v in self.mine.items() if m in tgt}

    def mine_send(self, name, mine_function, **kwargs):
        assert name == "nova_migration" and mine_function == "openstack_ssh.identity"
        self.mine[self.mid] = self.mod.identity(**kwargs)
        return True

    def mine_delete(self, fun):
        return self.mine.pop(self.mid, None) is not None

    def state(self, fun, *args, test=False, new_run=True, **kwargs):
        """One state; ``new_run``: in a run of its own (Salt's __context__ lives for one run)."""
        if new_run:
            self.mod.__context__ = {}
        self.opts["test"] = test
        return getattr(self.states, fun)(*args, **kwargs)

    def converge(self, tgt, test=False):
        """The migration concern's states in one run, as the plan orders them."""
        self.mod.__context__ = {}
        return [self.state("key_present", "nova", test=test, new_run=False),
                self.state("published", "nova", sshd_dir=str(self.sshd_dir), tgt=tgt,
                           test=test, new_run=False),
                self.state("trust_present", "nova", tgt=tgt, test=test, new_run=False)]


@pytest.fixture
def fleet(tmp_path, monkeypatch):
    mine = {}
    made = {}
    for i, mid in enumerate(("cmp1", "cmp2", "cmp3")):
        home = tmp_path / mid / "home"
        sshd = tmp_path / mid / "etc-ssh"
        home.mkdir(parents=True)
        sshd.mkdir()
        for kind in ("ed25519", "rsa"):
            (sshd / f"ssh_host_{kind}_key.pub").write_text(
                f"ssh-{kind} AAAAHOST{kind}{mid} root@{mid}\n")
            (sshd / f"ssh_host_{kind}_key").write_text("PRIVATE HOST KEY\n")
        made[mid] = Minion(mid, home, sshd, mine, monkeypatch)
    return made, mine


TGT = ["cmp1", "cmp2", "cmp3"]


def _lines(path):
    return path.read_text().splitlines()


def test_computes_trust_each_other_through_the_mine(fleet):
    minions, mine = fleet
    for m in minions.values():
        rets = m.converge(TGT)
        assert all(r["result"] is True for r in rets), rets
    # each saw only those before it; a second pass (the deploy's trust step) fixes that
    added = {}
    for mid, m in minions.items():
        rets = m.converge(TGT)
        assert not rets[0]["changes"] and not rets[1]["changes"]
        added[mid] = rets[2]["changes"].get(str(m.home / ".ssh" / "authorized_keys"),
                                            {}).get("added")
    assert added == {"cmp1": ["cmp2", "cmp3"], "cmp2": ["cmp3"], "cmp3": None}
    for m in minions.values():  # now nothing changes anywhere, with one mine read per run
        before = m.mine_gets
        assert not any(r["changes"] for r in m.converge(TGT))
        assert m.mine_gets - before == 1
    ssh = minions["cmp1"].home / ".ssh"
    auth, known = _lines(ssh / "authorized_keys"), _lines(ssh / "known_hosts")
    assert [ln.split()[-1] for ln in auth] == ["nova-migration@cmp2", "nova-migration@cmp3"]
    assert mine["cmp2"]["user_key"].split()[1] in auth[0]
    assert "cmp2,cmp2.example,10.0.0.12 ssh-ed25519 AAAAHOSTed25519cmp2 nova-migration@cmp2" \
        in known
    assert len(known) == 4  # two host keys of each other compute
    for name in ("authorized_keys", "known_hosts", "id_ed25519"):
        assert stat.S_IMODE(os.stat(ssh / name).st_mode) == 0o600, name


def test_no_private_key_in_the_mine_or_a_return(fleet):
    minions, mine = fleet
    rets = minions["cmp1"].converge(TGT) + minions["cmp2"].converge(TGT)
    private = (minions["cmp1"].home / ".ssh" / "id_ed25519").read_text()
    body = private.strip().splitlines()[1]
    text = repr(rets) + repr(mine)
    assert body not in text and "PRIVATE" not in text
    assert set(mine["cmp1"]) == {"host", "names", "user_key", "host_keys"}


def test_test_mode_changes_nothing(fleet):
    minions, mine = fleet
    rets = minions["cmp1"].converge(TGT, test=True)
    assert rets[0]["result"] is None and rets[1]["result"] is None
    assert not (minions["cmp1"].home / ".ssh").exists() and mine == {}


def test_lines_we_do_not_manage_stay_byte_for_byte(fleet):
    minions, _ = fleet
    ssh = minions["cmp1"].home / ".ssh"
    ssh.mkdir(mode=0o700)
    (ssh / "authorized_keys").write_text(OTHER.rstrip("\n"))  # no final newline
    for mid in ("cmp2", "cmp1"):
        minions[mid].converge(TGT)
    text = (ssh / "authorized_keys").read_text()
    assert text.startswith(OTHER) and text.count("nova-migration@") == 1


def test_a_changed_host_key_is_trusted_only_once_republished(fleet):
    minions, _ = fleet
    for mid in ("cmp2", "cmp1"):
        minions[mid].converge(TGT)
    known = minions["cmp1"].home / ".ssh" / "known_hosts"
    (minions["cmp2"].sshd_dir / "ssh_host_ed25519_key.pub").write_text("ssh-ed25519 AAAANEW x\n")
    assert not any(r["changes"] for r in minions["cmp1"].converge(TGT))
    assert "AAAANEW" not in known.read_text()  # the mine still holds the old key
    rets = minions["cmp2"].converge(TGT)
    assert rets[1]["changes"]["mine"]["fields"] == ["host_keys"]
    minions["cmp1"].converge(TGT)
    assert "AAAANEW" in known.read_text() and "AAAAHOSTed25519cmp2" not in known.read_text()


def test_a_removed_compute_leaves_the_others_files(fleet):
    minions, mine = fleet
    for _ in range(2):
        for m in minions.values():
            m.converge(TGT)
    ret = minions["cmp2"].state("unpublished", "nova")
    assert ret["changes"] == {"mine": {"old": "published", "new": "absent"}} and "cmp2" not in mine
    assert minions["cmp2"].state("unpublished", "nova")["changes"] == {}
    ret = minions["cmp1"].state("trust_present", "nova", tgt=TGT)
    assert all(c == {"added": [], "removed": ["cmp2"]} for c in ret["changes"].values()), ret
    ssh = minions["cmp1"].home / ".ssh"
    assert "cmp2" not in (ssh / "authorized_keys").read_text()
    assert "cmp2" not in (ssh / "known_hosts").read_text()
    assert minions["cmp1"].state("trust_present", "nova", tgt=TGT)["changes"] == {}


def test_sftp_subsystem_added_before_match_blocks_once(fleet, tmp_path):
    minions, _ = fleet
    conf = tmp_path / "sshd_config"
    original = "Port 22\n#Subsystem sftp /usr/lib/openssh/sftp-server\nMatch User backup\n  X11Forwarding no\n"
    conf.write_text(original)
    m = minions["cmp1"]
    dry = m.state("sftp_served", str(conf), test=True)
    assert dry["result"] is None and conf.read_text() == original
    ret = m.state("sftp_served", str(conf))
    assert ret["result"] is True and ret["changes"]
    text = conf.read_text()
    assert text.index("Subsystem sftp internal-sftp") < text.index("Match User")
    assert text.replace("# nova-formula: OpenSSH 9's scp (resize, cold migration) needs sftp\n"
                        "Subsystem sftp internal-sftp\n", "") == original
    again = m.state("sftp_served", str(conf))
    assert again["changes"] == {} and "internal-sftp" in again["comment"]
    conf.write_text("Subsystem\tsftp\t/usr/lib/openssh/sftp-server\n")  # Debian's: kept
    assert m.state("sftp_served", str(conf))["changes"] == {}


def test_a_missing_user_fails_naming_it(fleet):
    minions, _ = fleet
    m = minions["cmp1"]
    m.mod._account = load_module("modules", "openstack_ssh")._account
    ret = m.state("key_present", "no-such-user-" + uuid.uuid4().hex[:6])
    assert ret["result"] is False and "no such user" in ret["comment"]
