"""HTML pages a workspace admin sees while installing the app.

Every function returns a complete, self-contained HTML document. The pages are
served under a strict CSP (``default-src 'none'; style-src 'unsafe-inline';
img-src data:``), so they use inline CSS only, no scripts and no external
assets. All dynamic values are HTML-escaped here, at the point of output, so
callers can pass raw strings straight from Slack or the request.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from string import Template
from urllib.parse import urlsplit

from bolt_app.oauth.scope_descriptions import describe_scopes, describe_user_scopes

__all__ = [
    "APP_ICON_PATH",
    "FAILURE_REASONS",
    "GENERIC_FAILURE",
    "app_icon_data_url",
    "failure_title",
    "render_failure_page",
    "render_install_page",
    "render_success_page",
]

# The app icon (see assets/make_app_icon.py). The same 512 px PNG is the one to
# upload to Slack's app settings, so the install page and Slack look alike.
APP_ICON_PATH = Path(__file__).resolve().parents[2] / "assets" / "app-icon.png"

_ICON_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}
# Inlined into every install page: refuse anything big enough to slow it down.
_MAX_ICON_BYTES = 64 * 1024


@lru_cache(maxsize=4)
def app_icon_data_url(path: Path = APP_ICON_PATH) -> str | None:
    """The icon as a ``data:`` URL (the CSP allows no other image source).

    None when the file is missing, of an unknown type or too big: the page
    then simply has no icon rather than failing.
    """
    kind = _ICON_TYPES.get(path.suffix.lower())
    try:
        data = path.read_bytes() if kind else b""
    except OSError:
        return None
    if not data or len(data) > _MAX_ICON_BYTES:
        return None
    return f"data:{kind};base64,{base64.b64encode(data).decode('ascii')}"


# --------------------------------------------------------------------------
# Failure reasons
# --------------------------------------------------------------------------

_ASK_DEVELOPERS = (
    "This needs to be fixed by the app's developers, so please let them know."
)
_NEEDS_APPROVAL = (
    "An admin needs to approve this app",
    "Your workspace only allows apps an admin has approved. Ask a workspace "
    "admin to approve it, then try again.",
)

# code -> (title, explanation). Codes come from Slack's OAuth redirect
# (?error=...), from oauth.v2.access errors and from our own callback checks.
FAILURE_REASONS: dict[str, tuple[str, str]] = {
    "access_denied": (
        "Installation cancelled",
        "The installation was cancelled on Slack, so nothing was added to "
        "your workspace. You can start again whenever you're ready.",
    ),
    "invalid_browser": (
        "Please finish in the same browser",
        "For your security, the installation has to be finished in the same "
        "browser it was started in. This happens when the link is opened in "
        "a different browser or app, when cookies are blocked, or when the "
        "link was opened twice. Start again in this browser and allow "
        "cookies for this site.",
    ),
    "invalid_state": (
        "This install link has expired",
        "Install links are valid for 10 minutes and work only once. This one "
        "has expired or was already used. Start again to get a fresh link.",
    ),
    "already_used": (
        "This install link was already used",
        "Each install link works only once, and this one has been used "
        "already, so nothing more was done. If you just installed the app, "
        "it is in your workspace and you're all set. To install it again, "
        "or into another workspace, start again.",
    ),
    "missing_state": (
        "This install link is incomplete",
        "The reply from Slack was missing the security check we need to "
        "finish the installation. Please start again from the beginning.",
    ),
    "invalid_team": (
        "This install link is not valid",
        "The link names a workspace in a form Slack never uses, so it was "
        "not followed. Start again from the app's install page.",
    ),
    "missing_code": (
        "Slack didn't send an authorization",
        "We didn't receive an authorization code from Slack, so the "
        "installation couldn't be finished. Please start again.",
    ),
    "invalid_code": (
        "Slack didn't accept the authorization",
        "Slack did not accept the authorization code: it was already used "
        "or has expired. Starting again will get you a new one.",
    ),
    "storage_error": (
        "We couldn't save the installation",
        "Slack approved the installation, but we couldn't save it on our "
        "side, so nothing was stored. This is usually temporary. Please "
        "try again.",
    ),
    "invalid_scope": (
        "The app asked for a permission Slack won't allow",
        "This app requested a permission that isn't valid for it. "
        + _ASK_DEVELOPERS,
    ),
    "invalid_team_for_non_distributed_app": (
        "This app isn't available for your workspace",
        "The app can only be installed in the workspace where it was built "
        "until its developers make it available to other workspaces.",
    ),
    "unapproved_app": _NEEDS_APPROVAL,
    "app_not_approved": _NEEDS_APPROVAL,
    "server_error": (
        "A temporary problem stopped the installation",
        "Something went wrong while finishing the installation. It's "
        "usually temporary, so please wait a moment and try again.",
    ),
    "bad_redirect_uri": (
        "This app's setup needs fixing",
        "Slack rejected the return address configured for this app. "
        + _ASK_DEVELOPERS,
    ),
    "invalid_client_id": (
        "This app's setup needs fixing",
        "Slack didn't recognise this app's ID. " + _ASK_DEVELOPERS,
    ),
    "ratelimited": (
        "Too many attempts",
        "Slack asked us to slow down. Please wait a minute and try again.",
    ),
}

GENERIC_FAILURE: tuple[str, str] = (
    "Something went wrong",
    "We couldn't finish installing the app. Please try again. If it keeps "
    "happening, share the error code below with the app's developers.",
)

# Reason codes may come straight from a query string; cap what we echo back.
_MAX_REASON_CHARS = 100
# The success page suggests at most this many slash commands.
_MAX_COMMANDS_SHOWN = 3


def _lookup_reason(reason: str) -> tuple[str, str]:
    return FAILURE_REASONS.get(reason.strip().lower(), GENERIC_FAILURE)


def failure_title(reason: str) -> str:
    """Plain-words title for a failure code (generic title if unknown)."""
    return _lookup_reason(reason)[0]


# --------------------------------------------------------------------------
# Shared skeleton and styles
# --------------------------------------------------------------------------

# Colours live in one place so their contrast can be checked (see tests):
# text and muted text pass 4.5:1 on both the card and the page background,
# and white passes 4.5:1 on the button, success and error colours.
_PALETTE: dict[str, str] = {
    "text": "#1d1c1d",
    "muted": "#595959",
    "page_bg": "#f4f4f5",
    "card_bg": "#ffffff",
    "border": "#dddddd",
    "divider": "#ebebeb",
    "accent": "#4a154b",
    "accent_hover": "#611f69",
    "focus": "#1264a3",
    "success": "#007a5a",
    "danger": "#b3173a",
    "code_bg": "#f4f4f5",
}

_CSS = Template(
    r"""
:root { color-scheme: light; }
*, *::before, *::after { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; text-size-adjust: 100%; }
body {
  margin: 0; min-height: 100vh; padding: 48px 16px;
  background: $page_bg; color: $text;
  font-family: -apple-system, BlinkMacSystemFont, "Segoe UI", Roboto,
    "Helvetica Neue", Arial, sans-serif, "Apple Color Emoji", "Segoe UI Emoji";
  font-size: 1rem; line-height: 1.55;
}
.card {
  max-width: 560px; margin: 0 auto; padding: 40px;
  background: $card_bg; border: 1px solid $border; border-radius: 12px;
  box-shadow: 0 1px 3px rgba(0, 0, 0, 0.08);
}
.app-icon { display: block; width: 64px; height: 64px; margin: 0 0 20px; border-radius: 14px; }
.mark {
  display: flex; align-items: center; justify-content: center;
  width: 48px; height: 48px; margin: 0 0 20px; border-radius: 50%;
  color: #ffffff; font-size: 1.5rem; font-weight: 700; line-height: 1;
}
.mark-ok { background: $success; }
.mark-error { background: $danger; }
.eyebrow {
  margin: 0 0 4px; color: $muted; font-size: 0.875rem; font-weight: 600;
  letter-spacing: 0.04em; text-transform: uppercase;
}
h1 { margin: 0 0 12px; font-size: 1.75rem; line-height: 1.25; overflow-wrap: anywhere; }
h2 { margin: 32px 0 8px; font-size: 1.125rem; line-height: 1.3; }
p { margin: 0 0 16px; }
.lead { color: $muted; font-size: 1.0625rem; }
.checklist { margin: 0; padding: 0; list-style: none; }
.checklist li { position: relative; padding: 10px 0 10px 32px; border-top: 1px solid $divider; }
.checklist li:first-child { border-top: 0; }
.checklist li::before {
  content: "\2713"; position: absolute; left: 4px; top: 10px;
  color: $success; font-weight: 700;
}
.steps { margin: 0; padding-left: 1.5rem; }
.steps li { margin: 0 0 12px; padding-left: 4px; }
.steps .commands { margin: 8px 0 0; padding-left: 1.25rem; list-style: disc; }
.steps .commands li { margin: 0 0 4px; padding-left: 0; }
/* A command moves to the next line whole rather than breaking in the middle. */
.steps code { display: inline-block; max-width: 100%; }
.actions { margin: 32px 0 16px; }
.button {
  display: flex; align-items: center; justify-content: center;
  width: 100%; min-height: 52px; padding: 14px 24px; border-radius: 8px;
  background: $accent; color: #ffffff; font-size: 1.0625rem; font-weight: 700;
  text-align: center; text-decoration: none;
}
.button:hover { background: $accent_hover; }
a { color: $focus; }
a:focus, a:focus-visible { outline: 3px solid $focus; outline-offset: 3px; }
.note { color: $muted; font-size: 0.9375rem; }
.fineprint {
  margin: 24px 0 0; padding-top: 16px; border-top: 1px solid $divider;
  color: $muted; font-size: 0.875rem;
}
code {
  padding: 2px 6px; border-radius: 4px; background: $code_bg;
  font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: 0.9em; overflow-wrap: anywhere;
}
@media (max-width: 480px) {
  body { padding: 16px 12px; }
  .card { padding: 24px 20px; border-radius: 10px; }
  h1 { font-size: 1.5rem; }
}
@media (forced-colors: active) {
  .button { border: 2px solid ButtonText; }
}
"""
).substitute(_PALETTE)


def _document(*, title: str, body: str) -> str:
    """The single page skeleton shared by every page.

    ``title`` is plain text and is escaped here; ``body`` is markup that the
    page functions built from already-escaped pieces. Wrapping ``body`` in the
    one ``<main>`` here guarantees each page has exactly one landmark.
    """
    # no-referrer: the callback URL carries the OAuth code/state; never leak
    # it to wherever the admin clicks next.
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n'
        "<head>\n"
        '<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="robots" content="noindex">\n'
        '<meta name="referrer" content="no-referrer">\n'
        f"<title>{_e(title)}</title>\n"
        f"<style>{_CSS}</style>\n"
        "</head>\n"
        "<body>\n"
        f'<main class="card">\n{body}</main>\n'
        "</body>\n"
        "</html>\n"
    )


def _e(value: str) -> str:
    # quote=True so the same helper is safe inside attribute values.
    return html.escape(value, quote=True)


_ALLOWED_LINK_SCHEMES = frozenset({"https", "http", "slack"})


def _checked_url(url: str, what: str) -> str:
    """Return ``url`` if it is safe as a link target, else raise ValueError.

    These URLs are built by our own code, so an unexpected scheme (say
    ``javascript:``) is a bug we want to surface rather than render.
    """
    # Browsers silently drop whitespace/control characters inside URLs, which
    # could smuggle a scheme past the check below; real URLs encode them.
    if not url or any(ch <= " " or ch == "\x7f" for ch in url):
        raise ValueError(f"{what} is empty or contains whitespace")
    scheme = urlsplit(url).scheme.lower()
    if scheme and scheme not in _ALLOWED_LINK_SCHEMES:
        raise ValueError(f"{what} has a disallowed scheme: {scheme!r}")
    return url


def _button(href: str, label: str) -> str:
    return f'<p class="actions"><a class="button" href="{_e(href)}">{_e(label)}</a></p>\n'


def _checklist(lines: Sequence[str]) -> str:
    items = "".join(f"<li>{_e(line)}</li>\n" for line in lines)
    return f'<ul class="checklist">\n{items}</ul>\n'


# --------------------------------------------------------------------------
# Pages
# --------------------------------------------------------------------------


def render_install_page(
    *,
    app_name: str,
    authorize_url: str,
    bot_scopes: Sequence[str],
    user_scopes: Sequence[str] = (),
    app_description: str | None = None,
    icon_data_url: str | None = None,
) -> str:
    """Landing page with what the app can do and an "Add to Slack" button.

    Raises ValueError if ``authorize_url`` is not an http(s)/slack/relative URL.
    """
    href = _checked_url(authorize_url, "authorize_url")
    name = _e(app_name)
    parts: list[str] = []

    # Only data: URLs: the CSP blocks other image sources, and an external
    # image would leak the admin's visit to a third party.
    if icon_data_url and icon_data_url.lower().startswith("data:image/"):
        # alt="" because the heading right below already names the app.
        parts.append(f'<img class="app-icon" src="{_e(icon_data_url)}" alt="">\n')

    parts.append('<p class="eyebrow">Install</p>\n')
    parts.append(f"<h1>Add {name} to Slack</h1>\n")
    description = (app_description or "").strip()
    if description:
        parts.append(f'<p class="lead">{_e(description)}</p>\n')
    else:
        parts.append(
            f'<p class="lead">Set up {name} for your workspace in a couple of clicks.</p>\n'
        )

    bot_lines = describe_scopes(bot_scopes)
    if bot_lines:
        parts.append(f"<h2>What {name} will be able to do</h2>\n")
        parts.append(_checklist(bot_lines))

    user_lines = describe_user_scopes(user_scopes)
    if user_lines:
        parts.append("<h2>On your behalf</h2>\n")
        parts.append(
            f'<p class="note">{name} will also ask for permission to act as you, so it can:</p>\n'
        )
        parts.append(_checklist(user_lines))

    parts.append(_button(href, "Add to Slack"))
    parts.append(
        '<p class="note">You\'ll be taken to Slack to review these permissions '
        "and approve the installation. Nothing is installed until you approve.</p>\n"
    )
    return _document(title=f"Install {app_name}", body="".join(parts))


def render_success_page(
    *,
    app_name: str,
    team_name: str | None,
    team_id: str | None,
    enterprise_name: str | None,
    is_enterprise_install: bool,
    app_id: str | None,
    open_slack_url: str | None,
    slash_commands: Sequence[tuple[str, str]] = (),
) -> str:
    """Confirmation page with an "Open Slack" button and next steps.

    ``slash_commands`` are (command, description) pairs from the manifest; the
    first few become a "try a command" step, so the page never suggests a
    command the app does not have.

    Raises ValueError if ``open_slack_url`` is given but not a safe link.
    """
    name = _e(app_name)
    if is_enterprise_install:
        where = (
            f"the {_e(enterprise_name)} organization"
            if enterprise_name
            else "your organization"
        )
    else:
        where = _e(team_name) if team_name else "your workspace"

    parts: list[str] = [
        '<p class="mark mark-ok" aria-hidden="true">&#10003;</p>\n',
        '<p class="eyebrow">All set</p>\n',
        f"<h1>{name} is installed in {where}</h1>\n",
        '<p class="lead">Everything is ready. Here\'s how to get started.</p>\n',
    ]
    if open_slack_url:
        parts.append(_button(_checked_url(open_slack_url, "open_slack_url"), "Open Slack"))
    else:
        parts.append('<p class="note">You can close this tab and go back to Slack.</p>\n')

    parts.append("<h2>Next steps</h2>\n")
    if is_enterprise_install:
        # Org-wide installs are not visible in a workspace until an org admin
        # adds the app there, which otherwise looks like "it didn't work".
        parts.append(
            '<p class="note">Because it was installed for the whole organization, '
            f"an org admin may need to add {name} to each workspace before people "
            "can use it there.</p>\n"
        )
    steps = [
        f"<li><strong>Invite it to a channel.</strong> In the channel, type "
        f"<code>/invite @{name}</code>.</li>\n",
        f"<li><strong>Say hello.</strong> Mention <code>@{name}</code> in a "
        "message and it will answer in the thread.</li>\n",
    ]
    commands = [(c.strip(), (d or "").strip()) for c, d in slash_commands if c and c.strip()]
    if commands:
        tries = "".join(
            f"<li><code>{_e(command)}</code>{(' &ndash; ' + _e(about)) if about else ''}</li>\n"
            for command, about in commands[:_MAX_COMMANDS_SHOWN]
        )
        steps.append(
            "<li><strong>Try a command.</strong> Type it in any channel:\n"
            f'<ul class="commands">\n{tries}</ul>\n</li>\n'
        )
    parts.append('<ol class="steps">\n' + "".join(steps) + "</ol>\n")

    # IDs help support find the installation; shown small, only if known.
    ids: list[str] = []
    if team_id:
        ids.append(f"Workspace ID: <code>{_e(team_id)}</code>")
    if app_id:
        ids.append(f"App ID: <code>{_e(app_id)}</code>")
    if ids:
        parts.append(f'<p class="fineprint">{" &middot; ".join(ids)}</p>\n')

    return _document(title=f"{app_name} is installed", body="".join(parts))


def render_failure_page(*, app_name: str, reason: str, retry_url: str) -> str:
    """Friendly error page for a failure code, with a "Try again" button.

    Raises ValueError if ``retry_url`` is not an http(s)/slack/relative URL.
    """
    href = _checked_url(retry_url, "retry_url")
    title, explanation = _lookup_reason(reason)
    code = reason.strip()[:_MAX_REASON_CHARS] or "unknown"

    body = (
        '<p class="mark mark-error" aria-hidden="true">!</p>\n'
        f'<p class="eyebrow">Installing {_e(app_name)}</p>\n'
        f"<h1>{_e(title)}</h1>\n"
        f'<p class="lead">{_e(explanation)}</p>\n'
        + _button(href, "Try again")
        # The code is shown for every failure (not only unknown ones) so an
        # admin can quote it when asking for help.
        + f'<p class="fineprint">Error code: <code>{_e(code)}</code></p>\n'
    )
    return _document(title=f"{title} - {app_name}", body=body)
