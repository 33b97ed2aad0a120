#!/usr/bin/env bash
# Install what the tests need (Debian packages, the venv with test extras, npm packages) and run the whole suite:
# lint, then pytest on SQLite and a real PostgreSQL server with every real component. `sudo ./tests/run.sh`.
# Extra arguments go to pytest (e.g. `./tests/run.sh tests/gateway -x`).
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/lib.sh

install_debian_packages deploy/packages-runtime.txt deploy/packages-test.txt
make_venv "[test]"
command -v npm >/dev/null || install_debian_packages <(printf 'nodejs\nnpm\n')
install_web_libraries
if [[ -f deploy/guacamole-lite/package-lock.json ]]; then
    (cd deploy/guacamole-lite && npm ci --no-audit --no-fund --silent)
fi
build_seat_viewer
build_seat_watermark
# A real guacd for the Guacamole tests (built from ../shared/guacd, or Apache's release): tests/guacd.sh.
source tests/guacd.sh
ensure_guacd

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/lint-imports  # the import layers of docs/architecture.md (contracts in pyproject.toml)

status=0
.venv/bin/pytest --durations=25 "$@" || status=$?  # the 25 slowest tests, to keep CI under its 30 minutes
if ((status == 5)); then
    echo "pytest collected no tests: that is a failure, not a pass" >&2
    exit 1
fi
exit "$status"
