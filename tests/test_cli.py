"""The commands as a user runs them: exit codes, output, and no traceback on user errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.feedserver import FeedServer, rss
from tests.support.receiver import Receiver

REPO = Path(__file__).resolve().parent.parent
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def monitor(*args: str, cwd: Path | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "monitor", *args], capture_output=True,
                          text=True, timeout=60, cwd=cwd, env={**os.environ, **(env or {})})


def write(tmp_path: Path, hook_url: str = "http://127.0.0.1:9/hook", feed_url: str = "http://127.0.0.1:9/f.xml",
          database: str = "sqlite:///state.db") -> Path:
    path = tmp_path / "monitor.toml"
    path.write_text(f'''
[monitor]
database = "{database}"

[[webhooks]]
name = "ops"
url = "{hook_url}"
secret = "{SECRET}"

[[feeds]]
url = "{feed_url}"
name = "Local"

[[topics]]
name = "peace"
query = '"peace talks" OR ceasefire'

[[topics]]
name = "arms"
query = '{{New START}}'
''')
    return path


def test_check_accepts_a_valid_config(tmp_path: Path) -> None:
    result = monitor("check", "-c", str(write(tmp_path)))
    assert result.returncode == 0, result.stderr
    assert "ok (1 feeds, 2 topics, 1 webhooks)" in result.stdout
    # check never creates the database; it says where it will be (beside the config)
    assert not (tmp_path / "state.db").exists()
    assert f"database: not created yet ({tmp_path / 'state.db'}" in result.stdout


def test_check_lists_every_problem_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[monitor]\ninterval = "soon"\n\n[[topics]]\nname = "x"\nquery = "a AND"\n'
                    'webhooks = ["nope"]\n')
    result = monitor("check", "-c", str(path))
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"{path}:2: monitor.interval: ")
    assert any(line.startswith(f"{path}:6: topics[0].query: ") for line in lines)
    assert f'{path}:7: topics[0].webhooks[0]: no webhook named "nope"' in lines
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args, message", [
    (["check", "-c", "missing.toml"], "cannot read config"),
    (["once", "-c", "missing.toml"], "cannot read config"),
    (["run", "-c", "missing.toml"], "cannot read config"),
])
def test_missing_config_is_one_clear_line(tmp_path: Path, args: list[str], message: str) -> None:
    result = monitor(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("command", ["check", "status", "once", "run", "db upgrade", "db current"])
def test_unreachable_database_is_one_clear_line_without_its_password(tmp_path: Path, command: str) -> None:
    config = write(tmp_path, database="postgresql+psycopg://postgres:s3cr3t-pw@127.0.0.1:1/none")
    result = monitor(*command.split(), "-c", str(config))
    assert result.returncode == 2
    assert result.stderr.startswith("monitor: cannot open database postgresql+psycopg://postgres:***@127.0.0.1:1/none: ")
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1
    assert "s3cr3t-pw" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) == 1


def test_match_shows_topics_and_words_without_touching_state(tmp_path: Path) -> None:
    feed = tmp_path / "feed.xml"
    feed.write_bytes(rss([
        {"title": "Envoys agree ceasefire", "guid": "1", "link": "https://n.example/1"},
        {"title": "Talks on New START resume", "guid": "2", "description": "Peace talks too."},
        {"title": "A new start for the club", "guid": "3"},
    ]))
    config = write(tmp_path)
    result = monitor("match", "-c", str(config), str(feed))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "* Envoys agree ceasefire\n    https://n.example/1\n    → peace: ceasefire\n" in out
    assert "→ peace: peace talks" in out and "→ arms: New START" in out
    assert "  A new start for the club\n" in out
    assert out.rstrip().endswith("3 items, 2 matching")
    assert not (tmp_path / "state.db").exists()

    only_arms = monitor("match", "-c", str(config), "--topic", "arms", str(feed))
    assert "→ peace" not in only_arms.stdout and "1 matching" in only_arms.stdout
    unknown = monitor("match", "-c", str(config), "--topic", "nope", str(feed))
    assert unknown.returncode == 2 and "no topic named nope" in unknown.stderr


def test_match_explain_shows_which_clauses_held(tmp_path: Path) -> None:
    feed = tmp_path / "feed.xml"
    feed.write_bytes(rss([
        {"title": "Envoys agree ceasefire", "guid": "1"},
        {"title": "Peace and talks", "guid": "2"},
    ]))
    result = monitor("match", "-c", str(write(tmp_path)), "--explain", str(feed))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "* Envoys agree ceasefire\n    → peace: ceasefire\n" in out
    assert '✓ ceasefire (title)' in out and '✗ "peace talks"' in out
    # a candidate that holds the words of its phrase but not in order: shown, not matched
    assert "  Peace and talks\n    ✗ peace: no match\n" in out
    assert out.rstrip().endswith("2 items, 1 matching")


def test_match_fetches_a_url(tmp_path: Path) -> None:
    with FeedServer() as server:
        server.set("/f.xml", rss([{"title": "Ceasefire holds", "guid": "1"}]))
        result = monitor("match", "-c", str(write(tmp_path)), server.url("/f.xml"))
    assert result.returncode == 0 and "→ peace: ceasefire" in result.stdout


def test_test_webhook_sends_a_signed_sample(tmp_path: Path) -> None:
    with Receiver(secret=SECRET) as receiver:
        config = write(tmp_path, hook_url=receiver.url())
        result = monitor("test-webhook", "-c", str(config), "ops")
        assert result.returncode == 0, result.stderr
        assert "ops (json) → HTTP 200" in result.stdout
        [sample] = receiver.received
        assert sample.verified and sample.json["type"] == "monitor.alert"

        receiver.respond([500])
        failed = monitor("test-webhook", "-c", str(config), "ops")
        assert failed.returncode == 1 and "HTTP 500" in failed.stdout
    unknown = monitor("test-webhook", "-c", str(config), "nope")
    assert unknown.returncode == 2 and "no webhook named 'nope' (known: ops)" in unknown.stderr


def test_once_then_status(tmp_path: Path, database_url: str) -> None:
    with FeedServer() as server, Receiver(secret=SECRET) as receiver:
        server.set("/f.xml", rss([{"title": "Old ceasefire", "guid": "1"}]))
        config = write(tmp_path, database=database_url, hook_url=receiver.url(), feed_url=server.url("/f.xml"))
        assert monitor("once", "-c", str(config)).returncode == 0
        server.set("/f.xml", rss([{"title": "New ceasefire", "guid": "2"}, {"title": "Old ceasefire", "guid": "1"}]))
        first = monitor("once", "-c", str(config))
        assert first.returncode == 0, first.stderr  # not due yet: nothing polled
        assert receiver.received == []
        second = monitor("once", "--all", "-c", str(config))
        assert second.returncode == 0, second.stderr
        assert [r.json["data"]["item"]["title"] for r in receiver.received] == ["New ceasefire"]
        assert "event=pass_done feeds=1" in second.stderr

        status = monitor("status", "-c", str(config))
    assert status.returncode == 0, status.stderr
    assert "  Local\n" in status.stdout and "200 new=1" in status.stdout
    assert "alerts_delivered=1" in status.stdout and "items=2" in status.stdout
    assert SECRET not in status.stdout


def test_once_exits_1_while_a_delivery_is_failing(tmp_path: Path, database_url: str) -> None:
    with FeedServer() as server, Receiver(secret=SECRET) as receiver:
        server.set("/f.xml", rss([]))
        config = write(tmp_path, database=database_url, hook_url=receiver.url(), feed_url=server.url("/f.xml"))
        monitor("once", "-c", str(config))
        server.set("/f.xml", rss([{"title": "Ceasefire", "guid": "9"}]))
        receiver.respond([503])
        result = monitor("once", "--all", "-c", str(config))
        assert result.returncode == 1
        assert "event=delivery_retry" in result.stderr
        status = monitor("status", "-c", str(config))
    assert "failing deliveries:" in status.stdout and "HTTP 503" in status.stdout


def test_dead_letters_are_listed_and_redelivered_with_their_id(tmp_path: Path, database_url: str) -> None:
    with FeedServer() as server, Receiver(secret=SECRET) as receiver:
        server.set("/f.xml", rss([]))
        config = str(write(tmp_path, database=database_url, hook_url=receiver.url(), feed_url=server.url("/f.xml")))
        monitor("once", "-c", config)
        server.set("/f.xml", rss([{"title": "Ceasefire agreed", "guid": "9"},
                                  {"title": "New START talks", "guid": "10"}]))
        receiver.respond([403, 403])  # permanent: both dead letters at once
        assert monitor("once", "--all", "-c", config).returncode == 1
        dead_ids = {r.headers["webhook-id"] for r in receiver.requests}

        listed = monitor("alerts", "--failed", "--json", "-c", config)
        assert listed.returncode == 0, listed.stderr
        rows = json.loads(listed.stdout)
        assert {r["id"] for r in rows} == dead_ids
        assert {(r["status"], r["attempts"], r["last_error"]) for r in rows} == {("failed", 1, "HTTP 403")}
        text = monitor("alerts", "--topic", "arms", "-c", config).stdout
        assert "failed" in text and "New START talks" in text and "Ceasefire agreed" not in text

        unknown = monitor("redeliver", "NOPE", "-c", config)
        assert unknown.returncode == 2 and "no alert or digest with id NOPE; nothing queued" in unknown.stderr
        assert monitor("redeliver", "-c", config).returncode == 2  # IDs or --failed
        queued = monitor("redeliver", "--failed", "--webhook", "ops", "-c", config)
        assert queued.returncode == 0 and "queued 2 alerts" in queued.stdout
        assert monitor("once", "-c", config).returncode == 0
        redelivered = [r for r in receiver.received]
        assert {r.headers["webhook-id"] for r in redelivered} == dead_ids
        assert all(r.verified for r in redelivered)
        assert json.loads(monitor("alerts", "--delivered", "--json", "-c", config).stdout)[0]["attempts"] == 1


def test_status_shows_alerts_waiting_for_a_removed_webhook(tmp_path: Path, database_url: str) -> None:
    with FeedServer() as server:
        server.set("/f.xml", rss([]))
        config = write(tmp_path, database=database_url, feed_url=server.url("/f.xml"))
        monitor("once", "-c", str(config))
        server.set("/f.xml", rss([{"title": "Ceasefire agreed", "guid": "9"}]))
        monitor("once", "--all", "-c", str(config))  # the webhook is unreachable: pending
        config.write_text(config.read_text().replace('name = "ops"', 'name = "ops2"'))
        status = monitor("status", "-c", str(config))
        pending = monitor("alerts", "--pending", "-c", str(config))
    assert "  ops2: enabled; 0 pending" in status.stdout
    assert "  ops: not in the config: its alerts wait until it is added back; 1 pending" in status.stdout
    assert "waiting: not in the config" in pending.stdout


# --- eval, on a corpus of six invented headlines -----------------------------------
# write()'s topics: peace = '"peace talks" OR ceasefire', arms = '{New START}'.
# Their folds of 2 (a hash of the id): fold 0 = p2, p4, p5, p6; fold 1 = p1, p3.
HEADLINES = [
    # id, title, summary, peace label, arms label → peace verdict, arms verdict
    ("p1", "Envoys agree ceasefire", "", 1, 0),                        # TP, TN
    ("p2", "Talks on New START resume", "Peace talks too.", 0, 1),     # FP, TP
    ("p3", "A new start for the club", "", 0, 0),                      # TN, TN
    ("p4", "Kyiv and Moscow open negotiations", "", 1, 0),             # FN, TN
    ("p5", "New START expires with no successor", "", 0, 1),           # TN, TP
    ("p6", "Nuclear treaty talks stall", "", 0, 1),                    # TN, FN
]


def write_corpus(root: Path, topics: tuple[str, ...] = ("peace", "arms")) -> Path:
    """root/headlines/{items.jsonl,labels-dev.tsv}, the shared corpus's layout; returns root."""
    headlines = root / "headlines"
    headlines.mkdir(parents=True)
    (headlines / "items.jsonl").write_text("".join(
        json.dumps({"id": i, "title": t, "summary": s}) + "\n" for i, t, s, *_ in HEADLINES))
    columns = [("peace", 3), ("arms", 4)]
    rows = ["# invented", "\t".join(["id", *topics])]
    rows += ["\t".join([h[0], *(str(h[n]) for name, n in columns if name in topics)]) for h in HEADLINES]
    (headlines / "labels-dev.tsv").write_text("\n".join(rows) + "\n")
    return root


def table_row(out: str, first: str) -> list[str]:
    return next(line.split() for line in out.splitlines() if line.split()[:1] == [first])


def test_eval_scores_each_topic_and_lists_what_it_got_wrong(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus")
    result = monitor("eval", "-c", str(write(tmp_path)), "--corpus", str(corpus))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith(f"{corpus / 'headlines' / 'labels-dev.tsv'}: 6 labelled items\n")
    #                                 pos TP FP FN precision recall F1
    assert table_row(out, "peace") == ["peace", "2", "1", "1", "1", "0.500", "0.500", "0.500"]
    assert table_row(out, "arms") == ["arms", "3", "2", "0", "1", "1.000", "0.667", "0.800"]
    assert "\npeace: 1 false positives\n  p2  Talks on New START resume\n" in out
    assert "\npeace: 1 false negatives\n  p4  Kyiv and Moscow open negotiations\n" in out
    assert "\narms: 0 false positives\n\narms: 1 false negatives\n  p6  Nuclear treaty talks stall\n" in out
    assert "fold" not in out

    quiet = monitor("eval", "-c", str(write(tmp_path)), "--corpus", str(corpus), "--show-errors", "0")
    assert "false" not in quiet.stdout and table_row(quiet.stdout, "arms")[-1] == "0.800"


def test_eval_cross_validation_by_fold(tmp_path: Path) -> None:
    corpus, config = write_corpus(tmp_path / "corpus"), str(write(tmp_path))
    result = monitor("eval", "-c", config, "--corpus", str(corpus), "--folds", "2")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert table_row(out, "peace")[-1] == "0.500"  # the whole set first, as without --folds
    cv = out.split("F1 per fold (2 folds by a hash of the item id", 1)[1]
    assert table_row(cv, "topic") == ["topic", "fold", "0", "fold", "1", "mean", "min"]
    assert table_row(cv, "items") == ["items", "4", "2"]
    # peace: fold 0 has p2 (FP) and p4 (FN) and nothing right → 0; fold 1 has p1 (TP) → 1
    assert table_row(cv, "peace") == ["peace", "0.000", "1.000", "0.500", "0.000"]
    # arms: fold 0 has p2, p5 (TP) and p6 (FN) → 0.8; fold 1 has nothing to find, finds nothing
    assert table_row(cv, "arms") == ["arms", "0.800", "1.000", "0.900", "0.800"]
    assert "  p2  [fold 0] Talks on New START resume" in out

    # Tuning on fold 1 only: fold 0 is neither scored nor listed.
    tuning = monitor("eval", "-c", config, "--corpus", str(corpus), "--folds", "2", "--fold", "1")
    assert tuning.returncode == 0, tuning.stderr
    assert "labels-dev.tsv: 6 labelled items, folds 1 only: 2 items\n" in tuning.stdout
    assert table_row(tuning.stdout, "peace") == ["peace", "1", "1", "0", "0", "1.000", "1.000", "1.000"]
    assert "fold 0" not in tuning.stdout and "p2" not in tuning.stdout and "p4" not in tuning.stdout


def test_eval_min_f1_sets_the_exit_code(tmp_path: Path) -> None:
    corpus, config = str(write_corpus(tmp_path / "corpus")), str(write(tmp_path))
    assert monitor("eval", "-c", config, "--corpus", corpus, "--min-f1", "0.5").returncode == 0
    missed = monitor("eval", "-c", config, "--corpus", corpus, "--min-f1", "0.6")
    assert missed.returncode == 1 and "arms: 1 false negatives" in missed.stdout
    assert missed.stderr == "monitor: below --min-f1 0.6: peace F1 0.500\n"
    folds = monitor("eval", "-c", config, "--corpus", corpus, "--folds", "2", "--min-f1", "0.5")
    assert folds.returncode == 0  # peace's mean fold F1 is 0.5: not below
    folds = monitor("eval", "-c", config, "--corpus", corpus, "--folds", "2", "--min-f1", "0.85")
    assert folds.returncode == 1
    assert folds.stderr == ("monitor: below --min-f1 0.85: peace F1 0.500; arms F1 0.800; "
                            "peace mean fold F1 0.500\n")


def test_eval_reads_a_labels_file_and_the_corpus_from_the_environment(tmp_path: Path) -> None:
    corpus, config = write_corpus(tmp_path / "corpus"), str(write(tmp_path))
    from_env = monitor("eval", "-c", config, env={"MONITOR_CORPUS": str(corpus)})
    assert from_env.returncode == 0 and table_row(from_env.stdout, "arms")[-1] == "0.800"
    # LABELS elsewhere, without items beside it: its items come from the corpus.
    other = tmp_path / "other.tsv"
    other.write_text("id\tpeace\tarms\np1\t1\t0\np4\t0\t0\n")
    result = monitor("eval", "-c", config, "--corpus", str(corpus), str(other))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{other}: 2 labelled items\n")
    assert table_row(result.stdout, "peace") == ["peace", "1", "1", "0", "0", "1.000", "1.000", "1.000"]
    # LABELS with its own items.jsonl beside it: those are read, not the corpus's.
    own = tmp_path / "own"
    own.mkdir()
    (own / "items.jsonl").write_text(json.dumps({"id": "x", "title": "Peace talks open"}) + "\n")
    (own / "labels.tsv").write_text("id\tpeace\tarms\nx\t1\t0\n")
    result = monitor("eval", "-c", config, "--corpus", str(tmp_path / "nowhere"), str(own / "labels.tsv"))
    assert result.returncode == 0, result.stderr
    assert table_row(result.stdout, "peace") == ["peace", "1", "1", "0", "0", "1.000", "1.000", "1.000"]


def test_eval_skips_topics_the_labels_do_not_cover(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus", topics=("peace",))
    result = monitor("eval", "-c", str(write(tmp_path)), "--corpus", str(corpus))
    assert result.returncode == 0, result.stderr
    assert result.stderr == "(topic arms has no labels in labels-dev.tsv; not scored)\n"
    assert "arms" not in result.stdout and table_row(result.stdout, "peace")[-1] == "0.500"


@pytest.mark.parametrize("args, message", [
    (["--corpus", "{tmp}/nowhere"], "no labelled corpus at {tmp}/nowhere (items.jsonl and labels-dev.tsv"),
    (["--topic", "nope"], "no topic named nope in {tmp}/monitor.toml"),
    (["--folds", "2", "--fold", "2"], "--fold 2 is not a fold of 2 (folds are 0 to 1)"),
    (["--fold", "0"], "--fold needs --folds K"),
    (["{tmp}/missing.tsv"], "no labels file {tmp}/missing.tsv"),
])
def test_eval_errors_are_one_clear_line(tmp_path: Path, args: list[str], message: str) -> None:
    corpus = write_corpus(tmp_path / "corpus")
    args = [a.format(tmp=tmp_path) for a in args]
    result = monitor("eval", "-c", str(write(tmp_path)), "--corpus", str(corpus), *args)
    assert result.returncode == 2
    assert result.stderr.startswith(f"monitor: {message.format(tmp=tmp_path)}"), result.stderr
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr


def test_eval_refuses_labels_that_do_not_fit(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus", topics=("peace",))
    config = str(write(tmp_path))
    labels = corpus / "headlines" / "labels-dev.tsv"
    unlabelled = monitor("eval", "-c", config, "--corpus", str(corpus), "--topic", "arms")
    assert unlabelled.returncode == 2
    assert unlabelled.stderr == f"monitor: {labels} has no labels for topic arms\n"

    labels.write_text("id\tother\np1\t1\n")
    none = monitor("eval", "-c", config, "--corpus", str(corpus))
    assert none.returncode == 2
    assert none.stderr == f"monitor: {labels} labels none of the topics in {config} (it labels: other)\n"

    labels.write_text("id\tpeace\np1\tmaybe\n")
    bad = monitor("eval", "-c", config, "--corpus", str(corpus))
    assert bad.returncode == 2 and bad.stderr == f"monitor: {labels}: line 2: label 'maybe' is not 1 or 0\n"

    labels.write_text("id\tpeace\np1\t1\nghost\t0\n")
    ghost = monitor("eval", "-c", config, "--corpus", str(corpus), "--topic", "peace")
    assert ghost.returncode == 2
    assert ghost.stderr == (f"monitor: {labels}: 1 labelled items are not among the items, e.g. ghost "
                            f"(items from {labels.parent / 'items.jsonl'})\n")


def test_eval_config_errors_are_config_errors(tmp_path: Path) -> None:
    corpus = str(write_corpus(tmp_path / "corpus"))
    missing = monitor("eval", "-c", str(tmp_path / "missing.toml"), "--corpus", corpus)
    assert missing.returncode == 2 and "cannot read config" in missing.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('[[topics]]\nname = "peace"\nquery = "a AND"\n')
    result = monitor("eval", "-c", str(bad), "--corpus", corpus)
    assert result.returncode == 2 and result.stderr.startswith(f"{bad}:3: topics[0].query: ")
    assert "Traceback" not in result.stderr


def test_python_dash_m_and_help() -> None:
    result = monitor("--help")
    assert result.returncode == 0
    for command in ("run", "once", "check", "test-webhook", "match", "eval", "status", "alerts", "redeliver",
                    "db"):
        assert command in result.stdout
