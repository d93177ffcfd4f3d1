"""Redis-backed persistence: couples, partners, sessions, turns, progress, idempotency.

The same code runs on a real redis-server and on the in-process fakeredis default.
Every key lives under ``coach:`` and carries the retention TTL, refreshed on activity.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal, NamedTuple, TypeVar

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import WatchError

from coach.records import ChallengeProgress, Couple, Partner, Session, Turn

T = TypeVar("T")
IDEMPOTENCY_TTL = 24 * 3600
# How long a first request's claim on its key lasts if it never finishes (e.g. Redis went
# down mid-turn): retries get 409 idempotency-in-progress until then.
PENDING_TTL = 60
EVENTS_KEPT = 2000
# How long a failed clean-up (freeing a key or a turn claim) is retried in the background.
CLEANUP_SECONDS = 120.0
log = logging.getLogger("coach.store")

_INVITE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I to misread


_TURN = msgspec.json.Decoder(Turn)

# Store.sign_in: token -> partner record -> couple record in one round trip. The couple's
# key is read from the partner record (Store.sign_in checks the id it decodes).
# KEYS: token. ARGV: partner key prefix, couple key prefix.
SIGN_IN_SCRIPT = """
local partner_id = redis.call('GET', KEYS[1])
if not partner_id then return {} end
local partner = redis.call('GET', ARGV[1] .. partner_id)
if not partner then return {} end
local couple_id = string.match(partner, '"couple_id":"([^"]*)"')
local couple = couple_id and redis.call('GET', ARGV[2] .. couple_id) or ''
return {partner, couple or ''}
"""

# Store.release_turn in one round trip: delete the claim only if it is still this token's.
RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# Store.commit_turns in one round trip: write only if the session is still the record the
# caller based its change on; else answer the stored record (or nothing: it is gone).
# KEYS: session, turns, events, idempotency record (or unused), [template stats].
# ARGV: expected record, new record, ttl, events kept, n, n x (turn, visible_to),
#       accepted record or "", its ttl, "" / "0" / "1" (count a reply / and it was replaced),
#       how many of the newest turns to answer with.
COMMIT_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if not current then return {'gone'} end
if current ~= ARGV[1] then return {'changed', current} end
local ttl = tonumber(ARGV[3])
redis.call('SET', KEYS[1], ARGV[2], 'EX', ttl)
local i = 6
for _ = 1, tonumber(ARGV[5]) do
  redis.call('RPUSH', KEYS[2], ARGV[i])
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'turn', ARGV[i], 'visible_to', ARGV[i + 1])
  i = i + 2
end
redis.call('EXPIRE', KEYS[2], ttl)
redis.call('EXPIRE', KEYS[3], ttl)
if ARGV[i] ~= '' then redis.call('SET', KEYS[4], ARGV[i], 'EX', tonumber(ARGV[i + 1])) end
if ARGV[i + 2] ~= '' then
  redis.call('HINCRBY', KEYS[5], 'replies', 1)
  if ARGV[i + 2] == '1' then redis.call('HINCRBY', KEYS[5], 'replaced', 1) end
end
local recent = tonumber(ARGV[i + 3])
if recent > 0 then return {'ok', unpack(redis.call('LRANGE', KEYS[2], -recent, -1))} end
return {'ok'}
"""


def _names(partner_ids: list[str], records: list[str | None]) -> dict[str, str | None]:
    """Display names from partner records (None when unset, or the record is gone)."""
    return {
        pid: (msgspec.json.decode(r, type=Partner).display_name if r is not None else None)
        for pid, r in zip(partner_ids, records, strict=True)
    }


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(12)}"


def new_invite_code() -> str:
    return "".join(secrets.choice(_INVITE_ALPHABET) for _ in range(8))


class IdemRecord(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What the store knows of an ``Idempotency-Key``."""

    fp: str
    state: Literal["pending", "accepted", "done"]
    nonce: str = ""  # pending: which request holds the claim
    session_id: str | None = None  # accepted: where the message was stored
    message_id: str | None = None
    status: int = 0  # done: the response to replay
    body: str = ""


class Receipt(msgspec.Struct, frozen=True, kw_only=True):
    """Record in the same transaction as a turn's message that this key stored it."""

    scope: str
    key: str
    fingerprint: str
    message_id: str


class ReplyCount(msgspec.Struct, frozen=True, kw_only=True):
    """Count a reply against its template version (counts only, never text)."""

    template_id: str
    version: str
    replaced: bool


class Committed(NamedTuple):
    session: Session
    turns: list[Turn]  # the turns added, numbered
    recent: list[Turn]  # the session's newest turns after the commit, when asked for


class IdempotencyConflict(Exception):
    """The key was used with a different request body."""


class IdempotencyInProgress(Exception):
    """The first request with this key is still being processed."""


class Store:
    def __init__(self, redis: aioredis.Redis, *, retention_seconds: int) -> None:
        # Typed as Any: redis-py types every reply as ``bytes | str`` for both decode modes;
        # this client is always made with decode_responses=True, so replies are str.
        self.redis: Any = redis
        self.ttl = retention_seconds
        self._cleanups: set[asyncio.Task[None]] = set()
        self._commit_script = self.redis.register_script(COMMIT_SCRIPT)
        self._sign_in_script = self.redis.register_script(SIGN_IN_SCRIPT)
        self._release_script = self.redis.register_script(RELEASE_SCRIPT)

    # -- keys ---------------------------------------------------------------
    @staticmethod
    def k(*parts: str) -> str:
        return "coach:" + ":".join(parts)

    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    async def _get(self, key: str, kind: type[T]) -> T | None:
        raw = await self.redis.get(key)
        return None if raw is None else msgspec.json.decode(raw, type=kind)

    # -- couples and partners -----------------------------------------------
    async def create_couple(self, *, country: str, display_name: str | None) -> tuple[Couple, Partner, str]:
        now = time.time()
        couple = Couple(
            id=new_id("cpl"),
            country=country,
            invite_code=new_invite_code(),
            partner_ids=[],
            created_at=now,
        )
        partner, token = self._new_partner(couple, display_name, now)
        couple.partner_ids.append(partner.id)
        assert couple.invite_code is not None
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self.k("couple", couple.id), msgspec.json.encode(couple), ex=self.ttl)
            pipe.set(self.k("invite", couple.invite_code), couple.id, ex=self.ttl)
            self._put_partner(pipe, partner, token)
            await pipe.execute()
        return couple, partner, token

    def _new_partner(self, couple: Couple, display_name: str | None, now: float) -> tuple[Partner, str]:
        partner = Partner(id=new_id("ptn"), couple_id=couple.id, display_name=display_name, created_at=now)
        return partner, "ct_" + secrets.token_urlsafe(32)

    def _put_partner(self, pipe: Any, partner: Partner, token: str) -> None:
        pipe.set(self.k("partner", partner.id), msgspec.json.encode(partner), ex=self.ttl)
        pipe.set(self.k("token", token_hash(token)), partner.id, ex=self.ttl)
        pipe.set(self.k("partner", partner.id, "token"), token_hash(token), ex=self.ttl)

    async def join_couple(
        self, *, invite_code: str, display_name: str | None
    ) -> tuple[Couple, Partner, str] | None:
        """Join with an invite code; the code works once. None when unknown or used."""
        code_key = self.k("invite", invite_code.strip().upper())
        couple_id = await self.redis.getdel(code_key)
        if couple_id is None:
            return None
        result: tuple[Couple, Partner, str] | None = None

        async def attempt(pipe: Any) -> None:
            nonlocal result
            raw = await pipe.get(self.k("couple", couple_id))
            if raw is None:
                return
            couple = msgspec.json.decode(raw, type=Couple)
            partner, token = self._new_partner(couple, display_name, time.time())
            couple.partner_ids.append(partner.id)
            couple.invite_code = None
            pipe.multi()
            pipe.set(self.k("couple", couple.id), msgspec.json.encode(couple), ex=self.ttl)
            self._put_partner(pipe, partner, token)
            result = (couple, partner, token)

        await self._transaction(attempt, self.k("couple", couple_id))
        return result

    async def partner_by_token(self, token: str) -> Partner | None:
        partner_id = await self.redis.get(self.k("token", token_hash(token)))
        if partner_id is None:
            return None
        return await self.get_partner(partner_id)

    async def sign_in(self, token: str) -> tuple[Partner, Couple | None] | None:
        """The token's partner and its couple, in one round trip; None for an unknown token."""
        found = await self._sign_in_script(
            keys=[self.k("token", token_hash(token))], args=[self.k("partner", ""), self.k("couple", "")]
        )
        if not found:
            return None
        partner = msgspec.json.decode(found[0], type=Partner)
        couple = msgspec.json.decode(found[1], type=Couple) if found[1] else None
        if couple is not None and couple.id != partner.couple_id:
            couple = await self.get_couple(partner.couple_id)
        return partner, couple

    async def get_partner(self, partner_id: str) -> Partner | None:
        return await self._get(self.k("partner", partner_id), Partner)

    async def display_names(self, partner_ids: list[str]) -> dict[str, str | None]:
        """Each partner's display name (None when unset or erased), in one round trip."""
        if not partner_ids:
            return {}
        return _names(partner_ids, await self.redis.mget([self.k("partner", pid) for pid in partner_ids]))

    async def session_with_names(
        self, session_id: str, partner_ids: list[str]
    ) -> tuple[Session | None, dict[str, str | None]]:
        """A session and the couple's display names, in one round trip."""
        keys = [self.k("session", session_id), *(self.k("partner", pid) for pid in partner_ids)]
        raw = await self.redis.mget(keys)
        session = msgspec.json.decode(raw[0], type=Session) if raw[0] is not None else None
        return session, _names(partner_ids, raw[1:])

    async def get_couple(self, couple_id: str) -> Couple | None:
        return await self._get(self.k("couple", couple_id), Couple)

    # -- sessions and turns -------------------------------------------------
    async def create_session(self, session: Session) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self.k("session", session.id), msgspec.json.encode(session), ex=self.ttl)
            pipe.zadd(self.k("couple", session.couple_id, "sessions"), {session.id: session.created_at})
            pipe.expire(self.k("couple", session.couple_id, "sessions"), self.ttl)
            await pipe.execute()

    async def get_session(self, session_id: str) -> Session | None:
        return await self._get(self.k("session", session_id), Session)

    async def list_sessions(self, couple_id: str) -> list[Session]:
        ids = await self.redis.zrevrange(self.k("couple", couple_id, "sessions"), 0, 99)
        found = [await self.get_session(i) for i in ids]
        return [s for s in found if s is not None]

    async def _transaction(self, fn: Callable[[Any], Awaitable[None]], *watch: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(*watch)
                    await fn(pipe)
                    await pipe.execute()
                    return
                except WatchError:
                    continue

    async def commit_turns(
        self,
        session_id: str,
        update: Callable[[Session], list[Turn]],
        receipt: Receipt | None = None,
        *,
        count: ReplyCount | None = None,
        base: Session | None = None,
        recent: int = 0,
    ) -> Committed:
        """Atomically: let ``update`` change the session and name the turns to add, then
        write the session, append the turns and publish them as events (and, with a
        ``receipt``, record that its idempotency key stored the message; with ``count``,
        count the reply for its template).

        Optimistic and one round trip when ``base`` (the session as the caller last read
        it) is still what is stored: the script compares the stored record with it and
        writes only on a match; otherwise it answers the stored record and ``update`` runs
        again on that. So ``update`` must be pure. With ``recent``, the answer also carries
        the session's newest ``recent`` turns after the commit (for the model's history).
        """
        key = self.k("session", session_id)
        turns_key = self.k("session", session_id, "turns")
        events_key = self.k("session", session_id, "events")
        raw: str | bytes | None = msgspec.json.encode(base) if base is not None else await self.redis.get(key)
        while True:
            if raw is None:
                raise KeyError(session_id)
            session = msgspec.json.decode(raw, type=Session)
            base_count = session.turn_count
            if base_count is None:  # a record from before the count was kept
                base_count = int(await self.redis.llen(turns_key))
            turns = update(session)
            for offset, turn in enumerate(turns):
                turn.seq = base_count + offset + 1
            session.turn_count = base_count + len(turns)
            session.updated_at = time.time()
            keys = [key, turns_key, events_key]
            args: list[Any] = [raw, msgspec.json.encode(session), self.ttl, EVENTS_KEPT, len(turns)]
            for turn in turns:
                args += [msgspec.json.encode(turn), turn.visible_to or ""]
            if receipt is not None and any(t.id == receipt.message_id for t in turns):
                keys.append(self._idem_key(receipt.scope, receipt.key))
                args += [self._accepted(receipt, session_id), IDEMPOTENCY_TTL]
            else:
                keys.append(key)  # unused
                args += ["", 0]
            if count is not None:
                keys.append(self._stats_key(count))
                args.append("1" if count.replaced else "0")
            else:
                args.append("")
            args.append(recent)
            result = await self._commit_script(keys=keys, args=args)
            if result[0] == "ok":
                return Committed(session, turns, [_TURN.decode(r) for r in result[1:]])
            raw = result[1] if len(result) > 1 else None  # changed meanwhile (or gone): again

    async def list_turns(self, session_id: str, *, last: int | None = None) -> list[Turn]:
        """The session's turns in order; with ``last``, only the newest ``last``."""
        start = 0 if last is None else -last
        raw = await self.redis.lrange(self.k("session", session_id, "turns"), start, -1)
        return [_TURN.decode(r) for r in raw]

    async def read_events(
        self, session_id: str, after: str, *, block_ms: int | None
    ) -> list[tuple[str, Turn, str]]:
        """Events after stream id ``after`` (``"0"``: from the start); waits ``block_ms``."""
        result = await self.redis.xread(
            {self.k("session", session_id, "events"): after}, block=block_ms, count=200
        )
        events: list[tuple[str, Turn, str]] = []
        for _stream, entries in result or []:
            for event_id, fields in entries:
                turn = msgspec.json.decode(fields["turn"], type=Turn)
                events.append((event_id, turn, fields.get("visible_to", "")))
        return events

    async def last_event_id(self, session_id: str) -> str:
        entries = await self.redis.xrevrange(self.k("session", session_id, "events"), count=1)
        return str(entries[0][0]) if entries else "0"

    # -- idempotency and in-flight turns --------------------------------------
    def _idem_key(self, scope: str, key: str) -> str:
        return self.k("idem", scope, hashlib.sha256(key.encode()).hexdigest())

    async def idempotency_begin(self, scope: str, key: str, fingerprint: str) -> tuple[bool, IdemRecord]:
        """Claim ``key`` for this request: ``(True, pending record)`` when this request is
        the first; else ``(False, record)`` of the first request, ``accepted`` (its message
        is stored, its reply may not be) or ``done`` (status and body to replay)."""
        rkey = self._idem_key(scope, key)
        mine = IdemRecord(fp=fingerprint, state="pending", nonce=secrets.token_hex(8))
        try:
            created = await self.redis.set(rkey, msgspec.json.encode(mine), nx=True, ex=PENDING_TTL)
        except Exception:
            # Redis may have made the claim and died before answering (bench/drills
            # redis_restart): free it once Redis is back, or every retry with this key
            # would be "in progress" until the claim expired
            await self.eventually(
                lambda: self.idempotency_abandon(scope, key, mine.nonce), "free a key", wait=False
            )
            raise
        if created:
            return True, mine
        raw = await self.redis.get(rkey)
        if raw is None:  # expired between the two calls: treat as new
            return await self.idempotency_begin(scope, key, fingerprint)
        record = msgspec.json.decode(raw, type=IdemRecord)
        if record.fp != fingerprint:
            raise IdempotencyConflict
        if record.state == "pending":
            raise IdempotencyInProgress
        return False, record

    @staticmethod
    def _accepted(receipt: Receipt, session_id: str) -> bytes:
        record = IdemRecord(
            fp=receipt.fingerprint, state="accepted", session_id=session_id, message_id=receipt.message_id
        )
        return msgspec.json.encode(record)

    async def idempotency_finish(
        self, scope: str, key: str, fingerprint: str, status: int, body: bytes
    ) -> None:
        record = IdemRecord(fp=fingerprint, state="done", status=status, body=body.decode())
        await self.redis.set(self._idem_key(scope, key), msgspec.json.encode(record), ex=IDEMPOTENCY_TTL)

    async def idempotency_abandon(self, scope: str, key: str, nonce: str) -> None:
        """Free the key for a retry, unless this request's message was stored meanwhile
        (then the record says ``accepted`` and a retry resumes the turn instead)."""
        rkey = self._idem_key(scope, key)

        async def attempt(pipe: Any) -> None:
            raw = await pipe.get(rkey)
            pipe.multi()
            if raw is not None:
                record = msgspec.json.decode(raw, type=IdemRecord)
                if record.state == "pending" and record.nonce == nonce:
                    pipe.delete(rkey)

        await self._transaction(attempt, rkey)

    async def claim_turn(self, partner_id: str, ttl_seconds: int) -> str | None:
        """Claim this partner's one turn in flight: the claim's token, or None when another
        request holds it. If Redis fails without answering, the claim may have been made:
        it is released once Redis is back, as after any turn."""
        key, token = self.k("inflight", partner_id), secrets.token_hex(8)
        try:
            claimed = await self.redis.set(key, token, nx=True, ex=ttl_seconds)
        except Exception:
            await self.release_turn(partner_id, token, wait=False)
            raise
        return token if claimed else None

    async def release_turn(self, partner_id: str, token: str, *, wait: bool = True) -> None:
        """Release the claim ``token`` names (never another request's, say after this one's
        expired). If the store is failing, retried in the background until it answers (the
        claim's TTL frees the partner at the latest); see :meth:`eventually` for ``wait``."""
        release = lambda: self.release_claim(partner_id, token)  # noqa: E731
        await self.eventually(release, "release a turn claim", wait=wait)

    async def release_claim(self, partner_id: str, token: str) -> None:
        """One attempt: delete the partner's turn claim if it is still ``token``'s (one round
        trip, not a transaction: a turn runs this every time)."""
        await self._release_script(keys=[self.k("inflight", partner_id)], args=[token])

    async def eventually(self, op: Callable[[], Awaitable[Any]], what: str, *, wait: bool = True) -> None:
        """Run a clean-up now; if the store fails, keep retrying it in the background for
        up to ``CLEANUP_SECONDS`` so a Redis restart does not leave keys stuck. With
        ``wait=False`` (the request's own store call just failed) even the first try is made
        in the background: on a Redis that stopped answering it could take a whole
        ``COACH_REDIS_TIMEOUT``, and the failed request should answer at once."""
        if wait:
            try:
                await op()
                return
            except Exception:
                log.warning("could not %s; retrying in the background", what)

        async def retry() -> None:
            deadline = time.monotonic() + CLEANUP_SECONDS
            first = not wait
            while time.monotonic() < deadline:
                if not first:
                    await asyncio.sleep(0.5)
                first = False
                try:
                    await op()
                    return
                except Exception:
                    continue
            log.error("gave up trying to %s", what)

        task = asyncio.get_running_loop().create_task(retry())
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    # -- template statistics (counts only, never text) ------------------------------
    def _stats_key(self, count: ReplyCount) -> str:
        return self.k("stats", f"{count.template_id}@{count.version}")

    async def reply_counts(self, template_id: str, version: str) -> tuple[int, int]:
        raw = await self.redis.hgetall(self.k("stats", f"{template_id}@{version}"))
        return int(raw.get("replies", 0)), int(raw.get("replaced", 0))

    # -- rate limits ------------------------------------------------------------
    async def hit(self, buckets: list[str], window_seconds: int) -> tuple[list[int], int]:
        """Count a request in each bucket's fixed window, all in one round trip; returns
        each bucket's count and the seconds until the window resets."""
        window = int(time.time() // window_seconds)
        async with self.redis.pipeline(transaction=True) as pipe:
            for bucket in buckets:
                key = self.k("rate", bucket, str(window))
                pipe.incr(key)
                pipe.expire(key, window_seconds + 1)
            replies = await pipe.execute()
        reset = window_seconds - int(time.time() % window_seconds)
        return [int(count) for count in replies[::2]], reset

    # -- challenge progress -----------------------------------------------------
    async def get_challenge(self, couple_id: str) -> ChallengeProgress | None:
        return await self._get(self.k("couple", couple_id, "challenge"), ChallengeProgress)

    async def save_challenge(self, progress: ChallengeProgress) -> None:
        await self.redis.set(
            self.k("couple", progress.couple_id, "challenge"),
            msgspec.json.encode(progress),
            ex=self.ttl,
        )

    # -- data rights ------------------------------------------------------------
    async def erase_partner(self, partner: Partner) -> bool:
        """Erase a partner; once no partner is left, erase the couple and all its sessions.
        Returns True when the couple was erased too."""
        couple = await self.get_couple(partner.couple_id)
        token_h = await self.redis.get(self.k("partner", partner.id, "token"))
        keys = [self.k("partner", partner.id), self.k("partner", partner.id, "token")]
        if token_h:
            keys.append(self.k("token", token_h))
        erased_couple = False
        if couple is not None:
            couple.partner_ids = [p for p in couple.partner_ids if p != partner.id]
            if not couple.partner_ids:
                erased_couple = True
                keys += await self._couple_keys(couple)
            else:
                await self.redis.set(self.k("couple", couple.id), msgspec.json.encode(couple), ex=self.ttl)
        if keys:
            await self.redis.delete(*keys)
        return erased_couple

    async def _couple_keys(self, couple: Couple) -> list[str]:
        keys = [
            self.k("couple", couple.id),
            self.k("couple", couple.id, "sessions"),
            self.k("couple", couple.id, "challenge"),
        ]
        if couple.invite_code:
            keys.append(self.k("invite", couple.invite_code))
        for session_id in await self.redis.zrange(self.k("couple", couple.id, "sessions"), 0, -1):
            keys += [
                self.k("session", session_id),
                self.k("session", session_id, "turns"),
                self.k("session", session_id, "events"),
            ]
        return keys

    async def scan_keys(self, pattern: str) -> AsyncIterator[str]:
        async for key in self.redis.scan_iter(match=self.k(pattern)):
            yield str(key)
