"""Certificates and keys for the test control plane (cryptography; ECDSA P-256, like envtest).

A throw-away CA signs the API server's serving certificate and client certificates
(CN = user, O = groups). A separate key pair signs ServiceAccount tokens.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: str, data: bytes, mode: int = 0o600) -> str:
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    return path


@dataclass(frozen=True)
class CertPaths:
    cert: str
    key: str


class TestPKI:
    """All key material of one test cluster, written below `directory`."""

    __test__ = False  # not a pytest test class

    def __init__(self, directory: str, *, now: dt.datetime | None = None) -> None:
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self._now = now or dt.datetime.now(dt.UTC)
        self._ca_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "klambda-test-ca")])
        self._ca_name = name
        self.ca_cert = (
            self._builder(name, self._ca_key.public_key())
            .issuer_name(name)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._ca_key, hashes.SHA256())
        )
        self.ca_pem = self.ca_cert.public_bytes(serialization.Encoding.PEM)
        self.ca_file = _write(os.path.join(directory, "ca.crt"), self.ca_pem, 0o644)
        _write(os.path.join(directory, "ca.key"), _key_pem(self._ca_key))
        sa_key = ec.generate_private_key(ec.SECP256R1())
        self.sa_private = _write(os.path.join(directory, "sa.key"), _key_pem(sa_key))
        self.sa_public = _write(
            os.path.join(directory, "sa.pub"),
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            0o644,
        )

    def _builder(
        self, subject: x509.Name, public_key: ec.EllipticCurvePublicKey
    ) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._now - dt.timedelta(hours=1))
            .not_valid_after(self._now + dt.timedelta(days=7))
        )

    def _issue(
        self,
        *,
        stem: str,
        subject: x509.Name,
        usage: x509.ObjectIdentifier,
        sans: list[x509.GeneralName] | None = None,
    ) -> CertPaths:
        key = ec.generate_private_key(ec.SECP256R1())
        b = self._builder(subject, key.public_key()).issuer_name(self._ca_name)
        b = b.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        b = b.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = b.sign(self._ca_key, hashes.SHA256())
        return CertPaths(
            cert=_write(
                os.path.join(self.dir, f"{stem}.crt"),
                cert.public_bytes(serialization.Encoding.PEM),
                0o644,
            ),
            key=_write(os.path.join(self.dir, f"{stem}.key"), _key_pem(key)),
        )

    def serving_cert(self, *, stem: str, dns: list[str], ips: list[str]) -> CertPaths:
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns[0])])
        return self._issue(
            stem=stem, subject=subject, usage=ExtendedKeyUsageOID.SERVER_AUTH, sans=sans
        )

    def client_cert(self, *, stem: str, user: str, groups: tuple[str, ...] = ()) -> CertPaths:
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, user)]
        attrs += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups]
        return self._issue(
            stem=stem, subject=x509.Name(attrs), usage=ExtendedKeyUsageOID.CLIENT_AUTH
        )
