"""Ansible callback for the tests: each host's last task result as JSON, one file per host.

Enabled by tests/ansible_fleet.py (``ANSIBLE_CALLBACKS_ENABLED=host_results``); writes to
``$BONDHA_TEST_RESULTS_DIR``. Handler results are left out, so that a skipped handler does
not hide the module's result.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ansible.playbook.handler import Handler
from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: host_results
type: aggregate
short_description: each host's last task result as JSON (bondha's tests)
description: Writes the result of each host's last task to $BONDHA_TEST_RESULTS_DIR/HOST.
requirements: [enabled in the configuration]
"""


class CallbackModule(CallbackBase):  # type: ignore[misc]
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "host_results"
    CALLBACK_NEEDS_ENABLED = True

    def _write(self, result: Any) -> None:
        if isinstance(result._task, Handler):
            return
        directory = Path(os.environ["BONDHA_TEST_RESULTS_DIR"])
        directory.mkdir(parents=True, exist_ok=True)
        host = result._host.get_name()
        (directory / host).write_text(json.dumps(result._result, default=str))

    def v2_runner_on_ok(self, result: Any) -> None:
        self._write(result)

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._write(result)
