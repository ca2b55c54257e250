"""`/slack/install?team=…` pre-selects a workspace: only a Slack id is accepted, and nothing in it
can add parameters to the authorize URL (slack_sdk's URL generator appends `team` unencoded)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from slack_bolt.request import BoltRequest

from bolt_app import database
from bolt_app.app import create_app
from tests.support import authorize_url_from_install_page, settings_for

REDIRECT_URI = "http://127.0.0.1:9/slack/oauth_redirect"


@pytest.fixture(params=["page", "redirect"])
def flow(request, standin, sqlite_url):  # type: ignore[no-untyped-def]
    engine = database.create_engine(sqlite_url, pool_size=2)
    database.upgrade(engine)
    settings = settings_for(standin, sqlite_url, SLACK_REDIRECT_URI=REDIRECT_URI, SLACK_INSTALL_PAGE=request.param)
    yield create_app(settings, engine=engine).oauth_flow
    engine.dispose()


def install(flow, query: str):  # type: ignore[no-untyped-def]
    return flow.handle_installation(BoltRequest(body="", query=query, headers={}))


def authorize_url(flow, response) -> str:  # type: ignore[no-untyped-def]
    if response.status == 302:
        return response.headers["location"][0]
    assert response.status == 200
    return authorize_url_from_install_page(response.body)


@pytest.mark.parametrize("team", ["T0ABC12345", "T12", "E0ORG1234", "T" + "A" * 31])
def test_a_slack_id_is_passed_on_once_and_alone(flow, team: str) -> None:  # type: ignore[no-untyped-def]
    url = authorize_url(flow, install(flow, urlencode({"team": team})))
    assert url.endswith(f"&team={team}")
    query = parse_qs(urlsplit(url).query)
    assert query["team"] == [team] and query["redirect_uri"] == [REDIRECT_URI]
    assert query["scope"] == [",".join(flow.settings.scopes)]


@pytest.mark.parametrize("query", ["", "team=", "other=1"])
def test_no_team_is_no_team(flow, query: str) -> None:  # type: ignore[no-untyped-def]
    url = authorize_url(flow, install(flow, query))
    assert "team" not in parse_qs(urlsplit(url).query)


@pytest.mark.parametrize("team", [
    "T1&redirect_uri=https://evil.example/cb&scope=admin",  # the reported injection
    "T1#x", "T1 ", " T1", "T1\r\nSet-Cookie: a=b", "T1\n", "t0abc", "U0ABC123", "T", "T1", "T" + "A" * 32,
    "T0ABC%26scope%3Dadmin", "T0ABC/..", "Ｔ0ABC", "T0ABĆ",
])
def test_anything_else_is_a_400_page_and_no_authorize_url(flow, team: str) -> None:  # type: ignore[no-untyped-def]
    before = _states(flow)
    response = install(flow, urlencode({"team": team}))
    assert response.status == 400
    assert "location" not in response.headers and "set-cookie" not in response.headers
    assert "This install link is not valid" in response.body
    assert "evil.example" not in response.body and "client_id=" not in response.body
    assert _states(flow) == before  # no state issued for it


def test_two_teams_are_refused(flow) -> None:  # type: ignore[no-untyped-def]
    assert install(flow, "team=T0ABC&team=T0DEF").status == 400


def _states(flow) -> int:  # type: ignore[no-untyped-def]
    import sqlalchemy as sa

    from bolt_app.storage import tables

    with flow.settings.state_store.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(tables.oauth_states)).scalar()
