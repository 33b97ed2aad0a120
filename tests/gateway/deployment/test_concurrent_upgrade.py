"""Several nodes starting at once on one PostgreSQL (each `sohogw serve` upgrades first; here `sohogw db upgrade`,
the same call) migrate one at a time: every process succeeds and the schema ends at the head revision."""

import subprocess
import uuid
from pathlib import Path

import pytest

from gateway.migrate import current_revisions
from tests.gateway.deployment.conftest import SOHOGW, clean_environment
from tests.gateway.deployment.test_db_upgrade import HEAD
from tests.support.postgres import create_database

pytestmark = pytest.mark.postgres
NODES = 4


def test_nodes_upgrading_an_empty_database_at_once_all_succeed(postgres_admin_url: str, tmp_path: Path) -> None:
    url = create_database(postgres_admin_url, f"sohogw_race_{uuid.uuid4().hex[:12]}")
    env = clean_environment() | {"SOHOGW_DATA_DIR": str(tmp_path), "SOHOGW_DATABASE_URL": url}
    nodes = [
        subprocess.Popen(
            [str(SOHOGW), "db", "upgrade"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(NODES)
    ]
    outcomes = [(node.wait(timeout=180), node.stderr.read() if node.stderr else "") for node in nodes]
    assert [code for code, _ in outcomes] == [0] * NODES, [err[-400:] for _, err in outcomes]
    assert current_revisions(url) == (HEAD,)
