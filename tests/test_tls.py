"""Verified TLS against a server that sends only its own certificate, as NEPSE's does.

A root, an intermediate and leaves are made here; an HTTPS simulator on loopback sends only the leaf,
and the intermediate is served over plain HTTP at the leaf's CA Issuers URL.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from etl.simulator import SimConfig, create_app

LOOPBACK = "127.0.0.1"


@dataclass
class Authority:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(subject: str, issuer: Authority | None, *, ca: bool, aia_url: str | None = None) -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    signer = issuer or Authority(None, key)  # type: ignore[arg-type]
    issuer_name = issuer.certificate.subject if issuer else _name(subject)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer_name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.key.public_key()),
                              critical=False))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                                        critical=True)
    else:
        builder = (builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOOPBACK))]),
                                         critical=False)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))
    if aia_url is not None:
        builder = builder.add_extension(x509.AuthorityInformationAccess([x509.AccessDescription(
            AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(aia_url))]), critical=False)
    return Authority(builder.sign(signer.key, hashes.SHA256()), key)


def _pem(authority: Authority) -> bytes:
    return authority.certificate.public_bytes(Encoding.PEM)


def _leaf_only_context(leaf: Authority, folder: Path, name: str) -> ssl.SSLContext:
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    cert.write_bytes(_pem(leaf))  # the leaf alone: the chain the server sends is incomplete
    key.write_bytes(leaf.key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


@dataclass
class Hosts:
    good: str  # its leaf's CA Issuers URL serves the real intermediate
    wrong: str  # its leaf's CA Issuers URL serves an unrelated CA
    root_bundle: Path
    other_bundle: Path
    aia_hits: Counter


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory, sim_seed) -> Iterator[Hosts]:
    folder = tmp_path_factory.mktemp("chain")
    root = _issue("Test Root CA", None, ca=True)
    intermediate = _issue("Test Intermediate CA", root, ca=True)
    other = _issue("Unrelated CA", None, ca=True)
    served = {"/ca/intermediate.der": intermediate.certificate.public_bytes(Encoding.DER),
              "/ca/other.der": other.certificate.public_bytes(Encoding.DER)}
    hits: Counter = Counter()

    async def issuer_file(request: web.Request) -> web.Response:
        hits[request.path] += 1
        return web.Response(body=served[request.path], content_type="application/pkix-cert")

    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict = {}

    async def serve() -> None:
        aia_app = web.Application()
        for path in served:
            aia_app.router.add_get(path, issuer_file)
        aia_runner = web.AppRunner(aia_app)
        await aia_runner.setup()
        await web.TCPSite(aia_runner, LOOPBACK, 0).start()
        aia = f"http://{LOOPBACK}:{aia_runner.addresses[0][1]}"
        good = _issue(LOOPBACK, intermediate, ca=False, aia_url=aia + "/ca/intermediate.der")
        wrong = _issue(LOOPBACK, intermediate, ca=False, aia_url=aia + "/ca/other.der")
        runner = web.AppRunner(create_app(SimConfig(seed=sim_seed, n_companies=40)))
        await runner.setup()
        for name, leaf in (("good", good), ("wrong", wrong)):
            site = web.TCPSite(runner, LOOPBACK, 0, ssl_context=_leaf_only_context(leaf, folder, name))
            await site.start()
            holder[name] = runner.addresses[-1][1]
        holder["runners"] = (runner, aia_runner)
        ready.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(serve()), loop.run_forever()), daemon=True)
    thread.start()
    assert ready.wait(10)
    (folder / "root.pem").write_bytes(_pem(root))
    (folder / "other.pem").write_bytes(_pem(other))
    yield Hosts(f"https://{LOOPBACK}:{holder['good']}", f"https://{LOOPBACK}:{holder['wrong']}",
                folder / "root.pem", folder / "other.pem", hits)
    for runner in holder["runners"]:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)


def _backfill(run_cli, fast, base_url: str, bundle: Path, output: Path, cwd: Path):
    return run_cli("--base-url", base_url, "--ca-bundle", str(bundle), "--limit", "2", "--types", "profiles",
                   "--output", str(output), *fast, cwd=cwd)


def _one_error_line(result) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    return lines[0]


def test_the_server_sends_an_incomplete_chain(hosts: Hosts) -> None:
    """What failed before: the root alone cannot verify a leaf whose intermediate is not sent."""
    context = ssl.create_default_context(cafile=str(hosts.root_bundle))
    port = int(hosts.good.rsplit(":", 1)[1])
    with socket.create_connection((LOOPBACK, port), timeout=10) as raw, pytest.raises(ssl.SSLCertVerificationError) \
            as failure:
        context.wrap_socket(raw, server_hostname=LOOPBACK)
    assert failure.value.verify_code == 20  # unable to get local issuer certificate


def test_incomplete_chain_is_completed_from_the_aia_url_with_verification_on(tmp_path: Path, hosts: Hosts, run_cli,
                                                                             fast) -> None:
    output = tmp_path / "out"
    before = hosts.aia_hits["/ca/intermediate.der"]
    result = _backfill(run_cli, fast, hosts.good, hosts.root_bundle, output, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert hosts.aia_hits["/ca/intermediate.der"] == before + 1  # once per run, for every process
    cached = list((output / "state" / "tls").glob("*.pem"))
    assert len(cached) == 1 and b"BEGIN CERTIFICATE" in cached[0].read_bytes()
    log = next((output / "logs").glob("*.log")).read_text()
    assert "incomplete certificate chain" in log and "Test Intermediate CA" in log

    again = _backfill(run_cli, fast, hosts.good, hosts.root_bundle, output, tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert hosts.aia_hits["/ca/intermediate.der"] == before + 1  # the cached intermediate was enough


def test_an_aia_url_serving_the_wrong_certificate_fails_with_one_line(tmp_path: Path, hosts: Hosts, run_cli,
                                                                      fast) -> None:
    line = _one_error_line(_backfill(run_cli, fast, hosts.wrong, hosts.root_bundle, tmp_path / "out", tmp_path))
    assert "TLS certificate verification failed for 127.0.0.1" in line and "did not issue" in line
    assert "/ca/other.der" in line and "--insecure" in line, line
    assert not list((tmp_path / "out" / "state" / "tls").glob("*.pem"))


def test_the_fetched_intermediate_is_never_a_trust_anchor(tmp_path: Path, hosts: Hosts, run_cli, fast) -> None:
    """The right intermediate, but a bundle without its root: the chain must still end at a trusted root."""
    line = _one_error_line(_backfill(run_cli, fast, hosts.good, hosts.other_bundle, tmp_path / "out", tmp_path))
    assert "still does not verify" in line and "Test Intermediate CA" in line


def test_a_damaged_cached_intermediate_is_ignored_and_fetched_again(tmp_path: Path, hosts: Hosts, run_cli,
                                                                    fast) -> None:
    output = tmp_path / "out"
    (output / "state" / "tls").mkdir(parents=True)
    (output / "state" / "tls" / "0000000000000000.pem").write_text("-----BEGIN CERTIFICATE-----\nnot one\n")
    before = hosts.aia_hits["/ca/intermediate.der"]
    result = _backfill(run_cli, fast, hosts.good, hosts.root_bundle, output, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert hosts.aia_hits["/ca/intermediate.der"] == before + 1
