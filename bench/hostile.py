"""The hostile-world cases of issue 12, before and after: exit code, seconds, peak memory.

Run by hand, never in CI: ``python bench/hostile.py ROOT [ROOT ...]`` where each ROOT is a
checkout whose ``bondha`` package is measured (the hostile server always comes from this
checkout). Each case runs ``python -m bondha`` once under an address-space limit and a
wall-clock limit; a case that hits the wall clock shows ``hung``.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bondha.testing import example_fixture
from bondha.testing.hostile import HostileServer

MEMORY = 2 << 30
WALL = 30.0
SERVER_CASES = ("chunked", "huge", "trickle", "pages", "control")


def run(root: str, args: list[str], env: dict[str, str]) -> tuple[str, float, float, str]:
    full = {**os.environ, "PYTHONPATH": root, "BONDHA_SYSLOG": "0", **env}

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))

    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "bondha", *args], env=full,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               cwd=root, preexec_fn=limit)  # noqa: PLW1509 - `-m`: cwd first
    try:
        _, err = process.communicate(timeout=WALL)
        code = str(process.returncode)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
        code = "hung"
    seconds = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    last = err.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
    return code, seconds, peak, last[0][:100]


def cases(work: Path) -> list[tuple[str, list[str], dict[str, str], str | None]]:
    fifo = work / "fifo.conf"
    os.mkfifo(fifo)
    big = work / "big.conf"
    with big.open("wb") as stream:
        stream.truncate(200 * 1000 * 1000)
    notify = ["notify", "INSTANCE", "VI_1", "MASTER", "10"]
    out: list[tuple[str, list[str], dict[str, str], str | None]] = [
        (mode, ["apply", "--active", "backup"], {}, mode) for mode in SERVER_CASES]
    out += [("config /dev/zero", ["--config", "/dev/zero", *notify], {}, None),
            ("config FIFO", ["--config", str(fifo), *notify], {}, None),
            ("config 200 MB", ["--config", str(big), *notify], {}, None),
            ("empty event file", notify, {"EVENT": ""}, "control"),
            ('{"seq": 1e400}', notify, {"EVENT": '{"seq": 1e400, "event": "x"}'}, "control"),
            ("notify NAME 130 KB", ["notify", "INSTANCE", "N" * 130_000, "BACKUP", "9"], {},
             "control")]
    return out


def main() -> int:
    roots = sys.argv[1:]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rows = []
        for name, args, extra, mode in cases(work):
            for root in roots:
                state = work / f"state-{len(rows)}"
                state.mkdir(mode=0o700)
                env = {"BONDHA_STATE_DIR": str(state)}
                if "EVENT" in extra:
                    (state / "event").write_text(extra["EVENT"])
                server = HostileServer(mode or "control")
                with server:
                    config = work / "c.conf"
                    config.write_text(example_fixture().config_text(
                        server.url, timeout=2, attempts=2, attempt_delay=0.1)
                        + "[bondha]\ndeadline = 5\n")
                    config.chmod(0o600)
                    env["BONDHA_CONFIG"] = str(config)
                    # getrusage(RUSAGE_CHILDREN) is a maximum over all children so far:
                    # measure each case in a fresh child of its own.
                    code, seconds, peak, said = _isolated(root, args, env)
                rows.append((name, root, code, seconds, peak, said))
                print(json.dumps(rows[-1]), flush=True)
    return 0


def _isolated(root: str, args: list[str], env: dict[str, str]) -> tuple[str, float, float, str]:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        os.write(write, json.dumps(run(root, args, env)).encode())
        os._exit(0)
    os.close(write)
    data = b""
    while chunk := os.read(read, 65536):
        data += chunk
    os.close(read)
    os.waitpid(pid, 0)
    code, seconds, peak, said = json.loads(data)
    return code, seconds, peak, said


if __name__ == "__main__":
    sys.exit(main())
