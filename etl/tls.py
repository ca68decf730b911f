"""Verified TLS that also works with NEPSE's incomplete certificate chain.

NEPSE's server sends its own certificate without the intermediate that links it to a root, so a
strict client fails where a browser succeeds: the browser reads the certificate's Authority
Information Access "CA Issuers" URL, fetches the missing intermediate and verifies the completed
chain. `complete_chain` does the same once per run, in the parent, and caches the intermediate under
`<output>/state/tls/`; every client of the run (extract processes included) builds its context with
`client_context`, which loads the cached intermediates.

Why loading a fetched intermediate into the verify store is safe: OpenSSL's partial-chain flag stays
*off* (Python 3.13 turns it on in `create_default_context`; we clear it). Without that flag OpenSSL
accepts a chain only when it ends at a self-signed certificate of the store (the system's roots, or
`--ca-bundle`), so a stored intermediate can be a link of the chain, never its anchor: a chain that
stops at it fails. Before caching it we also check with `cryptography` that the fetched certificate
is a CA that really signed the server's certificate, so a wrong AIA target fails with a line that
says so, and then verify the completed chain with the very OpenSSL settings every request uses.
Nothing here ever turns verification off; `--insecure` is the only way to do that.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

import aiohttp
from loguru import logger

from etl.budget import HostBudget
from etl.failures import FetchError
from etl.settings import Settings

if TYPE_CHECKING:
    # Imported where the chain is completed (the parent, once per run): the extract processes only build
    # contexts, and cryptography would cost each of them ~15 MB.
    from cryptography import x509

# An intermediate certificate is 1-3 KB; anything much larger is not one.
MAX_ISSUER_BYTES = 64 * 1024
# OpenSSL's answers for "the server's chain lacks a link": the only failures a fetched intermediate can fix.
_MISSING_ISSUER_CODES = frozenset({2, 20})  # UNABLE_TO_GET_ISSUER_CERT(_LOCALLY)
_ESCAPES = "pass --ca-bundle FILE holding the chain, or --insecure / NEPSE_TLS_VERIFY=false to skip verification"


def advice(host: str, reason: str = "") -> str:
    """The one line for a certificate NEPSE's host presents that we cannot verify."""
    because = f" ({reason})" if reason else ""
    return f"TLS certificate verification failed for {host}{because}: {_ESCAPES}"


class TrustOptions(Protocol):
    """What a TLS context is built from: `Settings` and the client's `ClientConfig` both carry it."""

    tls_verify: bool
    ca_bundle: Path | None
    output: Path


def cache_dir(output: Path) -> Path:
    return output / "state" / "tls"


def base_context(settings: TrustOptions) -> ssl.SSLContext:
    """The trust store (or --ca-bundle) alone, with the partial-chain flag cleared (see the module doc)."""
    cafile = str(settings.ca_bundle) if settings.ca_bundle is not None else None
    context = ssl.create_default_context(cafile=cafile)
    context.verify_flags &= ~ssl.VERIFY_X509_PARTIAL_CHAIN
    return context


def client_context(settings: TrustOptions) -> ssl.SSLContext | bool:
    """What every aiohttp connector of the run verifies with: False only under --insecure."""
    if not settings.tls_verify:
        return False
    context = base_context(settings)
    for path in sorted(cache_dir(settings.output).glob("*.pem")):
        try:
            context.load_verify_locations(cadata=path.read_text(encoding="ascii"))
        except (OSError, ValueError, ssl.SSLError) as exc:
            logger.debug(f"ignoring cached intermediate {path}: {exc}")
    return context


# ---- completing the chain (the parent, once per run)


async def complete_chain(settings: Settings, budget: HostBudget) -> None:
    """Make sure the API host's chain verifies, fetching its missing intermediate if need be.

    Raises FetchError("tls_error") with one line when it cannot; connection problems are left to the
    requests that follow, which classify and retry them as usual.
    """
    parts = urlsplit(settings.base_url)
    if parts.scheme != "https" or not settings.tls_verify:
        return
    host, port = parts.hostname or "", parts.port or 443
    context = client_context(settings)
    assert isinstance(context, ssl.SSLContext)
    try:
        await _handshake(host, port, context, settings.timeout, budget)
        return
    except ssl.SSLCertVerificationError as error:
        if error.verify_code not in _MISSING_ISSUER_CODES:
            raise FetchError("tls_error", advice(host, error.verify_message)) from None
    except (OSError, asyncio.TimeoutError) as exc:
        logger.debug(f"TLS check of {host} skipped: {exc}")
        return
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    try:
        leaf = x509.load_der_x509_certificate(await _handshake(host, port, unverified, settings.timeout, budget))
    except (OSError, asyncio.TimeoutError, ValueError) as exc:
        raise FetchError("tls_error", advice(host, f"cannot read its certificate: {exc}")) from None
    url = _issuer_url(leaf, host)
    body = await _fetch_issuer(url, host, settings, budget)
    intermediate = _pick_issuer(leaf, _parse_certificates(body), url, host)
    pem = intermediate.public_bytes(Encoding.PEM).decode("ascii")
    context.load_verify_locations(cadata=pem)
    try:
        await _handshake(host, port, context, settings.timeout, budget)
    except ssl.SSLCertVerificationError as error:
        raise FetchError("tls_error", advice(host, f"the chain completed with {intermediate.subject.rfc4514_string()} "
                                               f"from {url} still does not verify: {error.verify_message}")) from None
    except (OSError, asyncio.TimeoutError) as exc:
        logger.debug(f"TLS re-check of {host} skipped: {exc}")
    path = _save(pem, intermediate, cache_dir(settings.output))
    logger.info(f"{host} sent an incomplete certificate chain: completed it with "
                f"{intermediate.subject.rfc4514_string()} from {url} (cached in {path})")


async def _handshake(host: str, port: int, context: ssl.SSLContext, timeout: float, budget: HostBudget) -> bytes:
    """One TLS handshake (no HTTP request), counted against the host budget; the peer's certificate as DER."""
    await budget.acquire()

    def connect() -> bytes:
        with socket.create_connection((host, port), timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname=host) as tls:
            return tls.getpeercert(binary_form=True) or b""

    return await asyncio.to_thread(connect)


def _issuer_url(leaf: x509.Certificate, host: str) -> str:
    from cryptography import x509
    from cryptography.x509.oid import AuthorityInformationAccessOID, ExtensionOID

    try:
        access = leaf.extensions.get_extension_for_oid(ExtensionOID.AUTHORITY_INFORMATION_ACCESS).value
    except x509.ExtensionNotFound:
        access = []
    urls = [item.access_location.value for item in access
            if item.access_method == AuthorityInformationAccessOID.CA_ISSUERS
            and isinstance(item.access_location, x509.UniformResourceIdentifier)
            and urlsplit(item.access_location.value).scheme in {"http", "https"}]
    if not urls:
        raise FetchError("tls_error", advice(host, "its chain is incomplete and its certificate names no http "
                                                   "CA Issuers URL to complete it from"))
    return urls[0]


async def _fetch_issuer(url: str, host: str, settings: Settings, budget: HostBudget) -> bytes:
    """GET the CA Issuers URL (plain HTTP as a rule), size-capped; the API host's budget if it is that host."""
    if urlsplit(url).hostname == urlsplit(settings.base_url).hostname:
        await budget.acquire()
    timeout = aiohttp.ClientTimeout(total=settings.timeout)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session, \
                session.get(url, max_redirects=3) as response:
            if response.status != 200:
                raise ValueError(f"HTTP {response.status}")
            body = await response.content.read(MAX_ISSUER_BYTES + 1)
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
        reason = str(exc) or type(exc).__name__
        raise FetchError("tls_error", advice(host, f"its chain is incomplete and the intermediate could not be "
                                                   f"fetched from {url}: {reason}")) from None
    if len(body) > MAX_ISSUER_BYTES:
        raise FetchError("tls_error", advice(host, f"{url} answered more than {MAX_ISSUER_BYTES:,} bytes, "
                                                   "which is not an intermediate certificate"))
    return body


def _parse_certificates(body: bytes) -> list[x509.Certificate]:
    """CA Issuers URLs serve DER, PEM or a PKCS#7 bundle; whatever does not parse yields nothing."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import pkcs7

    loaders = (lambda b: [x509.load_der_x509_certificate(b)], x509.load_pem_x509_certificates,
               pkcs7.load_der_pkcs7_certificates, pkcs7.load_pem_pkcs7_certificates)
    for load in loaders:
        try:
            return list(load(body))
        except ValueError:
            continue
    return []


def _pick_issuer(leaf: x509.Certificate, candidates: list[x509.Certificate], url: str, host: str) -> x509.Certificate:
    """The candidate that is a CA and signed `leaf`; anything else is a wrong AIA target."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature

    if not candidates:
        raise FetchError("tls_error", advice(host, f"{url} (its certificate's CA Issuers URL) did not answer a "
                                                   "certificate"))
    reason = "it is not a CA certificate"
    for candidate in candidates:
        try:
            is_ca = candidate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        if not is_ca:
            continue
        try:
            leaf.verify_directly_issued_by(candidate)
            return candidate
        except (ValueError, InvalidSignature, TypeError) as exc:  # names, signature, key type
            reason = str(exc).rstrip(".") or "its signature does not match"
    name = candidates[0].subject.rfc4514_string()
    raise FetchError("tls_error", advice(host, f"the certificate at its CA Issuers URL {url} ({name}) did not issue "
                                               f"it: {reason}"))


def _save(pem: str, certificate: x509.Certificate, directory: Path) -> Path:
    from cryptography.hazmat.primitives.serialization import Encoding

    directory.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest()[:16]
    path = directory / f"{digest}.pem"
    partial = path.with_suffix(".pem.tmp")
    partial.write_text(pem, encoding="ascii")
    partial.replace(path)
    return path
