"""Data isolation audit.

1. Schema: every table on the shared metadata (and every table the migrations create) either holds
   no workspace data (an explicit, justified allow-list) or has `workspace_key` — not NULL — in its
   primary key or in a unique constraint/index. A new table without the key fails here.
2. Queries: while the app serves real traffic (installs, mentions, /poll, votes, Home, uninstall),
   every SELECT / UPDATE / DELETE that touches a workspace table filters on `workspace_key`.
"""

from __future__ import annotations

import re
import time

import sqlalchemy as sa

from bolt_app.storage import schema
from tests.security.support import start_live_app
from tests.support import install, wait_for

# Tables that hold no workspace data, and why.
NON_WORKSPACE_TABLES = {
    "slack_oauth_states": "an install's one-time state, issued before any workspace is known",
}
WORKSPACE_MARKERS = {"workspace_key", "team_id", "enterprise_id", "user_id", "channel_id"}
# Statements allowed to span workspaces: housekeeping by age, never reachable with request data.
CROSS_WORKSPACE_ALLOWED = [
    re.compile(r"^DELETE FROM processed_deliveries WHERE processed_deliveries\.received_at < ", re.I),
    # Finding the key itself: a Slack Connect view names its installing workspace by team id and
    # bot id only (authorize then reads that installation by its key, like any other request).
    re.compile(r"^SELECT slack_bots\.workspace_key FROM slack_bots WHERE slack_bots\.client_id = \S+ AND "
               r"slack_bots\.(team_id|bot_id) = ", re.I),
]


def unique_column_sets_from_metadata(table: sa.Table) -> list[set[str]]:
    sets = [{c.name for c in table.primary_key.columns}]
    sets += [{c.name for c in con.columns} for con in table.constraints if isinstance(con, sa.UniqueConstraint)]
    sets += [{c.name for c in ix.columns} for ix in table.indexes if ix.unique]
    return sets


def unique_column_sets_from_database(inspector, name: str) -> list[set[str]]:  # type: ignore[no-untyped-def]
    sets = [set(inspector.get_pk_constraint(name).get("constrained_columns") or [])]
    sets += [set(uc["column_names"]) for uc in inspector.get_unique_constraints(name)]
    sets += [set(ix["column_names"]) for ix in inspector.get_indexes(name) if ix.get("unique")]
    return sets


def audit(name: str, columns: dict[str, bool], unique_sets: list[set[str]]) -> list[str]:
    """Problems with one table: `columns` maps column name → nullable."""
    if name in NON_WORKSPACE_TABLES:
        marked = WORKSPACE_MARKERS & set(columns)
        return [f"{name} is allow-listed as holding no workspace data but has {sorted(marked)}"] if marked else []
    problems = []
    if "workspace_key" not in columns:
        problems.append(f"{name} has no workspace_key column (add it, or allow-list the table with a reason)")
    elif columns["workspace_key"]:
        problems.append(f"{name}.workspace_key is nullable")
    if not any("workspace_key" in s for s in unique_sets):
        problems.append(f"{name}: workspace_key is in neither its primary key nor a unique constraint/index")
    return problems


def test_every_table_on_the_metadata_is_keyed_by_workspace() -> None:
    problems = []
    for table in schema.metadata.sorted_tables:
        columns = {c.name: bool(c.nullable) for c in table.columns}
        problems += audit(table.name, columns, unique_column_sets_from_metadata(table))
    assert problems == []
    # The audit is not vacuous: the Slack tables and every feature table were walked.
    assert {"slack_bots", "slack_installations"} <= set(schema.metadata.tables)


def test_every_migrated_table_is_keyed_by_workspace(engine) -> None:
    inspector = sa.inspect(engine)
    names = set(inspector.get_table_names()) - {"alembic_version"}
    assert names == set(schema.metadata.tables), "the migrations and the metadata disagree on the tables"
    problems = []
    for name in sorted(names):
        columns = {c["name"]: bool(c["nullable"]) for c in inspector.get_columns(name)}
        problems += audit(name, columns, unique_column_sets_from_database(inspector, name))
    assert problems == []


def test_the_audit_catches_a_table_without_the_key() -> None:
    metadata = sa.MetaData()
    loose = sa.Table("notes", metadata, sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("workspace_key", sa.String(80)), sa.Column("text", sa.String(100)))
    problems = audit("notes", {c.name: bool(c.nullable) for c in loose.columns}, unique_column_sets_from_metadata(loose))
    assert len(problems) == 2


def test_every_request_query_filters_on_the_workspace(standin, sqlite_url) -> None:
    live = start_live_app(standin, sqlite_url)
    workspace_tables = {t.name for t in schema.metadata.sorted_tables} - set(NON_WORKSPACE_TABLES)
    statements: list[str] = []

    @sa.event.listens_for(live.engine, "before_cursor_execute")
    def record(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        statements.append(" ".join(statement.split()))

    try:
        a, b = standin.create_workspace(name="Audit A"), standin.create_workspace(name="Audit B")
        for ws in (a, b):
            assert install(live.url, standin, ws.team_id).response.status == 200
        for ws in (a, b):
            assert standin.send_mention(ws, "hi").status == 200
            assert standin.send_slash_command(ws, "/poll", '"Lunch?" "Pizza" "Tacos"').status == 200
            assert standin.send_event(ws, {"type": "app_home_opened", "user": ws.installer_user_id,
                                           "tab": "home"}).status == 200
        # Click every button the app posted (votes, close), as the installer of each workspace.
        wait_for(lambda: all(standin.messages(ws.team_id) for ws in (a, b)))
        for ws in (a, b):
            for message in standin.messages(ws.team_id):
                for block in message.get("blocks") or []:
                    for element in [block.get("accessory")] + (block.get("elements") or []):
                        if isinstance(element, dict) and element.get("type") == "button":
                            standin.send_interactive(ws, {
                                "type": "block_actions", "channel": {"id": message.get("channel")},
                                "message": message, "container": {"type": "message", "channel_id": message.get("channel"),
                                                                  "message_ts": message.get("ts")},
                                "actions": [{**element, "block_id": block.get("block_id"), "action_ts": str(time.time())}],
                            })
        assert standin.send_event(a, {"type": "app_uninstalled"}).status == 200
        time.sleep(0.5)  # listeners after the ack
    finally:
        live.server.stop()
        live.engine.dispose()

    touching = [s for s in statements if not s.upper().startswith(("INSERT", "BEGIN", "COMMIT", "ROLLBACK", "PRAGMA"))
                and any(re.search(rf"\b(FROM|UPDATE|JOIN)\s+{t}\b", s, re.I) for t in workspace_tables)]
    assert len(touching) > 10, "the flow exercised too little to audit"
    unfiltered = [s for s in touching
                  if not re.search(r"\bWHERE\b.*\bworkspace_key\b", s, re.I)
                  and not any(p.search(s) for p in CROSS_WORKSPACE_ALLOWED)]
    assert unfiltered == [], "queries on workspace tables without a workspace_key filter:\n" + "\n".join(unfiltered)
