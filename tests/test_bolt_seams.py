"""The product touches Bolt and slack_sdk only through their public API, except for the touch
points `docs/bolt-seams.md` lists.

Non-public means: a module path with a component that starts with an underscore or is named
`internals`; any name imported from Bolt's utility modules (`slack_bolt.util`,
`slack_bolt.kwargs_injection`); an imported name with a leading underscore; an attribute with a leading underscore
that Bolt or slack_sdk define (read on any object but `self`/`cls`, or used through `self` in a
class that extends one of theirs, which includes overriding it); and any `__class__` assignment.
"""

from __future__ import annotations

import ast
import re
from functools import lru_cache
from pathlib import Path

import slack_bolt
import slack_sdk

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ROOT / "bolt_app"
SEAMS_DOC = ROOT / "docs" / "bolt-seams.md"
LIBRARIES = ("slack_bolt", "slack_sdk")
# Modules Bolt keeps for its own machinery, not documented for apps: every name imported from
# them is a touch point (Bolt's lazy runner, for one, is built from these).
UTILITY_MODULES = ("slack_bolt.util", "slack_bolt.kwargs_injection")


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


@lru_cache(maxsize=None)
def library_private_names() -> frozenset[str]:
    """Every underscore name Bolt and slack_sdk define: functions, methods, classes, attributes."""
    names: set[str] = set()
    for package in (slack_bolt, slack_sdk):
        for path in Path(package.__file__).parent.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and _private(node.name):
                    names.add(node.name)
                elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and _private(node.attr):
                    names.add(node.attr)
                elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) and _private(node.id):
                    names.add(node.id)
    return frozenset(names)


def _library_module(module: str | None) -> bool:
    return module is not None and module.split(".")[0] in LIBRARIES


def _non_public_module(module: str) -> bool:
    return any(_private(part) or part == "internals" for part in module.split("."))


def private_uses(source: str) -> list[tuple[int, str]]:
    """(line, name) for each non-public Bolt / slack_sdk name `source` uses."""
    tree = ast.parse(source)
    library_names: set[str] = set()  # names bound by imports from the libraries
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and _library_module(node.module):
            if _non_public_module(node.module or ""):
                found.append((node.lineno, node.module or ""))
            utility = (node.module or "").startswith(UTILITY_MODULES)
            for alias in node.names:
                library_names.add(alias.asname or alias.name)
                if _private(alias.name) or utility:
                    found.append((node.lineno, f"{node.module}.{alias.name}"))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if _library_module(alias.name):
                    library_names.add((alias.asname or alias.name).split(".")[0])
                    if _non_public_module(alias.name):
                        found.append((node.lineno, alias.name))
    private = library_private_names()
    library_classes = {
        node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)
        and any(isinstance(base, ast.Name) and base.id in library_names
                or isinstance(base, ast.Attribute) and isinstance(base.value, ast.Name) and base.value.id in library_names
                for base in node.bases)
    }
    inside_library_class: set[ast.AST] = set()
    for cls in library_classes:
        for node in ast.walk(cls):
            inside_library_class.add(node)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in private:
                found.append((node.lineno, node.name))  # overrides a private method of theirs
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            if node.attr == "__class__" and isinstance(node.ctx, ast.Store):
                found.append((node.lineno, "__class__"))
            elif node.attr in private:
                on_self = isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
                if not on_self or node in inside_library_class:
                    found.append((node.lineno, node.attr))
    return sorted(set(found))


def listed_seams() -> set[tuple[str, str]]:
    """(file, name) pairs from the table in docs/bolt-seams.md: | `bolt_app/x.py` | `name` | …"""
    rows = re.findall(r"^\|\s*`(bolt_app/[^`]+)`\s*\|\s*`([^`]+)`", SEAMS_DOC.read_text(encoding="utf-8"), re.M)
    return set(rows)


def test_the_product_uses_only_public_bolt_and_slack_sdk_names_or_listed_seams() -> None:
    allowed = listed_seams()
    unlisted = []
    for path in sorted(PRODUCT.rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        for line, name in private_uses(path.read_text(encoding="utf-8")):
            if (relative, name) not in allowed:
                unlisted.append(f"{relative}:{line} {name}")
    assert unlisted == [], "non-public Bolt/slack_sdk use not listed in docs/bolt-seams.md:\n" + "\n".join(unlisted)


def test_the_list_names_only_seams_still_in_use_and_stays_short() -> None:
    used = {
        (path.relative_to(ROOT).as_posix(), name)
        for path in PRODUCT.rglob("*.py")
        for _, name in private_uses(path.read_text(encoding="utf-8"))
    }
    assert listed_seams() <= used, "docs/bolt-seams.md lists a seam the code no longer uses"
    assert len(listed_seams()) <= 3


def test_the_scan_catches_each_kind_of_private_use() -> None:
    planted = {
        "from slack_bolt.adapter.socket_mode.internals import send_response": "slack_bolt.adapter.socket_mode.internals",
        "from slack_bolt.app.app import App\napp = App()\napp._listener_runner = None": "_listener_runner",
        "from slack_bolt import App\nclass Mine(App):\n    def _init_context(self, req):\n        pass": "_init_context",
        "from slack_sdk import WebClient\nclass C(WebClient):\n    def f(self):\n        return self._perform_urllib_http_request_internal": "_perform_urllib_http_request_internal",
        "x = object()\nx.__class__ = int": "__class__",
        "import slack_sdk.web.internal_utils as u\nu._build_unexpected_body_error_message": "_build_unexpected_body_error_message",
        "from slack_bolt.util.utils import get_name_for_callable": "slack_bolt.util.utils.get_name_for_callable",
    }
    for source, name in planted.items():
        assert name in {found for _, found in private_uses(source)}, source
    # Our own underscore names and SQLAlchemy's public `Row._mapping` are not Bolt's or slack_sdk's.
    assert private_uses("class A:\n    def _x(self):\n        return self._y\nrow._mapping") == []
