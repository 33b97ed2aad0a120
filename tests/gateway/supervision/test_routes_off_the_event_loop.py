"""No supervision route runs SQL on the event loop: a route that takes the DB session is a plain ``def``, which
FastAPI runs in its thread pool, so a slow query cannot stall every other request (the wall's streams among them)."""

import inspect
from collections.abc import Iterator

from fastapi import APIRouter
from fastapi.routing import APIRoute

from gateway.deps import DbSession
from gateway.supervision.routes import router


def _routes(router: APIRouter) -> Iterator[APIRoute]:
    """Every route, descending into included routers (FastAPI keeps those as wrappers around the original)."""
    for route in router.routes:
        if isinstance(route, APIRoute):
            yield route
        elif isinstance(included := getattr(route, "original_router", None), APIRouter):
            yield from _routes(included)


def test_every_route_taking_the_db_session_is_a_plain_function() -> None:
    db_dependency = DbSession.__metadata__[0].dependency
    with_db = [route for route in _routes(router) if any(d.call is db_dependency for d in route.dependant.dependencies)]
    assert any(route.path == "/supervision/api/work-state" for route in with_db)
    on_the_loop = [route.path for route in with_db if inspect.iscoroutinefunction(route.endpoint)]
    assert on_the_loop == []
