"""``nova_manage.cell_present`` on the real MariaDB through real salt-call.

cell0 is mapped over SQL with nova.conf's main database URL + ``_cell0``: the
password stays percent-encoded (Nova's own ``map_cell0`` decodes it, see
tests/test_oslo_url_limits.py), a second run changes nothing, a rotated
password is reported by ``test=True`` and then written, and no URL reaches
the state output. cell1 goes through nova-manage itself, proven in
tests/test_e2e.py and tests/test_e2e_secrets.py (a rotation and a boot);
here a nova-manage that does nothing is caught.

Nova's ``cell_mappings`` table is created with the columns of Nova 26's
model (nova/db/api/models.py), in a scratch API database.
"""
import os

import pymysql
import pytest

from formula_support import GRAINS
from harness import SaltCall
from reliability_support import new_tag
from secret_audit import sentinel

CELL0_UUID = "00000000-0000-0000-0000-000000000000"
CELL_MAPPINGS = """CREATE TABLE cell_mappings (
    created_at DATETIME, updated_at DATETIME, id INT NOT NULL AUTO_INCREMENT,
    uuid VARCHAR(36) NOT NULL, name VARCHAR(255), transport_url TEXT,
    database_connection TEXT, disabled TINYINT(1), PRIMARY KEY (id),
    UNIQUE KEY uniq_cell_mappings0uuid (uuid), KEY uuid_idx (uuid))"""
SLS = """
cell:
  nova_manage.cell_present:
    - name: {{ pillar['cell'] }}
    - config: {{ pillar['conf'] }}
"""


def _admin():
    return pymysql.connect(host="127.0.0.1", port=3306, user="root", password="",
                           autocommit=True)


def _url(user, password, database):
    from urllib.parse import quote
    return (f"mysql+pymysql://{quote(user, safe='')}:{quote(password, safe='')}"
            f"@127.0.0.1:3306/{database}?charset=utf8")


class Cells:
    """A scratch main + API database, a DB user, and a nova.conf naming them."""

    def __init__(self, tmp_path):
        self.tag = new_tag("nmc")
        self.conf = tmp_path / "nova.conf"
        self.admin = _admin()
        try:
            with self.admin.cursor() as cur:
                for db in (self.tag, self.tag + "_api"):
                    cur.execute(f"CREATE DATABASE `{db}`")
                cur.execute(f"USE `{self.tag}_api`")
                cur.execute(CELL_MAPPINGS)
            self.set_password("pw-" + self.tag)
        except Exception:
            self.drop()
            raise

    def set_password(self, password):
        with self.admin.cursor() as cur:
            cur.execute("CREATE USER IF NOT EXISTS %s@'127.0.0.1' IDENTIFIED BY %s",
                        (self.tag, password))
            cur.execute("ALTER USER %s@'127.0.0.1' IDENTIFIED BY %s", (self.tag, password))
            cur.execute(f"GRANT ALL ON `{self.tag}%%`.* TO %s@'127.0.0.1'", (self.tag,))
        self.main_url = _url(self.tag, password, self.tag)
        self.conf.write_text(
            "[DEFAULT]\ntransport_url = rabbit://nova:x@127.0.0.1:5672/nova\n\n"
            f"[api_database]\nconnection = {_url(self.tag, password, self.tag + '_api')}\n\n"
            f"[database]\nconnection = {self.main_url}\n")

    def rows(self):
        with self.admin.cursor() as cur:
            cur.execute(f"SELECT uuid, name, transport_url, database_connection "
                        f"FROM `{self.tag}_api`.cell_mappings ORDER BY id")
            return cur.fetchall()

    def drop(self):
        with self.admin.cursor() as cur:
            for db in (self.tag, self.tag + "_api"):
                cur.execute(f"DROP DATABASE IF EXISTS `{db}`")
            cur.execute("DROP USER IF EXISTS %s@'127.0.0.1'", (self.tag,))
        self.admin.close()


@pytest.fixture
def cells(tmp_path):
    made = Cells(tmp_path)
    yield made
    made.drop()


@pytest.fixture
def sc(tmp_path, cells):
    call = SaltCall(tmp_path / "minion", minion_id="ctl1", grains=GRAINS["debian12"])
    call.write_sls("cells", SLS)
    # nova-manage is not needed for cell0 (a stand-in keeps the module loadable)
    call.set_pillar({"cell": "cell0", "conf": str(cells.conf),
                     "nova_manage": {"bin": "/bin/true", "user": "root"}})
    return call


def _cell0_url(cells):
    base, query = cells.main_url.split("?")
    return f"{base}_cell0?{query}"


def test_cell0_created_with_encoded_password_then_no_op(sc, cells):
    first = sc.apply("cells")
    first.assert_ok()
    assert first["cell"]["changes"] == {"cell": {"old": None, "new": "cell0"}}
    assert cells.rows() == ((CELL0_UUID, "cell0", "none:///", _cell0_url(cells)),)

    again = sc.apply("cells")
    again.assert_ok()
    assert again.changed == {} and "is mapped" in again["cell"]["comment"]


def test_rotated_password_reported_by_test_mode_then_updated(sc, cells):
    sc.apply("cells").assert_ok()
    before = cells.rows()
    password = sentinel("cell0db")
    cells.set_password(password)

    dry = sc.apply("cells", test=True)
    assert dry["cell"]["result"] is None
    assert list(dry["cell"]["changes"]) == ["database_connection"]
    assert cells.rows() == before  # test=True changed nothing

    real = sc.apply("cells")
    real.assert_ok()
    assert list(real["cell"]["changes"]) == ["database_connection"]
    assert cells.rows() == ((CELL0_UUID, "cell0", "none:///", _cell0_url(cells)),)
    assert sc.apply("cells").changed == {}
    for run in (dry, real):  # no URL, no password in the output
        out = run.proc.stdout + run.proc.stderr
        assert cells.tag + ":" not in out and password not in out
        assert "pymysql" not in out


def test_cell_whose_nova_manage_does_nothing_fails_clearly(sc, cells):
    sc.set_pillar({"cell": "cell1", "conf": str(cells.conf),
                   "nova_manage": {"bin": "/bin/true", "user": "root"}})
    run = sc.apply("cells")
    assert run["cell"]["result"] is False
    assert "does not have nova.conf's URLs" in run["cell"]["comment"]
    assert cells.rows() == ()


def test_missing_database_connection_is_named(sc, cells):
    cells.conf.write_text(cells.conf.read_text().split("[database]")[0])
    run = sc.apply("cells")
    assert run["cell"]["result"] is False
    assert "has no [database] connection" in run["cell"]["comment"]
    assert os.path.basename(str(cells.conf)) in run["cell"]["comment"]
