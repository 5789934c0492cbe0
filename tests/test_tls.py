"""TLS: the stand-in over https with a certificate made by the test; ca_bundle and verify_ssl."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bondha.config import load_config
from bondha.errors import CertificateError, ConfigError
from bondha.model import Role
from bondha.reconciler import reconcile
from bondha.testing import Fixture, StandInServer, example_fixture
from tests.certificates import Certificates, make_certificates
from tests.conftest import bondha, write_config


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def tls_server(certs: Certificates) -> Iterator[StandInServer]:
    with StandInServer(example_fixture(), ssl_context=certs.server_context()) as running:
        yield running


def tls_config(tmp_path: Path, server: StandInServer, **options: Any) -> Path:
    fixture: Fixture = server.fixture
    text = fixture.config_text(server.url, attempt_delay=0.01, timeout=5, **options)
    return write_config(tmp_path / "swap-active-bond.conf", text)


def test_ca_bundle_trusts_the_self_signed_server(tls_server: StandInServer, certs: Certificates,
                                                 tmp_path: Path) -> None:
    assert tls_server.url.startswith("https://")
    path = tls_config(tmp_path, tls_server, ca_bundle=certs.ca)
    out = bondha("check", config=path)
    assert out.returncode == 0, out.stderr
    assert "check passed" in out.stdout
    assert "verification is off" not in out.stderr
    out = bondha("apply", "--active", "backup", config=path)
    assert out.returncode == 0, out.stderr
    assert tls_server.get_object(3, "routes", 8)["enabled"] is True


def test_ca_bundle_relative_to_the_config_file(tls_server: StandInServer, certs: Certificates,
                                               tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_bytes(certs.ca.read_bytes())
    config = load_config(tls_config(tmp_path, tls_server, ca_bundle="ca.pem"))
    assert config.api.ca_bundle == str(tmp_path / "ca.pem")
    assert reconcile(config, Role.BACKUP, dry_run=True).plan


@pytest.mark.parametrize("trusted", ["system", "other-ca"])
def test_untrusted_certificate_is_one_clear_error_not_retried(
        tls_server: StandInServer, certs: Certificates, tmp_path: Path, trusted: str) -> None:
    options: dict[str, Any] = {"ca_bundle": certs.other_ca} if trusted == "other-ca" else {}
    path = tls_config(tmp_path, tls_server, attempts=3, **options)
    out = bondha("apply", "--active", "backup", config=path)
    assert out.returncode == 1
    assert "TLS certificate of https://127.0.0.1" in out.stderr
    assert "not trusted" in out.stderr
    assert "ca_bundle" in out.stderr
    assert "retrying" not in out.stderr  # another attempt meets the same certificate
    assert "Traceback" not in out.stderr
    assert len(tls_server.stats().writes) == 0
    with pytest.raises(CertificateError):
        # One connection at a time: a request cancelled in the middle of its TLS handshake
        # (the siblings of the first failure) leaves its socket to the garbage collector in
        # httpcore, which the suite's warnings-as-errors would report at random.
        reconcile(load_config(path), Role.BACKUP, pool_size=1)


def test_verify_ssl_false_still_works_and_warns_every_run(tls_server: StandInServer,
                                                          tmp_path: Path) -> None:
    path = tls_config(tmp_path, tls_server, verify_ssl=False)
    for args in (("plan", "--active", "backup"), ("notify", "INSTANCE", "VI_1", "MASTER", "9"),
                 ("status",)):
        out = bondha(*args, config=path)
        assert out.returncode == 0, out.stderr
        assert "WARNING" in out.stderr
        assert "TLS certificate verification is off" in out.stderr
    assert tls_server.get_object(3, "routes", 8)["enabled"] is True


def test_ca_bundle_ignored_without_verification_is_said(tls_server: StandInServer,
                                                        certs: Certificates,
                                                        tmp_path: Path) -> None:
    config = load_config(tls_config(tmp_path, tls_server, verify_ssl=False, ca_bundle=certs.ca))
    assert any("ca_bundle" in w and "ignored while verify_ssl is off" in w
               for w in config.warnings)


@pytest.mark.parametrize(("value", "why"), [
    ("missing.pem", "no such file"),
    (".", "not a regular file"),
    ("not-pem.txt", "holds no PEM certificate"),
    ("", "is empty"),
])
def test_bad_ca_bundle_is_a_config_error_naming_it(tmp_path: Path, value: str, why: str) -> None:
    (tmp_path / "not-pem.txt").write_text("hello\n")
    text = example_fixture().config_text("https://127.0.0.1:1", ca_bundle=value)
    with pytest.raises(ConfigError) as info:
        load_config(write_config(tmp_path / "c.conf", text))
    (problem,) = info.value.problems
    assert "[bondingadmin] ca_bundle" in problem
    assert why in problem
