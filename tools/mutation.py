"""On-demand mutation run (mutmut) over the security-critical code. Not part of CI.

    python tools/mutation.py                      # the strict scopes: signature, state
    python tools/mutation.py rotation uninstall   # named scopes
    python tools/mutation.py all                  # every scope
    python tools/mutation.py --list               # the scopes, their code and their tests

Each run works in a scratch copy of the working tree (tracked and untracked files, not the
ignored ones), so the repository never gets a `mutants/` directory and two runs can go at once.
Shared mutmut settings come from the `[mutmut]` section of setup.cfg; a scope narrows the files
mutated, the functions whose mutants are run, and the tests. Tests run on SQLite only unless
--all-backends (then TEST_POSTGRES_URL / TEST_MYSQL_URL as for the test suite).

Exit status: 1 when a mutant survives in a strict scope (or the run itself failed), else 0.
See docs/mutation-testing.md.
"""

from __future__ import annotations

import argparse
import configparser
import fnmatch
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Scope:
    files: tuple[str, ...]  # the modules mutmut mutates
    mutants: tuple[str, ...]  # globs over mutant names: the functions whose mutants are run
    tests: tuple[str, ...]  # the in-process tests that exercise them
    strict: bool = False  # a survivor fails the run


# Mutant names are "<module>.x_<function>__mutmut_<n>" and "<module>.xǁ<Class>ǁ<method>__mutmut_<n>".
SCOPES: dict[str, Scope] = {
    "signature": Scope(
        files=("bolt_app/web.py",),
        mutants=("bolt_app.web.x_verify_signature__mutmut_*",),
        tests=("tests/security/test_signature.py",),
        strict=True,
    ),
    "state": Scope(
        files=("bolt_app/storage/state_store.py",),
        mutants=("bolt_app.storage.state_store.*",),
        tests=("tests/oauth/test_state_store.py", "tests/oauth/test_state_cookie.py"),
        strict=True,
    ),
    "rotation": Scope(
        files=("bolt_app/tokens/rotation.py",),
        mutants=("bolt_app.tokens.rotation.*",),
        tests=("tests/tokens",),
    ),
    "uninstall": Scope(
        files=("bolt_app/revocation.py", "bolt_app/storage/installation_store.py"),
        mutants=(
            "bolt_app.revocation.x_revocation_event__mutmut_*",
            "bolt_app.revocation.x_handle_revocation__mutmut_*",
            "bolt_app.revocation.x__revocation_*",
            "bolt_app.revocation.xǁRevocationMiddlewareǁ*",
            "bolt_app.storage.installation_store.xǁInstallationStoreǁdelete*",
            "bolt_app.storage.installation_store.xǁInstallationStoreǁrevoke*",
            "bolt_app.storage.installation_store.xǁInstallationStoreǁ_installed_since*",
            "bolt_app.storage.installation_store.xǁInstallationStoreǁ_delete*",
        ),
        tests=("tests/security/test_uninstall.py", "tests/security/test_revocation.py",
               "tests/security/test_revocation_store.py"),
    ),
    "encryption": Scope(
        files=("bolt_app/storage/crypto.py",),
        mutants=("bolt_app.storage.crypto.*",),
        tests=("tests/security/test_encryption.py",),
    ),
    "idempotency": Scope(
        files=("bolt_app/features/idempotency.py",),
        mutants=("bolt_app.features.idempotency.*",),
        tests=("tests/features/test_idempotency.py",),
    ),
}
STRICT = [name for name, scope in SCOPES.items() if scope.strict]
# Nothing listens here: the server tests skip PostgreSQL and MariaDB at once (connection refused).
UNREACHABLE = {"TEST_POSTGRES_URL": "postgresql+psycopg://postgres@127.0.0.1:1/postgres",
               "TEST_MYSQL_URL": "mysql+pymysql://root@127.0.0.1:1/"}
RESULT_LINE = re.compile(r"^\s+(\S+): (.+)$")


def project_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            check=True, capture_output=True).stdout.decode().split("\0")
    return [name for name in listed if name and (ROOT / name).is_file()]


def scratch_copy(target: Path) -> None:
    for name in project_files():
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, destination)


def write_config(target: Path, scopes: list[Scope]) -> None:
    """setup.cfg's [mutmut] section, narrowed to the scopes' files and tests."""
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    if not parser.has_section("mutmut"):
        sys.exit("setup.cfg has no [mutmut] section")
    section = parser["mutmut"]
    section["only_mutate"] = "\n" + "\n".join(sorted({f for s in scopes for f in s.files}))
    section["pytest_add_cli_args_test_selection"] = "\n" + "\n".join(sorted({t for s in scopes for t in s.tests}))
    with open(target / "setup.cfg", "w") as out:
        parser.write(out)


def results(workdir: Path, env: dict[str, str]) -> dict[str, str]:
    listed = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"], cwd=workdir, env=env,
                            capture_output=True, text=True, check=True).stdout
    return {m.group(1): m.group(2) for m in map(RESULT_LINE.match, listed.splitlines()) if m}


def in_scope(name: str, scope: Scope) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in scope.mutants)


def report(workdir: Path, env: dict[str, str], chosen: dict[str, Scope], show: int) -> bool:
    """Print each scope's counts and survivors; True when no strict scope has a survivor."""
    found = results(workdir, env)
    ok = True
    for name, scope in chosen.items():
        mine = {m: status for m, status in found.items() if in_scope(m, scope)}
        counts: dict[str, int] = {}
        for status in mine.values():
            counts[status] = counts.get(status, 0) + 1
        survivors = sorted(m for m, status in mine.items() if status not in ("killed", "timeout", "segfault"))
        summary = ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
        print(f"\n== {name}{' (strict)' if scope.strict else ''}: {len(mine)} mutants: {summary or 'none run'}")
        for mutant in survivors[:show]:
            print(f"   {mine[mutant]:>10}  {mutant}")
        if len(survivors) > show:
            print(f"   … and {len(survivors) - show} more (mutmut results / mutmut show <name> in {workdir})")
        if scope.strict and (survivors or not mine):
            ok = False
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scopes", nargs="*", help=f"scopes to run (default: {' '.join(STRICT)}; 'all' for every one)")
    parser.add_argument("--list", action="store_true", help="list the scopes and exit")
    parser.add_argument("--workdir", type=Path, help="scratch directory (default: a new temporary one, kept)")
    parser.add_argument("--max-children", type=int, default=max(1, (os.cpu_count() or 2) // 2),
                        help="parallel mutants (default: half the CPUs)")
    parser.add_argument("--all-backends", action="store_true", help="run the tests on PostgreSQL and MariaDB too")
    parser.add_argument("--show", type=int, default=25, help="survivors listed per scope")
    args = parser.parse_args()

    if args.list:
        for name, scope in SCOPES.items():
            print(f"{name}{' (strict)' if scope.strict else ''}\n  code:  {' '.join(scope.files)}\n"
                  f"  run:   {' '.join(scope.mutants)}\n  tests: {' '.join(scope.tests)}")
        return 0
    names = list(SCOPES) if args.scopes == ["all"] else (args.scopes or STRICT)
    unknown = [n for n in names if n not in SCOPES]
    if unknown:
        parser.error(f"unknown scope(s): {', '.join(unknown)}; known: {', '.join(SCOPES)}, all")
    chosen = {name: SCOPES[name] for name in names}

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="mutation-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if (workdir / "mutants").exists():
        shutil.rmtree(workdir / "mutants")  # results of another tree or scope must not be reused
    scratch_copy(workdir)
    write_config(workdir, list(chosen.values()))
    env = {**os.environ, **({} if args.all_backends else UNREACHABLE)}
    patterns = [pattern for scope in chosen.values() for pattern in scope.mutants]
    print(f"Mutation run of {', '.join(chosen)} in {workdir} ({args.max_children} at a time)", flush=True)
    started = time.monotonic()
    log = workdir / "mutmut-run.log"  # written as it goes: `tail -f` it to follow the run
    with open(log, "w") as out:
        run = subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(args.max_children),
                              *patterns], cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT)
    print(f"mutmut finished in {time.monotonic() - started:.0f} s with status {run.returncode} (log: {log})")
    if run.returncode != 0:
        print(log.read_text(errors="replace")[-3000:])
        return 1
    return 0 if report(workdir, env, chosen, args.show) else 1


if __name__ == "__main__":
    sys.exit(main())
