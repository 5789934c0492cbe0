"""``[bondha] metrics_file``: a valid Prometheus textfile, replaced atomically, whose counters
add up across hook processes."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from bondha.config import load_config
from bondha.errors import ConfigError
from bondha.testing import Fault, Fixture, StandInServer
from tests.conftest import bondha, write_config

# The text exposition format 0.0.4, strictly: what node_exporter's textfile collector accepts.
_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
_SAMPLE = re.compile(rf"({_NAME})(\{{(?:{_LABEL})(?:,{_LABEL})*\}})? (\S+)")
_HELP = re.compile(rf"# HELP ({_NAME}) (.*)")
_TYPE = re.compile(rf"# TYPE ({_NAME}) (counter|gauge|untyped)")
_FLOAT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]?Inf|NaN")

Series = dict[tuple[str, str], float]


def parse_exposition(text: str) -> tuple[Series, dict[str, str]]:
    """Samples by (name, labels) and the type of each family; AssertionError on any flaw."""
    assert text.endswith("\n"), "the last line must end with a newline"
    samples: Series = {}
    types: dict[str, str] = {}
    helped: set[str] = set()
    finished: set[str] = set()  # families whose samples are over: they may not come back
    current: str | None = None
    for number, line in enumerate(text[:-1].split("\n"), 1):
        where = f"line {number}: {line!r}"
        if match := _HELP.fullmatch(line):
            name = match[1]
            assert name not in helped, f"{where}: a second HELP"
            assert match[2].strip(), f"{where}: empty HELP"
            helped.add(name)
        elif match := _TYPE.fullmatch(line):
            name = match[1]
            assert name not in types, f"{where}: a second TYPE"
            assert name not in finished, f"{where}: TYPE after samples"
            assert name != current, f"{where}: TYPE after samples"
            types[name] = match[2]
        elif line.startswith("#"):
            raise AssertionError(f"{where}: a comment that is neither HELP nor TYPE")
        else:
            match = _SAMPLE.fullmatch(line)
            assert match, f"{where}: not a sample"
            name, labels, value = match[1], match[2] or "", match[3]
            assert _FLOAT.fullmatch(value), f"{where}: not a number"
            assert name in types, f"{where}: sample before TYPE"
            assert name in helped, f"{where}: sample before HELP"
            assert name not in finished, f"{where}: samples of {name} are not together"
            if current is not None and current != name:
                finished.add(current)
            current = name
            assert (name, labels) not in samples, f"{where}: a duplicate series"
            number_value = float(value)
            if types[name] == "counter":
                assert name.endswith("_total"), f"{where}: a counter's name ends in _total"
                assert number_value >= 0, f"{where}: a negative counter"
                assert math.isfinite(number_value), f"{where}: an infinite counter"
            samples[(name, labels)] = number_value
    assert set(types) == helped, "every family has HELP and TYPE"
    assert all(any(n == name for n, _ in samples) for name in types), "a family without samples"
    return samples, types


def test_the_parser_itself_rejects_broken_expositions() -> None:
    good = "# HELP a_total A.\n# TYPE a_total counter\na_total 1\n"
    assert parse_exposition(good)[0] == {("a_total", ""): 1.0}
    for broken in (good.rstrip("\n"), good + "a_total 2\n", good.replace("1\n", "one\n"),
                   good.replace("# HELP a_total A.\n", ""), good + "# comment\n",
                   good.replace("a_total 1", 'a_total{x="y} 1'),
                   good.replace("a_total 1", "a_total -1"),
                   "# HELP b A.\n# TYPE b gauge\nb 1\n# HELP c C.\n# TYPE c gauge\nc 1\nb 2\n"):
        with pytest.raises(AssertionError):
            parse_exposition(broken)


def metrics_config(tmp_path: Path, server: StandInServer, fixture: Fixture) -> Path:
    text = fixture.config_text(server.url, attempt_delay=0.01, timeout=5)
    # A short deadline: the runs that cannot converge give up quickly.
    text += f"[bondha]\ndeadline = 1\nmetrics_file = {tmp_path / 'textfile' / 'bondha.prom'}\n"
    (tmp_path / "textfile").mkdir()
    return write_config(tmp_path / "metrics.conf", text)


def read_metrics(tmp_path: Path) -> Series:
    path = tmp_path / "textfile" / "bondha.prom"
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)  # node_exporter's user reads it
    assert [p.name for p in path.parent.iterdir()] == ["bondha.prom"]  # no temporary left
    return parse_exposition(path.read_text())[0]


def test_counters_add_up_across_hook_processes(server: StandInServer, fixture: Fixture,
                                               tmp_path: Path) -> None:
    config = metrics_config(tmp_path, server, fixture)
    for state, priority in (("MASTER", "9"), ("BACKUP", "9"), ("MASTER", "10")):
        out = bondha("notify", "INSTANCE", "VI_1", state, priority, config=config)
        assert out.returncode == 0, out.stderr
    samples = read_metrics(tmp_path)
    # MASTER 9 moves 6 objects to bond 3; BACKUP 9 right after it hands them back (the peer
    # is MASTER then); MASTER 10 finds them in place.
    assert samples[("bondha_reconciles_total", '{result="converged"}')] == 3
    assert samples[("bondha_reconciles_total", '{result="failed"}')] == 0
    assert samples[("bondha_writes_total", "")] == len(server.stats().writes) == 12
    assert samples[("bondha_transitions_total", '{state="MASTER"}')] == 2
    assert samples[("bondha_transitions_total", '{state="BACKUP"}')] == 1
    assert samples[("bondha_keepalived_master", "")] == 1
    assert samples[("bondha_objects_out_of_place", "")] == 0
    assert samples[("bondha_last_success_timestamp_seconds", "")] == samples[
        ("bondha_last_reconcile_timestamp_seconds", "")] > 0
    assert samples[("bondha_reconcile_interval_seconds", "")] == 30


def test_a_run_that_does_not_converge_shows_what_is_out_of_place(
        server: StandInServer, fixture: Fixture, tmp_path: Path) -> None:
    config = metrics_config(tmp_path, server, fixture)
    server.inject(Fault(method="PATCH", path="/connected_ips/1/", status=503))  # disable fails
    out = bondha("notify", "INSTANCE", "VI_1", "MASTER", "9", config=config)
    assert out.returncode == 1
    samples = read_metrics(tmp_path)
    assert samples[("bondha_reconciles_total", '{result="failed"}')] == 1
    assert samples[("bondha_last_success_timestamp_seconds", "")] == 0
    assert samples[("bondha_write_failures_total", "")] >= 1
    # The disable failed, so the enable was held back: the address is on the old bond still,
    # and the route through it waits on the new bond (its gateway is in that address).
    assert samples[("bondha_objects_out_of_place", "")] == 3
    assert samples[("bondha_addresses_overlap", "")] == 0
    # keepalived says BACKUP: the peer owns the pair, nothing here is out of place.
    assert bondha("notify", "INSTANCE", "VI_1", "BACKUP", "9", config=config).returncode == 0
    assert read_metrics(tmp_path)[("bondha_objects_out_of_place", "")] == 0


def test_overlap_is_measured_when_the_disable_fails_and_policy_enables(
        server: StandInServer, fixture: Fixture, tmp_path: Path) -> None:
    config = metrics_config(tmp_path, server, fixture)
    config.write_text(config.read_text() + "on_disable_failure = enable\n")
    server.inject(Fault(method="PATCH", path="/connected_ips/1/", status=503))
    assert bondha("notify", "INSTANCE", "VI_1", "MASTER", "9", config=config).returncode == 1
    assert read_metrics(tmp_path)[("bondha_addresses_overlap", "")] == 1


def test_metrics_file_must_be_absolute_and_should_end_in_prom(
        server: StandInServer, fixture: Fixture, tmp_path: Path) -> None:
    base = fixture.config_text(server.url)
    relative = write_config(tmp_path / "a.conf", base + "[bondha]\nmetrics_file = bondha.prom\n")
    with pytest.raises(ConfigError, match=r"\[bondha\] metrics_file = 'bondha.prom': must be an "
                                          "absolute path"):
        load_config(relative)
    other = write_config(tmp_path / "b.conf", base + "[bondha]\nmetrics_file = /tmp/bondha.txt\n")
    (warning,) = load_config(other).warnings
    assert "metrics_file" in warning
    assert "does not end in .prom" in warning


def test_a_metrics_file_that_cannot_be_written_never_fails_the_failover(
        server: StandInServer, fixture: Fixture, tmp_path: Path) -> None:
    config = metrics_config(tmp_path, server, fixture)
    (tmp_path / "textfile").rmdir()
    out = bondha("notify", "INSTANCE", "VI_1", "MASTER", "9", config=config)
    assert out.returncode == 0, out.stderr
    assert "metrics file" in out.stderr
    assert "not recorded (the failover goes on)" in out.stderr
