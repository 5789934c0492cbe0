# Sourced by scripts/demo and scripts/test: a project venv with bondha installed (editable).
# Re-installs only when pyproject.toml changed since the last install.
set -euo pipefail
VENV="${BONDHA_VENV:-.venv}"
EXTRAS="${1:-}"
stamp="$VENV/.bondha-installed$EXTRAS"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e ".$EXTRAS"
    touch "$stamp"
fi
