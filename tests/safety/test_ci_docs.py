"""The CI files in docs/ci/ can be copied as they are: every `sessionstorm`, `locust` and
`pytest` command in them exists and every option it uses is real.

Commands come from the YAML itself (GitHub steps' ``run``, GitLab jobs' ``script`` and
``before_script``), split the way a shell would (continuations, ``&&``, ``||``, ``;``,
``if ...; then``). sessionstorm's are checked by click's own parser over the commands in
``cli.SUBCOMMANDS``; locust's by Locust's own parser after importing the ``-f`` locustfile
(so options a locustfile adds count, as they do at run time; ``locust --help`` does not
show those), in a subprocess because importing locust monkey-patches this process; pytest's
against ``pytest --help`` of this project (xdist and our plugin loaded).
"""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from functools import cache
from pathlib import Path

import click
import pytest
import yaml

from sessionstorm import cli

ROOT = Path(__file__).resolve().parents[2]
CI_FILES = [ROOT / "docs" / "ci" / "github-actions.yml", ROOT / "docs" / "ci" / "gitlab-ci.yml"]
CHECKED = ("sessionstorm", "locust", "pytest")
SHELL_WORDS = {"if", "then", "else", "elif", "fi", "do", "done", "while", "until", "!", "time", "exec", "{", "}"}
OPERATORS = {";", "&&", "||", "|", "&", "(", ")", "((", "))"}
REDIRECTS = {">", ">>", "<", ">&", "<&", "2>", "&>"}


# -- extraction ---------------------------------------------------------------------------
def scripts(path: Path) -> list[str]:
    """Every shell script in a GitHub Actions workflow or a GitLab CI file."""
    doc = yaml.safe_load(path.read_text())
    out: list[str] = []
    if "jobs" in doc:  # GitHub Actions
        for job in doc["jobs"].values():
            out += [step["run"] for step in job.get("steps", []) if "run" in step]
    else:  # GitLab CI: every mapping with script lines (jobs, and `default`)
        for job in doc.values():
            if isinstance(job, dict):
                for key in ("before_script", "script", "after_script"):
                    lines = job.get(key) or []
                    out += [lines] if isinstance(lines, str) else list(lines)
    return out


def simple_commands(script: str) -> list[list[str]]:
    """The simple commands of a script, as argv lists, shell keywords and VAR= prefixes dropped."""
    script = script.replace("\\\n", " ")
    commands: list[list[str]] = []
    for line in script.splitlines():
        lex = shlex.shlex(line, posix=True, punctuation_chars=";&|()<>")
        lex.whitespace_split = True
        current: list[str] = []
        tokens = list(lex)
        i = 0
        while i < len(tokens):
            tok = tokens[i]
            if tok in OPERATORS:
                commands.append(current)
                current = []
            elif tok in REDIRECTS:
                i += 1  # and its target
            elif not current and (tok in SHELL_WORDS or re.fullmatch(r"[A-Za-z_]\w*=.*", tok)):
                pass
            else:
                current.append(tok)
            i += 1
        commands.append(current)
    return [c for c in commands if c]


def program(argv: list[str]) -> tuple[str, list[str]]:
    """(program name, its arguments); ``python -m pytest`` is pytest."""
    name = os.path.basename(argv[0])
    if re.fullmatch(r"python[\d.]*", name) and argv[1:2] == ["-m"] and len(argv) > 2:
        return argv[2], argv[3:]
    return name, argv[1:]


def checked_commands(path: Path) -> list[tuple[str, list[str]]]:
    found = [program(argv) for s in scripts(path) for argv in simple_commands(s)]
    return [(name, args) for name, args in found if name in CHECKED]


# -- validators: each returns the problems it found ----------------------------------------
def sessionstorm_problems(args: list[str]) -> list[str]:
    if not args or args[0] not in cli.SUBCOMMANDS:
        return [f"sessionstorm {args[:1]}: no such subcommand (known: {', '.join(cli.SUBCOMMANDS)})"]
    name, rest = args[0], args[1:]
    command = cli.LazyGroup(name="sessionstorm").get_command(click.Context(cli.cli), name)
    assert command is not None
    try:
        values, extra, _ = command.make_parser(click.Context(command, info_name=name)).parse_args(list(rest))
    except click.UsageError as e:
        return [f"sessionstorm {name}: {e.format_message()}"]
    if extra:  # click puts the arguments it knows in values; leftovers are extra
        return [f"sessionstorm {name}: unexpected extra arguments {extra}"]
    return [f"sessionstorm {name}: missing argument {p.human_readable_name}" for p in command.params
            if isinstance(p, click.Argument) and p.required and not _given(values.get(p.name))]


def _given(value: object) -> bool:
    """click leaves a missing argument as None or its UNSET sentinel (8.2+)."""
    return isinstance(value, str) or (isinstance(value, (tuple, list)) and len(value) > 0)


LOCUST_PROBE = r"""
import json, runpy, sys
argvs = json.loads(sys.argv[1])
from locust.argument_parser import get_parser
out = []
for argv in argvs:
    f = argv[argv.index("-f") + 1] if "-f" in argv else None
    if f:
        runpy.run_path(f, run_name="locustfile")  # registers the options it adds, as locust does
    parser = get_parser()
    errors = []
    parser.error = lambda msg: (errors.append(msg), (_ for _ in ()).throw(SystemExit(2)))
    try:
        _, unknown = parser.parse_known_args(argv)
    except SystemExit:
        unknown = []
    out.append({"unknown": unknown, "errors": errors})
print(json.dumps(out))
"""


def locust_problems(all_args: list[list[str]]) -> list[list[str]]:
    r = subprocess.run([sys.executable, "-c", LOCUST_PROBE, json.dumps(all_args)], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    results = json.loads(r.stdout.strip().splitlines()[-1])
    # an unknown option's value lands in `unknown` too: name the options only
    return [[f"locust: no such option {u}" for u in res["unknown"] if u.startswith("-")]
            + [f"locust: {e}" for e in res["errors"]]
            for res in results]


def _undashed(option: str) -> str:
    """pytest's help lists --junit-xml but not its alias --junitxml: it drops long options
    that differ only by dashes (DropShorterLongHelpFormatter), so compare without them."""
    return option[:2] + option[2:].replace("-", "") if option.startswith("--") else option


@cache
def pytest_options() -> frozenset[str]:
    r = subprocess.run([sys.executable, "-m", "pytest", "--help", "-p", "no:cacheprovider"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return frozenset(_undashed(o) for o in re.findall(r"(?:^|[\s,])(--?[A-Za-z][\w-]*)", r.stdout, flags=re.M))


def pytest_problems(args: list[str]) -> list[str]:
    problems = [f"pytest: no such option {a}" for a in args
                if a.startswith("-") and _undashed(a.split("=", 1)[0]) not in pytest_options()]
    paths = [a for i, a in enumerate(args) if not a.startswith("-") and (i == 0 or not args[i - 1].startswith("-"))]
    problems += [f"pytest: no such test path {p}" for p in paths if not (ROOT / p).exists()]
    return problems


# -- the tests ----------------------------------------------------------------------------
@pytest.mark.parametrize("path", CI_FILES, ids=lambda p: p.name)
def test_ci_file_has_the_documented_commands(path: Path) -> None:
    commands = checked_commands(path)
    joined = [" ".join([name, *args]) for name, args in commands]
    assert any(c.startswith("pytest regression -n auto --junitxml") for c in joined), joined
    soak = [args for name, args in commands if name == "locust"]
    assert len(soak) == 1, joined
    for opt in ("-f", "--headless", "-u", "-t", "--host", "--allow-remote", "--max-rps", "--max-requests"):
        assert opt in soak[0], (opt, soak[0])
    assert any(name == "sessionstorm" and args[:1] == ["compare"] for name, args in commands), joined


@pytest.mark.parametrize("path", CI_FILES, ids=lambda p: p.name)
def test_sessionstorm_and_pytest_commands_are_real(path: Path) -> None:
    problems = []
    for name, args in checked_commands(path):
        if name == "sessionstorm":
            problems += sessionstorm_problems(args)
        elif name == "pytest":
            problems += pytest_problems(args)
    assert not problems, problems


@pytest.mark.parametrize("path", CI_FILES, ids=lambda p: p.name)
def test_locust_commands_are_real(path: Path) -> None:
    argvs = [args for name, args in checked_commands(path) if name == "locust"]
    problems = [p for found in locust_problems(argvs) for p in found]
    assert not problems, f"{path.name}: {problems}"


def test_the_checks_can_fail() -> None:
    """Each validator flags a made-up command, so a green run means something."""
    bad_script = ("sessionstorm frobnicate x && sessionstorm compare a b --no-such-flag\n"
                  "sessionstorm compare a b c; sessionstorm report\n"
                  "pytest regression --no-such-pytest-flag -n auto\n"
                  "locust -f locustfiles/mixed.py --headless --no-such-locust-flag -u 5\n"
                  "locust -f locustfiles/mixed.py -u not-a-number\n")
    cmds = [program(a) for a in simple_commands(bad_script)]
    assert [c[0] for c in cmds] == ["sessionstorm"] * 4 + ["pytest", "locust", "locust"]
    assert "no such subcommand" in sessionstorm_problems(cmds[0][1])[0]
    assert "No such option" in sessionstorm_problems(cmds[1][1])[0]
    assert "unexpected extra arguments" in sessionstorm_problems(cmds[2][1])[0]
    assert sessionstorm_problems(cmds[3][1]) == ["sessionstorm report: missing argument RUN_DIR"]
    assert pytest_problems(cmds[4][1]) == ["pytest: no such option --no-such-pytest-flag"]
    ok = ["regression", "-n", "2", "--junit-xml=x", "--junitxml", "y", "--sessionstorm-backend", "e"]
    assert pytest_problems(ok) == []
    assert pytest_problems(["no-such-dir"]) == ["pytest: no such test path no-such-dir"]
    locust = locust_problems([cmds[5][1], cmds[6][1],
                              ["-f", "locustfiles/mixed.py", "--headless", "--target-bugs", "x", "-u", "5"]])
    assert locust[0] == ["locust: no such option --no-such-locust-flag"]
    assert locust[1] and "invalid" in locust[1][0]
    assert locust[2] == []  # an option the locustfile's plugin adds is known


def test_shell_splitting() -> None:
    script = ('status=0\nprev=$(gh run list --json x) && echo "a;b" >> "$OUT" || FOO=1 sessionstorm compare a b\n'
              'if [ -d p ]; then sessionstorm compare p n || status=1; fi\nlocust -f x.py \\\n  --headless\n')
    assert simple_commands(script) == [  # status=0 and prev=$ are assignments only
        ["gh", "run", "list", "--json", "x"], ["echo", "a;b"], ["sessionstorm", "compare", "a", "b"],
        ["[", "-d", "p", "]"], ["sessionstorm", "compare", "p", "n"], ["locust", "-f", "x.py", "--headless"]]
