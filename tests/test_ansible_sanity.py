"""Sanity of the Ansible collection in contrib/ansible, without the network.

``ansible-test sanity`` runs here for the tests that need no requirements of their own
(the others download a pip bootstrap from outside PyPI). For those, the equivalents:
the documentation against each module's argument spec (validate-modules' core check), every
YAML file parsed (yamllint's errors), each module compiled for the oldest Python bondha
supports, and ansible-playbook's syntax check of the shipped playbooks. ruff lints the
Python files with the rest of the project.
"""

from __future__ import annotations

import ast
import importlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ansible_fleet import BIN, COLLECTION, PLAYBOOKS, ansible_env, collections_tree

pytestmark = pytest.mark.timeout(300)

MODULES = ("pair", "status")
# ansible-test sanity tests that run offline (no requirements venv of their own).
OFFLINE_SANITY = ("action-plugin-docs", "compile", "empty-init", "line-endings", "no-assert",
                  "no-get-exception", "no-illegal-filenames", "no-smart-quotes",
                  "replace-urlopen", "shebang", "symlinks", "use-argspec-type-path",
                  "use-compat-six")


def test_ansible_test_sanity_offline_tests(tmp_path: Path) -> None:
    # ansible-test wants to run inside ansible_collections/NAMESPACE/NAME itself: a copy.
    target = tmp_path / "ansible_collections" / "bondha" / "ha"
    shutil.copytree(COLLECTION, target, ignore=shutil.ignore_patterns("__pycache__", "output"))
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    tests = [arg for name in OFFLINE_SANITY for arg in ("--test", name)]
    done = subprocess.run([str(BIN / "ansible-test"), "sanity", "--python", python, *tests],
                          cwd=target, capture_output=True, text=True, timeout=240, check=False,
                          env=ansible_env(tmp_path / "work"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("Running sanity test") == len(OFFLINE_SANITY), done.stdout


def ansible_doc(module: str, work: Path) -> dict[str, Any]:
    done = subprocess.run([str(BIN / "ansible-doc"), "--json", f"bondha.ha.{module}"],
                          capture_output=True, text=True, env=ansible_env(work), timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)[f"bondha.ha.{module}"]
    return doc


def argument_spec(module: str, work: Path) -> dict[str, Any]:
    sys.path.insert(0, str(collections_tree(work / "collections")))
    try:
        loaded = importlib.import_module(f"ansible_collections.bondha.ha.plugins.modules.{module}")
    finally:
        sys.path.pop(0)
    spec: dict[str, Any] = loaded.ARGUMENT_SPEC
    return spec


def _compare(documented: dict[str, Any], spec: dict[str, Any], where: str) -> list[str]:
    problems = []
    for name in sorted(set(documented) | set(spec)):
        if name not in spec:
            problems.append(f"{where}{name}: documented, not in the argument spec")
            continue
        if name not in documented:
            problems.append(f"{where}{name}: in the argument spec, not documented")
            continue
        doc, arg = documented[name], spec[name]
        for key, default in (("type", "str"), ("required", False), ("default", None),
                             ("choices", None), ("elements", None), ("no_log", None)):
            if key == "no_log":  # not documented by Ansible's convention; must be set
                continue
            if doc.get(key, default) != arg.get(key, default):
                problems.append(f"{where}{name}: {key} documented {doc.get(key, default)!r}, "
                                f"spec {arg.get(key, default)!r}")
        if "options" in arg or "suboptions" in doc:
            problems += _compare(doc.get("suboptions", {}), arg.get("options", {}),
                                 f"{where}{name}.")
    return problems


@pytest.mark.parametrize("module", MODULES)
def test_documentation_matches_the_argument_spec(module: str, tmp_path: Path) -> None:
    doc = ansible_doc(module, tmp_path)
    spec = argument_spec(module, tmp_path)
    assert _compare(doc["doc"]["options"], spec, "") == []
    assert spec["password"]["no_log"] is True
    for section in ("examples", "return"):
        assert doc[section], f"{module}: no {section.upper()}"
    # Every example is a task list using fully qualified module names.
    examples = yaml.safe_load(doc["examples"])
    assert all(any(key.startswith(("bondha.ha.", "ansible.builtin.")) for key in task)
               for task in examples)


def test_the_comparison_finds_a_difference() -> None:
    documented = {"active": {"type": "str", "choices": ["master", "backup"]},
                  "api": {"type": "dict", "suboptions": {"host": {"type": "str"}}}}
    spec = {"active": {"type": "str", "choices": ["master"]},
            "api": {"type": "dict", "options": {"host": {"type": "int"}, "user": {}}}}
    assert _compare(documented, spec, "") == [
        "active: choices documented ['master', 'backup'], spec ['master']",
        "api.host: type documented 'str', spec 'int'",
        "api.user: in the argument spec, not documented",
    ]


def test_every_yaml_file_parses_and_starts_a_document() -> None:
    files = sorted(COLLECTION.rglob("*.yml"))
    assert len(files) >= 10
    for path in files:
        text = path.read_text()
        assert text.startswith("---\n") or path.name == "galaxy.yml", path
        assert "\t" not in text, path
        assert all(len(line) <= 160 for line in text.splitlines()), path
        assert yaml.safe_load(text) is not None, path


def test_modules_compile_for_the_oldest_python() -> None:
    sources = sorted((COLLECTION / "plugins").rglob("*.py"))
    assert len(sources) >= 4
    for path in sources:  # ansible-test's compile test runs for this Python only
        ast.parse(path.read_text(), str(path), feature_version=(3, 9))


def test_shipped_playbooks_pass_the_syntax_check(tmp_path: Path) -> None:
    playbooks = sorted(PLAYBOOKS.glob("*.yml"))
    assert {p.stem for p in playbooks} >= {"pair", "audit", "bonder", "rollout"}
    inventory = tmp_path / "inventory.yml"
    inventory.write_text("---\nall:\n  children:\n    pairs: {hosts: {p1: {}}}\n"
                         "    bonders: {hosts: {b1: {}}}\n    pair1: {hosts: {b1: {}}}\n")
    done = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory),
                           # maintenance.yml stops, naming it, without the pair
                           "-e", "bondha_maintenance_pair=pair1",
                           "--syntax-check", *map(str, playbooks)], capture_output=True,
                          text=True, env=ansible_env(tmp_path), timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_roles_known_options_are_bondhas(tmp_path: Path) -> None:
    import attrs

    from bondha.config import HaSettings

    known = yaml.safe_load((COLLECTION / "roles/bonder/vars/main.yml").read_text())
    spec = argument_spec("pair", tmp_path)  # the shared options come from module_utils
    assert known["bondha_known_api_options"] == list(spec["api"]["options"])
    assert known["bondha_known_bond_options"] == list(spec["bond"]["options"])
    assert set(known["bondha_known_settings"]) == set(attrs.fields_dict(HaSettings))
