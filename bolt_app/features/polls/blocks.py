"""Block Kit for polls: one pure function per view (message, modal, home), plus the texts.

Everything here is data in, dict out: no database, no Slack calls. Slack's limits are kept
whatever the input: 50 blocks per message, 100 per modal or Home tab, 3000 characters per
text object, 75 per button text. A large poll degrades instead of failing: long voter lists
end in "and N more", a Home tab with many polls says how many it does not show.

User text is escaped for mrkdwn (`&`, `<`, `>`), so a question cannot ping `<!channel>`.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import timezone
from typing import Any, Mapping, Optional, Sequence

from bolt_app.features.polls.domain import (
    MAX_OPTIONS,
    OPTION_MAX_CHARS,
    QUESTION_MAX_CHARS,
    Draft,
    PollResults,
    clean_options,
    validate,
)

# Slack's limits
MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_TEXT = 3000
MAX_BUTTON_TEXT = 75
MAX_TITLE = 24

# Ids Slack sends back (the listeners match on these; the manifest declares the shortcut ids)
MODAL_CALLBACK_ID = "poll_create_modal"
VOTE_ACTION_PREFIX = "poll_vote_"  # + option position: one action id per button
VOTE_ACTION_PATTERN = r"^poll_vote_\d+$"
CLOSE_ACTION_ID = "poll_close"
HOME_CREATE_ACTION_ID = "poll_home_create"
GLOBAL_SHORTCUT_ID = "poll_create"
MESSAGE_SHORTCUT_ID = "poll_from_message"

B_QUESTION, B_OPTIONS, B_SETTINGS, B_CHANNEL = "poll_question", "poll_options", "poll_settings", "poll_channel"
FIELD_BLOCKS = {"question": B_QUESTION, "options": B_OPTIONS, "channel": B_CHANNEL}
INPUT_ACTION = "value"

BAR_WIDTH = 10

USAGE = (
    "`/poll` opens the poll form.\n"
    '`/poll "Question?" "Option 1" "Option 2"` posts a poll right away (2 to 10 options, each in quotes; '
    "add `--anonymous` to hide who voted, `--multiple` to allow several choices).\n"
    "`/poll help` shows this."
)

HELP = (
    "I run polls in this workspace.\n"
    f"• {USAGE.splitlines()[0]}\n"
    f"• {USAGE.splitlines()[1]}\n"
    "• Shortcuts: *Create a poll* (shortcuts menu) and *Make a poll from this message* (a message's ⋮ menu).\n"
    "• Click an option to vote, click it again to take your vote back. Whoever created a poll can close it.\n"
    "• Your polls and their results are on my *Home* tab."
)


# --------------------------------------------------------------------------- text helpers


def escape(text: str) -> str:
    """Plain text → mrkdwn that shows exactly that text (no mentions, links or broadcasts)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": truncate(text, MAX_TEXT)}


def _plain(text: str, limit: int = MAX_TEXT) -> dict[str, Any]:
    return {"type": "plain_text", "text": truncate(text, limit), "emoji": True}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _people(n: int) -> str:
    return "1 person" if n == 1 else f"{n} people"


def _bar(count: int, denominator: int) -> str:
    share = count / denominator if denominator else 0.0
    filled = round(share * BAR_WIDTH)
    return f"`{'█' * filled}{'░' * (BAR_WIDTH - filled)}` {round(share * 100)}%"


def _mentions(users: Sequence[str], budget: int) -> str:
    """`<@U1>, <@U2> and 12 more` in at most `budget` characters."""
    shown: list[str] = []
    used = 0
    for i, user in enumerate(users):
        piece = f"<@{user}>"
        rest = len(users) - i - 1
        tail = f" and {rest} more" if rest else ""
        if used + len(piece) + 2 + len(tail) > budget and shown:
            break
        shown.append(piece)
        used += len(piece) + 2
    text = ", ".join(shown)
    hidden = len(users) - len(shown)
    return f"{text} and {hidden} more" if hidden else text


def _winners(results: PollResults) -> set[int]:
    top = max(results.counts, default=0)
    return {i for i, c in enumerate(results.counts) if top and c == top}


def _fit(blocks: list[dict[str, Any]], limit: int, note: str) -> list[dict[str, Any]]:
    """Keep at most `limit` blocks; the last one kept says that some were left out."""
    if len(blocks) <= limit:
        return blocks
    return blocks[: limit - 1] + [{"type": "context", "elements": [_mrkdwn(note)]}]


# --------------------------------------------------------------------------- message


def poll_message(results: PollResults) -> dict[str, Any]:
    """The poll's channel message: `chat.postMessage` / `chat.update` arguments (text + blocks)."""
    poll = results.poll
    closed = poll.is_closed
    voters = results.voter_count
    winners = _winners(results) if closed else set()
    question = escape(truncate(poll.question, QUESTION_MAX_CHARS))
    settings = [
        f"Poll by <@{poll.creator_id}>",
        "Anonymous" if poll.anonymous else "Votes are visible",
        "Choose any number" if poll.multiple_choice else "Choose one",
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "section", "block_id": "question", "text": _mrkdwn(f":bar_chart: *{question}*")},
        {"type": "context", "elements": [_mrkdwn("  ·  ".join(settings))]},
        {"type": "divider"},
    ]
    options: list[dict[str, Any]] = []
    for position, (label, users) in enumerate(zip(poll.options, results.voters)):
        title = escape(truncate(label, OPTION_MAX_CHARS * 2))
        trophy = ":trophy: " if position in winners else ""
        head = f"{trophy}*{title}*\n{_bar(len(users), voters)}  ·  {_plural(len(users), 'vote')}"
        text = head
        if users and not poll.anonymous:
            text += "\n" + _mentions(users, MAX_TEXT - len(head) - 1)
        block: dict[str, Any] = {"type": "section", "block_id": f"option_{position}", "text": _mrkdwn(text)}
        if not closed:
            block["accessory"] = {
                "type": "button",
                "action_id": f"{VOTE_ACTION_PREFIX}{position}",
                "text": _plain(label, MAX_BUTTON_TEXT),
                "value": f"{poll.poll_id}:{position}",
            }
        options.append(block)
    footer: list[dict[str, Any]] = [{"type": "divider"}]
    if closed:
        closed_note = f":lock: *Closed* — final results. {_people(voters)} voted."
        footer.append({"type": "context", "elements": [_mrkdwn(closed_note)]})
    else:
        footer.append(
            {
                "type": "actions",
                "block_id": "poll_controls",
                "elements": [
                    {
                        "type": "button",
                        "action_id": CLOSE_ACTION_ID,
                        "text": _plain("Close poll"),
                        "value": poll.poll_id,
                        "confirm": {
                            "title": _plain("Close this poll?"),
                            "text": _plain("Nobody can vote once it is closed; the results stay."),
                            "confirm": _plain("Close poll"),
                            "deny": _plain("Keep open"),
                        },
                    }
                ],
            }
        )
        footer.append(
            {
                "type": "context",
                "elements": [
                    _mrkdwn(
                        f"{_people(voters)} voted. "
                        "Click an option to vote, click it again to take your vote back."
                    )
                ],
            }
        )
    room = MAX_MESSAGE_BLOCKS - len(blocks) - len(footer)
    if len(options) > room:  # more options than any valid poll has: show what fits, say so
        options = _fit(options, room, f"{len(options) - room + 1} more options are not shown.")
    status = "Closed poll" if closed else "Poll"
    return {
        "text": truncate(f"{status} by <@{poll.creator_id}>: {question}", MAX_TEXT),
        "blocks": blocks + options + footer,
    }


# --------------------------------------------------------------------------- modal


def poll_modal(*, question: str = "", channel_id: Optional[str] = None) -> dict[str, Any]:
    """The "Create a poll" modal (`views.open`); `channel_id` preselects where it is posted."""
    channel: dict[str, Any] = {
        "type": "conversations_select",
        "action_id": INPUT_ACTION,
        "placeholder": _plain("Pick a channel"),
        # Slack includes a response_url for the chosen channel in view_submission: the app can
        # tell the user there (ephemerally) if it cannot post, even when it is not a member.
        "response_url_enabled": True,
        "filter": {"include": ["public", "private"]},
    }
    if channel_id:
        channel["initial_conversation"] = channel_id
    else:
        channel["default_to_current_conversation"] = True
    question_input: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": INPUT_ACTION,
        "max_length": QUESTION_MAX_CHARS,
        "placeholder": _plain("What should we decide?"),
    }
    prefill = truncate(html.unescape(question).strip(), QUESTION_MAX_CHARS)
    if prefill:
        question_input["initial_value"] = prefill
    return {
        "type": "modal",
        "callback_id": MODAL_CALLBACK_ID,
        "title": _plain("Create a poll", MAX_TITLE),
        "submit": _plain("Post poll", MAX_TITLE),
        "close": _plain("Cancel", MAX_TITLE),
        "blocks": [
            {"type": "input", "block_id": B_QUESTION, "label": _plain("Question"), "element": question_input},
            {
                "type": "input",
                "block_id": B_OPTIONS,
                "label": _plain("Options"),
                "hint": _plain(f"One per line, 2 to {MAX_OPTIONS}, up to {OPTION_MAX_CHARS} characters each."),
                "element": {
                    "type": "plain_text_input",
                    "action_id": INPUT_ACTION,
                    "multiline": True,
                    "max_length": MAX_OPTIONS * (OPTION_MAX_CHARS + 1) * 2,
                    "placeholder": _plain("Pizza\nSushi\nTacos"),
                },
            },
            {
                "type": "input",
                "block_id": B_SETTINGS,
                "optional": True,
                "label": _plain("Settings"),
                "element": {
                    "type": "checkboxes",
                    "action_id": INPUT_ACTION,
                    "options": [
                        {"text": _plain("Anonymous: hide who voted for what"), "value": "anonymous"},
                        {"text": _plain("Allow several choices per person"), "value": "multiple"},
                    ],
                },
            },
            {"type": "input", "block_id": B_CHANNEL, "label": _plain("Post in"), "element": channel},
        ],
    }


@dataclass(frozen=True)
class ModalInput:
    question: str
    options: tuple[str, ...]
    anonymous: bool
    multiple_choice: bool
    channel_id: Optional[str]

    def errors(self) -> dict[str, str]:
        """Inline errors for `response_action: errors`, keyed by block id."""
        problems = validate(self.question, self.options)
        if not self.channel_id:
            problems["channel"] = "Pick the channel to post the poll in."
        return {FIELD_BLOCKS[name]: text for name, text in problems.items()}

    def draft(self) -> Draft:
        return Draft(self.question.strip(), self.options, self.anonymous, self.multiple_choice)


def read_modal(values: Mapping[str, Any]) -> ModalInput:
    """The submitted modal's `view.state.values` → what the user entered."""

    def element(block_id: str) -> Mapping[str, Any]:
        return (values.get(block_id) or {}).get(INPUT_ACTION) or {}

    settings = {o.get("value") for o in element(B_SETTINGS).get("selected_options") or []}
    return ModalInput(
        question=element(B_QUESTION).get("value") or "",
        options=clean_options((element(B_OPTIONS).get("value") or "").splitlines()),
        anonymous="anonymous" in settings,
        multiple_choice="multiple" in settings,
        channel_id=element(B_CHANNEL).get("selected_conversation") or None,
    )


# --------------------------------------------------------------------------- home


def _home_poll(results: PollResults) -> list[dict[str, Any]]:
    poll = results.poll
    voters = results.voter_count
    winners = _winners(results) if poll.is_closed else set()
    lines = [f"*{escape(truncate(poll.question, QUESTION_MAX_CHARS))}*  in <#{poll.channel_id}>"]
    for position, (label, count) in enumerate(zip(poll.options, results.counts)):
        mark = ":trophy: " if position in winners else ""
        lines.append(f"{mark}{escape(truncate(label, OPTION_MAX_CHARS * 2))}  {_bar(count, voters)} ({count})")
    created = poll.created_at.replace(tzinfo=timezone.utc)
    epoch = int(created.timestamp())
    details = [
        f"{_people(voters)} voted",
        "anonymous" if poll.anonymous else "votes visible",
        f"created <!date^{epoch}^{{date_short_pretty}} at {{time}}|{created:%Y-%m-%d %H:%M} UTC>",
    ]
    return [
        {"type": "section", "text": _mrkdwn("\n".join(lines))},
        {"type": "context", "elements": [_mrkdwn(" · ".join(details))]},
    ]


def home_view(
    user_id: str,
    open_polls: Sequence[PollResults],
    closed_polls: Sequence[PollResults],
    *,
    open_total: Optional[int] = None,
) -> dict[str, Any]:
    """The App Home tab (`views.publish`): the user's open and recently closed polls, with results."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain("Polls", 150)},
        {
            "type": "section",
            "text": _mrkdwn(f"Hi <@{user_id}>! Create a poll here, or type `/poll` in any channel."),
        },
        {
            "type": "actions",
            "block_id": "home_controls",
            "elements": [
                {"type": "button", "action_id": HOME_CREATE_ACTION_ID, "style": "primary", "text": _plain("Create poll")}
            ],
        },
    ]
    sections: list[tuple[str, Sequence[PollResults], int, str]] = [
        ("Your open polls", open_polls, open_total if open_total is not None else len(open_polls),
         "You have no open polls."),
        ("Recently closed", closed_polls, len(closed_polls), "No closed polls yet."),
    ]
    for title, items, total, empty in sections:
        if len(blocks) + 3 > MAX_VIEW_BLOCKS:
            break
        blocks += [{"type": "divider"}, {"type": "section", "text": _mrkdwn(f"*{title}*")}]
        if not items:
            blocks.append({"type": "context", "elements": [_mrkdwn(empty)]})
            continue
        shown = 0
        for results in items:
            poll_blocks = _home_poll(results)
            # keep room for the "not shown" note and the next section's title
            if len(blocks) + len(poll_blocks) > MAX_VIEW_BLOCKS - 4:
                break
            blocks += poll_blocks
            shown += 1
        if total > shown:
            blocks.append({"type": "context", "elements": [_mrkdwn(f"{total - shown} more not shown here.")]})
    return {"type": "home", "blocks": _fit(blocks, MAX_VIEW_BLOCKS, "More polls are not shown here.")}


# --------------------------------------------------------------------------- texts


def help_text(user_id: Optional[str] = None) -> str:
    return (f"Hi <@{user_id}>! " if user_id else "") + HELP


def usage_text(problem: Optional[str] = None) -> str:
    return (f"{problem}\n\n" if problem else "") + USAGE


def not_in_channel_text(channel_id: str, bot_name: str) -> str:
    return (
        f"I couldn't post your poll in <#{channel_id}>: I'm not a member of that channel. "
        f"Add me by typing `/invite @{bot_name}` in <#{channel_id}>, then create the poll again "
        "(or pick another channel)."
    )


def post_failed_text(error: str) -> str:
    return f"Sorry, I couldn't post your poll (Slack said `{error}`). Please try again in a moment."


POLL_NOT_FOUND = "I can't find that poll any more."
POLL_CLOSED = "This poll is closed: it takes no more votes."
NOT_CREATOR = "Only the person who created this poll can close it."
VOTE_FAILED = "Sorry, I couldn't record that vote. Please click again in a moment."
