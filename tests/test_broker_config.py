"""Issue 8, roles and access at the broker: `hallctl broker-config` turns central's [[client]] list
and the role table into Mosquitto's password file, ACL and a TLS listener, and a real Mosquitto
running those files lets each role read and write what hallctl/access/roles.py says, and nothing
else, over TLS with the hall's own CA. hallctl's clients reach it with [mqtt] tls_ca and
password_file; central refuses a window client another window's actions (`forbidden`).

Mosquitto refuses reads and writes silently (a denied message is not delivered; a denied
publish is still acknowledged), so every refusal here is shown against an allowed message sent
after it by the same sender: once the later one has arrived, the earlier one would have too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import ssl
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import pytest
from conftest import PYTHON, ROOT, spawn_env
from hallkit import Running

from hallctl.access.broker import hash_password, verify_password
from hallctl.access.roles import ROLES
from hallctl.bus.tls import TlsSettings
from hallctl.central.config import load_central_config
from hallctl.central.service import central_from_config
from hallctl.config import load_node_config
from hallctl.errors import ConfigError
from hallctl.node.daemon import Node
from hallctl.sim.mosquitto import MosquittoProcess, free_port
from hallctl_drivers.onbon_bx.emulator import BxEmulator

HALL = "h1"
ROOT_T = f"hallctl/v1/{HALL}/"
#: client id -> role, one of each role besides central's own
CLIENTS = {"kiosk-1": "kiosk", "window-1": "window", "window-2": "window", "board-1": "display",
           "sms-gw": "sms", "tech": "technician", "mgr": "dashboard"}
PHONE = b"13800138000"

CENTRAL_TOML = """\
[central]
hall = "h1"
id = "central"

[mqtt]
host = "127.0.0.1"
port = {local_port}
username = "central"
password_file = "out/credentials/central.password"
keepalive = 5

[store]
path = "central.db"

[[queue]]
id = "a"
prefix = "A"
name = "综合"

[[window]]
id = "1"
name = "1号窗口"

[[window]]
id = "2"
name = "2号窗口"
{clients}
"""


def _client_tables(clients: dict[str, str]) -> str:
    out = []
    for cid, role in clients.items():
        out.append(f'\n[[client]]\nid = "{cid}"\nrole = "{role}"')
        if role == "window":
            out.append(f'windows = ["{cid.removeprefix("window-")}"]')
    return "\n".join(out) + "\n"


# -- a hall CA, the broker's certificate, another CA ---------------------------------------------


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(folder: Path, name: str) -> Path:
    """A CA as docs/access.md makes it (EC P-256: instant, and what a Pi handshakes fastest)."""
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-days", "3650", "-keyout", f"{name}.key", "-out", f"{name}.crt", "-subj", f"/CN={name}",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             cwd=folder)
    return folder / f"{name}.crt"


def make_broker_cert(folder: Path, ca: str) -> tuple[Path, Path]:
    """The broker's certificate for 127.0.0.1 and localhost, signed by ``ca``."""
    (folder / "broker.ext").write_text(
        "subjectAltName = DNS:localhost, IP:127.0.0.1\n"
        "basicConstraints = critical, CA:FALSE\n"
        "keyUsage = critical, digitalSignature, keyEncipherment\n"
        "extendedKeyUsage = serverAuth\n"
        "subjectKeyIdentifier = hash\n"
        "authorityKeyIdentifier = keyid\n")
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", "broker.key", "-out", "broker.csr", "-subj", "/CN=hallctl broker", cwd=folder)
    _openssl("x509", "-req", "-in", "broker.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key", "-CAcreateserial",
             "-days", "825", "-out", "broker.crt", "-extfile", "broker.ext", cwd=folder)
    return folder / "broker.crt", folder / "broker.key"


@dataclass
class Hall:
    dir: Path
    config: Path
    out: Path
    ca: Path
    other_ca: Path
    cert: Path
    key: Path
    tls_port: int
    local_port: int

    def password(self, user: str) -> str:
        return (self.out / "credentials" / f"{user}.password").read_text().strip()

    def broker_lines(self) -> tuple[str, ...]:
        """The generated snippet's settings, after MosquittoProcess's own (later lines win)."""
        text = (self.out / "mosquitto.conf").read_text()
        return tuple(line for line in text.splitlines() if line.strip() and not line.startswith("#"))


def broker_config(hall: Hall, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "hallctl", "broker-config", "-c", str(hall.config), "--out", str(hall.out),
         "--tls-cert", str(hall.cert), "--tls-key", str(hall.key), "--tls-ca", str(hall.ca),
         "--tls-port", str(hall.tls_port), "--local-port", str(hall.local_port), *extra],
        capture_output=True, text=True, env=spawn_env(), cwd=ROOT, timeout=60)


def make_hall(folder: Path, clients: dict[str, str] = CLIENTS) -> Hall:
    certs = folder / "certs"
    certs.mkdir()
    ca = make_ca(certs, "hall-ca")
    other = make_ca(certs, "other-ca")
    cert, key = make_broker_cert(certs, "hall-ca")
    local_port = free_port()
    config = folder / "central.toml"
    config.write_text(CENTRAL_TOML.format(local_port=local_port, clients=_client_tables(clients)))
    hall = Hall(folder, config, folder / "out", ca, other, cert, key, free_port(), local_port)
    done = broker_config(hall)
    assert done.returncode == 0, done.stderr
    return hall


@pytest.fixture(scope="module")
def hall(tmp_path_factory):
    return make_hall(tmp_path_factory.mktemp("hall"))


@pytest.fixture(scope="module")
def broker(hall):
    with MosquittoProcess(extra_config=hall.broker_lines()) as b:
        yield b


def tls_client(hall: Hall, user: str | None, *, password: str | None = None, ca: Path | None = None,
               port: int | None = None) -> aiomqtt.Client:
    """A client over TLS as another system would make it: aiomqtt with an SSL context of its own."""
    context = ssl.create_default_context(cafile=str(ca or hall.ca))
    return aiomqtt.Client("127.0.0.1", port or hall.tls_port, username=user,
                          password=password if password is not None or user is None else hall.password(user),
                          identifier=f"t-{user or 'anon'}-{os.urandom(3).hex()}", tls_context=context, timeout=10)


class Listener:
    """A logged-in client subscribed to ``filters``, remembering every (topic, payload)."""

    def __init__(self, client: aiomqtt.Client, filters: list[str]) -> None:
        self.client, self.filters = client, filters
        self.got: list[tuple[str, bytes]] = []
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> "Listener":
        await self.client.__aenter__()
        for f in self.filters:
            await self.client.subscribe(f, qos=1)  # SUBACK: the broker has the subscription
        self._task = asyncio.create_task(self._collect())
        return self

    async def _collect(self) -> None:
        async for m in self.client.messages:
            self.got.append((str(m.topic), bytes(m.payload)))

    async def __aexit__(self, *exc) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self.client.__aexit__(None, None, None)

    def topics(self) -> set[str]:
        return {t.removeprefix(ROOT_T) for t, _ in self.got}

    async def until(self, topic: str) -> None:
        async with asyncio.timeout(10):
            while topic not in self.topics():
                await asyncio.sleep(0.02)


# -- the files ------------------------------------------------------------------------------------


def test_the_files_one_login_per_client_the_acl_from_the_role_table(hall):
    users = dict(line.split(":", 1) for line in (hall.out / "passwd").read_text().splitlines())
    assert set(users) == {"central", *CLIENTS}
    for user, hashed in users.items():
        assert hashed.startswith("$7$") and verify_password(hall.password(user), hashed)
        mode = stat.S_IMODE((hall.out / "credentials" / f"{user}.password").stat().st_mode)
        assert mode == 0o600, f"{user}'s credential is readable by others: {oct(mode)}"
    assert len({hall.password(u) for u in users}) == len(users), "two clients share a password"
    assert stat.S_IMODE((hall.out / "passwd").stat().st_mode) & 0o007 == 0
    acl = (hall.out / "acl").read_text()
    # requests to central (phone numbers) are read by central's role alone, sms/# by sms and central
    readers = {}
    user = None
    for line in acl.splitlines():
        if line.startswith("user "):
            user = line.split()[1]
        elif line.startswith(("topic read", "pattern read")):
            readers.setdefault(line.split()[2], set()).add(user if line.startswith("topic") else "%u")
    assert readers[f"{ROOT_T}#"] == {"central"}
    assert readers[f"{ROOT_T}sms/#"] == {"sms-gw"}
    assert not any("central/req" in t for t in readers), readers
    assert f"pattern write {ROOT_T}central/req/%u/+" in acl.splitlines()
    conf = hall.broker_lines()
    assert "per_listener_settings false" in conf and "allow_anonymous false" in conf
    assert f"listener {hall.tls_port}" in conf and "tls_version tlsv1.2" in conf
    assert f"listener {hall.local_port} 127.0.0.1" in conf


def test_our_hashes_and_mosquitto_passwds_are_the_same_kind(tmp_path):
    """Mosquitto takes ours (every login below); ours check one of mosquitto_passwd's."""
    passwd = tmp_path / "p"
    passwd.touch()
    subprocess.run(["mosquitto_passwd", "-b", str(passwd), "u", "s3cret"], check=True, capture_output=True)
    theirs = passwd.read_text().strip().split(":", 1)[1]
    assert verify_password("s3cret", theirs) and not verify_password("s3creT", theirs)
    ours = hash_password("s3cret", salt=bytes(12))
    assert ours.split("$")[2] == theirs.split("$")[2] and len(ours) == len(theirs)


# -- logins ----------------------------------------------------------------------------------------


async def test_only_known_clients_over_tls_with_the_halls_ca_get_in(hall, broker):
    async with tls_client(hall, "kiosk-1"):
        pass
    with pytest.raises(aiomqtt.MqttCodeError) as anonymous:
        async with tls_client(hall, None):
            pass
    assert "not authori" in str(anonymous.value).lower()
    with pytest.raises(aiomqtt.MqttCodeError) as wrong:
        async with tls_client(hall, "kiosk-1", password=hall.password("window-1")):
            pass
    assert "not authori" in str(wrong.value).lower()
    # a broker whose certificate another CA signed (a stranger on the hall's network) is refused
    with pytest.raises(aiomqtt.MqttError, match="CERTIFICATE_VERIFY_FAILED"):
        async with tls_client(hall, "kiosk-1", ca=hall.other_ca):
            pass
    # the LAN listener speaks TLS only: an MQTT CONNECT in clear gets no CONNACK, the connection is closed
    connect = bytes([0x10, 16, 0, 4]) + b"MQTT" + bytes([4, 0x02, 0, 10, 0, 4]) + b"anon"
    with socket.create_connection(("127.0.0.1", hall.tls_port), timeout=10) as sock:
        sock.sendall(connect)
        try:
            reply = sock.recv(4)
        except ConnectionResetError:
            reply = b""
    assert reply == b"", f"the TLS listener answered plain MQTT: {reply!r}"


# -- reads -----------------------------------------------------------------------------------------

#: what central publishes (topic under the hall root -> payload), the marker board/state last
PUBLISHED = {
    "central/req/kiosk-1/ticket.issue": b'{"v":1,"request_id":"r1","data":{"queue":"a","phone":"13800138000"}}',
    "sms/out/r1": b'{"to":"13800138000","text":"A001"}',
    "central/kpi": b'{"v":1}',
    "central/staffing": b'{"v":1}',
    "central/health": b'{"v":1}',
    "central/catalogue": b'{"v":1}',
    "central/res/mgr": b'{"v":1,"request_id":"k1","status":"ok","data":{"by_clerk":{"s1024":{}}}}',
    "node/window-1/dev/display/state": b'{"v":1}',
    "board/state": b'{"v":1}',
}
#: what each reader must get of it, and nothing more
PUBLIC = {"board/state", "central/catalogue"}
READS = {
    "kiosk-1": PUBLIC,
    "window-1": PUBLIC | {"node/window-1/dev/display/state"},  # its own node subtree
    "board-1": PUBLIC,
    "sms-gw": PUBLIC | {"sms/out/r1"},
    "tech": PUBLIC | {"central/health", "node/window-1/dev/display/state"},
    "mgr": PUBLIC | {"central/kpi", "central/staffing", "central/health", "central/res/mgr",
                     "node/window-1/dev/display/state"},
    "central": set(PUBLISHED),
}


async def test_each_role_reads_what_the_role_table_gives_it_and_nothing_else(hall, broker):
    # everyone asks for everything, by name as well as by wildcard: the ACL decides what comes
    filters = [f"{ROOT_T}#"] + [f"{ROOT_T}{t}" for t in ("central/req/#", "sms/#", "central/kpi", "central/res/+")]
    async with contextlib.AsyncExitStack() as stack:
        readers = {u: await stack.enter_async_context(Listener(tls_client(hall, u), filters)) for u in READS}
        async with tls_client(hall, "central") as central:
            for topic, payload in PUBLISHED.items():  # board/state last
                await central.publish(ROOT_T + topic, payload, qos=1)
        for user, reader in readers.items():
            await reader.until("board/state")
            assert reader.topics() == READS[user], user
    assert not any(PHONE in p for u in ("kiosk-1", "window-1", "board-1", "tech", "mgr") for _, p in readers[u].got)
    assert any(PHONE in p for _, p in readers["sms-gw"].got), "the SMS gateway reads the phone number it texts"


# -- writes ----------------------------------------------------------------------------------------

#: (user, topic under the hall root, allowed), in the order sent; each user's last is allowed
WRITES = [
    # a technician drives any node's devices; a kiosk may not, nor a dashboard
    ("tech", "node/window-1/dev/display/cmd/show", True),
    ("kiosk-1", "node/window-1/dev/display/cmd/show", False),
    ("mgr", "node/window-1/dev/display/cmd/show", False),
    # a window node may not speak as another client to central, nor as central
    ("window-1", "central/req/window-2/window.call_next", False),
    ("window-1", "central/kpi", False),
    ("window-1", "node/window-2/dev/display/cmd/show", False),
    ("window-1", "node/window-1/status", True),  # its own subtree
    ("window-1", "central/req/window-1/window.call_next", True),
    ("kiosk-1", "sms/out/r2", False),
    ("kiosk-1", "central/req/kiosk-1/ticket.issue", True),
    ("mgr", "central/kpi", False),
    ("mgr", "central/req/mgr/kpi.summary", True),
    ("sms-gw", "sms/in/r3", True),
]


async def test_each_role_writes_only_where_the_role_table_lets_it(hall, broker):
    async with Listener(tls_client(hall, "central"), [f"{ROOT_T}#"]) as central:
        for user in dict.fromkeys(u for u, _, _ in WRITES):
            async with tls_client(hall, user) as client:
                for u, topic, _ in WRITES:
                    if u == user:
                        await client.publish(ROOT_T + topic, f'{{"v":1,"from":"{user}"}}'.encode(), qos=1)
            last = [t for u, t, _ in WRITES if u == user][-1]
            async with asyncio.timeout(10):
                while (ROOT_T + last, f'{{"v":1,"from":"{user}"}}'.encode()) not in central.got:
                    await asyncio.sleep(0.02)
        got = {(json.loads(p)["from"], t.removeprefix(ROOT_T)) for t, p in central.got if b'"from"' in p}
    for user, topic, allowed in WRITES:
        assert ((user, topic) in got) is allowed, (user, topic, allowed)


# -- re-running it -----------------------------------------------------------------------------------


async def test_running_it_again_keeps_every_login_and_drops_a_removed_client(tmp_path):
    hall = make_hall(tmp_path, {"kiosk-1": "kiosk", "kiosk-2": "kiosk", "window-1": "window"})
    before = {u: hall.password(u) for u in ("central", "kiosk-1", "kiosk-2", "window-1")}
    passwd = (hall.out / "passwd").read_text()
    again = broker_config(hall)
    assert again.returncode == 0, again.stderr
    assert (hall.out / "passwd").read_text() == passwd, "nothing changed, yet the password file did"
    with MosquittoProcess(extra_config=hall.broker_lines()) as b:
        async with tls_client(hall, "kiosk-2"):
            pass
        hall.config.write_text(hall.config.read_text().replace('id = "kiosk-2"\nrole = "kiosk"', 'id = "kiosk-3"\nrole = "kiosk"'))
        done = broker_config(hall)
        assert done.returncode == 0, done.stderr
        assert "removed kiosk-2" in done.stdout and "new (kiosk-3)" in done.stdout
        os.kill(b.pid, signal.SIGHUP)  # Mosquitto reads its password file and ACL again
        assert not (hall.out / "credentials" / "kiosk-2.password").exists()
        users = {line.split(":")[0] for line in (hall.out / "passwd").read_text().splitlines()}
        assert users == {"central", "kiosk-1", "kiosk-3", "window-1"}
        for user in ("central", "kiosk-1", "window-1"):
            assert hall.password(user) == before[user], f"{user} was locked out"
            async with tls_client(hall, user):
                pass
        async with asyncio.timeout(10):  # once the reload is done, the removed client is refused
            while True:
                try:
                    async with tls_client(hall, "kiosk-2", password=before["kiosk-2"]):
                        pass
                except aiomqtt.MqttCodeError:
                    break
                await asyncio.sleep(0.05)
        async with tls_client(hall, "kiosk-3"):
            pass


def test_a_config_error_or_a_hall_without_clients_exits_78(tmp_path):
    hall = Hall(tmp_path, tmp_path / "central.toml", tmp_path / "out", *(tmp_path / n for n in "abcd"), 8883, 1883)
    hall.config.write_text(CENTRAL_TOML.format(local_port=1883, clients='\n[[client]]\nid = "k"\nrole = "kisok"\n'))
    (tmp_path / "out" / "credentials").mkdir(parents=True)
    (tmp_path / "out" / "credentials" / "central.password").write_text("pw\n")
    done = subprocess.run([PYTHON, "-m", "hallctl", "broker-config", "-c", str(hall.config), "--out", str(hall.out)],
                          capture_output=True, text=True, env=spawn_env(), cwd=ROOT, timeout=60)
    assert done.returncode == 78, done.stderr
    assert "client[0].role" in done.stderr and "'kiosk'" in done.stderr
    hall.config.write_text(CENTRAL_TOML.format(local_port=1883, clients=""))
    done = subprocess.run([PYTHON, "-m", "hallctl", "broker-config", "-c", str(hall.config), "--out", str(hall.out)],
                          capture_output=True, text=True, env=spawn_env(), cwd=ROOT, timeout=60)
    assert done.returncode == 78 and "[[client]]" in done.stderr, done.stderr
    assert not (hall.out / "passwd").exists()


# -- hallctl's own clients over TLS ---------------------------------------------------------------

NODE_TOML = """\
[node]
id = "window-1"
hall = "h1"

[mqtt]
host = "127.0.0.1"
{port}
username = "window-1"
password_file = "{password_file}"
tls_ca = "{tls_ca}"
keepalive = 5

[store]
path = "window-1.db"
"""


DISPLAY_TOML = """
[[device]]
id = "display"
profile = "onbon-bx-6k"
app = "window_display"

[device.options]
port = "{port}"
address = 1
window = "1"
"""


def write_node(hall: Hall, folder: Path, *, tls_ca: str | None = None, display_port: str | None = None,
               port: int | None = None) -> Path:
    """A node config with its credential and the CA beside it, named by relative paths;
    ``display_port``: with a window display on that serial port."""
    folder.mkdir(exist_ok=True)
    (folder / "window-1.password").write_text(hall.password("window-1") + "\n")
    (folder / "hall-ca.crt").write_bytes(hall.ca.read_bytes())
    path = folder / "node.toml"
    path.write_text(NODE_TOML.format(port=f"port = {port or hall.tls_port}", password_file="window-1.password",
                                     tls_ca=tls_ca or "hall-ca.crt")
                    + (DISPLAY_TOML.format(port=display_port) if display_port else ""))
    return path


async def test_a_node_with_tls_ca_and_password_file_connects(hall, broker, tmp_path):
    config = write_node(hall, tmp_path / "etc")
    cfg = load_node_config(config)
    assert cfg.mqtt.tls_ca == tmp_path / "etc" / "hall-ca.crt" and cfg.mqtt.password == hall.password("window-1")
    assert hall.password("window-1") not in repr(cfg)
    # hallctl doctor's broker check: the login over TLS
    checks = await _doctor(config)
    assert checks["broker"]["status"] == "ok", checks["broker"]
    assert "over TLS" in checks["broker"]["detail"]
    # the node daemon: its birth reaches central's reader through the TLS listener
    with BxEmulator() as emu:
        node = Node(load_node_config(write_node(hall, tmp_path / "node", display_port=emu.port)))
        async with Listener(tls_client(hall, "central"), [f"{ROOT_T}node/window-1/birth"]) as central:
            run = Running(node)
            try:
                await central.until("node/window-1/birth")
            finally:
                await run.stop()
    # the same node with a CA that did not sign the broker's certificate: doctor says why
    broker_check = (await _doctor(write_node(hall, tmp_path / "other", tls_ca=str(hall.other_ca))))["broker"]
    assert broker_check["status"] == "fail" and "does not verify" in broker_check["detail"], broker_check
    assert "tls_ca" in broker_check["fix"]
    # ... and with the plain loopback port instead of the TLS one
    checks = await _doctor(write_node(hall, tmp_path / "plain", port=hall.local_port))
    assert checks["broker"]["status"] == "fail" and "TLS handshake" in checks["broker"]["detail"], checks["broker"]


def test_a_missing_tls_ca_stops_the_node_with_exit_78(hall, tmp_path):
    config = write_node(hall, tmp_path, tls_ca="missing-ca.crt")
    done = subprocess.run([PYTHON, "-m", "hallctl", "node", "-c", str(config)],
                          capture_output=True, text=True, env=spawn_env(), cwd=ROOT, timeout=60)
    assert done.returncode == 78, done.stderr
    assert "mqtt.tls_ca" in done.stderr and "missing-ca.crt" in done.stderr


def test_the_mqtt_section_checks_its_files_at_load(hall, tmp_path):
    config = write_node(hall, tmp_path)
    base = config.read_text()

    def error(text: str) -> ConfigError:
        config.write_text(text)
        with pytest.raises(ConfigError) as err:
            load_node_config(config)
        return err.value

    err = error(base.replace('username = "window-1"', 'username = "window-1"\npassword = "x"'))
    assert err.key == "mqtt.password_file" and "not both" in err.problem
    err = error(base.replace("window-1.password", "nope.password"))
    assert err.key == "mqtt.password_file" and "not found" in err.problem
    (tmp_path / "empty.password").write_text("\n")
    assert error(base.replace("window-1.password", "empty.password")).key == "mqtt.password_file"
    (tmp_path / "garbage.crt").write_text("not a certificate\n")
    err = error(base.replace('"hall-ca.crt"', '"garbage.crt"'))
    assert err.key == "mqtt.tls_ca" and "garbage.crt" in err.problem
    err = error(base.replace('tls_ca = "hall-ca.crt"', 'tls_cert = "hall-ca.crt"'))
    assert err.key == "mqtt.tls_cert" and "tls_ca" in err.problem
    err = error(base.replace('tls_ca = "hall-ca.crt"', 'tls_ca = "hall-ca.crt"\ntls_cert = "hall-ca.crt"'))
    assert err.key == "mqtt.tls_cert", err  # a certificate without its key
    # TLS and no port: MQTT over TLS's own
    config.write_text(re.sub(r"(?m)^port = \d+\n", "", base))
    assert load_node_config(config).mqtt.port == 8883
    assert load_node_config(config).mqtt.tls == TlsSettings(tmp_path / "hall-ca.crt")


# -- central refuses what the ACL cannot see --------------------------------------------------------


async def test_central_behind_the_acl_refuses_a_window_client_another_window(hall, broker, tmp_path):
    """Central logs in with its generated credential on the loopback listener; the window client
    comes over TLS. The ACL lets window-1 send only as window-1; which window it may act on is in
    the request's data, which only central reads. hallctl's own tools ask central as their MQTT
    user, the only client level the ACL lets them use."""
    svc = central_from_config(load_central_config(hall.config))
    run = Running(svc)
    res = f"{ROOT_T}central/res/"
    try:
        async with asyncio.timeout(10):
            await svc.ready.wait()
        async with Listener(tls_client(hall, "window-1"), [f"{res}window-1"]) as window, \
                Listener(tls_client(hall, "kiosk-1"), [f"{res}kiosk-1"]) as kiosk:
            async def ask(listener: Listener, user: str, action: str, rid: str, **data) -> dict:
                body = json.dumps({"v": 1, "request_id": rid, "data": data}).encode()
                await listener.client.publish(f"{ROOT_T}central/req/{user}/{action}", body, qos=1)
                async with asyncio.timeout(10):
                    while True:
                        for t, p in listener.got:
                            if t == res + user and json.loads(p).get("request_id") == rid:
                                return json.loads(p)
                        await asyncio.sleep(0.02)

            issued = await ask(kiosk, "kiosk-1", "ticket.issue", "k1", queue="a")
            assert issued["status"] == "ok", issued
            assert (await ask(window, "window-1", "window.open", "w1", window="1"))["status"] == "ok"
            refused = await ask(window, "window-1", "window.call_next", "w2", window="2")
            assert refused["status"] == "error" and refused["error"]["code"] == "forbidden", refused
            called = await ask(window, "window-1", "window.call_next", "w3", window="1")
            assert called["status"] == "ok" and called["data"]["ticket"]["number"] == "A001", called
            kpi = await ask(window, "window-1", "kpi.summary", "w4")
            assert kpi["error"]["code"] == "forbidden", kpi
        # doctor on window-1's node compares its clock with central's answer to queue.status
        checks = await _doctor(write_node(hall, tmp_path / "etc"))
        assert checks["hall"]["status"] == "ok", checks["hall"]
        assert checks["clock"]["status"] == "ok", checks["clock"]
        # a technician's diag over TLS, the CA from the environment
        (tmp_path / "tech.password").write_text(hall.password("tech") + "\n")
        env = {**spawn_env(), "HALLCTL_TLS_CA": str(hall.ca)}
        done = await asyncio.to_thread(
            subprocess.run, [PYTHON, "-m", "hallctl", "diag", "health", "--json", "--hall", HALL,
                             "--broker", f"127.0.0.1:{hall.tls_port}", "--username", "tech",
                             "--password-file", str(tmp_path / "tech.password")],
            capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
        assert json.loads(done.stdout)["central"] == "online", done.stderr
    finally:
        await run.stop()


async def test_central_over_tls_with_its_generated_credential_serves(hall, broker, tmp_path):
    """A central on another host than the broker: [mqtt] tls_ca and the TLS port, its own
    credential from broker-config; a kiosk over TLS gets its ticket."""
    text = hall.config.read_text().replace(f"port = {hall.local_port}\n",
                                           f"port = {hall.tls_port}\ntls_ca = \"{hall.ca}\"\n")
    text = text.replace('path = "central.db"', f'path = "{tmp_path / "tls-central.db"}"')
    config = hall.dir / "central-tls.toml"
    config.write_text(text)
    cfg = load_central_config(config)
    assert cfg.mqtt.tls == TlsSettings(hall.ca)
    svc = central_from_config(cfg)
    run = Running(svc)
    res = f"{ROOT_T}central/res/kiosk-1"
    try:
        async with asyncio.timeout(10):
            await svc.ready.wait()
        async with Listener(tls_client(hall, "kiosk-1"), [res]) as kiosk:
            body = json.dumps({"v": 1, "request_id": "tls-1", "data": {"queue": "a"}}).encode()
            await kiosk.client.publish(f"{ROOT_T}central/req/kiosk-1/ticket.issue", body, qos=1)
            async with asyncio.timeout(10):
                while not any(t == res and json.loads(p).get("request_id") == "tls-1" for t, p in kiosk.got):
                    await asyncio.sleep(0.02)
            answer = next(json.loads(p) for t, p in kiosk.got if t == res)
            assert answer["status"] == "ok" and answer["data"]["ticket"]["queue"] == "a", answer
    finally:
        await run.stop()


async def _doctor(config: Path) -> dict:
    """hallctl doctor's checks, run beside this test's event loop (central keeps serving)."""
    done = await asyncio.to_thread(
        subprocess.run, [PYTHON, "-m", "hallctl", "doctor", "-c", str(config), "--json", "--timeout", "5"],
        capture_output=True, text=True, env=spawn_env(), cwd=ROOT, timeout=60)
    return {c["name"]: c for c in json.loads(done.stdout)["checks"]}


# -- the operator's page ----------------------------------------------------------------------------


def test_docs_access_lists_the_role_table_as_the_code_has_it():
    text = (ROOT / "docs" / "access.md").read_text()
    table = text[text.index("| role |"):]
    rows = {}
    for line in table.splitlines():
        if not line.startswith("|"):
            break
        m = re.match(r"\| `([a-z-]+)`", line)
        if m:
            rows[m.group(1)] = line
    assert set(rows) == set(ROLES), "docs/access.md's role table and hallctl.access.roles.ROLES differ"
    for name, role in ROLES.items():
        for topic in role.reads + role.readwrite:
            assert f"`{topic}`" in rows[name], f"docs/access.md: role {name} does not name {topic}"
        for action in role.actions - {"*"}:
            assert f"`{action}`" in rows[name] or (action.startswith("window.") and "`window.*`" in rows[name]), \
                f"docs/access.md: role {name} does not name {action}"
