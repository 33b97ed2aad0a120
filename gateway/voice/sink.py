"""Where platform events land: one function for both adapters (ARI's websocket thread, the webhook route)."""

from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import Session

from gateway.clock import Clock
from gateway.db import session_scope
from gateway.voice.calls import record_customer_call
from gateway.voice.platform import CustomerCallEvent, EventSink, LegEvent, PlatformEvent, VoicePlatform
from gateway.voice.reconcile import reconcile_legs
from gateway.voice.service import apply_leg_event
from gateway.voice.settings import VoiceSettings
from gateway.voice.surveys import plan_survey


def apply_event(db: Session, event: LegEvent | CustomerCallEvent, settings: VoiceSettings, now: datetime) -> bool:
    """Apply one event in the caller's transaction; False when it named no leg of ours (stale or foreign)."""
    if isinstance(event, LegEvent):
        return apply_leg_event(db, event, settings, now) is not None
    call = record_customer_call(db, event, now)
    if call is not None:
        plan_survey(db, call, settings, now)  # only the end of an answered call wants one
    return call is not None


def make_event_sink(engine: Engine, platform: VoicePlatform, settings: VoiceSettings, clock: Clock) -> EventSink:
    """A sink that commits each event on its own; ``Resynced`` runs a resyncing reconcile pass.

    A dial's id is committed before the platform is asked to dial (``intent.plan``), so an event always finds its
    leg; applying it locks the leg and so waits for a pass that is recording an outcome for it.
    """

    def sink(event: PlatformEvent) -> None:
        if isinstance(event, LegEvent | CustomerCallEvent):
            with session_scope(engine) as db:
                apply_event(db, event, settings, clock())
        else:
            reconcile_legs(lambda: session_scope(engine), platform, clock(), settings=settings, resync=True)

    return sink
