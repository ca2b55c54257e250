"""The accessibility smoke check finds what it claims to (so a pass on the real pages means something)."""

from __future__ import annotations

from tests.browser.a11y import accessibility_problems

GOOD = """<!DOCTYPE html><html lang="en"><head><title>Fine</title></head>
<body style="background:#fff;color:#1d1c1d"><main><h1>Fine</h1>
<label for="n">Name</label><input id="n"><a href="/x">Go</a>
<p style="color:rgba(0,0,0,.75)">Soft but readable</p></main></body></html>"""

BAD = """<!DOCTYPE html><html><head><title> </title></head>
<body style="background:#fff"><p>Outside</p><main><h1>One</h1><h1>Two</h1>
<input id="q" placeholder="Search"><a href="/x"></a><button></button><img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">
<p style="color:#aaaaaa">Too faint</p><p style="color:#000;opacity:.3">Faded</p>
<div style="background:#4a154b"><span style="color:#611f69">Purple on purple</span></div>
</main><main>Second main</main></body></html>"""


def test_a_clean_page_passes(chromium_browser) -> None:
    page = chromium_browser.new_page()
    page.set_content(GOOD)
    assert accessibility_problems(page) == []
    page.close()


def test_each_kind_of_problem_is_reported(chromium_browser) -> None:
    page = chromium_browser.new_page()
    page.set_content(BAD)
    problems = "\n".join(accessibility_problems(page))
    page.close()
    expected = [
        "<html lang>",
        "no <title>",
        "expected one main landmark, found 2",
        "expected one <h1>, found 2",
        'text outside any landmark: <p> "Outside"',
        "form control without a label: <input#q>",
        "link or button without an accessible name: <a>",
        "link or button without an accessible name: <button>",
        "image without alt",
        'for <p> "Too faint"',
        'for <p> "Faded"',
        'for <span> "Purple on purple"',
    ]
    for fragment in expected:
        assert fragment in problems, f"{fragment!r} not reported in:\n{problems}"
