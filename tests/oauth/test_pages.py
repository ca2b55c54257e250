"""Tests for the installation HTML pages and scope descriptions (offline, fast)."""

from __future__ import annotations

import base64
import html
import re
import struct
from html.parser import HTMLParser

import pytest

from bolt_app.oauth import pages
from bolt_app.oauth.pages import (
    FAILURE_REASONS,
    GENERIC_FAILURE,
    failure_title,
    render_failure_page,
    render_install_page,
    render_success_page,
)
from bolt_app.oauth.scope_descriptions import (
    SCOPE_DESCRIPTIONS,
    describe_scopes,
    describe_user_scopes,
)

NASTY_APP = '<script>alert("x")</script> & Co\'s'
NASTY_TEAM = "<b>Acme</b> & Sons"
AUTHORIZE_URL = "https://slack.com/oauth/v2/authorize?client_id=1.2&scope=chat:write,commands&state=a<b"
OPEN_SLACK_URL = "slack://app?team=T123&id=A456"
RETRY_URL = "/slack/install?again=1&x=2"

VOID_TAGS = {"meta", "img", "br", "hr", "link", "input"}


class _Collector(HTMLParser):
    """Records tags, attributes and text; tracks nesting to find imbalance."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.start_counts: dict[str, int] = {}
        self.end_counts: dict[str, int] = {}
        self.attrs: list[tuple[str, str, str | None]] = []
        self.links: list[tuple[str, str]] = []  # (href, link text)
        self._link_href: str | None = None
        self._link_text: list[str] = []
        self.text: list[str] = []
        self.h1_text: list[str] = []
        self._in_h1 = False

    def handle_starttag(self, tag, attrs):
        self.start_counts[tag] = self.start_counts.get(tag, 0) + 1
        for name, value in attrs:
            self.attrs.append((tag, name, value))
        if tag not in VOID_TAGS:
            self.stack.append(tag)
        if tag == "a":
            self._link_href = dict(attrs).get("href")
            self._link_text = []
        if tag == "h1":
            self._in_h1 = True

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID_TAGS:
            self.stack.pop()

    def handle_endtag(self, tag):
        self.end_counts[tag] = self.end_counts.get(tag, 0) + 1
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}>, open: {self.stack}")
            return
        self.stack.pop()
        if tag == "a":
            self.links.append((self._link_href or "", "".join(self._link_text).strip()))
            self._link_href = None
        if tag == "h1":
            self._in_h1 = False

    def handle_data(self, data):
        self.text.append(data)
        if self._link_href is not None:
            self._link_text.append(data)
        if self._in_h1:
            self.h1_text.append(data)


def parse(document: str) -> _Collector:
    collector = _Collector()
    collector.feed(document)
    collector.close()
    return collector


def install_page(**overrides) -> str:
    kwargs = dict(
        app_name=NASTY_APP,
        authorize_url=AUTHORIZE_URL,
        bot_scopes=["chat:write", "commands", "app_mentions:read"],
        user_scopes=["search:read"],
        app_description="Quick polls & <em>surveys</em>",
        icon_data_url="data:image/png;base64,iVBORw0KGgo=",
    )
    kwargs.update(overrides)
    return render_install_page(**kwargs)


def success_page(**overrides) -> str:
    kwargs = dict(
        app_name=NASTY_APP,
        team_name=NASTY_TEAM,
        team_id="T123",
        enterprise_name=None,
        is_enterprise_install=False,
        app_id="A456",
        open_slack_url=OPEN_SLACK_URL,
        slash_commands=[("/poll", "Start a poll <now>")],
    )
    kwargs.update(overrides)
    return render_success_page(**kwargs)


def failure_page(reason: str = "invalid_state", **overrides) -> str:
    kwargs = dict(app_name=NASTY_APP, reason=reason, retry_url=RETRY_URL)
    kwargs.update(overrides)
    return render_failure_page(**kwargs)


ALL_PAGES = {
    "install": (install_page, AUTHORIZE_URL),
    "success": (success_page, OPEN_SLACK_URL),
    "failure": (failure_page, RETRY_URL),
}


# --------------------------------------------------------------------------
# Properties every page must have
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(ALL_PAGES))
def test_page_structure_and_accessibility(kind: str) -> None:
    render, _ = ALL_PAGES[kind]
    document = render()
    parsed = parse(document)

    assert document.startswith("<!DOCTYPE html>")
    assert '<html lang="en">' in document
    assert parsed.start_counts.get("main") == 1
    assert parsed.start_counts.get("h1") == 1
    assert parsed.start_counts.get("title") == 1
    assert re.search(r'<meta name="viewport" content="width=device-width[^"]*">', document)
    assert '<meta charset="utf-8">' in document
    # Well-formed: every non-void element closed in order, nothing left open.
    assert parsed.errors == []
    assert parsed.stack == []
    for tag in ("html", "head", "body", "main", "h1", "title", "style", "ul", "ol", "li", "a", "p"):
        assert parsed.start_counts.get(tag, 0) == parsed.end_counts.get(tag, 0), tag
    # Every link has visible text.
    assert parsed.links and all(text for _, text in parsed.links)
    # Focus styles are present.
    assert ":focus" in document and "outline" in document


@pytest.mark.parametrize("kind", sorted(ALL_PAGES))
def test_page_has_no_scripts_or_external_assets(kind: str) -> None:
    render, allowed_url = ALL_PAGES[kind]
    document = render()
    parsed = parse(document)

    assert "<script" not in document.lower()
    assert not [a for a in parsed.attrs if a[1].lower().startswith("on")]
    assert "<link" not in document.lower()
    assert "@import" not in document and "url(" not in document
    for tag, name, value in parsed.attrs:
        if name == "src":
            assert value and value.startswith("data:"), (tag, value)
        if name == "href":
            assert tag == "a" and value == allowed_url
    # The only absolute http(s) URL allowed is the caller's link target.
    remainder = document.replace(html.escape(allowed_url, quote=True), "")
    assert "http://" not in remainder and "https://" not in remainder


@pytest.mark.parametrize("kind", sorted(ALL_PAGES))
def test_dynamic_values_are_escaped(kind: str) -> None:
    render, allowed_url = ALL_PAGES[kind]
    document = render()

    assert html.escape(NASTY_APP, quote=True) in document
    assert NASTY_APP not in document
    assert "<script>" not in document
    # URLs in attributes are escaped too, and round-trip to the original.
    assert f'href="{html.escape(allowed_url, quote=True)}"' in document
    hrefs = [v for _, n, v in parse(document).attrs if n == "href"]
    assert hrefs == [allowed_url]


def test_pages_share_one_skeleton() -> None:
    # Same head/CSS on every page: they all come from the one helper.
    heads = {render().split("<title>")[0] for render, _ in ALL_PAGES.values()}
    styles = {re.search(r"<style>.*?</style>", render(), re.S).group(0) for render, _ in ALL_PAGES.values()}
    assert len(heads) == 1
    assert len(styles) == 1


def test_palette_meets_contrast_requirements() -> None:
    def luminance(hex_colour: str) -> float:
        h = hex_colour.lstrip("#")
        channels = [int(h[i : i + 2], 16) / 255 for i in (0, 2, 4)]
        lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    def contrast(a: str, b: str) -> float:
        hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
        return (hi + 0.05) / (lo + 0.05)

    p = pages._PALETTE
    for fg in ("text", "muted", "focus"):
        for bg in ("card_bg", "page_bg", "code_bg"):
            assert contrast(p[fg], p[bg]) >= 4.5, (fg, bg)
    for bg in ("accent", "accent_hover", "success", "danger"):
        assert contrast("#ffffff", p[bg]) >= 4.5, bg


# --------------------------------------------------------------------------
# Install page
# --------------------------------------------------------------------------


def test_app_icon_is_a_small_png_data_url() -> None:
    url = pages.app_icon_data_url()
    assert url is not None and url.startswith("data:image/png;base64,")
    raw = base64.b64decode(url.split(",", 1)[1])
    assert raw.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", raw[16:24])
    assert width == height >= 512  # square and big enough for Slack's app settings too
    assert len(raw) < 32 * 1024


def test_app_icon_missing_or_unsuitable_means_no_icon(tmp_path) -> None:
    assert pages.app_icon_data_url(tmp_path / "nope.png") is None
    (tmp_path / "icon.gif").write_bytes(b"GIF89a")
    assert pages.app_icon_data_url(tmp_path / "icon.gif") is None
    (tmp_path / "huge.png").write_bytes(b"\x89PNG" + b"0" * 100_000)
    assert pages.app_icon_data_url(tmp_path / "huge.png") is None
    (tmp_path / "icon.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    assert pages.app_icon_data_url(tmp_path / "icon.svg").startswith("data:image/svg+xml;base64,")


def test_install_page_button_and_capabilities() -> None:
    document = install_page()
    parsed = parse(document)

    assert parsed.links == [(AUTHORIZE_URL, "Add to Slack")]
    assert 'class="button"' in document
    assert f"What {html.escape(NASTY_APP)} will be able to do" in document
    for line in describe_scopes(["chat:write", "commands", "app_mentions:read"]):
        assert f"<li>{html.escape(line)}</li>" in document
    assert "On your behalf" in document
    assert "Search messages and files you can see" in document
    assert "approve" in document
    # Description is escaped, not rendered as markup.
    assert "Quick polls &amp; &lt;em&gt;surveys&lt;/em&gt;" in document
    assert '<img class="app-icon" src="data:image/png;base64,iVBORw0KGgo=" alt="">' in document


def test_install_page_without_user_scopes_or_extras() -> None:
    document = install_page(user_scopes=(), app_description=None, icon_data_url=None)
    assert "On your behalf" not in document
    assert "<img" not in document
    assert parse(document).h1_text


def test_install_page_drops_non_data_icon() -> None:
    document = install_page(icon_data_url="https://evil.example/icon.png")
    assert "<img" not in document
    assert "evil.example" not in document


def test_install_page_shows_unknown_scopes() -> None:
    document = install_page(bot_scopes=["chat:write", "future:thing"])
    assert "Use the future:thing permission" in document


@pytest.mark.parametrize(
    "bad_url",
    ["javascript:alert(1)", "JavaScript:alert(1)", "java\tscript:alert(1)", " javascript:x", "data:text/html,x", ""],
)
def test_unsafe_link_targets_are_rejected(bad_url: str) -> None:
    with pytest.raises(ValueError):
        install_page(authorize_url=bad_url)
    with pytest.raises(ValueError):
        failure_page(retry_url=bad_url or "javascript:x")
    with pytest.raises(ValueError):
        success_page(open_slack_url=bad_url or "javascript:x")


# --------------------------------------------------------------------------
# Success page
# --------------------------------------------------------------------------


def test_success_page_for_workspace() -> None:
    document = success_page()
    parsed = parse(document)
    h1 = "".join(parsed.h1_text)

    assert h1 == f"{NASTY_APP} is installed in {NASTY_TEAM}"
    assert html.escape(NASTY_TEAM) in document and NASTY_TEAM not in document
    assert parsed.links == [(OPEN_SLACK_URL, "Open Slack")]
    assert "Next steps" in document
    assert "/invite" in document and "/poll" in document
    assert "T123" in document and "A456" in document
    assert "Start a poll &lt;now&gt;" in document


def test_success_page_suggests_only_the_manifest_commands() -> None:
    assert "Try a command" not in success_page(slash_commands=())
    many = [(f"/c{i}", "") for i in range(6)] + [("  ", "blank is ignored")]
    document = success_page(slash_commands=many)
    assert "<code>/c2</code>" in document and "/c3" not in document
    assert "blank is ignored" not in document
    assert parse(document).errors == []


def test_success_page_for_org_wide_install() -> None:
    document = success_page(
        team_name=None, team_id=None, enterprise_name="Big & <Co>", is_enterprise_install=True
    )
    h1 = "".join(parse(document).h1_text)
    assert h1 == f"{NASTY_APP} is installed in the Big & <Co> organization"
    assert "Big &amp; &lt;Co&gt;" in document


def test_success_page_without_names_or_link() -> None:
    document = success_page(team_name=None, team_id=None, app_id=None, open_slack_url=None)
    parsed = parse(document)
    assert "".join(parsed.h1_text).endswith("is installed in your workspace")
    assert parsed.links == []
    assert "go back to Slack" in document
    assert parsed.errors == [] and parsed.stack == []


# --------------------------------------------------------------------------
# Failure page
# --------------------------------------------------------------------------

REQUIRED_REASONS = [
    "access_denied",
    "already_used",
    "invalid_browser",
    "invalid_state",
    "missing_state",
    "missing_code",
    "invalid_code",
    "storage_error",
    "invalid_scope",
    "invalid_team_for_non_distributed_app",
    "unapproved_app",
    "app_not_approved",
    "server_error",
]


def test_required_reasons_are_covered() -> None:
    assert set(REQUIRED_REASONS) <= set(FAILURE_REASONS)
    assert "10 minutes" in FAILURE_REASONS["invalid_state"][1]
    assert "nothing was stored" in FAILURE_REASONS["storage_error"][1]
    assert "cookies" in FAILURE_REASONS["invalid_browser"][1]
    assert "already used" in FAILURE_REASONS["invalid_code"][1]


@pytest.mark.parametrize("code", sorted(FAILURE_REASONS))
def test_every_reason_renders_its_title(code: str) -> None:
    title, explanation = FAILURE_REASONS[code]
    document = failure_page(code)
    parsed = parse(document)

    assert failure_title(code) == title != GENERIC_FAILURE[0]
    assert "".join(parsed.h1_text) == title
    assert html.escape(explanation) in document
    assert parsed.links == [(RETRY_URL, "Try again")]
    assert parsed.errors == [] and parsed.stack == []


def test_unknown_reason_gets_generic_title_and_code() -> None:
    document = failure_page("weird_new_error")
    assert failure_title("weird_new_error") == GENERIC_FAILURE[0] == "Something went wrong"
    assert "".join(parse(document).h1_text) == "Something went wrong"
    assert "<code>weird_new_error</code>" in document


def test_hostile_reason_is_escaped_and_truncated() -> None:
    reason = "<script>alert(1)</script>" + "x" * 500
    document = failure_page(reason)
    assert "<script>" not in document
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in document
    assert "x" * 200 not in document
    assert "".join(parse(document).h1_text) == "Something went wrong"


def test_failure_title_tolerates_case_and_whitespace() -> None:
    assert failure_title(" Access_Denied ") == FAILURE_REASONS["access_denied"][0]


# --------------------------------------------------------------------------
# Scope descriptions
# --------------------------------------------------------------------------


def test_describe_scopes_known_examples() -> None:
    assert SCOPE_DESCRIPTIONS["app_mentions:read"] == "See messages that mention the app"
    assert SCOPE_DESCRIPTIONS["chat:write"] == "Send messages as the app"
    assert SCOPE_DESCRIPTIONS["commands"] == "Add slash commands people can use"
    for scope in (
        "channels:read", "groups:read", "im:write", "users:read", "channels:history",
        "im:history", "reactions:write", "chat:write.public", "incoming-webhook",
        "users:read.email", "team:read", "files:write", "pins:write", "im:read",
        "mpim:read", "links:read",
    ):
        assert SCOPE_DESCRIPTIONS[scope]
    assert len(SCOPE_DESCRIPTIONS) >= 30


def test_describe_scopes_order_is_stable_and_deduplicated() -> None:
    a = describe_scopes(["commands", "chat:write", "app_mentions:read", "chat:write"])
    b = describe_scopes(["app_mentions:read", "commands", "chat:write"])
    assert a == b == [
        "See messages that mention the app",
        "Send messages as the app",
        "Add slash commands people can use",
    ]


def test_describe_scopes_unknown_scopes_are_listed_last_alphabetically() -> None:
    result = describe_scopes(["zeta:write", "chat:write", "alpha:read", "zeta:write"])
    assert result == [
        "Send messages as the app",
        "Use the alpha:read permission",
        "Use the zeta:write permission",
    ]


def test_describe_scopes_input_forms() -> None:
    assert describe_scopes([]) == []
    assert describe_scopes(["", "  "]) == []
    assert describe_scopes(" chat:write , commands") == describe_scopes(["commands", "chat:write"])
    assert describe_scopes(iter(["commands"])) == ["Add slash commands people can use"]


def test_describe_user_scopes_uses_on_behalf_wording() -> None:
    assert describe_user_scopes(["chat:write"]) == ["Send messages as you"]
    # Falls back to the shared wording when no user-specific text exists.
    assert describe_user_scopes(["users:read"]) == [SCOPE_DESCRIPTIONS["users:read"]]
