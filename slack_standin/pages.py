"""The few HTML pages a browser sees: consent screen, error page and an index of workspaces.

Self-contained (inline CSS, no scripts, no external assets) so the sandbox works offline.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from .models import Workspace

NEW_WORKSPACE = "__new__"

_CSS = """
:root { color-scheme: light; --text: #1d1c1d; --muted: #5e5d60; --line: #dddddd; --accent: #007a5a;
        --accent-hover: #006c50; --focus: #1264a3; }
*, *::before, *::after { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; line-height: 1.5;
       padding: 2rem 1rem; background: #f4f4f5; color: var(--text); }
main { max-width: 36rem; margin: 0 auto; padding: 2rem; background: #ffffff; border: 1px solid var(--line);
       border-radius: .75rem; box-shadow: 0 1px 3px rgba(0, 0, 0, .08); }
h1 { font-size: 1.5rem; line-height: 1.25; margin: 0 0 .5rem; overflow-wrap: anywhere; }
h2 { font-size: 1.125rem; margin: 1.5rem 0 .5rem; }
h3 { font-size: 1rem; margin: 1rem 0 .25rem; }
ul { margin: 0; padding-left: 1.25rem; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .9em;
       overflow-wrap: anywhere; }
.note { font-size: .9rem; color: var(--muted); margin: 0 0 1rem; }
.field { margin: 1.25rem 0; }
.field .note { margin: .25rem 0 0; }
label { display: block; font-weight: 600; margin-bottom: .25rem; }
.check label { display: inline; font-weight: 400; }
input[type=text], select { width: 100%; padding: .5rem; font: inherit; color: var(--text); background: #ffffff;
       border: 1px solid #8d8d8d; border-radius: .375rem; }
.actions { display: flex; flex-wrap: wrap; gap: .75rem; margin-top: 1.75rem; }
button { font: inherit; font-weight: 700; padding: .625rem 1.5rem; border-radius: .375rem; cursor: pointer;
         border: 1px solid var(--accent); min-height: 2.75rem; }
button.allow { background: var(--accent); color: #ffffff; }
button.allow:hover { background: var(--accent-hover); }
button.cancel { background: #ffffff; color: var(--text); border-color: #8d8d8d; }
button:focus-visible, input:focus-visible, select:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .25rem .5rem; border-bottom: 1px solid var(--line); }
@media (max-width: 480px) {
  body { padding: 1rem .75rem; }
  main { padding: 1.25rem 1rem; }
  .actions button { flex: 1 1 auto; }
}
"""


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n"
        f"<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


def _scope_list(scopes: list[str]) -> str:
    if not scopes:
        return "<p>None requested.</p>"
    items = "".join(f"<li><code>{escape(s)}</code></li>" for s in scopes)
    return f"<ul>{items}</ul>"


@dataclass
class ConsentForm:
    """What the consent page needs to render (kept separate from the stand-in's state)."""

    app_id: str
    hidden: dict[str, str]  # query fields echoed back on submit (client_id, scope, state, ...)
    bot_scopes: list[str]
    user_scopes: list[str]
    workspaces: list[Workspace]
    preselected_team: str | None


def render_consent(form: ConsentForm) -> str:
    """The "Allow / Cancel" page shown by GET /oauth/v2/authorize."""
    hidden = "\n".join(
        f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in form.hidden.items()
    )
    known = {ws.team_id for ws in form.workspaces}
    selected = form.preselected_team if form.preselected_team in known else None
    if selected is None and form.workspaces and form.preselected_team is None:
        selected = form.workspaces[0].team_id
    options = []
    for ws in form.workspaces:
        org = f", org {ws.enterprise_name or ws.enterprise_id}" if ws.enterprise_id else ""
        label = f"{ws.name} ({ws.team_id}{org}; installer {ws.installer_user_id})"
        sel = " selected" if ws.team_id == selected else ""
        options.append(f'<option value="{escape(ws.team_id)}"{sel}>{escape(label)}</option>')
    new_sel = " selected" if selected is None else ""
    options.append(f'<option value="{NEW_WORKSPACE}"{new_sel}>A new workspace</option>')
    new_name_value = (
        escape(form.preselected_team) if form.preselected_team and form.preselected_team not in known else ""
    )
    org_choice = ""
    if any(ws.enterprise_id for ws in form.workspaces):
        org_choice = (
            '<div class="field check">\n'
            '<input type="checkbox" id="org_install" name="org_install" value="1" aria-describedby="org-help">\n'
            '<label for="org_install">Install on the whole organization</label>\n'
            '<p id="org-help" class="note">Only for a workspace that belongs to an Enterprise Grid '
            "organization: the app is then installed org-wide.</p>\n</div>"
        )
    body = f"""
<h1>Install app <code>{escape(form.app_id)}</code></h1>
<p class="note">Local Slack stand-in: nothing here leaves this machine.</p>
<section aria-labelledby="scopes-heading">
<h2 id="scopes-heading">Requested permissions</h2>
<h3>Bot scopes</h3>
{_scope_list(form.bot_scopes)}
<h3>User scopes</h3>
{_scope_list(form.user_scopes)}
</section>
<form method="post" action="/oauth/v2/authorize/decision">
{hidden}
<div class="field">
<label for="team">Workspace</label>
<select id="team" name="team">
{"".join(options)}
</select>
</div>
<div class="field">
<label for="new_team">New workspace id (optional, only with "A new workspace")</label>
<input type="text" id="new_team" name="new_team" value="{new_name_value}" placeholder="generated, e.g. T0042">
</div>
<div class="field">
<label for="user">Installing user id</label>
<input type="text" id="user" name="user" aria-describedby="user-help" placeholder="the workspace's installer">
<p id="user-help" class="note">Leave empty to install as the chosen workspace's installer.</p>
</div>
{org_choice}
<div class="actions">
<button type="submit" class="allow" name="decision" value="allow">Allow</button>
<button type="submit" class="cancel" name="decision" value="cancel">Cancel</button>
</div>
</form>
"""
    return _page(f"Install {form.app_id} - Slack stand-in", body)


def render_error(title: str, message: str) -> str:
    """A plain error page (OAuth errors a human should read rather than an app)."""
    return _page(title, f"<h1>{escape(title)}</h1>\n<p>{escape(message)}</p>")


def render_index(app_id: str, api_url: str, workspaces: list[Workspace]) -> str:
    """GET / : what is installed where, for someone poking at the sandbox."""
    rows = "".join(
        "<tr>"
        f"<td><code>{escape(ws.team_id)}</code></td><td>{escape(ws.name)}</td>"
        f"<td>{escape(ws.enterprise_id or '')}</td>"
        f"<td>{'org-wide' if ws.is_enterprise_install else ('yes' if ws.installed else 'no')}</td>"
        f"<td><code>{escape(ws.bot_user_id or '')}</code></td>"
        "</tr>"
        for ws in workspaces
    )
    table = (
        "<table><caption>Workspaces</caption><thead><tr><th scope=\"col\">Team</th><th scope=\"col\">Name</th>"
        "<th scope=\"col\">Enterprise</th><th scope=\"col\">Installed</th><th scope=\"col\">Bot user</th>"
        f"</tr></thead><tbody>{rows}</tbody></table>"
        if workspaces
        else "<p>No workspaces yet.</p>"
    )
    body = (
        f"<h1>Slack stand-in</h1>\n<p>App <code>{escape(app_id)}</code>; Web API at "
        f"<code>{escape(api_url)}</code>.</p>\n{table}"
    )
    return _page("Slack stand-in", body)
