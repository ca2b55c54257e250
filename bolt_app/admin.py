"""Admin views of installations: status and token expiry, never the tokens themselves."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bolt_app.storage import tables


@dataclass(frozen=True)
class InstallationSummary:
    team_id: str | None
    team_name: str | None
    enterprise_id: str | None
    is_enterprise_install: bool
    installed_at: datetime
    bot_token_expires_at: datetime | None
    user_count: int
    user_token_expires_at: datetime | None  # the earliest among the workspace's user tokens
    status: str
    status_reason: str | None


def list_installations(engine: Engine) -> list[InstallationSummary]:
    b, i = tables.bots.c, tables.installations.c
    users = (
        sa.select(
            i.workspace_key,
            sa.func.count(i.user_token).label("user_count"),
            sa.func.min(i.user_token_expires_at).label("user_expiry"),
            sa.func.max(sa.case((i.status != tables.STATUS_OK, 1), else_=0)).label("user_problem"),
        )
        .group_by(i.workspace_key)
        .subquery()
    )
    query = (
        sa.select(b, users.c.user_count, users.c.user_expiry, users.c.user_problem)
        .outerjoin(users, users.c.workspace_key == b.workspace_key)
        .order_by(b.installed_at)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    summaries = []
    for row in rows:
        status, reason = row.status, row.status_reason
        if status == tables.STATUS_OK and row.user_problem:
            status, reason = "user_token_needs_reinstall", "a user token was rejected on refresh"
        summaries.append(
            InstallationSummary(
                team_id=row.team_id,
                team_name=row.team_name,
                enterprise_id=row.enterprise_id,
                is_enterprise_install=bool(row.is_enterprise_install),
                installed_at=row.installed_at,
                bot_token_expires_at=row.bot_token_expires_at,
                user_count=row.user_count or 0,
                user_token_expires_at=row.user_expiry,
                status=status,
                status_reason=reason,
            )
        )
    return summaries


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "-"


def format_installation_list(items: list[InstallationSummary]) -> str:
    header = ("TEAM", "NAME", "ENTERPRISE", "INSTALLED", "BOT TOKEN EXPIRES", "USERS", "USER TOKEN EXPIRES", "STATUS")
    lines = [header] + [
        (
            s.team_id or "(org-wide)",
            (s.team_name or "-")[:24],
            s.enterprise_id or "-",
            _when(s.installed_at),
            _when(s.bot_token_expires_at),
            str(s.user_count),
            _when(s.user_token_expires_at),
            s.status,
        )
        for s in items
    ]
    widths = [max(len(line[k]) for line in lines) for k in range(len(header))]
    text = "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines)
    return f"{text}\n{len(items)} installation(s)"


def show_installation(engine: Engine, team_or_enterprise_id: str) -> str | None:
    b, i = tables.bots.c, tables.installations.c
    with engine.connect() as conn:
        bot = conn.execute(
            sa.select(tables.bots).where(
                sa.or_(b.team_id == team_or_enterprise_id,
                       sa.and_(b.team_id.is_(None), b.enterprise_id == team_or_enterprise_id))
            )
        ).first()
        if bot is None:
            return None
        users = conn.execute(
            sa.select(i.user_id, i.user_scopes, i.user_token_expires_at, i.status, i.status_reason,
                      i.user_token.is_not(None).label("has_user_token"), i.installed_at)
            .where(i.workspace_key == bot.workspace_key)
            .order_by(i.installed_at)
        ).all()
    lines = [
        f"Workspace:        {bot.team_name or '-'} ({bot.team_id or 'org-wide install'})",
        f"Enterprise:       {bot.enterprise_name or '-'} ({bot.enterprise_id or '-'})",
        f"App id:           {bot.app_id}",
        f"Installed at:     {_when(bot.installed_at)}",
        f"Updated at:       {_when(bot.updated_at)}",
        f"Status:           {bot.status}" + (f" ({bot.status_reason})" if bot.status_reason else ""),
        f"Bot user:         {bot.bot_user_id or '-'} (bot id {bot.bot_id or '-'})",
        f"Bot scopes:       {bot.bot_scopes or '-'}",
        f"Bot token:        {'present' if bot.bot_token else 'none'}, rotating: {'yes' if bot.bot_refresh_token else 'no'}, "
        f"expires {_when(bot.bot_token_expires_at)}",
        f"Installing users: {len(users)}",
    ]
    for user in users:
        lines.append(
            f"  - {user.user_id}: user token {'present' if user.has_user_token else 'none'}, "
            f"expires {_when(user.user_token_expires_at)}, status {user.status}, installed {_when(user.installed_at)}"
        )
    return "\n".join(lines)
