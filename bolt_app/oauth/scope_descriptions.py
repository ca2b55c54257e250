"""Plain-English descriptions of Slack OAuth scopes.

The install page shows these instead of raw scope names so a workspace admin
can see what they are agreeing to before Slack asks them to approve.
"""

from __future__ import annotations

from collections.abc import Iterable

# Insertion order is the display order: most visible capabilities first, so
# the list reads naturally ("mentions, messages, commands, ...") no matter in
# which order the caller happened to list the scopes.
SCOPE_DESCRIPTIONS: dict[str, str] = {
    # Talking to people
    "app_mentions:read": "See messages that mention the app",
    "chat:write": "Send messages as the app",
    "chat:write.public": "Send messages to public channels it hasn't been added to",
    "chat:write.customize": "Send messages with a customised name and picture",
    "commands": "Add slash commands people can use",
    "incoming-webhook": "Post messages to a channel you choose",
    "links:read": "See links shared in messages",
    "links:write": "Show previews of links shared in messages",
    "reactions:read": "See emoji reactions on messages",
    "reactions:write": "Add and remove emoji reactions",
    "pins:read": "See pinned messages and files",
    "pins:write": "Pin and unpin messages",
    "files:read": "See files shared in conversations it has been added to",
    "files:write": "Upload, edit and delete files as the app",
    "bookmarks:read": "See bookmarks in channels",
    "bookmarks:write": "Add, edit and remove bookmarks in channels",
    "reminders:read": "See reminders it created",
    "reminders:write": "Create reminders",
    # Conversations
    "channels:read": "See basic information about public channels",
    "channels:history": "Read messages in public channels it has been added to",
    "channels:join": "Join public channels",
    "channels:manage": "Create and manage public channels",
    "groups:read": "See basic information about private channels it has been added to",
    "groups:history": "Read messages in private channels it has been added to",
    "groups:write": "Manage private channels it has been added to",
    "im:read": "See basic information about its direct messages",
    "im:history": "Read messages in its direct messages",
    "im:write": "Start direct messages with people",
    "mpim:read": "See basic information about group direct messages it is in",
    "mpim:history": "Read messages in group direct messages it is in",
    "mpim:write": "Start group direct messages with people",
    # People and the workspace
    "users:read": "See people in the workspace",
    "users:read.email": "See the email addresses of people in the workspace",
    "users.profile:read": "See people's profile details",
    "users.profile:write": "Update profile details",
    "users:write": "Set its own presence (active or away)",
    "usergroups:read": "See user groups",
    "usergroups:write": "Create and manage user groups",
    "team:read": "See the workspace's name, domain and icon",
    "emoji:read": "See the workspace's custom emoji",
    "dnd:read": "See people's Do Not Disturb settings",
    # Sign in with Slack and user-token-only scopes
    "openid": "Confirm your Slack identity",
    "email": "See your email address",
    "profile": "See your name and profile picture",
    "search:read": "Search messages and files",
}

# Some scopes mean something different on a user token: the app acts *as the
# person*, so "as the app" wording would understate what is being granted.
USER_SCOPE_DESCRIPTIONS: dict[str, str] = {
    "chat:write": "Send messages as you",
    "channels:history": "Read messages in public channels you're in",
    "groups:history": "Read messages in private channels you're in",
    "im:history": "Read your direct messages",
    "mpim:history": "Read your group direct messages",
    "im:write": "Start direct messages as you",
    "reactions:write": "Add and remove emoji reactions as you",
    "files:write": "Upload, edit and delete files as you",
    "pins:write": "Pin and unpin messages as you",
    "reminders:write": "Create reminders for you",
    "users:write": "Set your presence (active or away)",
    "users.profile:write": "Update your profile",
    "search:read": "Search messages and files you can see",
}

_RANK: dict[str, int] = {scope: i for i, scope in enumerate(SCOPE_DESCRIPTIONS)}


def _normalise(scopes: Iterable[str]) -> list[str]:
    # A comma-separated string is how Slack itself writes scope lists; without
    # this, iterating the str would describe each character separately.
    if isinstance(scopes, str):
        scopes = scopes.split(",")
    seen: set[str] = set()
    result: list[str] = []
    for scope in scopes:
        scope = scope.strip()
        if scope and scope not in seen:
            seen.add(scope)
            result.append(scope)
    # Known scopes in catalogue order, unknown ones after them alphabetically,
    # so the same set of scopes always renders the same way.
    unknown_rank = len(_RANK)
    result.sort(key=lambda s: (_RANK.get(s, unknown_rank), s))
    return result


def _describe(scopes: Iterable[str], overrides: dict[str, str]) -> list[str]:
    lines: list[str] = []
    for scope in _normalise(scopes):
        line = overrides.get(scope) or SCOPE_DESCRIPTIONS.get(scope)
        if line is None:
            # Never hide a permission just because we lack wording for it.
            line = f"Use the {scope} permission"
        if line not in lines:
            lines.append(line)
    return lines


def describe_scopes(scopes: Iterable[str]) -> list[str]:
    """Plain-words lines for bot-token scopes, stable order, no duplicates."""
    return _describe(scopes, {})


def describe_user_scopes(scopes: Iterable[str]) -> list[str]:
    """Like describe_scopes, but worded for a user token ("as you")."""
    return _describe(scopes, USER_SCOPE_DESCRIPTIONS)
