"""The console's pages, one module each; `all_routes(console)` lists (method, path, handler)."""

from __future__ import annotations


def all_routes(console) -> list[tuple]:
    from gsmgw.web.views import (
        audit,
        campaigns,
        compose,
        contacts,
        conversations,
        dashboard,
        messages,
        modems,
        optout,
        simulator,
    )

    routes: list[tuple] = []
    for module in (dashboard, conversations, compose, campaigns, contacts, optout, messages, modems, audit, simulator):
        routes.extend(module.routes(console))
    return routes
