"""The README documents what the code has (sqlite-utils' habit): commands, config keys,
formats, and the two commands CI runs."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from monitor import config
from monitor.cli import main

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()


def command_names(group: click.Group, prefix: str = "") -> list[str]:
    """Every leaf command, with its group: "run", "db upgrade", ..."""
    names = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            names += command_names(command, f"{prefix}{name} ")
        else:
            names.append(f"{prefix}{name}")
    return sorted(names)


@pytest.mark.parametrize("command", command_names(main))
def test_every_command_is_documented(command: str) -> None:
    assert f"`monitor {command} -c FILE" in README


def test_every_command_option_is_documented() -> None:
    def commands(group: click.Group) -> list[click.Command]:
        return [c for command in group.commands.values()
                for c in (commands(command) if isinstance(command, click.Group) else [command])]
    options = {opt for command in commands(main) for param in command.params if isinstance(param, click.Option)
               for opt in param.opts if opt.startswith("--") and opt != "--config"}  # --config is `-c FILE`
    missing = sorted(opt for opt in options if opt not in README)
    assert not missing, f"options missing from the README: {', '.join(missing)}"


@pytest.mark.parametrize("table, keys", [
    ("[monitor]", config._SETTINGS_KEYS), ("[server]", config._SERVER_KEYS),
    ("[[webhooks]]", config._WEBHOOK_KEYS),
    ("[[feeds]]", config._FEED_KEYS), ("[[topics]]", config._TOPIC_KEYS),
])
def test_every_config_key_is_documented(table: str, keys: tuple[str, ...]) -> None:
    section = README.split(f"### `{table}`", 1)[1].split("\n### ", 1)[0]
    for key in keys:
        assert f"| `{key}` |" in section, f"{table} {key} missing from the README"


@pytest.mark.parametrize("fmt", config.FORMATS)
def test_every_format_is_documented(fmt: str) -> None:
    assert f"| `{fmt}` |" in README or fmt == "json"


def test_ci_runs_exactly_the_readme_commands() -> None:
    block = README.split("## Set up and test", 1)[1].split("##", 1)[0]
    commands = re.findall(r"^    (\S.*?)\s+# ", block, flags=re.M)
    ci = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.lstrip().startswith(("#", "set ", "cd ", "if ", "fi", "pg_ctlcluster"))]
    assert commands == ci == ["pip install -e '.[dev]'", "python -m pytest"]


def test_every_log_event_is_in_the_logs_table() -> None:
    # `event("name"` or `event(\n    "name"` in every module and subpackage, and the odd
    # `logger.error("name", extra={"fields": ...})`, which comes out as an event too.
    calls = r'\b(?:event\(\s*"([^"]+)"|logger\.\w+\(\s*"([^"]+)",\s*extra=\{"fields")'
    emitted = {name for path in sorted((REPO / "monitor").rglob("*.py"))
               for names in re.findall(calls, path.read_text()) for name in names if name}
    emitted.add("library_log")  # written by the formatter for every record not our own
    section = re.split(r"\n#{1,3} ", README.split("\n### Logs\n", 1)[1], maxsplit=1)[0]
    missing = sorted(name for name in emitted if f"| `{name}` |" not in section)
    assert not missing, f"events missing from the README's ### Logs table: {', '.join(missing)}"
