"""TLS on the gateway's own ports, for the sidecar case: HTTPS on the HTTP port, TLS on the worker port,
and mTLS where a worker's client certificate is its credential."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import Cluster, Gateway, Worker, wait_until

SECURED = "tests.workers.secured:app"


class Pki:
    """A CA and the certificates it signs, as PEM files in one directory."""

    def __init__(self, directory: Path, name: str = "test CA") -> None:
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (
            self._builder(subject, self.key.public_key(), subject)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.ca_file = self._write(
            f"{name.replace(' ', '-')}.pem", self.cert.public_bytes(serialization.Encoding.PEM)
        )

    @staticmethod
    def _builder(
        subject: x509.Name, public_key: ec.EllipticCurvePublicKey, issuer: x509.Name
    ) -> x509.CertificateBuilder:
        now = datetime.datetime.now(datetime.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
        )

    def _write(self, name: str, data: bytes) -> str:
        path = self.directory / name
        path.write_bytes(data)
        return str(path)

    def issue(self, common_name: str, *, server: bool = False) -> tuple[str, str]:
        """(certificate file, key file) for ``common_name``; a server certificate is for 127.0.0.1."""
        key = ec.generate_private_key(ec.SECP256R1())
        builder = self._builder(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]),
            key.public_key(),
            self.cert.subject,
        )
        if server:
            names = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return (
            self._write(f"{common_name}.crt", cert.public_bytes(serialization.Encoding.PEM)),
            self._write(f"{common_name}.key", key_pem),
        )


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, Gateway, Pki]]:
    directory = Path(tmp_path_factory.mktemp("tls"))
    pki = Pki(directory)
    cert, key = pki.issue("gateway", server=True)
    (directory / "cluster").mkdir()
    cluster = Cluster(directory / "cluster")
    try:
        gateway = cluster.start_gateway(
            ca_file=pki.ca_file,
            auth="required",
            tls_cert_file=cert,
            tls_key_file=key,
            worker_ca_file=pki.ca_file,
            worker_certificates='{"secured-workers": ["*"]}',
        )
        yield cluster, gateway, pki
    finally:
        cluster.close()


def _worker(cluster: Cluster, gateway: Gateway, name: str, **env: str) -> Worker:
    worker = Worker(gateway, SECURED, cluster.logs, name)
    worker.env.update(env)
    worker.start()
    cluster.processes.append(worker)
    return worker


def test_https_serves_the_api_and_refuses_plain_http(tls: tuple[Cluster, Gateway, Pki]) -> None:
    _, gateway, pki = tls
    assert gateway.url.startswith("https://")
    trust = ssl.create_default_context(cafile=pki.ca_file)
    assert httpx.get(f"{gateway.url}/healthz", verify=trust).json() == {"status": "ok"}
    assert httpx.get(f"{gateway.url}/v1/endpoints", verify=trust).status_code == 401
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{gateway.http_port}/healthz", timeout=2)


def test_a_worker_with_a_named_client_certificate_needs_no_token(tls: tuple[Cluster, Gateway, Pki]) -> None:
    cluster, gateway, pki = tls
    cert, key = pki.issue("secured-workers")
    worker = _worker(
        cluster,
        gateway,
        "cert-worker",
        FASTAGENTIC_GATEWAY_CA=pki.ca_file,
        FASTAGENTIC_WORKER_CERT=cert,
        FASTAGENTIC_WORKER_KEY=key,
    )
    wait_until(lambda: _connected(gateway, worker), what="the certificate's worker to connect")
    assert worker.alive


def test_a_certificate_the_gateway_does_not_name_is_refused(tls: tuple[Cluster, Gateway, Pki]) -> None:
    cluster, gateway, pki = tls
    cert, key = pki.issue("someone-else")
    worker = _worker(
        cluster,
        gateway,
        "unnamed-cert",
        FASTAGENTIC_GATEWAY_CA=pki.ca_file,
        FASTAGENTIC_WORKER_CERT=cert,
        FASTAGENTIC_WORKER_KEY=key,
    )
    assert worker.wait(30) == 3
    assert "a worker token is required" in worker.output()


def test_a_worker_without_a_certificate_cannot_even_connect(tls: tuple[Cluster, Gateway, Pki]) -> None:
    cluster, gateway, pki = tls
    other = Pki(pki.directory, "rogue CA")
    cert, key = other.issue("secured-workers")
    # signed by a CA the gateway does not trust: the TLS handshake fails, no Hello is ever read
    worker = _worker(
        cluster,
        gateway,
        "rogue-cert",
        FASTAGENTIC_GATEWAY_CA=pki.ca_file,
        FASTAGENTIC_WORKER_CERT=cert,
        FASTAGENTIC_WORKER_KEY=key,
    )
    plain = _worker(cluster, gateway, "plain")
    time.sleep(3)  # they keep retrying; none gets a stream
    assert not _connected(gateway, worker) and not _connected(gateway, plain)
    for process in (worker, plain):
        process.stop()


def _connected(gateway: Gateway, worker: Worker) -> bool:
    """Whether the gateway logged ``worker`` (by its process id, part of its worker id) as connected."""
    assert worker.proc is not None
    marker = f"-{worker.proc.pid}-"
    return any(marker in line and " connected:" in line for line in gateway.output().splitlines())
