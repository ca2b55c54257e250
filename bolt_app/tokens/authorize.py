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

from bolt_app.storage.tables import workspace_key
from bolt_app.tokens.client import TokenRefreshingWebClient
from bolt_app.tokens.rotation import TokenService

logger = logging.getLogger(__name__)


CacheKey = tuple[str, Optional[str]]


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

    def __init__(self, ttl_seconds: float = 10.0, max_entries: int = 10_000, known_seconds: float = 300.0):
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        # An expired entry is no longer served, but says for this long that the workspace was
        # installed when last read (`known`), unless an invalidation removed it.
        self.known_seconds = max(known_seconds, ttl_seconds)
        # key -> (valid_until, refresh_after, known_until, result)
        self._entries: OrderedDict[CacheKey, tuple[float, float, float, AuthorizeResult]] = OrderedDict()
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
            valid_until, refresh_after, known_until, result = entry
            now = time.monotonic()
            if valid_until <= now:
                if known_until <= now:
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
        seconds = max(0.0, min(self.ttl_seconds, max_seconds))  # 0: known, never served
        with self._lock:
            self._refreshing.discard(key)
            if generation is not None and generation != self.generation:
                return
            now = time.monotonic()
            refresh_after = now + seconds * random.uniform(0.7, 0.9)
            self._entries[key] = (now + seconds, refresh_after, now + self.known_seconds, result)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def known(self, key: CacheKey) -> bool:
        """True when the key resolved to an installation within `known_seconds` and nothing on
        this process invalidated it since (its tokens may no longer be served)."""
        with self._lock:
            entry = self._entries.get(key)
            return entry is not None and entry[2] > time.monotonic()

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

    def __call__(
        self,
        *,
        context: BoltContext,
        enterprise_id: Optional[str],
        team_id: Optional[str],
        user_id: Optional[str],
        **_: Any,
    ) -> Optional[AuthorizeResult]:
        cache_key = self._cache_key(context, enterprise_id, team_id, user_id)
        ws_key, user_key = cache_key
        result, refresh = self.cache.get_or_claim_refresh(cache_key) if self.cache is not None else (None, False)
        if refresh:
            self._background.submit(self._refresh_entry, cache_key, team_id)
        if result is None:
            generation = self.cache.generation if self.cache is not None else 0
            result, valid_for = self._resolve(ws_key, team_id, user_key)
            if result is None:
                logger.debug("No installation for enterprise_id=%r team_id=%r", enterprise_id, team_id)
                return None
            if self.cache is not None:
                self.cache.put(cache_key, result, valid_for, generation=generation)
        self._attach_refresher(context, ws_key, result)
        return result

    def _cache_key(
        self, context: BoltContext, enterprise_id: Optional[str], team_id: Optional[str], user_id: Optional[str]
    ) -> CacheKey:
        ws_key = workspace_key(enterprise_id, None if context.is_enterprise_install else team_id)
        return ws_key, (user_id if self.user_tokens_enabled else None)

    def resolves(self, context: BoltContext) -> bool:
        """True when this request's workspace is installed: it resolved within the cache's
        `known_seconds`, or it resolves now (as `__call__`, which fills the cache). False when it
        is not installed, or the database cannot say: the caller then lets Bolt authorize and
        answer the request."""
        key = self._cache_key(context, context.enterprise_id, context.team_id, context.user_id)
        if self.cache is not None and self.cache.known(key):
            return True
        try:
            return self(context=context, enterprise_id=context.enterprise_id, team_id=context.team_id,
                        user_id=context.user_id) is not None
        except Exception as error:  # noqa: BLE001 - Bolt's dispatch meets the same error and answers it
            logger.debug("Authorize before dispatch failed: %s", type(error).__name__)
            return False

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
        return result, valid_for

    def _attach_refresher(self, context: BoltContext, ws_key: str, result: AuthorizeResult) -> None:
        # Not `context.client`: on a context without one (`resolves`, before dispatch) Bolt
        # would build a WebClient just to be asked.
        client = context.get("client")
        if not isinstance(client, TokenRefreshingWebClient):
            return
        if result.bot_token:
            def refresh(rejected: str) -> Optional[str]:
                if self.cache is not None:
                    self.cache.invalidate_workspace(ws_key)
                refreshed = self.tokens.refresh_bot(ws_key, rejected_token=rejected)
                return refreshed.bot_token if refreshed else None
        else:
            user_id = result.user_id

            def refresh(rejected: str) -> Optional[str]:
                if self.cache is not None:
                    self.cache.invalidate_workspace(ws_key)
                refreshed = self.tokens.refresh_user(ws_key, user_id, rejected_token=rejected) if user_id else None
                return refreshed.user_token if refreshed else None

        client.token_refresher = refresh
