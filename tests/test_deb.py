"""The Debian package: built by scripts/build-deb, clean under lintian, installed with dpkg,
used from the installed paths the docs name, upgraded, purged leaving nothing behind.

Installing needs root and changes the machine (a system user, files in /etc, /usr, /run):
those tests skip, saying why, when not root or when bondha is already on this machine (a
real install is never touched). CI runs them (as root, BONDHA_REQUIRE_E2E=1 makes a skip
a failure there). ``-m "not deb"`` leaves them out.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from bondha.config import parse_config
from bondha.keepalived.install import DEFAULT_HOOK, DEFAULT_SCRIPT_USER
from bondha.model import Kind
from bondha.testing import Fixture, StandInServer
from tests.conftest import ROOT, wait_for
from tests.helpers import group_exists, user_exists

REQUIRE_ENV = "BONDHA_REQUIRE_E2E"
EXAMPLE = ROOT / "contrib" / "swap-active-bond.conf.example"
CONFIG = Path("/etc/bonding/swap-active-bond.conf")
PASSWORD = Path("/etc/bonding/password")
INSTALLED = [Path("/usr/bin/bondha"), Path(DEFAULT_HOOK),
             Path("/lib/systemd/system/bondha.service"), Path("/usr/lib/tmpfiles.d/bondha.conf"),
             Path(f"{CONFIG}.example"), Path("/usr/share/doc/bondha/copyright"),
             Path("/usr/share/man/man1/bondha.1.gz")]
# Where a package could leave something behind; dpkg's own records of it are not the package's.
WATCHED = [Path(p) for p in ("/etc", "/usr", "/lib/systemd", "/run", "/var/lib", "/var/log")]
DPKG_RECORDS = (Path("/var/lib/dpkg"), Path("/var/cache"), Path("/var/log/dpkg.log"))


def test_the_example_config_is_a_valid_config(tmp_path: Path) -> None:
    """What the package installs as the example loads, once its password file exists."""
    (tmp_path / "password").write_text("the password\n")
    text = EXAMPLE.read_text().replace("/etc/bonding/password", str(tmp_path / "password"))
    config = parse_config(text, tmp_path / "swap-active-bond.conf")
    assert config.pair.master.bond_id == 1
    assert config.pair.backup.route_ids == (8,)
    assert config.api.verify_ssl is True


DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Install advice from before the package: nothing of it may come back into the docs.
STALE = ("pip install bondha", "pip install .", "/opt/bondha", "cp contrib/bondha.service",
         "/usr/local/bin/bondha daemon", "sudo bondha")


def test_docs_use_the_installed_paths() -> None:
    for doc in DOCS:
        text = doc.read_text()
        for stale in STALE:
            assert stale not in text, (doc.name, stale)
        for line in text.splitlines():
            if re.search(r"\bnotify\s+\S*swap-active-bond", line) and doc.name != "migration.md":
                assert DEFAULT_HOOK in line, (doc.name, line)
    for name in ("README.md", "docs/operators.md", "docs/reliability.md", "docs/migration.md"):
        assert DEFAULT_HOOK in (ROOT / name).read_text(), name


def test_the_unit_runs_the_installed_command_and_may_write_what_the_docs_configure() -> None:
    unit = (ROOT / "contrib" / "bondha.service").read_text()
    assert re.search(r"^ExecStart=/usr/bin/bondha daemon ", unit, re.MULTILINE)
    assert re.search(rf"^User={DEFAULT_SCRIPT_USER}$", unit, re.MULTILINE)
    writable = [Path(word.lstrip("-")) for line in re.findall(r"^ReadWritePaths=(.*)$", unit,
                                                              re.MULTILINE)
                for word in line.split()]
    shown = [(doc.name, option, Path(path)) for doc in [*DOCS, EXAMPLE]
             for option, path in re.findall(
                 r"^[#\s]*(metrics_file|state_dir|notify_fifo)\s*=\s*(/\S+)", doc.read_text(),
                 re.MULTILINE)]
    assert {option for _, option, _ in shown} >= {"metrics_file", "notify_fifo"}
    for where, option, path in shown:
        assert any(path.is_relative_to(w) for w in writable), (where, option, path)


def _cannot_install() -> str | None:
    if os.geteuid() != 0:
        return "installing a .deb needs root"
    for tool in ("dpkg", "dpkg-deb", "adduser"):
        if shutil.which(tool) is None:
            return f"{tool} not found (not a Debian system)"
    if subprocess.run(["dpkg-query", "-W", "bondha"], capture_output=True,
                      check=False).returncode == 0:
        return "a bondha package is installed on this machine; the test would purge it"
    for present, what in ((user_exists("bondha"), "a 'bondha' user exists"),
                          (CONFIG.exists(), f"{CONFIG} exists"),
                          (PASSWORD.exists(), f"{PASSWORD} exists")):
        if present:
            return f"{what} on this machine; the test would replace or remove it"
    return None


@pytest.fixture(scope="module")
def can_install() -> None:
    reason = _cannot_install()
    if reason is not None:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{REQUIRE_ENV}=1 but the .deb cannot be installed here: {reason}")
        pytest.skip(f"deb: {reason}")


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist") / "bondha.deb"
    build = subprocess.run([str(ROOT / "scripts" / "build-deb"), str(out)],
                           capture_output=True, text=True, timeout=300, check=False,
                           env={**os.environ, "PYTHON": sys.executable})
    assert build.returncode == 0, build.stderr
    return out


# The hook's and the daemon's state: a folder that the bondha user makes in the package's
# /run/bondha. Not /run/bondha itself only because other suites on a shared machine may run
# bondha as root meanwhile, which leaves root's locks there (tests/test_zipapp.py did).
NODE_STATE = Path("/run/bondha/node")


def sh(*command: str, user: str | None = None, config: Path | None = None,
       check: bool = True, extra_env: Mapping[str, str] | None = None
       ) -> subprocess.CompletedProcess[str]:
    """A command as an operator types it on the bonder: a clean environment, maybe as a user."""
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "BONDHA_SYSLOG": "0",
           "DEBIAN_FRONTEND": "noninteractive", "BONDHA_STATE_DIR": str(NODE_STATE),
           **(extra_env or {})}
    if config is not None:
        env["BONDHA_CONFIG"] = str(config)
    argv = ["runuser", "-u", user, "--", *command] if user else list(command)
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120,
                          check=False, cwd="/")
    if check:
        assert done.returncode == 0, (argv, done.stdout, done.stderr)
    return done


def bondha_paths() -> set[Path]:
    """Every path under the watched places whose name says bondha, dpkg's records aside."""
    found: set[Path] = set()
    for top in WATCHED:
        for directory, dirs, files in os.walk(top):
            here = Path(directory)
            if here in DPKG_RECORDS or here.is_relative_to(Path("/var/lib/dpkg")):
                dirs.clear()
                continue
            found.update(here / name for name in dirs + files if "bondha" in name)
    return found - set(DPKG_RECORDS)


deb_test = pytest.mark.deb


@deb_test
def test_lintian_is_clean(deb: Path) -> None:
    if shutil.which("lintian") is None:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{REQUIRE_ENV}=1 but lintian is not installed")
        pytest.skip("lintian not installed (apt-get install lintian)")
    done = subprocess.run(["lintian", "--pedantic", "--info", "--fail-on",
                           "error,warning,info,pedantic", str(deb)],
                          capture_output=True, text=True, timeout=300, check=False)
    tags = [line for line in done.stdout.splitlines() if re.match(r"[EWIPX]: ", line)]
    assert tags == [], done.stdout
    assert done.returncode == 0, done.stdout + done.stderr


@deb_test
def test_package_contents(deb: Path) -> None:
    listing = subprocess.run(["dpkg-deb", "--contents", str(deb)], capture_output=True,
                             text=True, check=True).stdout
    info = subprocess.run(["dpkg-deb", "--info", str(deb)], capture_output=True, text=True,
                          check=True).stdout
    for path in INSTALLED:
        assert f".{path}\n" in listing, path
    for hook in sorted((ROOT / "hooks").iterdir()):
        assert "-rwxr-xr-x root/root" in next(
            line for line in listing.splitlines() if line.endswith(f"/usr/lib/bondha/{hook.name}"))
    assert "__pycache__" not in listing
    assert "/LICENSE" not in listing
    assert re.search(r"^ Depends: python3 \(>= 3\.9\), adduser$", info, re.MULTILINE)
    assert not re.search(r"python3-(httpx|attr|tenacity)", info)  # included, see copyright


_before_install: set[Path] = set()


@pytest.fixture(scope="module")
def installed(can_install: None, deb: Path) -> Iterator[Path]:
    _before_install.update(bondha_paths())
    try:
        sh("dpkg", "-i", str(deb))
        yield deb
    finally:
        subprocess.run(["dpkg", "--purge", "bondha"], capture_output=True, check=False)
        for path in (CONFIG, PASSWORD):
            path.unlink(missing_ok=True)
        if Path("/etc/bonding").is_dir() and not any(Path("/etc/bonding").iterdir()):
            Path("/etc/bonding").rmdir()


@deb_test
def test_installed_paths(installed: Path) -> None:
    for path in INSTALLED:
        assert path.is_file(), path
    version = sh("bondha", "--version").stdout
    assert re.fullmatch(r"bondha \d+\.\d+\.\d+\S*\n", version), version
    entry = pwd.getpwnam("bondha")
    assert entry.pw_shell == "/usr/sbin/nologin"
    assert entry.pw_uid < 1000
    state = Path("/run/bondha").stat()
    assert (state.st_uid, state.st_mode & 0o7777) == (entry.pw_uid, 0o700)
    # keepalived's script security: the hook and every directory above it belong to root
    # and nobody else may write them.
    for path in [Path(DEFAULT_HOOK), *Path(DEFAULT_HOOK).parents]:
        mode = path.stat()
        assert mode.st_uid == 0, path
        assert not mode.st_mode & 0o022, path
    # postinst compiled the libraries for this python3, so a hook run does not.
    tag = sh("python3", "-c", "import sys; print(sys.implementation.cache_tag)").stdout.strip()
    assert list(Path("/usr/lib/bondha/httpx/__pycache__").glob(f"*.{tag}.pyc"))
    if shutil.which("systemd-analyze"):
        sh("systemd-analyze", "verify", "/lib/systemd/system/bondha.service")


@deb_test
def test_demo_from_the_installed_command(installed: Path) -> None:
    done = sh("bondha", "demo")
    assert "overlap moments: 0" in done.stdout


@deb_test
def test_the_operators_steps_with_the_installed_hook(installed: Path, server: StandInServer,
                                                     fixture: Fixture) -> None:
    """docs/operators.md with the package: the config from the example, check, the hook."""
    stand_in = dict(re.findall(r"^(user|passwd) = (.*)$", fixture.config_text(server.url),
                               re.MULTILINE))
    user, password = stand_in["user"], stand_in["passwd"]
    text = Path(f"{CONFIG}.example").read_text()
    text = re.sub(r"^host = .*$", f"host = {server.url}", text, flags=re.MULTILINE)
    text = re.sub(r"^user = .*$", f"user = {user}", text, flags=re.MULTILINE)
    text = re.sub(r"^attempt_delay = .*$", "attempt_delay = 0.01", text, flags=re.MULTILINE)
    CONFIG.write_text(text)
    PASSWORD.write_text(password + "\n")
    for path in (CONFIG, PASSWORD):
        shutil.chown(path, "bondha", "bondha")
        path.chmod(0o400)

    sh("mkdir", "-m", "0700", str(NODE_STATE), user="bondha")  # /run/bondha is bondha's
    check = sh("bondha", "check", user="bondha")
    assert "check passed" in check.stdout
    # keepalived, on the backup bonder becoming MASTER (priority 9): the backup bond active.
    sh(DEFAULT_HOOK, "INSTANCE", "VI_1", "MASTER", "9", user="bondha")
    assert server.get_object(3, Kind.ROUTE, 8)["enabled"] is True
    assert server.get_object(1, Kind.ROUTE, 7)["enabled"] is False
    local = sh("bondha", "status", "--local", user="bondha")
    assert "event 1: INSTANCE VI_1 MASTER 9" in local.stdout, local.stdout
    # A copy of the hook works too (the bonding software's hook folders take copies).
    elsewhere = Path(tempfile.mkdtemp(prefix="bondha-hook-copy-"))
    try:
        elsewhere.chmod(0o755)
        copy = elsewhere / "swap-active-bond"
        shutil.copy(DEFAULT_HOOK, copy)
        sh(str(copy), "INSTANCE", "VI_1", "MASTER", "10", user="bondha")
    finally:
        shutil.rmtree(elsewhere)
    assert server.get_object(1, Kind.ROUTE, 7)["enabled"] is True
    assert server.get_object(3, Kind.ROUTE, 8)["enabled"] is False
    # The bonding software's connected IP hook, as root: it reads the bondha user's config
    # and state directory, and leaves a connected IP that does not float alone.
    connected = {"ID": "999", "BOND_ID": "1", "IP": "203.0.113.9", "NETMASK": "255.255.255.255",
                 "NETWORK": "203.0.113.9", "INTERFACE": "lo", "AGG_ROUTING": "auto"}
    start = sh("/usr/lib/bondha/announce-connected-ip", "start", extra_env=connected)
    assert "connected IP 999 (203.0.113.9) on bond 1 does not float" in start.stderr, start.stderr
    stop = sh("/usr/lib/bondha/announce-connected-ip", "stop", extra_env=connected)
    for run in (start, stop):
        assert "ERROR" not in run.stderr, run.stderr
        assert "not recorded" not in run.stderr, "root could not use the bondha user's state"

    # The daemon as bondha.service runs it: the bondha user, the unit's command line; root
    # (keepalived) writes its events into the FIFO the daemon made.
    unit = Path("/lib/systemd/system/bondha.service").read_text()
    command = re.search(r"^ExecStart=(.*)$", unit, re.MULTILINE).group(1).split()  # type: ignore[union-attr]
    fifo = Path(command[command.index("--fifo") + 1])
    daemon = subprocess.Popen(command, user="bondha", group="bondha", extra_groups=[],
                              env={"PATH": "/usr/bin:/bin", "BONDHA_SYSLOG": "0",
                                   "BONDHA_STATE_DIR": str(NODE_STATE)}, cwd="/",
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(fifo.exists, "the daemon's FIFO")
        with fifo.open("w") as keepalived:
            keepalived.write('INSTANCE "VI_1" MASTER 9\n')
        wait_for(lambda: server.get_object(3, Kind.ROUTE, 8)["enabled"], "the daemon's failover")
    finally:
        daemon.terminate()
        _, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err
    assert server.get_object(1, Kind.ROUTE, 7)["enabled"] is False
    assert server.address_report().overlap_moments == 0


@deb_test
def test_upgrade_keeps_the_config_and_purge_leaves_nothing(installed: Path,
                                                           tmp_path: Path) -> None:
    example = Path(f"{CONFIG}.example")
    example.write_text(example.read_text() + "# edited by the operator\n")
    CONFIG.write_text("[bondingadmin]\n# the operator's\n")
    uid = pwd.getpwnam("bondha").pw_uid
    # The next version: the same package with a higher version number.
    tree = tmp_path / "next"
    subprocess.run(["dpkg-deb", "-R", str(installed), str(tree)], check=True)
    control = tree / "DEBIAN" / "control"
    control.write_text(re.sub(r"^Version: (.*)$", r"Version: \1+next", control.read_text(),
                              flags=re.MULTILINE))
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(tree),
                    str(tmp_path / "next.deb")], check=True, capture_output=True)
    sh("dpkg", "-i", str(tmp_path / "next.deb"))
    assert "+next" in sh("dpkg-query", "-W", "-f", "${Version}", "bondha").stdout
    assert example.read_text().endswith("# edited by the operator\n")  # a conffile
    assert CONFIG.read_text() == "[bondingadmin]\n# the operator's\n"
    assert pwd.getpwnam("bondha").pw_uid == uid
    assert "bondha" in sh("bondha", "--version").stdout

    sh("dpkg", "--purge", "bondha")
    # The operator's config stays (the old script's file too: a rollback needs it); the
    # rest of what the package made is gone: files, byte code, /run/bondha, the user.
    assert CONFIG.read_text() == "[bondingadmin]\n# the operator's\n"
    CONFIG.unlink()
    assert not user_exists("bondha")
    assert not group_exists("bondha")
    assert bondha_paths() - _before_install == set()
    for path in [*INSTALLED, Path("/run/bondha"), Path("/usr/lib/bondha")]:
        assert not path.exists(), path
