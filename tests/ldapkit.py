"""A private OpenLDAP `slapd` for tests: generated slapd.conf, mdb database, a small directory.

`running_slapd()` loads the LDIF below with slapadd into a temp folder, starts slapd in the
foreground on a free loopback port, waits until it answers, and stops it afterwards. Nothing
touches the Debian package's own instance (/etc/ldap/slapd.d, /var/lib/ldap).

The directory (every password is PASSWORD unless noted):
- cn=reader: the service account Slipway binds as (password READER_PASSWORD); anonymous reads nothing.
- alice: in no mapped group (first login: pending, regular).
- bob: in cn=builders (qvp) and cn=auto (auto-approval).
- root-ada (uid `ada`): in cn=admins (admin) and cn=auto.
- carol_smith: a uid that is not a DNS label; dave: uid `Dave`, folded to `dave`.
- nomail: no e-mail address; twin: its uid names a local account the tests create.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SLAPD = shutil.which("slapd") or "/usr/sbin/slapd"
SLAPADD = shutil.which("slapadd") or "/usr/sbin/slapadd"
SUFFIX = "dc=example,dc=org"
READER_DN = f"cn=reader,{SUFFIX}"
READER_PASSWORD = "reader-test-password"  # noqa: S105 - a throwaway test directory
PASSWORD = "Directory-pass-2026!"  # noqa: S105
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
ADMINS, BUILDERS, AUTO = (f"cn={name},{GROUPS}" for name in ("admins", "builders", "auto"))
# (uid, mail or None, groups); every one of them gets PASSWORD.
PEOPLE_ROWS = (
    ("alice", "alice@example.org", ()),
    ("bob", "bob@example.org", (BUILDERS, AUTO)),
    ("ada", "ada@example.org", (ADMINS, AUTO)),
    ("carol_smith", "carol@example.org", ()),
    ("Dave", "dave@example.org", ()),
    ("nomail", None, ()),
    ("twin", "twin-directory@example.org", ()),
)


def slapd_available() -> bool:
    """True when the slapd and slapadd binaries are installed."""
    return Path(SLAPD).exists() and Path(SLAPADD).exists()


def ssha(password: str) -> str:
    """An {SSHA} userPassword value, as slappasswd makes it."""
    salt = os.urandom(8)
    return "{SSHA}" + base64.b64encode(hashlib.sha1(password.encode() + salt).digest() + salt).decode()  # noqa: S324


def person_dn(uid: str) -> str:
    """The DN of the test person `uid`."""
    return f"uid={uid},{PEOPLE}"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ldif() -> str:
    blocks = [
        f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example",
        f"dn: {READER_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: reader\n"
        f"userPassword: {ssha(READER_PASSWORD)}",
        f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people",
        f"dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups",
    ]
    for uid, mail, _groups in PEOPLE_ROWS:
        block = (f"dn: {person_dn(uid)}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\n"
                 f"userPassword: {ssha(PASSWORD)}")
        blocks.append(block + (f"\nmail: {mail}" if mail else ""))
    for group in (ADMINS, BUILDERS, AUTO):
        members = [person_dn(uid) for uid, _mail, groups in PEOPLE_ROWS if group in groups]
        name = group.split(",")[0].split("=")[1]
        blocks.append(f"dn: {group}\nobjectClass: groupOfNames\ncn: {name}\n"
                      + "\n".join(f"member: {m}" for m in members))
    return "\n\n".join(blocks) + "\n"


def write_certificates(folder: Path) -> Path:
    """A test CA and a server certificate for 127.0.0.1 / localhost signed by it; returns the CA file."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, signer: object,
             ca: bool) -> x509.Certificate:
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(issuer).public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if not ca:
            names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Slipway test CA")])
    ca_cert = cert("Slipway test CA", ca_key, ca_name, ca_key, True)
    server_cert = cert("127.0.0.1", server_key, ca_name, ca_key, False)
    (folder / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    (folder / "server.pem").write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    (folder / "server.key").write_bytes(server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()))
    return folder / "ca.pem"


def _conf(folder: Path, tls: bool) -> str:
    certificates = (f"TLSCACertificateFile {folder}/ca.pem\nTLSCertificateFile {folder}/server.pem\n"
                    f"TLSCertificateKeyFile {folder}/server.key\n") if tls else ""
    return certificates + f"""include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {folder}/slapd.pid
database mdb
maxsize 16777216
suffix "{SUFFIX}"
rootdn "cn=manager,{SUFFIX}"
directory {folder}/data
access to attrs=userPassword by anonymous auth by * none
access to * by users read by * none
"""


@dataclass(frozen=True)
class Slapd:
    """A running test directory; `ca_file` is set when it offers StartTLS."""

    url: str
    port: int
    ca_file: Path | None = None


@contextmanager
def running_slapd(timeout: float = 15.0, *, tls: bool = False) -> Iterator[Slapd]:
    """Start a private slapd with the test directory on 127.0.0.1 (StartTLS too, if asked); stop it after."""
    folder = Path(tempfile.mkdtemp(prefix="slipway-slapd-"))
    process = None
    try:
        (folder / "data").mkdir()
        ca_file = write_certificates(folder) if tls else None
        (folder / "slapd.conf").write_text(_conf(folder, tls))
        (folder / "directory.ldif").write_text(_ldif())
        conf = str(folder / "slapd.conf")
        subprocess.run([SLAPADD, "-q", "-f", conf, "-l", str(folder / "directory.ldif")],
                       check=True, capture_output=True, timeout=30)
        port = free_port()
        url = f"ldap://127.0.0.1:{port}"
        log = open(folder / "slapd.log", "wb")  # noqa: SIM115 - closed with the folder below
        process = subprocess.Popen([SLAPD, "-d", "0", "-h", f"{url}/", "-f", conf],
                                   stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not _answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                output = (folder / "slapd.log").read_text(errors="replace")
                raise RuntimeError(f"slapd did not start: {output}")
            time.sleep(0.05)
        yield Slapd(url=url, port=port, ca_file=ca_file)
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@contextmanager
def silent_listener() -> Iterator[int]:
    """A loopback port that accepts connections and never answers (a hung directory)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]
