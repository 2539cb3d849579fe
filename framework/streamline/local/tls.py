"""A throwaway TLS identity for the local warehouse: a self-signed certificate for 127.0.0.1.

The Snowflake connector only speaks HTTPS unless told `protocol="http"`, which Airflow's
SnowflakeHook cannot pass. So the local warehouse serves HTTPS with this certificate, and clients
trust it through a CA bundle (certifi's roots plus this certificate) named by REQUESTS_CA_BUNDLE.
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path
from typing import NamedTuple

import certifi
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CERT_NAME = "warehouse-cert.pem"
KEY_NAME = "warehouse-key.pem"
BUNDLE_NAME = "ca-bundle.pem"


class TlsFiles(NamedTuple):
    """Where the certificate, its private key and the client CA bundle were written."""

    certfile: Path
    keyfile: Path
    ca_bundle: Path


def make_certificate(folder: Path, *, days: int = 30) -> TlsFiles:
    """Write a self-signed certificate and key for 127.0.0.1 and a CA bundle that trusts it."""
    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "streamline local warehouse")])
    now = datetime.datetime.now(datetime.UTC)
    public_key = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.DNSName("localhost"),
                ]
            ),
            critical=False,
        )
        # Self-signed and also its own trust anchor in the bundle: mark it as a CA so strict
        # verifiers accept it there.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    files = TlsFiles(folder / CERT_NAME, folder / KEY_NAME, folder / BUNDLE_NAME)
    files.keyfile.touch(mode=0o600)
    files.keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    files.certfile.write_bytes(cert_pem)
    roots = Path(certifi.where()).read_bytes()
    files.ca_bundle.write_bytes(roots.rstrip(b"\n") + b"\n" + cert_pem)
    return files
