"""Polls: `/poll`, the create modal, voting buttons, closing, App Home and shortcuts.

- `domain` — create / vote / unvote / close / tally over the database (no Slack objects);
- `tables` — the poll tables on the shared metadata (migration 0002);
- `blocks` — Block Kit for the message, the modal and the Home tab (pure functions);
- `updater` — coalesced, rate-limit-aware `chat.update` of poll messages;
- `feature` — the Slack side the listeners call (`PollsFeature`).
"""

from bolt_app.features.polls.feature import PollsFeature

__all__ = ["PollsFeature"]
