"""Throwaway TLS material for a private redis-server: a CA, a server certificate and
a client certificate, made at test time, and a check that a binary speaks TLS.

`make_tls_files` writes a fresh CA and, signed by it, a server certificate for
``127.0.0.1``, ``::1`` and ``localhost`` by default (so a client that checks host names
accepts the server on any of them) and a client certificate for mutual TLS.
Keys are ECDSA P-256 and every certificate is valid for one day: these files
exist for one test session and must never be mistaken for real ones. They are
made with the ``cryptography`` package, imported only here and only when
called, because nothing else in luminora-redis needs it.

`server_directives` and `client_options` are the two ends of one connection:
what redis.conf says and what redis-py is given.

`tls_problem` says why a ``redis-server`` binary cannot serve TLS (built
without it), or None when it can, so fixtures skip with that reason instead of
failing on a server that cannot start.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from luminora_redis.testing.local import quote_conf

__all__ = ["TLS_DIRECTIVES", "TLSFiles", "check_tls_option", "client_options",
           "loopback_tls_files", "make_tls_files", "server_directives", "tls_files_in",
           "tls_problem"]

#: How long the certificates are valid: long enough for any test session.
VALIDITY = datetime.timedelta(days=1)
#: The host names and addresses the server certificate is valid for by default.
SERVER_HOSTS = ("127.0.0.1", "::1", "localhost")
#: The directives `server_directives` writes: a TLS server's port is its TLS port.
TLS_DIRECTIVES = frozenset({"tls-port", "tls-cert-file", "tls-key-file", "tls-ca-cert-file"})
#: What a TLS-capable redis-server says when started with ``tls-port`` and no certificate.
_NO_CERT = "tls-cert-file"


@dataclass(frozen=True)
class TLSFiles:
    """Paths of the PEM files `make_tls_files` wrote (keys unencrypted, mode 0600).

    ``ca_cert`` is what a client trusts (redis-py's ``ssl_ca_certs``); ``cert``
    and ``key`` are the server's (``tls-cert-file``, ``tls-key-file``);
    ``client_cert`` and ``client_key`` are a client's own for mutual TLS
    (redis-py's ``ssl_certfile`` and ``ssl_keyfile``).
    """

    ca_cert: Path
    cert: Path
    key: Path
    client_cert: Path
    client_key: Path

    def exist(self) -> bool:
        """Whether every file is there (a restarted server reuses them)."""
        return all(path.is_file() for path in
                   (self.ca_cert, self.cert, self.key, self.client_cert, self.client_key))


def tls_files_in(directory: str | os.PathLike[str]) -> TLSFiles:
    """Where `make_tls_files` puts its files in ``directory``."""
    base = Path(directory)
    return TLSFiles(ca_cert=base / "ca.crt", cert=base / "server.crt", key=base / "server.key",
                    client_cert=base / "client.crt", client_key=base / "client.key")


def make_tls_files(directory: str | os.PathLike[str],
                   hosts: Iterable[str] = SERVER_HOSTS) -> TLSFiles:
    """Write a new CA, a server certificate and a client certificate into ``directory``
    (created if missing; files of an earlier call are replaced) and return their paths.

    The server certificate is valid for ``hosts``: IP addresses become IP subject
    alternative names, anything else a DNS name.

    Raises RuntimeError naming the package to install when ``cryptography`` is missing.
    """
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError:
        raise RuntimeError("TLS test certificates are made with the cryptography package; "
                           "pip install cryptography") from None

    hosts = tuple(hosts)
    if not hosts:
        raise ValueError("hosts is empty: the server certificate must name at least one host")
    files = tls_files_in(directory)
    Path(directory).mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    # A little in the past: the server and the client may read clocks a moment apart.
    not_before, not_after = now - datetime.timedelta(minutes=5), now + VALIDITY

    def name(common_name: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "luminora-redis tests"),
                          x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    def key_pair() -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1())

    def builder(subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey
                ) -> x509.CertificateBuilder:
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(not_before).not_valid_after(not_after)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                               critical=False))

    ca_key = key_pair()
    ca_name = name("luminora-redis test CA")
    ca = (builder(ca_name, ca_name, ca_key)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, key_cert_sign=True, crl_sign=True,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    authority = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())

    def leaf(common_name: str, usages: list[Any], key: ec.EllipticCurvePrivateKey,
             names: list[x509.GeneralName]) -> x509.Certificate:
        made = (builder(name(common_name), ca_name, key)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                             key_encipherment=False, data_encipherment=False,
                                             key_agreement=True, key_cert_sign=False,
                                             crl_sign=False, encipher_only=False,
                                             decipher_only=False), critical=True)
                .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
                .add_extension(authority, critical=False))
        if names:
            made = made.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return made.sign(ca_key, hashes.SHA256())

    server_key, client_key = key_pair(), key_pair()
    server_names = [_general_name(host) for host in hosts]
    # Servers present their own certificate as clients too: to their primary, and to
    # other nodes on the cluster bus.
    server = leaf("localhost", [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
                  server_key, server_names)
    client = leaf("luminora-redis test client", [ExtendedKeyUsageOID.CLIENT_AUTH], client_key, [])

    def pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    def pem_cert(cert: x509.Certificate) -> bytes:
        return cert.public_bytes(serialization.Encoding.PEM)

    _write(files.ca_cert, pem_cert(ca), private=False)
    _write(files.cert, pem_cert(server), private=False)
    _write(files.key, pem_key(server_key), private=True)
    _write(files.client_cert, pem_cert(client), private=False)
    _write(files.client_key, pem_key(client_key), private=True)
    return files


def loopback_tls_files(directory: str | os.PathLike[str], host: str) -> TLSFiles:
    """The files in ``directory``, made there first unless all are present, valid for
    ``host`` and every loopback name."""
    files = tls_files_in(directory)
    if files.exist():
        return files
    return make_tls_files(directory, hosts=dict.fromkeys((host, *SERVER_HOSTS)))


def check_tls_option(tls: object, config: Mapping[str, str]) -> TLSFiles | None:
    """Check a server's ``tls`` option against its other directives; the given files, if any."""
    if not isinstance(tls, (bool, TLSFiles)):
        raise TypeError(f"tls must be True, False or a TLSFiles, not {type(tls).__name__}")
    taken = sorted(TLS_DIRECTIVES.intersection(config)) if tls is not False else []
    if taken:
        raise ValueError(f"{', '.join(taken)} cannot be set through config on a TLS server: "
                         f"pass tls=TLSFiles(...) to give other files")
    return tls if isinstance(tls, TLSFiles) else None


def server_directives(files: TLSFiles, port: int) -> dict[str, str]:
    """redis.conf directives for a server that speaks only TLS on ``port`` with ``files``;
    clients need no certificate of their own (``tls-auth-clients no``)."""
    return {"port": "0", "tls-port": str(port), "tls-cert-file": quote_conf(str(files.cert)),
            "tls-key-file": quote_conf(str(files.key)),
            "tls-ca-cert-file": quote_conf(str(files.ca_cert)), "tls-auth-clients": "no"}


def client_options(files: TLSFiles, *, probe: bool = False) -> dict[str, Any]:
    """redis-py's keywords for a verified TLS connection to a server with ``files``.

    A readiness ``probe`` also presents the client certificate (the server may
    require one) and skips the host name check: given files may name other hosts,
    and a probe makes sure it reached the right process by its PID instead.
    """
    options: dict[str, Any] = {"ssl": True, "ssl_ca_certs": str(files.ca_cert)}
    if probe:
        options.update(ssl_certfile=str(files.client_cert), ssl_keyfile=str(files.client_key),
                       ssl_check_hostname=False)
    return options


def _general_name(host: str) -> Any:
    from cryptography import x509

    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _write(path: Path, data: bytes, *, private: bool) -> None:
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)


def tls_problem(executable: str, timeout: float = 10.0) -> str | None:
    """Why ``executable`` (a redis-server) cannot serve TLS, or None when it can.

    It is started with a TLS port and no certificate: a binary built with TLS
    refuses to start for want of ``tls-cert-file``; one built without it
    rejects the ``tls-port`` directive or ignores it. Nothing is bound either
    way (``port 0``; the TLS port is configured before any listening socket).
    """
    with tempfile.TemporaryDirectory(prefix="luminora-redis-tls-probe-") as directory:
        try:
            done = subprocess.run(
                [executable, "--port", "0", "--tls-port", "1", "--save", "", "--appendonly", "no",
                 "--dir", directory, "--logfile", ""],
                stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, cwd=directory)
        except subprocess.TimeoutExpired:
            return f"{executable} ignored the tls-port directive: it has no TLS support"
        except OSError as error:
            return f"{executable} could not be run: {error}"
    output = (done.stdout + done.stderr).decode("utf-8", "replace")
    if _NO_CERT in output:
        return None
    last = next((line.strip() for line in reversed(output.splitlines()) if line.strip()),
                "no output")
    return f"{executable} was built without TLS support (it said: {last})"
