"""The enrollment section of the settings (nested by the lead as ``settings.enrollment``); see docs/enrollment.md."""

from typing import Annotated

from pydantic import BaseModel, Field, field_validator

FINAL_STAGE = "approved"


class EnvcheckThresholds(BaseModel):
    """What a home line must reach; defaults are the operators' minimum (a dedicated line of at least 1 Mbit/s)."""

    min_download_mbps: Annotated[float, Field(gt=0)] = 1.0
    min_upload_mbps: Annotated[float, Field(gt=0)] = 1.0
    max_latency_ms: Annotated[float, Field(gt=0)] = 150.0
    max_jitter_ms: Annotated[float, Field(gt=0)] = 30.0


class EnrollmentSettings(BaseModel):
    """HR vetting: the stages, the SOHO group an approval grants, evidence limits, re-checks and retention."""

    stages: list[str] = ["application", "background_check", "home_visit", "training", FINAL_STAGE]
    """In order; the last one (``approved``) is reached, never decided: passing the stage before it approves."""
    agent_group: str = "SOHO-Agents"
    """The directory group approval adds the person to: a DN for AD/OpenLDAP, a plain name for the built-in one."""
    envcheck_stage: str = "home_visit"
    """The stage an environment check is filed under as evidence."""
    thresholds: EnvcheckThresholds = EnvcheckThresholds()
    envcheck_max_download_bytes: Annotated[int, Field(ge=1024, le=256 * 1024 * 1024)] = 32 * 1024 * 1024
    envcheck_max_upload_bytes: Annotated[int, Field(ge=1024, le=256 * 1024 * 1024)] = 16 * 1024 * 1024
    evidence_max_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 5 * 1024 * 1024
    evidence_types: list[str] = ["application/pdf", "image/png", "image/jpeg", "text/plain"]
    """Accepted by their content (magic bytes), not by what the browser claims."""
    phone_region: str = "CN"
    """Region assumed for callback numbers written without a leading +."""
    recheck_interval_days: Annotated[int, Field(ge=1, le=3650)] = 365
    rejected_retention_days: Annotated[int, Field(ge=1, le=3650)] = 180
    """Rejected and withdrawn applications, with their evidence, are deleted this long after they closed."""
    jobs_interval_minutes: Annotated[int, Field(ge=1, le=1440)] = 60
    membership_check_minutes: Annotated[int, Field(ge=1, le=1440)] = 5
    """How often the agents group is compared with the applications and repaired (after a failed change or a hand
    edit); decisions change it at once after their commit."""

    @field_validator("stages")
    @classmethod
    def _ends_with_approval(cls, stages: list[str]) -> list[str]:
        if len(stages) < 2 or stages[-1] != FINAL_STAGE:
            raise ValueError(f"needs at least one stage to decide and must end with {FINAL_STAGE!r}")
        if len(set(stages)) != len(stages):
            raise ValueError("a stage is listed twice")
        return stages
