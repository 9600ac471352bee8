"""The database side of digests: holding alerts, bundling them, and leasing, recording and
requeueing digests the way the outbox does single alerts."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update

from monitor.bundling import HeldAlert
from monitor.errors import LeaseLost
from monitor.formats import new_alert_id
from monitor.store import PendingAlert, Store, attempt_values, pending_alerts, pending_query, release_leases
from monitor.tables import alerts, deliveries, digests, items


@dataclass(frozen=True)
class PendingDigest:
    """A digest and its alerts: all its delivery needs."""

    id: str
    webhook: str
    topic: str
    attempts: int
    created_at: datetime
    alerts: tuple[PendingAlert, ...]  # oldest first
    lease_token: str = ""


class DigestStore:
    def __init__(self, store: Store):
        self.store = store

    # -- holding and bundling --------------------------------------------------------

    def hold(self, webhook: str, *, now: datetime, until: datetime, due_only: bool) -> int:
        """Hold `webhook`'s single pending alerts until `until` (all of them, or only those
        due now); an alert in flight is left to its deliverer. How many were held."""
        with self.store.transaction() as conn:
            lease_now = self.store.lease_now(conn)
            which = update(alerts).where(
                alerts.c.webhook == webhook, alerts.c.status == "pending",
                alerts.c.hold_until.is_(None), alerts.c.digest_id.is_(None),
                or_(alerts.c.lease_until.is_(None), alerts.c.lease_until < lease_now))
            if due_only:
                which = which.where(alerts.c.next_attempt_at <= now)
            return conn.execute(which.values(hold_until=until)).rowcount

    def singles_sent(self, webhook: str, *, since: datetime) -> int:
        """Single alerts delivered to `webhook` since then, and those in flight now."""
        with self.store.transaction(write=False) as conn:
            lease_now = self.store.lease_now(conn)
            single = alerts.c.digest_id.is_(None) & (alerts.c.webhook == webhook)
            sent = conn.execute(select(func.count()).where(
                single, alerts.c.status == "delivered", alerts.c.delivered_at >= since)).scalar_one()
            flying = conn.execute(select(func.count()).where(
                single, alerts.c.status == "pending", alerts.c.lease_until >= lease_now)).scalar_one()
        return sent + flying

    def closed_windows(self, now: datetime) -> list[tuple[str, str]]:
        """(webhook, topic) pairs with a held alert whose hold has ended."""
        with self.store.transaction(write=False) as conn:
            return [(r.webhook, r.topic) for r in conn.execute(
                select(alerts.c.webhook, alerts.c.topic).where(
                    alerts.c.status == "pending", alerts.c.digest_id.is_(None),
                    alerts.c.hold_until <= now).group_by(alerts.c.webhook, alerts.c.topic))]

    def held(self, webhook: str, topic: str) -> list[HeldAlert]:
        """Every alert held for this webhook and topic, whatever its hold, oldest first (in
        feed order within one poll)."""
        with self.store.transaction(write=False) as conn:
            return [HeldAlert(r.id, r.title, r.link, r.summary)
                    for r in conn.execute(
                        select(alerts.c.id, items.c.title, items.c.link, items.c.summary)
                        .join(items, items.c.id == alerts.c.item_id)
                        .where(alerts.c.webhook == webhook, alerts.c.topic == topic,
                               alerts.c.status == "pending", alerts.c.digest_id.is_(None),
                               alerts.c.hold_until.is_not(None))
                        .order_by(alerts.c.created_at, alerts.c.item_id))]

    def bundle(self, webhook: str, topic: str, ids: Sequence[str], *, now: datetime) -> tuple[str, int] | None:
        """Make one digest of these held alerts: (its id, how many it took), or None when
        another instance bundled them first."""
        digest_id = new_alert_id(now)
        with self.store.transaction() as conn:
            conn.execute(digests.insert().values(
                id=digest_id, webhook=webhook, topic=topic, status="pending", attempts=0,
                next_attempt_at=now, created_at=now))
            # Only alerts no one has bundled meanwhile: on PostgreSQL a concurrent bundler
            # waits for this transaction, then finds digest_id set and takes nothing.
            taken = conn.execute(update(alerts).where(
                alerts.c.id.in_(list(ids)), alerts.c.digest_id.is_(None), alerts.c.status == "pending",
            ).values(digest_id=digest_id, next_attempt_at=now)).rowcount
            if not taken:
                conn.execute(digests.delete().where(digests.c.id == digest_id))
                return None
        return digest_id, taken

    # -- delivery ----------------------------------------------------------------------

    def claim_due(self, now: datetime, limit: int, webhooks: Iterable[str],
                  lease: timedelta) -> list[PendingDigest]:
        """Lease up to `limit` due digests, oldest first (as Store.claim_due_alerts)."""
        with self.store.transaction() as conn:
            lease_now = self.store.lease_now(conn)
            free = or_(digests.c.lease_until.is_(None), digests.c.lease_until < lease_now)
            rows = conn.execute(
                select(digests.c.id, digests.c.webhook, digests.c.topic, digests.c.attempts,
                       digests.c.created_at)
                .where(digests.c.status == "pending", digests.c.next_attempt_at <= now,
                       digests.c.webhook.in_(list(webhooks)), free)
                .order_by(digests.c.next_attempt_at, digests.c.id).limit(limit)
                .with_for_update(skip_locked=True)).all()
            if not rows:
                return []
            token = self.store.new_token()
            conn.execute(update(digests).where(digests.c.id.in_([r.id for r in rows])).values(
                lease_until=lease_now + lease, lease_owner=token))
            members: dict[str, list[PendingAlert]] = {r.id: [] for r in rows}
            member_rows = conn.execute(pending_query().add_columns(alerts.c.digest_id)
                                   .where(alerts.c.digest_id.in_(list(members)))
                                   .order_by(alerts.c.created_at, alerts.c.item_id)).all()
            for m, alert in zip(member_rows, pending_alerts(conn, member_rows, token), strict=True):
                members[m.digest_id].append(alert)
        return [PendingDigest(r.id, r.webhook, r.topic, r.attempts, r.created_at,
                              tuple(members[r.id]), token) for r in rows]

    def release(self, claimed: Iterable[PendingDigest]) -> None:
        with self.store.transaction() as conn:
            release_leases(conn, digests, [(d.id, d.lease_token) for d in claimed])

    def renew(self, claimed: Sequence[PendingDigest], lease: timedelta) -> None:
        with self.store.transaction() as conn:
            until = self.store.lease_now(conn) + lease
            for digest in claimed:
                conn.execute(update(digests).where(
                    digests.c.id == digest.id, digests.c.lease_owner == digest.lease_token,
                ).values(lease_until=until))

    def record_attempt(self, digest: PendingDigest, *, now: datetime, status_code: int | None,
                       error: str | None, elapsed_ms: int, outcome: str,
                       next_attempt_at: datetime | None = None) -> None:
        """Log one attempt for the digest and each of its alerts, and move them on together
        (delivered, retry or failed); LeaseLost, writing nothing, if the lease lapsed."""
        values: dict = dict(attempt_values(outcome, now=now, next_attempt_at=next_attempt_at),
                            attempts=digests.c.attempts + 1, last_error=error)
        with self.store.transaction() as conn:
            if not conn.execute(update(digests).where(
                    digests.c.id == digest.id, digests.c.lease_owner == digest.lease_token,
            ).values(lease_until=None, lease_owner=None, **values)).rowcount:
                raise LeaseLost(f"the lease on digest {digest.id} lapsed and another deliverer took it")
            values["attempts"] = alerts.c.attempts + 1
            conn.execute(update(alerts).where(alerts.c.digest_id == digest.id).values(**values))
            members = conn.execute(select(alerts.c.id).where(alerts.c.digest_id == digest.id)).scalars()
            rows = [dict(alert_id=alert_id, attempted_at=now, status_code=status_code, error=error,
                         elapsed_ms=elapsed_ms) for alert_id in members]
            if rows:
                conn.execute(deliveries.insert(), rows)
