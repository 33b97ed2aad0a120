"""The environment check over real HTTP: real bytes both ways, round trips, and the server's own cross-check."""

import json
import os
import statistics

import httpx
import pytest
from sqlmodel import select

from gateway.db import session_scope
from gateway.enrollment.envcheck_judge import ServerView, judge
from gateway.enrollment.models import EnvcheckRun, Evidence, EvidenceKind
from gateway.enrollment.settings import EnvcheckThresholds
from tests.gateway.enrollment.conftest import Portal, csrf_of, post_form, signed_in

CHECKLIST = {"quiet_room": True, "no_noise": True, "dedicated_line": True, "pc_class": "meets"}


def _script_headers(client: httpx.Client) -> dict[str, str]:
    return {"X-CSRF-Token": csrf_of(client.get("/enrollment"))}


def _measure(client: httpx.Client, down: int, up: int, round_trips: int = 6) -> tuple[str, dict[str, object]]:
    headers = _script_headers(client)
    plan = client.post("/enrollment/envcheck/runs", headers=headers).json()
    run = plan["run"]
    for _ in range(round_trips):
        assert client.get("/enrollment/envcheck/ping", params={"run": run}).status_code == 200
    body = client.get("/enrollment/envcheck/download", params={"run": run, "bytes": down}).content
    answer = client.post("/enrollment/envcheck/upload", params={"run": run}, content=os.urandom(up), headers=headers)
    assert answer.json() == {"received": up}
    return run, {"download_bytes": len(body), "upload_bytes": up}


@pytest.fixture
def applying(portal: Portal) -> Portal:
    with signed_in(portal, "applicant1") as client:
        assert post_form(client, "/enrollment", "/enrollment/apply", {"callback_number": ""}).status_code == 303
    return portal


def test_server_counts_the_bytes_it_really_moved_and_files_the_result_as_evidence(applying: Portal) -> None:
    with signed_in(applying, "applicant1") as client:
        run, moved = _measure(client, down=3_000_000, up=1_500_000)
        report = {
            **moved,
            "download_mbps": 500.0,
            "upload_mbps": 400.0,
            "latency_ms": 1.0,
            "jitter_ms": 0.2,
            "checklist": CHECKLIST,
            "device": {"user_agent": "test", "platform": "Linux", "screen": "1x1"},
        }
        result = client.post(f"/enrollment/envcheck/runs/{run}/result", json=report, headers=_script_headers(client))
        assert result.status_code == 200, result.text
        again = client.post(f"/enrollment/envcheck/runs/{run}/result", json=report, headers=_script_headers(client))
        assert again.status_code == 404  # a run is submitted once
    figures = result.json()
    assert moved["download_bytes"] == 3_000_000
    assert figures["server"]["download_bytes"] == 3_000_000 and figures["server"]["upload_bytes"] == 1_500_000
    assert figures["server"]["round_trips"] == 5 and figures["server"]["latency_ms"] > 0
    assert figures["server"]["download_seconds"] > 0 and figures["server"]["upload_seconds"] > 0
    # the judged figure is the less favourable of browser and server: never above what the server saw
    assert figures["checks"]["download"]["value"] <= round(figures["server"]["download_mbps"], 3)
    assert figures["checks"]["latency"]["value"] >= figures["server"]["latency_ms"] - 0.001
    assert figures["passed"] is True
    with session_scope(applying.engine) as db:
        evidence = db.exec(select(Evidence).where(Evidence.kind == EvidenceKind.ENVIRONMENT_CHECK)).one()
        assert evidence.stage == "home_visit" and evidence.summary == "passed"
        assert json.loads(evidence.content)["server"]["upload_bytes"] == 1_500_000


def test_a_browser_claiming_bytes_the_server_never_sent_fails_the_check(applying: Portal) -> None:
    with signed_in(applying, "applicant1") as client:
        run, _ = _measure(client, down=200_000, up=100_000)
        report = {
            "download_bytes": 50_000_000,
            "upload_bytes": 100_000,
            "download_mbps": 900.0,
            "upload_mbps": 900.0,
            "latency_ms": 1.0,
            "jitter_ms": 0.1,
            "checklist": CHECKLIST,
        }
        result = client.post(f"/enrollment/envcheck/runs/{run}/result", json=report, headers=_script_headers(client))
    figures = result.json()
    assert figures["checks"]["consistent"]["passed"] is False and figures["passed"] is False
    assert "more bytes than the server moved" in figures["problems"][0]


def test_transfers_need_the_applicants_own_run_and_the_page_secret(applying: Portal) -> None:
    with signed_in(applying, "applicant1") as client:
        assert client.post("/enrollment/envcheck/runs").status_code == 403  # no X-CSRF-Token
        run = client.post("/enrollment/envcheck/runs", headers=_script_headers(client)).json()["run"]
        too_big = applying.settings.enrollment.envcheck_max_download_bytes + 1
        assert client.get("/enrollment/envcheck/download", params={"run": run, "bytes": too_big}).status_code == 422
    with signed_in(applying, "applicant2") as stranger:
        assert stranger.get("/enrollment/envcheck/download", params={"run": run, "bytes": 10}).status_code == 404
    with session_scope(applying.engine) as db:
        assert db.get(EnvcheckRun, run).download_bytes == 0  # type: ignore[union-attr]


def test_thresholds_judge_each_figure_and_the_checklist() -> None:
    thresholds = EnvcheckThresholds()
    server = ServerView(2_000_000, 0.5, 1_000_000, 0.5, [0.0, 0.02, 0.04, 0.06])
    slow = {
        "download_bytes": 2_000_000,
        "upload_bytes": 1_000_000,
        "download_mbps": 0.8,
        "upload_mbps": 5.0,
        "latency_ms": 200.0,
        "jitter_ms": 40.0,
        "checklist": {**CHECKLIST, "no_noise": False},
    }
    result = judge(slow, server, thresholds)
    assert {name: check["passed"] for name, check in result["checks"].items()} == {
        "download": False,
        "upload": True,
        "latency": False,
        "jitter": False,
        "checklist": False,
        "consistent": True,
    }
    assert result["server"]["download_mbps"] == pytest.approx(32.0)
    assert result["server"]["latency_ms"] == pytest.approx(statistics.median([20.0, 20.0, 20.0]))
    missing = judge({"checklist": CHECKLIST}, ServerView(0, 0.0, 0, 0.0, []), thresholds)
    assert missing["passed"] is False and missing["checks"]["download"]["value"] is None
