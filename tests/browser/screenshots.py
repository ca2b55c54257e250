"""README screenshots of the install and success pages: ``python -m tests.browser.screenshots``.

Runs the real thing (``python main.py`` against the local Slack stand-in, a throw-away SQLite
database, Debian's Chromium) and clicks through one install, like the browser tests do, saving
docs/images/install-page.png and docs/images/success-page.png (800 px wide). Re-run it after
changing the pages.
"""

from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path

from slack_standin import SlackStandIn
from slack_standin.harness import PROJECT_ROOT, AppProcess, app_env
from tests.browser import chromium

OUT_DIR = PROJECT_ROOT / "docs" / "images"
VIEWPORT = {"width": 800, "height": 600}


def capture(out_dir: Path = OUT_DIR) -> list[Path]:
    reason = chromium.unavailable_reason()
    if reason:
        raise SystemExit(f"cannot take screenshots: {reason}")
    from playwright.sync_api import expect, sync_playwright

    out_dir.mkdir(parents=True, exist_ok=True)
    install_png, success_png = out_dir / "install-page.png", out_dir / "success-page.png"
    with tempfile.TemporaryDirectory() as tmp, SlackStandIn(
        client_id="1111.2222", client_secret="screenshot-client-secret", signing_secret="screenshot-signing"
    ) as standin:
        workspace = standin.create_workspace(name="Acme Corp")
        server = AppProcess(env=app_env(standin, f"sqlite:///{Path(tmp) / 'app.db'}"), workdir=Path(tmp)).start()
        try:
            with sync_playwright() as playwright:
                browser = chromium.launch(playwright)
                page = browser.new_page(viewport=VIEWPORT, locale="en-US")
                page.goto(f"{server.url}/slack/install")
                expect(page.get_by_role("link", name="Add to Slack")).to_be_visible()
                page.screenshot(path=str(install_png), full_page=True)

                page.get_by_role("link", name="Add to Slack").click()
                page.get_by_label("Workspace", exact=True).select_option(workspace.team_id)
                page.get_by_role("button", name="Allow").click()
                page.wait_for_url(re.compile(r"/slack/oauth_redirect\?"))
                expect(page.get_by_role("link", name="Open Slack")).to_be_visible()
                page.screenshot(path=str(success_png), full_page=True)
                browser.close()
        finally:
            server.stop()
    return [install_png, success_png]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT_DIR, help=f"folder for the PNGs (default {OUT_DIR})")
    for path in capture(parser.parse_args().out):
        print(f"wrote {path.relative_to(PROJECT_ROOT) if path.is_relative_to(PROJECT_ROOT) else path} "
              f"({path.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
