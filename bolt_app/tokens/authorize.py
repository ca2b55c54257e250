"""Bolt `authorize` from the installation store: no `auth.test` per request.

Stock `InstallationStoreAuthorize` calls Slack's `auth.test` for every incoming request and
rotates tokens with no coordination. Everything `AuthorizeResult` needs (bot id, bot user id,
team, enterprise, scopes) is already stored at install time, so this resolves from one indexed
read (none when the small in-process cache is warm) and leaves rotation to `TokenService`.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional

from slack_bolt.authorization import AuthorizeResult
from slack_bolt.authorization.authorize import Authorize
from slack_bolt.context import BoltContext

from bolt_app.payload import INSTALLING_SIDE, InstallingSide
from bolt_app.storage.tables import workspace_key
from bolt_app.tokens.installed import WorkspaceNotInstalled
from bolt_app.tokens.rotation import TokenService

logger = logging.getLogger(__name__)


CacheKey = tuple[str, Optional[str]]
# AuthorizeResult key (it is a dict): True when the installation that served the request is org-wide.
INSTALLATION_IS_ORG_WIDE = "installation_is_enterprise_install"
# How long a team's installation key found by `key_of_team` is reused (it changes only when a
# workspace moves into an Enterprise Grid org and reinstalls), and how many are kept.
TEAM_KEY_SECONDS = 60.0
MAX_TEAM_KEYS = 10_000


class AuthorizeCache:
    """A bounded LRU of authorize results that expire quickly.

    Bounded so ten thousand workspaces cannot grow memory without limit; short-lived so another
    process's uninstall or rotation is seen within seconds; invalidated at once for what happens
    on this process (uninstall, revocation, rotation). An entry is never served once its token is
    inside the refresh window, so the cache cannot delay a rotation.

    A busy workspace's entry is re-read *before* it expires: the first request after a jittered
    point between 70 % and 90 % of the TTL gets the cached result and the key back to refresh in
    the background (`get_or_claim_refresh`), so requests never wait on that read and entries
    filled together (a burst after start-up) are not all re-read together.
    """

    def __init__(self, ttl_seconds: float = 10.0, max_entries: int = 10_000):
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        # key -> (valid_until, refresh_after, result)
        self._entries: OrderedDict[CacheKey, tuple[float, float, AuthorizeResult]] = OrderedDict()
        self._refreshing: set[CacheKey] = set()
        self._lock = threading.Lock()
        # Bumped by every invalidation: a result read before one must not be stored after it.
        self.generation = 0

    def get(self, key: CacheKey) -> AuthorizeResult | None:
        """The cached result, or None when absent or expired (never claims a refresh)."""
        return self._lookup(key, claim_refresh=False)[0]

    def get_or_claim_refresh(self, key: CacheKey) -> tuple[AuthorizeResult | None, bool]:
        """The cached result (None when absent or expired), and True when the caller should
        refresh this entry in the background (given to one caller at a time)."""
        return self._lookup(key, claim_refresh=True)

    def _lookup(self, key: CacheKey, *, claim_refresh: bool) -> tuple[AuthorizeResult | None, bool]:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None, False
            valid_until, refresh_after, result = entry
            now = time.monotonic()
            if valid_until <= now:
                del self._entries[key]
                return None, False
            self._entries.move_to_end(key)
            if claim_refresh and refresh_after <= now and key not in self._refreshing:
                self._refreshing.add(key)
                return result, True
            return result, False

    def put(self, key: CacheKey, result: AuthorizeResult, max_seconds: float, *, generation: int | None = None) -> None:
        """Store a result for up to the TTL (less when its token is due sooner). With the
        `generation` read before resolving, a result that an invalidation overtook is dropped."""
        seconds = min(self.ttl_seconds, max_seconds)
        with self._lock:
            self._refreshing.discard(key)
            if seconds <= 0 or (generation is not None and generation != self.generation):
                return  # due for refresh (never served from here), or overtaken by an invalidation
            now = time.monotonic()
            refresh_after = now + seconds * random.uniform(0.7, 0.9)
            self._entries[key] = (now + seconds, refresh_after, result)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def refresh_failed(self, key: CacheKey) -> None:
        """Let a later request try again; the entry still expires at its TTL."""
        with self._lock:
            self._refreshing.discard(key)

    def invalidate_workspace(self, ws_key: str) -> None:
        with self._lock:
            self.generation += 1
            for key in [k for k in self._entries if k[0] == ws_key]:
                del self._entries[key]
            self._refreshing = {k for k in self._refreshing if k[0] != ws_key}

    def __len__(self) -> int:
        return len(self._entries)


class StoreAuthorize(Authorize):
    """Resolves each request's tokens from the store, refreshing them single-flight when due."""

    def __init__(self, *, tokens: TokenService, cache: AuthorizeCache | None, user_tokens_enabled: bool):
        self.tokens = tokens
        self.cache = cache
        # Without user scopes there are no user tokens: skip that lookup on the hot path.
        self.user_tokens_enabled = user_tokens_enabled
        # Bolt sets this from OAuthSettings; the TokenService owns the window.
        self.token_rotation_expiration_minutes = tokens.refresh_before_seconds // 60
        self.bot_only = False
        # One thread re-reads cache entries ahead of expiry, off the request threads.
        self._background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="authorize-refresh")
        # Token -> (workspace key, user id or None) for the tokens this process resolved, so a
        # Web API rejection of one (see tokens/rejections.py) can be traced to its installation.
        self._owners: OrderedDict[str, tuple[str, Optional[str]]] = OrderedDict()
        self._owners_lock = threading.Lock()
        self.max_owners = 20_000
        # Installing team id -> (valid until, workspace key), for view payloads from Slack Connect.
        self._team_keys: OrderedDict[str, tuple[float, str]] = OrderedDict()

    def __call__(
        self,
        *,
        context: BoltContext,
        enterprise_id: Optional[str],
        team_id: Optional[str],
        user_id: Optional[str],
        **_: Any,
    ) -> AuthorizeResult:
        """This request's tokens; raises `WorkspaceNotInstalled` when there are none (the error
        handler answers 200 without Bolt's response_url round-trip)."""
        side = context.get(INSTALLING_SIDE)
        if side is not None:
            # A view from the installing side's modal, acted on by someone of another organization:
            # the installation is the installing side's, whatever ids the body carries.
            team_id = side.team_id
        cache_key = self._cache_key(context, enterprise_id, team_id, user_id, side)
        ws_key, user_key = cache_key
        result, refresh = self.cache.get_or_claim_refresh(cache_key) if self.cache is not None else (None, False)
        if refresh:
            self._background.submit(self._refresh_entry, cache_key, team_id)
        if result is None:
            generation = self.cache.generation if self.cache is not None else 0
            result, valid_for = self._resolve(ws_key, team_id, user_key)
            if result is None:
                raise WorkspaceNotInstalled(ws_key)
            if self.cache is not None:
                self.cache.put(cache_key, result, valid_for, generation=generation)
        return result

    def _cache_key(
        self, context: BoltContext, enterprise_id: Optional[str], team_id: Optional[str], user_id: Optional[str],
        side: Optional[InstallingSide] = None,
    ) -> CacheKey:
        if side is None:
            ws_key = workspace_key(enterprise_id, None if context.is_enterprise_install else team_id)
        elif side.enterprise_id is not None:
            ws_key = workspace_key(side.enterprise_id, None)  # installed org-wide
        else:
            ws_key = self._key_of_installing_team(side)
        return ws_key, (user_id if self.user_tokens_enabled else None)

    def _key_of_installing_team(self, side: InstallingSide) -> str:
        """The installation key of the workspace that installed the view (its enterprise as stored),
        never one made from the request's other ids: the workspace's own installation, else the
        org-wide installation whose bot the view names. Raises `WorkspaceNotInstalled` when neither
        exists."""
        assert side.team_id is not None
        cache_key = f"{side.team_id}/{side.bot_id or ''}"
        now = time.monotonic()
        with self._owners_lock:
            entry = self._team_keys.get(cache_key)
            if entry is not None and entry[0] > now:
                return entry[1]
        key = self.tokens.key_of_team(side.team_id)
        if key is None and side.bot_id is not None:
            key = self.tokens.key_of_org_wide_bot(side.bot_id)
        if key is None:
            raise WorkspaceNotInstalled(f"team {side.team_id}", "no installation of the team that installed the view")
        with self._owners_lock:
            self._team_keys[cache_key] = (now + TEAM_KEY_SECONDS, key)
            self._team_keys.move_to_end(cache_key)
            while len(self._team_keys) > MAX_TEAM_KEYS:
                self._team_keys.popitem(last=False)
        return key

    def _refresh_entry(self, cache_key: CacheKey, team_id: Optional[str]) -> None:
        """Re-read a cached entry ahead of its expiry (background thread); the entry stays
        until its TTL if this fails, and the next request due for it tries again."""
        assert self.cache is not None
        generation = self.cache.generation
        try:
            result, valid_for = self._resolve(cache_key[0], team_id, cache_key[1])
        except Exception as error:  # noqa: BLE001 - e.g. the database is down: requests resolve it themselves
            logger.warning("Background authorize refresh failed: %s", type(error).__name__)
            self.cache.refresh_failed(cache_key)
            return
        if result is None:
            self.cache.invalidate_workspace(cache_key[0])  # uninstalled by another process
            return
        self.cache.put(cache_key, result, valid_for, generation=generation)

    def _resolve(
        self, ws_key: str, request_team_id: Optional[str], user_id: Optional[str]
    ) -> tuple[Optional[AuthorizeResult], float]:
        bot = self.tokens.fresh_bot(ws_key)
        user = self.tokens.fresh_user(ws_key, user_id) if user_id is not None else None
        if (bot is None or bot.bot_token is None) and (user is None or user.user_token is None):
            return None, 0
        # Cache no longer than until the earliest token enters its refresh window.
        now = time.time()
        expiries = [t.expires_at for t in (bot, user) if t is not None and t.expires_at is not None]
        valid_for = min((e - now - self.tokens.refresh_before_seconds for e in expiries), default=float("inf"))
        result = AuthorizeResult(
            enterprise_id=bot.enterprise_id if bot else None,
            team_id=request_team_id or (bot.team_id if bot else None),
            team=bot.team_name if bot else None,
            bot_id=bot.bot_id if bot else None,
            bot_user_id=bot.bot_user_id if bot else None,
            bot_token=bot.bot_token if bot else None,
            bot_scopes=bot.bot_scopes if bot else None,
            user_id=user.user_id if user and user.user_token else None,
            user_token=user.user_token if user else None,
            user_scopes=user.user_scopes if user else None,
        )
        # The installation's own kind, for keying feature data (features/workspace.py): the
        # request's ids can be another organization's (Slack Connect).
        result[INSTALLATION_IS_ORG_WIDE] = bool(bot.is_enterprise_install) if bot else ws_key.endswith(":")
        with self._owners_lock:
            for token, owner in ((result.bot_token, (ws_key, None)), (result.user_token, (ws_key, result.user_id))):
                if token:
                    self._owners[token] = owner
                    self._owners.move_to_end(token)
            while len(self._owners) > self.max_owners:
                self._owners.popitem(last=False)
        return result, valid_for

    def token_rejected(self, token: str, error: str) -> None:
        """Slack refused a token this process resolved: its cached entry goes, and an expired one
        is refreshed now (single-flight), so the next request or retry gets a working token. A
        token refused for good is marked in the database, which every process reads before using
        it (tokens/installed.py): dropped everywhere, not only here."""
        with self._owners_lock:
            owner = self._owners.get(token)
        if owner is None:
            return
        ws_key, user_id = owner
        if self.cache is not None:
            self.cache.invalidate_workspace(ws_key)
        if error != "token_expired":
            try:
                if not self.tokens.mark_rejected(ws_key, user_id, token, error):
                    logger.info("Slack answered %s for an earlier token of %s", error, ws_key)
            except Exception as mark_error:  # noqa: BLE001 - the call that heard it fails as Slack said anyway
                logger.warning("Slack answered %s for a token of %s; marking it failed: %s", error, ws_key,
                               type(mark_error).__name__)
            return
        try:
            if user_id is None:
                self.tokens.refresh_bot(ws_key, rejected_token=token)
            else:
                self.tokens.refresh_user(ws_key, user_id, rejected_token=token)
        except Exception as refresh_error:  # noqa: BLE001 - the call that heard it fails as Slack said anyway
            logger.warning("Refreshing an expired token of %s failed: %s", ws_key, type(refresh_error).__name__)
