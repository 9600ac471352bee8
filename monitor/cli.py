"""The command line; the only place that prints or exits."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from monitor import log
from monitor.config import Config, format_duration, load_config
from monitor.errors import ConfigError, EvalError, FetchError, MonitorError
from monitor.parse import parse_feed
from monitor.query import prepare

if TYPE_CHECKING:
    from monitor.config import TopicConfig
    from monitor.evaluate import FoldScores
    from monitor.schema import SchemaState
    from monitor.store import Store

T = TypeVar("T")

CONFIG_OPTION = click.option(
    "-c", "--config", "config_path", required=True, envvar="MONITOR_CONFIG",
    type=click.Path(dir_okay=False, path_type=Path), help="Config file (TOML). Env: MONITOR_CONFIG.",
)


def fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"monitor: {message}", err=True)
    sys.exit(code)


def user_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn every expected error into a clear message and exit 2 — never a traceback."""
    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConfigError as e:
            for problem in e.problems:
                click.echo(problem.format(e.path), err=True)
            sys.exit(2)
        except MonitorError as e:
            fail(str(e))
        except KeyboardInterrupt:  # Ctrl-C in once/match/check: committed work is kept
            fail("interrupted", 130)
    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
@click.option("--log-json", is_flag=True, help="Log one JSON object per line (or log_format = \"json\").")
@click.version_option(package_name="monitor")
@click.pass_context
def main(ctx: click.Context, log_level: str, log_json: bool) -> None:
    """monitor: hear about a story the minute it moves, and never twice."""
    log.setup(log_level, log_json)
    ctx.obj = {"log_level": log_level, "log_json": log_json}


def configure(config_path: Path) -> Config:
    """Load the config, then log as it says: log_format, and its secrets redacted."""
    config = load_config(config_path)
    options = click.get_current_context().find_root().obj or {}
    if config.settings.log_format == "json" and not options.get("log_json"):
        log.setup(options.get("log_level", "info"), True)
    log.redact(log.secrets_in(config))
    return config


@main.command()
@CONFIG_OPTION
@user_errors
def run(config_path: Path) -> None:
    """Run the daemon until SIGTERM/SIGINT; SIGHUP reloads the config."""
    from monitor.daemon import Daemon

    config = configure(config_path)

    async def serve() -> None:
        await Daemon(config).run()

    asyncio.run(serve())


@main.command()
@CONFIG_OPTION
@click.option("--all", "all_feeds", is_flag=True, help="Poll every feed, due or not.")
@user_errors
def once(config_path: Path, all_feeds: bool) -> None:
    """One pass: poll due feeds, deliver pending alerts, exit (1 if a delivery is failing)."""
    from monitor.daemon import run_once

    config = configure(config_path)
    sys.exit(asyncio.run(run_once(config, all_feeds=all_feeds)))


@main.command()
@CONFIG_OPTION
@user_errors
def check(config_path: Path) -> None:
    """Validate the config and that the database opens (never creating it)."""
    from monitor.store import Store, schema_problem

    config = configure(config_path)
    state, where = existing_database(config, config_path)
    problem = state and schema_problem(state, Store.display(config.settings.database),
                                       auto_migrate=config.settings.auto_migrate,
                                       config_path=str(config_path))
    if problem:
        fail(problem)
    click.echo(f"{config_path}: ok ({len(config.feeds)} feeds, {len(config.topics)} topics, "
               f"{len(config.webhooks)} webhooks)\ndatabase: {where}")


def existing_database(config: Config, config_path: Path) -> tuple[SchemaState | None, str]:
    """Open the database without creating it: its schema state (None: no database yet) and
    a line saying where it stands."""
    from monitor.store import Store, sqlite_file

    file = sqlite_file(config.settings.database)
    if file is not None and not file.exists():
        return None, f"not created yet ({file}; `monitor run` or `monitor db upgrade` creates it)"
    store = Store(config.settings.database)
    try:
        state = store.schema_state()
    finally:
        store.close()
    if state.empty:
        return state, "empty (`monitor run` or `monitor db upgrade` creates the schema)"
    if state.up_to_date:
        return state, f"schema {state.current}, current"
    if not state.known:
        return state, f"schema {state.current}, newer than this monitor knows ({state.head})"
    upgrade = "upgraded at start (auto_migrate)" if config.settings.auto_migrate else \
        f"run `monitor db upgrade -c {config_path}`"
    return state, f"schema {state.current}, behind {state.head}: {upgrade}"


@main.command("test-webhook")
@CONFIG_OPTION
@click.argument("name")
@user_errors
def test_webhook(config_path: Path, name: str) -> None:
    """Send one sample alert to webhook NAME and show the response."""
    from monitor.deliver import Sender
    from monitor.formats import sample_message

    config = configure(config_path)
    hook = next((w for w in config.webhooks if w.name == name), None)
    if hook is None:
        known = ", ".join(w.name for w in config.webhooks) or "none configured"
        fail(f"no webhook named {name!r} (known: {known})")

    async def send() -> Any:
        async with Sender() as sender:
            now = datetime.now(UTC)
            return await sender.send(sample_message(now), hook, now=now)

    outcome = asyncio.run(send())
    result = f"HTTP {outcome.status}" if outcome.status is not None else outcome.error
    click.echo(f"{name} ({hook.format}) → {result} in {outcome.elapsed_ms} ms")
    if not outcome.ok and outcome.error and outcome.status is not None:
        click.echo(f"error: {outcome.error}")
    sys.exit(0 if outcome.ok else 1)


@main.command()
@CONFIG_OPTION
@click.option("--topic", "topic_names", multiple=True, help="Only this topic (repeatable).")
@click.option("--explain", is_flag=True,
              help="Also show, per item and topic, which clauses held and which failed.")
@click.argument("source")
@user_errors
def match(config_path: Path, topic_names: tuple[str, ...], explain: bool, source: str) -> None:
    """Dry run: show which topics each item of SOURCE (a feed file or URL) matches."""
    from monitor.explain import explain as explain_match
    from monitor.explain import render
    from monitor.topic_index import TopicIndex

    config = configure(config_path)
    topics = [t for t in config.topics if not topic_names or t.name in topic_names]
    unknown = set(topic_names) - {t.name for t in config.topics}
    if unknown:
        fail(f"no topic named {', '.join(sorted(unknown))}")
    index = TopicIndex((t, t.query) for t in topics)
    body, url, headers = read_source(source, config)
    parsed = parse_feed(body, url=url, headers=headers)
    if parsed.problem:
        click.echo(f"warning: {parsed.problem}", err=True)
    hits = 0
    for item in parsed.items:
        doc = prepare(item.title, item.summary)
        matches = index.matches(doc)
        hits += bool(matches)
        click.echo(f"{'*' if matches else ' '} {item.title or '(untitled)'}")
        if item.link:
            click.echo(f"    {item.link}")
        if not explain:
            for topic, words in matches:
                click.echo(f"    → {topic.name}: {', '.join(words)}")
            continue
        matched = {topic.name: words for topic, words in matches}
        # Besides the matches, the topics that hold a word they need but did not match
        # (or every topic named with --topic): the others cannot match this item.
        for ordinal in range(len(topics)) if topic_names else index.candidates(doc):
            topic = topics[ordinal]
            found = matched.get(topic.name)
            click.echo(f"    → {topic.name}: {', '.join(found)}" if found else f"    ✗ {topic.name}: no match")
            click.echo("\n".join(render(explain_match(topic.query, doc), "        ")))
    click.echo(f"{len(parsed.items)} items, {hits} matching")


def read_source(source: str, config: Config) -> tuple[bytes, str, dict[str, str]]:
    """A feed's bytes from a URL (fetched, no state kept) or a local file."""
    if source.startswith(("http://", "https://")):
        from monitor.fetch import Fetcher

        async def get() -> Any:
            async with Fetcher(timeout=config.settings.timeout.total_seconds()) as fetcher:
                return await fetcher.fetch(source)
        try:
            result = asyncio.run(get())
        except FetchError as e:
            fail(f"cannot fetch {source}: {e}")
        return result.body, result.url, result.headers
    path = Path(source)
    try:
        return path.read_bytes(), path.resolve().as_uri(), {}
    except OSError as e:
        fail(f"cannot read {source}: {e.strerror}")


@main.command("eval")
@CONFIG_OPTION
@click.argument("labels", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--corpus", type=click.Path(file_okay=False, path_type=Path), envvar="MONITOR_CORPUS", metavar="DIR",
              help="The shared corpus (or its headlines/ folder). Env: MONITOR_CORPUS; "
                   "default: ../shared/corpus beside the repository.")
@click.option("--topic", "topic_names", multiple=True, metavar="NAME", help="Only this topic (repeatable).")
@click.option("--folds", type=click.IntRange(min=2), metavar="K", help="Also score each of K folds of the labels.")
@click.option("--fold", "only_folds", type=click.IntRange(min=0), multiple=True, metavar="I",
              help="With --folds: score and list only the items of fold I (repeatable), "
                   "keeping the other folds unseen while tuning.")
@click.option("--show-errors", type=click.IntRange(min=0), default=10, show_default=True, metavar="N",
              help="List at most N false positives and N false negatives per topic (0: none).")
@click.option("--min-f1", type=click.FloatRange(0, 1), metavar="X",
              help="Exit 1 if a topic's F1 (and, with --folds, its mean fold F1) is below X.")
@user_errors
def eval_(config_path: Path, labels: Path | None, corpus: Path | None, topic_names: tuple[str, ...],
          folds: int | None, only_folds: tuple[int, ...], show_errors: int, min_f1: float | None) -> None:
    """Precision, recall and F1 of each topic on labelled items, and what it got wrong.

    LABELS is a labels TSV (default: the corpus's headlines/labels-dev.tsv); its items are
    read from items.jsonl beside it, else from the corpus. Exit 1 when --min-f1 is missed."""
    from monitor import evaluate

    if only_folds and not folds:
        fail("--fold needs --folds K")
    if folds and (outside := sorted({f for f in only_folds if f >= folds})):
        fail(f"--fold {outside[0]} is not a fold of {folds} (folds are 0 to {folds - 1})")
    config = configure(config_path)
    labels_path, items_path = labelled_files(labels, corpus)
    labelled = read_labelled(labels_path, evaluate.read_labels)
    topics = labelled_topics(config, config_path, topic_names, labels_path, evaluate.labelled_topics(labelled))
    items = read_labelled(items_path, lambda lines: list(evaluate.read_items(lines)))
    try:
        verdicts = evaluate.judge(items, labelled, topics)
    except EvalError as e:
        fail(f"{labels_path}: {e} (items from {items_path})")
    names = [t.name for t in topics]

    split = evaluate.split_folds(labelled, folds) if folds else []
    chosen = sorted(set(only_folds)) or None
    only = set().union(*(split[f] for f in chosen)) if chosen else None
    scope = f", folds {', '.join(map(str, chosen))} only: {len(only or ())} items" if chosen else ""
    click.echo(f"{labels_path}: {len(labelled)} labelled items{scope}\n")
    scores = evaluate.score(verdicts, names, only)
    click.echo(f"{'topic':<28} {'pos':>4} {'TP':>4} {'FP':>4} {'FN':>4} {'precision':>9} {'recall':>6} {'F1':>6}")
    for s in scores:
        click.echo(f"{s.topic:<28} {s.positives:>4} {s.tp:>4} {s.fp:>4} {s.fn:>4} "
                   f"{s.precision:>9.3f} {s.recall:>6.3f} {s.f1:>6.3f}")
    by_fold = evaluate.cross_validate(verdicts, names, folds, chosen) if folds else []
    if by_fold:
        echo_folds(by_fold, split)
    if show_errors:
        titles = {item.id: item.title for item in items}
        for m in evaluate.misses(verdicts, names, only):
            for kind, ids in (("false positives", m.false_positives), ("false negatives", m.false_negatives)):
                click.echo(f"\n{m.topic}: {len(ids)} {kind}")
                for item_id in ids[:show_errors]:
                    where = f"[fold {evaluate.fold_of(item_id, len(split))}] " if split else ""
                    click.echo(f"  {item_id}  {where}{titles[item_id] or '(untitled)'}")
                if len(ids) > show_errors:
                    click.echo(f"  ... and {len(ids) - show_errors} more")

    if min_f1 is not None:
        below = [f"{s.topic} F1 {s.f1:.3f}" for s in scores if s.f1 < min_f1]
        below += [f"{f.topic} mean fold F1 {f.mean_f1:.3f}" for f in by_fold if f.mean_f1 < min_f1]
        if below:
            fail(f"below --min-f1 {min_f1:g}: {'; '.join(below)}", 1)


def echo_folds(by_fold: list[FoldScores], split: list[set[str]]) -> None:
    """The cross-validation table: each topic's F1 per fold, its mean and its minimum."""
    shown = [n for n, _ in by_fold[0].folds]
    click.echo(f"\nF1 per fold ({len(split)} folds by a hash of the item id; a fold is held out "
               "from tuning done on the others)")
    click.echo(f"{'topic':<28} " + " ".join(f"{'fold ' + str(n):>6}" for n in shown) + f" {'mean':>6} {'min':>6}")
    click.echo(f"{'items':<28} " + " ".join(f"{len(split[n]):>6}" for n in shown))
    for f in by_fold:
        click.echo(f"{f.topic:<28} " + " ".join(f"{s.f1:>6.3f}" for _, s in f.folds)
                   + f" {f.mean_f1:>6.3f} {f.min_f1:>6.3f}")
        click.echo(f"{'  positives':<28} " + " ".join(f"{s.positives:>6}" for _, s in f.folds))


def labelled_topics(config: Config, config_path: Path, names: tuple[str, ...], labels_path: Path,
                    with_labels: set[str]) -> list[TopicConfig]:
    """The topics `eval` scores: those named (each must have labels), else every labelled one."""
    if unknown := sorted(set(names) - {t.name for t in config.topics}):
        fail(f"no topic named {', '.join(unknown)} in {config_path}")
    if names:
        topics = [t for t in config.topics if t.name in names]
        if unlabelled := [t.name for t in topics if t.name not in with_labels]:
            fail(f"{labels_path} has no labels for topic {', '.join(unlabelled)}")
        return topics
    topics = [t for t in config.topics if t.name in with_labels]
    if not topics:
        fail(f"{labels_path} labels none of the topics in {config_path} "
             f"(it labels: {', '.join(sorted(with_labels)) or 'nothing'})")
    for t in config.topics:
        if t.name not in with_labels:
            click.echo(f"(topic {t.name} has no labels in {labels_path.name}; not scored)", err=True)
    return topics


def labelled_files(labels: Path | None, corpus: Path | None) -> tuple[Path, Path]:
    """The labels TSV and the items.jsonl that `eval` reads."""
    corpus = corpus or Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"
    headlines = corpus / "headlines" if (corpus / "headlines").is_dir() else corpus
    if labels is not None:
        if not labels.is_file():
            fail(f"no labels file {labels}")
        beside = labels.parent / "items.jsonl"
        items = beside if beside.is_file() else headlines / "items.jsonl"
        if not items.is_file():
            fail(f"no items.jsonl beside {labels} nor in the corpus at {corpus} "
                 "(pass --corpus DIR or set MONITOR_CORPUS)")
        return labels, items
    labels = headlines / "labels-dev.tsv"
    if not (headlines / "items.jsonl").is_file() or not labels.is_file():
        fail(f"no labelled corpus at {corpus} (items.jsonl and labels-dev.tsv, or headlines/ "
             "holding them); pass --corpus DIR or set MONITOR_CORPUS")
    return labels, headlines / "items.jsonl"


def read_labelled(path: Path, reader: Callable[[list[str]], T]) -> T:
    """A labels or items file through its reader; a malformed line is one message naming it."""
    try:
        return reader(read_lines(path))
    except EvalError as e:
        fail(f"{path}: {e}")


def read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        fail(f"cannot read {path}: {getattr(e, 'strerror', None) or e}")


@main.command()
@CONFIG_OPTION
@user_errors
def status(config_path: Path) -> None:
    """Feeds (last poll, result, next poll, errors), failing deliveries, counts."""
    # status reads; it upgrades only where the config allows it, and never creates a file.
    config, store = work_store(config_path)
    try:
        feeds, counts, problems = store.feed_rows(), store.counts(), store.problem_alerts()
        pending, held = store.pending_by_webhook(), store.held_by_webhook()
        window = config.settings.story_window
        story_count, widest = store.top_stories(since=datetime.now(UTC) - window)
        notes = webhook_notes(config, store.disabled_webhooks(), pending)
    finally:
        store.close()
    click.echo(f"feeds ({len(feeds)}):")
    for f in feeds:
        label = f["name"] or f["title"] or f["url"]
        state = "" if f["active"] else " [not in config]"
        click.echo(f"  {label}{state}\n    {f['url']}")
        if f["moved_to"]:
            click.echo(f"    moved to {f['moved_to']} (a permanent redirect; polled there)")
        click.echo(f"    last poll {when(f['last_poll_at'])}: {f['last_result'] or 'never polled'}; "
                   f"next {when(f['next_poll_at'])}; errors {f['error_count']}")
        if f["gone_at"]:
            click.echo(f"    gone since {when(f['gone_at'])} (HTTP 410): not polled until the daemon "
                       "is restarted or reloaded")
        else:
            every = format_duration(timedelta(seconds=f["interval_s"]))
            click.echo(f"    every {every} ({f['interval_reason'] or 'fixed by the config'})")
    click.echo("webhooks:")
    for name in [w.name for w in config.webhooks] + sorted(set(pending) - {w.name for w in config.webhooks}):
        in_digest = f" ({held[name]} for a digest)" if held.get(name) else ""
        click.echo(f"  {name}: {notes.get(name, 'enabled')}; {pending.get(name, 0)} pending{in_digest}")
    click.echo(f"stories (last {format_duration(window)}): {story_count}"
               + (", the most widely reported:" if widest else ""))
    for story in widest:
        click.echo(f"  {story['sources']} sources, last {when(story['last_seen_at'])}: {story['title']}\n"
                   f"    {sources_line(story['source_names'], story['sources'])}")
    click.echo("counts: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    if problems:
        click.echo("failing deliveries:")
        for a in problems:
            retry = f", next try {when(a['next_attempt_at'])}" if a["status"] == "pending" else ""
            click.echo(f"  {a['id']} {a['status']} {a['topic']} → {a['webhook']} "
                       f"after {a['attempts']} attempts{retry}: {a['last_error']}\n    {a['title']}")


def sources_line(names: list[str], sources: int, shown: int = 10) -> str:
    """"3 sources: A, B, C" (at most `shown` names, then how many more)."""
    if not names:
        return f"{sources} sources"
    more = sources - min(len(names), shown)
    return f"{sources} sources: " + ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")


def webhook_notes(config: Config, disabled: dict[str, tuple[datetime, str]],
                  pending: dict[str, int]) -> dict[str, str]:
    """Why a webhook's alerts do not go out: switched off by a 410, or gone from the config."""
    notes = {name: f"disabled since {when(since)} ({reason}); a reload enables it"
             for name, (since, reason) in disabled.items()}
    configured = {w.name for w in config.webhooks}
    for name in pending:
        if name not in configured:
            notes[name] = "not in the config: its alerts wait until it is added back"
    return notes


@main.command()
@CONFIG_OPTION
@click.option("--pending", "status", flag_value="pending", help="Only alerts still to be delivered.")
@click.option("--failed", "status", flag_value="failed", help="Only dead letters.")
@click.option("--delivered", "status", flag_value="delivered", help="Only delivered alerts.")
@click.option("--topic", help="Only this topic.")
@click.option("--webhook", help="Only this webhook.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON array instead of text.")
@user_errors
def alerts(config_path: Path, status: str | None, topic: str | None, webhook: str | None,
           limit: int, as_json: bool) -> None:
    """Alerts newest first: id, topic, webhook, status, attempts, last error, title."""
    import json

    config, store = work_store(config_path)
    try:
        rows = store.list_alerts(status=status, topic=topic, webhook=webhook, limit=limit)
        notes = webhook_notes(config, store.disabled_webhooks(), store.pending_by_webhook())
    finally:
        store.close()
    for row in rows:
        row["waiting"] = notes.get(row["webhook"]) if row["status"] == "pending" else None
    if as_json:
        click.echo(json.dumps(rows, default=lambda v: v.isoformat().replace("+00:00", "Z"),
                              ensure_ascii=False, indent=2))
        return
    for row in rows:
        error = f": {row['last_error']}" if row["last_error"] else ""
        click.echo(f"{row['id']} {row['status']:<9} {row['topic']} → {row['webhook']} "
                   f"{when(row['created_at'])}, {row['attempts']} attempts{error}")
        click.echo(f"    {row['title']}")
        if row["kind"] == "follow_up":
            click.echo(f"    follow-up: the story has reached {row['sources']} sources")
        if row["sources"] > 1:
            click.echo(f"    reported by {sources_line(row['source_names'], row['sources'])}")
        if row["digest_id"]:
            click.echo(f"    in digest {row['digest_id']}")
        elif row["hold_until"] and row["status"] == "pending":
            click.echo(f"    held for a digest until {when(row['hold_until'])}")
        if row["waiting"]:
            click.echo(f"    waiting: {row['waiting']}")
    click.echo(f"{len(rows)} alerts")


@main.command()
@CONFIG_OPTION
@click.argument("ids", nargs=-1)
@click.option("--failed", "failed", is_flag=True, help="Every dead letter (of --webhook W).")
@click.option("--webhook", help="With --failed: only this webhook's.")
@user_errors
def redeliver(config_path: Path, ids: tuple[str, ...], failed: bool, webhook: str | None) -> None:
    """Queue alerts again, keeping their webhook-id: IDs, or --failed [--webhook W].

    An alert that went out in a digest goes again in that digest (a digest id may be given
    too)."""
    if bool(ids) == failed:
        fail("give alert IDs, or --failed (with --webhook W for one webhook's)")
    if webhook and not failed:
        fail("--webhook goes with --failed")
    _, store = work_store(config_path)
    try:
        queued, unknown = store.requeue(now=datetime.now(UTC), ids=ids, all_failed=failed,
                                        failed_for=webhook)
    finally:
        store.close()
    if unknown:
        fail(f"no alert or digest with id {', '.join(unknown)}; nothing queued")
    click.echo(f"queued {queued} alerts; the daemon (or `monitor once`) delivers them")


def work_store(config_path: Path) -> tuple[Config, Store]:
    """The config, and its database past the schema gate, for a command that reads it."""
    from monitor.store import open_store, sqlite_file

    config = configure(config_path)
    file = sqlite_file(config.settings.database)
    if file is not None and not file.exists():
        fail(f"no database at {file} yet: nothing has been polled (`monitor run` creates it)")
    return config, open_store(config.settings.database, auto_migrate=config.settings.auto_migrate,
                              config_path=str(config_path))


def when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if moment else "-"


@main.group()
def db() -> None:
    """The database schema and retention."""


@db.command("upgrade")
@CONFIG_OPTION
@user_errors
def db_upgrade(config_path: Path) -> None:
    """Create the schema or migrate it to the current revision (harmless when current)."""
    from monitor.store import Store

    config = configure(config_path)
    store = Store(config.settings.database)
    try:
        before, after = store.upgrade()
    finally:
        store.close()
    if before.current == after.current:
        click.echo(f"{store.display_url}: schema {after.current} is current; nothing to do")
    else:
        click.echo(f"{store.display_url}: schema upgraded from {before.current or 'none'} to {after.current}")


@db.command("current")
@CONFIG_OPTION
@user_errors
def db_current(config_path: Path) -> None:
    """Print the schema revision and whether it is current (exit 1 when behind)."""
    from monitor.store import Store

    config = configure(config_path)
    state, where = existing_database(config, config_path)
    click.echo(f"{Store.display(config.settings.database)}: {where}")
    sys.exit(0 if state and state.up_to_date else 1)


@db.command("prune")
@CONFIG_OPTION
@user_errors
def db_prune(config_path: Path) -> None:
    """Apply `retention` now, as the daemon's maintenance job does."""
    from monitor.daemon import Service

    config = configure(config_path)

    async def go() -> None:
        service = Service(config)
        try:
            stats = await asyncio.to_thread(service.prune)
        finally:
            await service.aclose()
        click.echo(f"pruned {stats.items} items, {stats.alerts} alerts, {stats.attempts} attempts, "
                   f"{stats.tombstones} tombstones and {stats.stories} stories "
                   f"(retention {format_duration(config.settings.retention)}), and {stats.prints} story prints "
                   f"(story_window {format_duration(config.settings.story_window)}) in {stats.batches} batches")

    asyncio.run(go())
