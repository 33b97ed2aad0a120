"""The app starts every worker from one list on one runner, stops them with itself, and serves their passes on
``/metrics``; ``run_jobs=False`` runs the wall's alone (a route serves it)."""

from pathlib import Path

import httpx
from sqlalchemy import Engine

from gateway.app import create_app
from gateway.directory import BuiltinDirectory
from gateway.settings import load_settings
from tests.support.server import serving
from tests.support.workers import wait_for

EVERY_WORKER = {
    "audit.fold_flush",
    "sessions.endings",
    "sessions.revalidate",
    "sessions.company_crls",
    "sessions.sweep",
    "supervision.alerts",
    "supervision.stretches",
    "supervision.wall",
    "enrollment.membership",
    "enrollment.upkeep",
    "enrollment.csv_import",
    "vpn.peers",
    "vpn.health",
    "vpn.scope",
    "seats.pool",
    "seats.limits",
    "seats.recordings",
    "sessions.directory_changes",
    "supervision.phone_help",
    "nodes.heartbeat",
    "nodes.dead_node_sweep",
}
"""Without a CA (no ``pki.*``) and without a voice platform (no ``voice.legs``), as this test's settings are."""


def test_the_app_runs_every_worker_on_one_runner_and_counts_their_passes(
    tmp_path: Path, db_url: str, engine: Engine
) -> None:
    settings = load_settings(data_dir=tmp_path, database_url=db_url, seats={"enabled": False})
    app = create_app(settings, engine=engine, directory=BuiltinDirectory(settings.directory_settings))
    with serving(app) as base_url:
        runner = app.state.workers
        assert {worker.name for worker in runner.workers} == EVERY_WORKER
        # Whose nudges carry what no interval pass can rebuild (voice.legs too, when a platform is configured)
        carried = {worker.name for worker in runner.workers if not worker.schedule.interval_covers_nudges}
        assert carried == {"sessions.directory_changes", "enrollment.csv_import"}
        assert wait_for(lambda: runner.status("sessions.sweep").last_success_at is not None)
        metrics = httpx.get(f"{base_url}/metrics").text
    assert 'sohogw_worker_passes_total{outcome="ok",trigger="interval",worker="sessions.sweep"}' in metrics
    assert 'sohogw_worker_consecutive_failures{worker="sessions.sweep"} 0.0' in metrics
    assert all(not slot.thread.is_alive() for slot in runner._slots.values())  # stopped with the app


def test_without_jobs_only_the_wall_runs(tmp_path: Path, db_url: str, engine: Engine) -> None:
    settings = load_settings(data_dir=tmp_path, database_url=db_url)
    app = create_app(settings, engine=engine, directory=BuiltinDirectory(settings.directory_settings), run_jobs=False)
    with serving(app):
        assert [worker.name for worker in app.state.workers.workers] == ["supervision.wall"]
