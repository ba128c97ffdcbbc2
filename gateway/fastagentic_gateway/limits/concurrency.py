"""Concurrency limits (the ``concurrency`` setting) and the fair queue runs wait in.

A rule allows at most ``max`` runs at once for each value of its key (``per``: the principal, the tenant,
the endpoint, or a combination), for the runs of ``endpoints`` (all when empty) by principals holding one
of ``roles`` or ``scopes`` (all when both are empty). Each value of a rule's key is a *slot* here.

``ConcurrencyGate`` counts, per slot, the runs that hold one: a run takes a ``Hold`` when it is assigned
to a worker of this replica and releases it, exactly once, when the worker lets go of it (its result, a
cancel, a time out, a lease that expired, a hand-back, a failure, the worker's stream ending: every one
of them goes through ``WorkerConnection.finish``, ``fence`` or ``close``). A run whose slots are full is
not assigned: it stays queued until a run of its slot ends. With ``when_full = "refuse"`` the rule also
counts the runs of its slot waiting here, and ``RunService.submit`` refuses the call that would make more
than ``max`` accepted and unfinished (``ConcurrencyLimited``, 429).

``FairQueue`` holds one endpoint's queued runs: a FIFO per tenant, tenants served in turn, so a tenant
with a thousand queued runs does not delay another tenant's one by more than one of them. A run whose
slots are full is skipped, not dropped: it keeps its place. Within a tenant, runs of principals at their
limit are skipped in the same way (the FIFO is split by principal when a rule counts per principal or
applies by role or scope).

The counts are this process's: a replica counts the runs its own workers hold. In a cluster (shared
counters in NATS) a replica may count only as many runs of a key as it has *claimed* (``Claims``, built
by ``limits/slots.py``): the claims of all replicas never add up to more than ``max``, so the limit
holds for the cluster. The gate stays synchronous: a run whose key is at this replica's claim asks for
more (``Claims.blocked``) and starts once it is granted; a ``refuse`` rule's call waits for its claim
at submit (``reserve_call``).

Runs record their caller's tenant and subject, not its roles and scopes: the gate remembers those of the
principals that submitted here; a run whose principal it has not seen (a restart, another replica's
run) is held to every rule whatever its roles, so a limit is never looser than configured.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple, Protocol

from ..access.principal import Principal
from ..errors import ConcurrencyLimited
from ..runs.model import Run
from .rules import ConcurrencyRule

#: Principals whose roles and scopes are remembered; the oldest is forgotten past this many.
MAX_PRINCIPALS = 100_000
#: Slot lists cached per (endpoint, tenant, principal) before the cache starts over.
MAX_CACHED = 100_000


class Slot(NamedTuple):
    """One rule as it applies to one run: the key it counts and its maximum."""

    key: str
    max: int
    rule: str
    refuse: bool
    per: str  # for messages: "tenant", "principal and endpoint"


class Claims(Protocol):
    """What a replica of a cluster may count per key (``limits/slots.py``, ``ClusterSlots``)."""

    def limit(self, slot: Slot) -> int:
        """How many runs of ``slot`` this replica may count now (its claim; ``max`` when failing open)."""
        ...

    def blocked(self, slot: Slot) -> None:
        """A run could start but for ``slot``'s claim: ask for more (in the background)."""
        ...

    def changed(self, slot: Slot) -> None:
        """What ``slot`` counts here went down (or up past the claim): give back or claim, in time."""
        ...

    async def make_room(self, slots: tuple[Slot, ...]) -> bool:
        """Claim one more of each of ``slots`` (``refuse`` rules, at submit). False when the cluster has no
        room; ``Unavailable`` when the claims cannot be reached and limits fail closed."""
        ...


class _Short(Exception):
    """A ``refuse`` slot has room under its max but not under this replica's claim."""

    def __init__(self, slots: tuple[Slot, ...]) -> None:
        self.slots = slots


class _Applied:
    __slots__ = ("conditional", "max", "name", "per", "per_text", "refuse", "roles", "scopes")

    def __init__(self, rule: ConcurrencyRule) -> None:
        self.name = rule.name
        self.max = rule.max
        self.per = tuple(rule.per)
        self.per_text = " and ".join(rule.per)
        self.refuse = rule.when_full == "refuse"
        self.roles = frozenset(rule.roles)
        self.scopes = frozenset(rule.scopes)
        self.conditional = bool(self.roles or self.scopes)

    def applies(self, roles: frozenset[str], scopes: frozenset[str]) -> bool:
        return not self.roles.isdisjoint(roles) or not self.scopes.isdisjoint(scopes)

    def key(self, endpoint: str, tenant: str, subject: str) -> str:
        parts = [self.name]
        for part in self.per:
            if part == "principal":
                parts.append(f"p:{tenant}/{subject}")
            elif part == "tenant":
                parts.append(f"t:{tenant}")
            else:
                parts.append(f"e:{endpoint}")
        return "\x1f".join(parts)


class Hold:
    """The slots one run holds while it runs (or, for a reservation, while its call is being accepted).
    ``release`` gives them back; only the first call counts."""

    __slots__ = ("_gate", "endpoint", "slots", "subject", "tenant", "waiting")

    def __init__(
        self,
        gate: ConcurrencyGate,
        endpoint: str,
        tenant: str,
        subject: str,
        slots: tuple[Slot, ...],
        waiting: bool = False,
    ) -> None:
        self._gate: ConcurrencyGate | None = gate
        self.endpoint = endpoint
        self.tenant = tenant
        self.subject = subject
        self.slots = slots
        self.waiting = waiting  # a reservation: counts as waiting, not running

    def release(self) -> None:
        gate = self._gate
        if gate is not None:
            self._gate = None
            gate._release(self)


class ConcurrencyGate:
    """The concurrency rules and, per slot, how many runs hold it (``running``) and, for ``refuse``
    rules, how many wait for it here (``waiting``). No I/O; one event loop, no locks."""

    def __init__(self, rules: Sequence[ConcurrencyRule] = ()) -> None:
        #: called after a release, when a queued run may now start (set by the RunService)
        self.on_release: Callable[[], None] | None = None
        self.running: dict[str, int] = {}
        self.waiting: dict[str, int] = {}
        #: in a cluster: the claims that bound ``running`` per key (None: alone, ``max`` bounds it)
        self.cluster: Claims | None = None
        #: in a cluster: runs queued here per key, any rule (what this replica would claim slots for)
        self.queued: dict[str, int] = {}
        self._holds: set[Hold] = set()  # running here, and reservations
        self._principals: dict[tuple[str, str], tuple[frozenset[str], frozenset[str]]] = {}
        self._cache: dict[tuple[str, str, str], tuple[Slot, ...]] = {}
        self._by_endpoint: dict[str, tuple[_Applied, ...]] = {}
        self.rules: tuple[ConcurrencyRule, ...] = ()
        self.active = self.refusing = self.by_principal = self.grouping = self.counting = False
        self._apply(rules)

    def share(self, cluster: Claims | None) -> None:
        """Count within ``cluster``'s claims from now on (set once, before runs are queued here)."""
        self.cluster = cluster
        self.counting = self.refusing or cluster is not None

    def _apply(self, rules: Sequence[ConcurrencyRule]) -> None:
        self.rules = tuple(rules)
        #: some rule is configured: dispatch asks the gate (else it costs nothing)
        self.active = bool(self.rules)
        #: some rule refuses when full: submit asks the gate
        self.refusing = any(rule.when_full == "refuse" for rule in self.rules)
        #: some rule applies by role or scope: the principals' roles and scopes are remembered
        self.by_principal = any(rule.roles or rule.scopes for rule in self.rules)
        #: the fair queue splits a tenant's FIFO by principal (their slots may differ)
        self.grouping = self.by_principal or any("principal" in rule.per for rule in self.rules)
        #: the queues count their runs here (``wait``): refuse rules need it, and so do a cluster's claims
        self.counting = self.refusing or self.cluster is not None
        self._cache.clear()
        self._by_endpoint.clear()

    def reload(self, rules: Sequence[ConcurrencyRule]) -> None:
        """New rules, from now on. What runs here and what is being accepted is counted again under them
        (a run already running is never stopped: a slot may be over its new max until runs end). The
        queues recount their waiting runs themselves (``FairQueue.rebuild``)."""
        self._apply(rules)
        self.running.clear()
        self.waiting.clear()
        self.queued.clear()
        for hold in self._holds:
            slots = self.slots(hold.endpoint, hold.tenant, hold.subject)
            hold.slots = tuple(s for s in slots if s.refuse) if hold.waiting else slots
            self._count(hold.waiting, hold.slots, 1)
        if self.on_release is not None:
            self.on_release()  # a larger max, or a rule gone: queued runs may start now

    # ------------------------------------------------------------------ principals and slots

    def note(self, principal: Principal) -> None:
        """Remember ``principal``'s roles and scopes for its runs (only needed when ``by_principal``)."""
        key = (principal.tenant, principal.subject)
        attrs = (principal.roles, principal.scopes)
        if self._principals.get(key) != attrs:
            if key not in self._principals and len(self._principals) >= MAX_PRINCIPALS:
                del self._principals[next(iter(self._principals))]
            self._principals[key] = attrs
            self._cache.clear()  # its slots may have been worked out without them

    def _applied(self, endpoint: str) -> tuple[_Applied, ...]:
        found = self._by_endpoint.get(endpoint)
        if found is None:
            found = self._by_endpoint[endpoint] = tuple(
                _Applied(rule) for rule in self.rules if not rule.endpoints or endpoint in rule.endpoints
            )
        return found

    def slots(
        self,
        endpoint: str,
        tenant: str,
        subject: str,
        attrs: tuple[frozenset[str], frozenset[str]] | None = None,
    ) -> tuple[Slot, ...]:
        """The slots a run of ``endpoint`` by ``tenant``/``subject`` takes. ``attrs``: the principal's
        roles and scopes (default: as remembered; unknown, every rule applies)."""
        cache_key = (endpoint, tenant, subject)
        if attrs is None:
            found = self._cache.get(cache_key)
            if found is not None:
                return found
            known = self._principals.get((tenant, subject))
        else:
            known = attrs
        slots = tuple(
            Slot(rule.key(endpoint, tenant, subject), rule.max, rule.name, rule.refuse, rule.per_text)
            for rule in self._applied(endpoint)
            if not rule.conditional or known is None or rule.applies(*known)
        )
        if attrs is None:
            if len(self._cache) >= MAX_CACHED:
                self._cache.clear()
            self._cache[cache_key] = slots
        return slots

    def slots_of(self, run: Run) -> tuple[Slot, ...]:
        return self.slots(run.endpoint, run.caller.tenant, run.caller.principal)

    # ------------------------------------------------------------------ running

    def admits(self, slots: tuple[Slot, ...], ask: bool = True) -> bool:
        """Whether a run of ``slots`` may start now. In a cluster, within this replica's claims: when
        only a claim is short, more is asked for (``ask``) and the run waits until it is granted."""
        running = self.running
        cluster = self.cluster
        if cluster is None:
            return all(running.get(slot.key, 0) < slot.max for slot in slots)
        short: list[Slot] = []
        for slot in slots:
            count = running.get(slot.key, 0)
            if count >= slot.max:
                return False  # full whatever the claims: nothing to ask for
            if count >= cluster.limit(slot):
                short.append(slot)
        if not short:
            return True
        if ask:
            for slot in short:
                cluster.blocked(slot)
        return False

    def acquire(self, run: Run) -> Hold | None:
        """A hold on ``run``'s slots when none is full; None (and nothing taken) otherwise."""
        slots = self.slots_of(run)
        if not self.admits(slots):
            return None
        return self._hold(run.endpoint, run.caller.tenant, run.caller.principal, slots, False)

    def hold(self, run: Run) -> Hold:
        """A hold on ``run``'s slots whether they are full or not: a run that is running already (its
        worker came back holding it, or it started before a rule applied to it). In a cluster its slots
        are claimed as well, past the claim if need be."""
        hold = self._hold(run.endpoint, run.caller.tenant, run.caller.principal, self.slots_of(run), False)
        if self.cluster is not None:
            for slot in hold.slots:
                self.cluster.changed(slot)
        return hold

    def admits_call(self, principal: Principal, endpoint: str) -> bool:
        """Whether a run of ``principal`` could start now as far as the concurrency rules go (asking
        nothing of the cluster's claims)."""
        if not self.active:
            return True
        attrs = (principal.roles, principal.scopes)
        return self.admits(self.slots(endpoint, principal.tenant, principal.subject, attrs), ask=False)

    # ------------------------------------------------------------------ refuse

    def reserve(self, principal: Principal, endpoint: str) -> Hold | None:
        """At submit: ConcurrencyLimited when a ``refuse`` rule's slot has ``max`` runs accepted and
        unfinished here (running, waiting, or being accepted); else a reservation counting this call as
        waiting until it is released (by then, its run is queued or running: counted by itself)."""
        attrs = (principal.roles, principal.scopes)
        slots = tuple(s for s in self.slots(endpoint, principal.tenant, principal.subject, attrs) if s.refuse)
        if not slots:
            return None
        running, waiting = self.running, self.waiting
        for slot in slots:
            if running.get(slot.key, 0) + waiting.get(slot.key, 0) >= slot.max:
                raise _limited(slot)
        cluster = self.cluster
        if cluster is not None:
            short = tuple(
                slot
                for slot in slots
                if running.get(slot.key, 0) + waiting.get(slot.key, 0) >= cluster.limit(slot)
            )
            if short:
                raise _Short(short)
        return self._hold(endpoint, principal.tenant, principal.subject, slots, True)

    async def reserve_call(self, principal: Principal, endpoint: str) -> Hold | None:
        """``reserve``; in a cluster, a call that this replica's claims do not cover waits for one more
        claim of its slots first, and is refused (429) when the cluster has no room for it now
        (``Unavailable``, 503, when the claims cannot be reached and limits fail closed)."""
        cluster = self.cluster
        if cluster is None:
            return self.reserve(principal, endpoint)
        for _ in range(3):
            try:
                return self.reserve(principal, endpoint)
            except _Short as short:
                if not await cluster.make_room(short.slots):
                    raise _limited(short.slots[0]) from None
                # Granted; concurrent calls of the same key may have taken it first: look again.
        try:
            return self.reserve(principal, endpoint)
        except _Short as short:
            raise _limited(short.slots[0]) from None

    def wait(self, run: Run) -> tuple[Slot, ...]:
        """Count ``run`` as waiting on its ``refuse`` slots (in a cluster, as queued on all of them);
        what was counted (give it to ``unwait``)."""
        if self.cluster is None:
            slots = tuple(slot for slot in self.slots_of(run) if slot.refuse)
        else:
            slots = self.slots_of(run)
        self._count(True, slots, 1)
        return slots

    def unwait(self, slots: tuple[Slot, ...]) -> None:
        self._count(True, slots, -1)
        if self.cluster is not None:
            for slot in slots:
                self.cluster.changed(slot)

    # ------------------------------------------------------------------ counting

    def _hold(self, endpoint: str, tenant: str, subject: str, slots: tuple[Slot, ...], waiting: bool) -> Hold:
        hold = Hold(self, endpoint, tenant, subject, slots, waiting)
        self._holds.add(hold)
        self._count(waiting, slots, 1)
        return hold

    def _release(self, hold: Hold) -> None:
        self._holds.discard(hold)
        self._count(hold.waiting, hold.slots, -1)
        if self.cluster is not None:
            for slot in hold.slots:
                self.cluster.changed(slot)  # a claim this replica no longer uses goes back, in time
        if hold.slots and not hold.waiting and self.on_release is not None:
            self.on_release()

    def _count(self, waiting: bool, slots: tuple[Slot, ...], n: int) -> None:
        if not waiting:
            _add(self.running, slots, n)
        elif self.cluster is None:
            _add(self.waiting, slots, n)  # refuse slots only (``wait``, ``reserve``)
        else:
            _add(self.waiting, tuple(slot for slot in slots if slot.refuse), n)
            _add(self.queued, slots, n)

    @property
    def holds(self) -> int:
        """Runs holding slots here (for tests and diagnostics)."""
        return sum(1 for hold in self._holds if not hold.waiting)


def _add(counts: dict[str, int], slots: tuple[Slot, ...], n: int) -> None:
    for slot in slots:
        value = counts.get(slot.key, 0) + n
        if value > 0:
            counts[slot.key] = value
        else:
            counts.pop(slot.key, None)


def _limited(slot: Slot) -> ConcurrencyLimited:
    return ConcurrencyLimited(
        f"concurrency limit {slot.rule!r} reached: at most {slot.max} run(s) at once per "
        f"{slot.per}; retry when one of them has finished",
        rule=slot.rule,
        limit=slot.max,
    )


class _Entry:
    __slots__ = ("counted", "group", "run", "seq")

    def __init__(self, run: Run, group: str, seq: int) -> None:
        self.run = run
        self.group = group
        self.seq = seq
        self.counted: tuple[Slot, ...] = ()  # the refuse slots it is counted as waiting on


class FairQueue:
    """One endpoint's queued runs: a FIFO per tenant (split by principal when the gate needs it), the
    tenants served in turn. ``pop`` skips runs that ``take`` refuses (their slots are full); they keep
    their place. A run is queued once (by id); a later attempt of it replaces the earlier one."""

    def __init__(self, gate: ConcurrencyGate | None = None) -> None:
        self.gate = gate
        # tenant -> group (principal, or "") -> entries; tenants in the order they are served next
        self._tenants: dict[str, dict[str, deque[_Entry]]] = {}
        self._entries: dict[str, _Entry] = {}  # run id -> its live entry
        self._last = 0  # seq of the last run pushed at the back
        self._first = 0  # seq of the last run pushed at the front

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, run_id: object) -> bool:
        return run_id in self._entries

    def __iter__(self) -> Iterator[Run]:
        """The queued runs, oldest first."""
        for entry in sorted(self._entries.values(), key=_seq):
            yield entry.run

    def tenants(self) -> list[str]:
        """The tenants with queued runs, in the order they are served next."""
        return list(self._tenants)

    def push(self, run: Run, *, front: bool = False) -> bool:
        """Queue ``run`` at the back of its tenant's FIFO (``front``: at its front, when it was taken
        and could not start). False when it was queued already (a later attempt replaces the earlier)."""
        entry = self._entries.get(run.id)
        if entry is not None:
            if run.attempt > entry.run.attempt:
                entry.run = run
            return False
        if front:
            self._first -= 1
            seq = self._first
        else:
            self._last += 1
            seq = self._last
        gate = self.gate
        group = run.caller.principal if gate is not None and gate.grouping else ""
        entry = _Entry(run, group, seq)
        if gate is not None and gate.counting:
            entry.counted = gate.wait(run)
        self._entries[run.id] = entry
        tenant = run.caller.tenant
        groups = self._tenants.get(tenant)
        if groups is None:
            groups = self._tenants[tenant] = {}
        fifo = groups.get(group)
        if fifo is None:
            fifo = groups[group] = deque()
        if front:
            fifo.appendleft(entry)
        else:
            fifo.append(entry)
        return True

    def remove(self, run_id: str) -> Run | None:
        """Take ``run_id`` out (it was cancelled or timed out while queued); the run, or None."""
        entry = self._entries.pop(run_id, None)
        if entry is None:
            return None
        self._uncount(entry)
        if not self._entries:
            self._tenants.clear()  # nothing live is left: drop the removed ones now
        return entry.run  # its place in the FIFO is dropped when it reaches the head

    def pop(self, take: Callable[[Run], bool] | None = None) -> Run | None:
        """The next run ``take`` accepts (``take`` starts it: it returns False, taking nothing, when the
        run cannot start now); None when there is none. Tenants take turns: the one served goes last."""
        found: _Entry | None = None
        served = ""
        emptied: list[str] = []
        for tenant, groups in self._tenants.items():
            found = self._pop_from(groups, take)
            if not groups:
                emptied.append(tenant)
            if found is not None:
                served = tenant
                break
        for tenant in emptied:
            del self._tenants[tenant]
        if found is None:
            return None
        groups = self._tenants.pop(served, {})
        if groups:
            self._tenants[served] = groups  # to the back of the turn
        del self._entries[found.run.id]
        self._uncount(found)
        return found.run

    def _pop_from(
        self, groups: dict[str, deque[_Entry]], take: Callable[[Run], bool] | None
    ) -> _Entry | None:
        entries = self._entries
        heads: list[deque[_Entry]] = []
        empty: list[str] = []
        for group, fifo in groups.items():
            while fifo and entries.get(fifo[0].run.id) is not fifo[0]:
                fifo.popleft()  # removed meanwhile
            if fifo:
                heads.append(fifo)
            else:
                empty.append(group)
        for group in empty:
            del groups[group]
        if len(heads) > 1:
            heads.sort(key=lambda fifo: fifo[0].seq)  # the oldest run of the tenant that can start
        for fifo in heads:
            entry = fifo[0]
            if take is None or take(entry.run):
                fifo.popleft()
                if not fifo:
                    del groups[entry.group]
                return entry
        return None

    def _uncount(self, entry: _Entry) -> None:
        if entry.counted and self.gate is not None:
            self.gate.unwait(entry.counted)
            entry.counted = ()

    def rebuild(self) -> None:
        """Group and count the queued runs again, after the gate's rules changed (their order stays)."""
        gate = self.gate
        tenants: dict[str, dict[str, deque[_Entry]]] = {tenant: {} for tenant in self._tenants}
        for entry in sorted(self._entries.values(), key=_seq):
            run = entry.run
            entry.group = run.caller.principal if gate is not None and gate.grouping else ""
            # The gate's waiting counts were cleared by its reload.
            entry.counted = gate.wait(run) if gate is not None and gate.counting else ()
            groups = tenants.setdefault(run.caller.tenant, {})
            fifo = groups.get(entry.group)
            if fifo is None:
                fifo = groups[entry.group] = deque()
            fifo.append(entry)
        self._tenants = {tenant: groups for tenant, groups in tenants.items() if groups}


def _seq(entry: _Entry) -> int:
    return entry.seq
