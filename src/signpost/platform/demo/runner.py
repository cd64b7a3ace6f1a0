"""`signpost demo`: drive a running platform through its public HTTP APIs only.

Imports the area's Local Offer through routing's ORUK import, then streams the chosen
period's referrals as the settings' practitioners, while the area's agencies poll their
offers and accept, decline, start and complete them. Simulated time runs `scale` times
faster than real time, so one school term can pass in a few minutes. Nothing here writes
to a database or a topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from signpost.shared.auth.principal import Role
from signpost.shared.settings import Settings

from signpost.platform.demo.agencies import AgencyBehaviour, Decision
from signpost.platform.demo.area import LocalArea, Setting, build_area
from signpost.platform.demo.calendar import Period, period
from signpost.platform.demo.calibration import Calibration, load_calibration
from signpost.platform.demo.oruk import oruk_feed
from signpost.platform.demo.referrals import GeneratedReferral, ReferralGenerator
from signpost.platform.demo.summary import (
    DemoSummary,
    PlatformCounts,
    ReferralResult,
    counts_of,
    read_platform_counts,
)
from signpost.platform.devtokens import dev_token

REQUEST_TIMEOUT_S = 30.0
KEEPALIVE_S = 2.0
DECISION_WAIT_S = 90.0  # after the last referral, how long routing may take to decide the rest
MAX_RETRIES = 5
MAX_DRAIN_ROUNDS = 10  # decline, re-route, decline again...: bounded


class PlatformUnreachable(RuntimeError):
    pass


class DemoFailed(RuntimeError):
    """The platform answered, but not as the demo needs (the message says what and where)."""


@dataclass(frozen=True)
class Endpoints:
    intake: str
    routing: str
    analytics: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Endpoints:
        """Where `signpost run` with these settings answers (a wildcard host such as '::' is reached on loopback)."""
        return cls(
            intake=settings.local_url("intake"),
            routing=settings.local_url("routing"),
            analytics=settings.local_url("analytics"),
        )


@dataclass(frozen=True)
class DemoOptions:
    period: str = "autumn"
    minutes: float = 3.0
    referrals: int | None = None  # default: the period's calibrated volume
    rate: float | None = None  # referrals per second; overrides `minutes`
    seed: int = 2025
    concurrency: int = 8
    poll_interval_s: float = 1.0

    def real_s(self, count: int) -> float:
        """Real seconds the period takes: never under one, as a clock faster still leaves datetime's range
        (OverflowError) while the demo waits for the last decisions."""
        return max(1.0, count / self.rate if self.rate else self.minutes * 60)


Progress = Callable[[str, int, int], None]  # (status line, done, total)


@dataclass
class _Clock:
    """Simulated time: `scale` simulated seconds pass per real second."""

    start: datetime
    scale: float
    real_start: float = field(default_factory=time.monotonic)

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(time.monotonic() - self.real_start) * self.scale)

    def real_delay(self, until: datetime) -> float:
        return max(0.0, (until - self.now()).total_seconds() / self.scale)


@dataclass(order=True)
class _Action:
    due: datetime
    order: int
    move: str = field(compare=False)
    offer: dict[str, Any] = field(compare=False)
    decision: Decision = field(compare=False)


class Demo:
    def __init__(
        self,
        settings: Settings,
        endpoints: Endpoints,
        options: DemoOptions,
        *,
        progress: Progress,
        area: LocalArea | None = None,
        calibration: Calibration | None = None,
    ) -> None:
        self.settings, self.endpoints, self.options, self.progress = settings, endpoints, options, progress
        self.area = area or build_area(options.seed)
        self.calibration = calibration or load_calibration()
        self.period: Period = period(options.period)
        self.generator = ReferralGenerator(
            self.area, self.calibration, seed=options.seed, today=datetime.now().date()
        )
        self.agencies = AgencyBehaviour(self.area, self.calibration, seed=options.seed + 1)
        self.summary = DemoSummary(period=self.period.name, seed=options.seed, calibration=self.calibration)
        self._tokens: dict[tuple[Role, str, str], str] = {}
        self._seen_offers: set[tuple[str, str]] = set()
        # Intake's ids for the demo's referrals: its agencies decide only their offers, and its
        # closing check tells them from anyone else's (a person trying the API while it runs).
        self._own_referrals: set[str] = set()
        self._actions: list[_Action] = []
        self._order = itertools.count()
        self._limit = asyncio.Semaphore(options.concurrency)  # practitioners' requests in flight
        self._agency_limit = asyncio.Semaphore(options.concurrency)  # agencies' requests in flight
        self._period_over = asyncio.Event()

    async def run(self) -> DemoSummary:
        timeout = httpx.Timeout(REQUEST_TIMEOUT_S)
        # Drop idle connections well before uvicorn closes them (5 s, the same as httpx's default):
        # reusing one the server is closing at that moment fails with a ReadError.
        limits = httpx.Limits(keepalive_expiry=KEEPALIVE_S)
        async with httpx.AsyncClient(timeout=timeout, limits=limits) as self.http:
            await self._check_reachable()
            await self._import_catalogue()
            await self._register_settings()
            organisations = await self._agency_organisations()
            count = self.options.referrals or self.generator.expected_count(self.period)
            arrivals = self.generator.schedule(self.period, count)
            span = self.period.end_at - self.period.start_at
            self.clock = _Clock(self.period.start_at, span.total_seconds() / self.options.real_s(count))
            self.period_end = self.period.end_at
            self._baseline = await self._counts()
            self._started_at = datetime.now(UTC)
            agencies = asyncio.create_task(self._agencies(organisations))
            try:
                await self._stream(list(self.generator.stream(arrivals)))
                await self._wait_for_decisions()
            except BaseException:
                agencies.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await agencies  # raises what stopped the agencies early, if anything did
                raise
            # Not cancelled: a move cancelled after intake took it would be missing from the summary.
            self._period_over.set()
            await agencies
            await self._drain(organisations)
            await self._refresh(self.summary.accepted_results())
            await self._wait_for_counts()
        return self.summary

    # --- the platform -------------------------------------------------------------------

    async def _counts(self) -> PlatformCounts:
        # As the area's admin: the demo compares exact counts, which an analyst sees suppressed under 5.
        admin = self._token(Role.ADMIN, "la-digital")
        return read_platform_counts(await self._get(f"{self.endpoints.analytics}/v1/pulse", admin))

    async def _wait_for_counts(self) -> None:
        """Analytics counts asynchronously: give it until it agrees with the demo (or time runs out,
        and the summary shows where they differ)."""
        deadline = time.monotonic() + DECISION_WAIT_S
        while True:
            counted = (await self._counts()).since(self._baseline)
            # Read after analytics: every referral it counted is in intake by then. Only when it
            # counted more than the demo sent is anyone else's among them (each read pages intake).
            others = (
                await self._referrals_sent_by_others() if counted.submitted > self.summary.accepted else []
            )
            self.summary.others_sent = len(others)
            self.summary.platform = counted.without(counts_of(others))
            if not self.summary.confirmed_by_platform() or time.monotonic() > deadline:
                return
            await asyncio.sleep(self.options.poll_interval_s)

    async def _referrals_sent_by_others(self) -> list[dict[str, Any]]:
        """The referrals intake took since the demo began that the demo did not send."""
        admin = self._token(Role.ADMIN, "la-digital")
        others: list[dict[str, Any]] = []
        cursor = ""
        while True:
            page = await self._get(f"{self.endpoints.intake}/v1/referrals?limit=100{cursor}", admin)
            for referral in page["items"]:  # newest first
                if _as_utc(referral["submitted_at"]) < self._started_at:
                    return others
                if referral["id"] not in self._own_referrals:
                    others.append(referral)
            if not page.get("next_cursor"):
                return others
            cursor = f"&cursor={page['next_cursor']}"

    async def _check_reachable(self) -> None:
        for name, base in (
            ("intake", self.endpoints.intake),
            ("routing", self.endpoints.routing),
            ("analytics", self.endpoints.analytics),
        ):
            try:
                response = await self.http.get(f"{base}/readyz")
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                raise PlatformUnreachable(
                    f"{name} is not reachable at {base} ({type(exc).__name__}); start the platform with "
                    f"`signpost run` (or `signpost run --demo`), or pass --{name}-url"
                ) from None
            if response.status_code != 200:
                raise PlatformUnreachable(f"{name} at {base} is not ready: {response.text[:200]}")

    async def _import_catalogue(self) -> None:
        url = f"{self.endpoints.routing}/v1/catalogue/import"
        response = await self._send(
            "POST", url, self._token(Role.ADMIN, "la-digital"), {"feed": oruk_feed(self.area)}
        )
        if response.status_code == 404:
            raise DemoFailed(f"routing at {self.endpoints.routing} has no catalogue import API ({url})")
        if response.status_code != 200:
            raise DemoFailed(
                f"the catalogue import was refused ({response.status_code}): {response.text[:500]}"
            )
        report = response.json()
        self.summary.catalogue = report.get("totals", {})
        self.summary.catalogue_skipped = [
            f"{s.get('name')}: {s.get('reason')}" for s in report.get("skipped", [])
        ]

    async def _register_settings(self) -> None:
        """The area's settings in analytics' register, so the pulse can say what share of them refer."""
        admin = self._token(Role.ADMIN, "la-digital")

        async def register(setting: Setting) -> None:
            url = f"{self.endpoints.analytics}/v1/settings-register/{setting.id}"
            body = {"name": setting.name, "locality": setting.locality, "phase": setting.phase.value}
            async with self._limit:
                response = await self._send("PUT", url, admin, body)
            if response.status_code != 202:
                raise DemoFailed(
                    f"registering setting {setting.id} was refused ({response.status_code}): {response.text[:300]}"
                )

        await asyncio.gather(*(register(setting) for setting in self.area.settings))
        self.summary.settings_registered = len(self.area.settings)

    async def _agency_organisations(self) -> list[str]:
        """Every organisation with a provision in the catalogue now (imported or already there)."""
        organisations: set[str] = set()
        offset = 0
        while True:
            page = await self._get(
                f"{self.endpoints.routing}/v1/provisions?active=true&limit=200&offset={offset}"
            )
            organisations.update(item["organisation_id"] for item in page["items"])
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                return sorted(organisations)

    # --- practitioners ------------------------------------------------------------------

    async def _stream(self, referrals: list[GeneratedReferral]) -> None:
        """Submit each referral at its time, several in flight. The first submission to lose the
        platform (stopped with Ctrl-C, say) stops the stream and the others, and is what the
        demo reports: not one traceback per request left in flight."""
        try:
            async with asyncio.TaskGroup() as submissions:
                for referral in referrals:
                    await asyncio.sleep(self.clock.real_delay(referral.at))
                    await self._limit.acquire()
                    submissions.create_task(self._submit(referral))
                    self._report(len(referrals))
        except* PlatformUnreachable as lost:
            raise lost.exceptions[0] from None
        self._report(len(referrals))

    async def _submit(self, referral: GeneratedReferral) -> None:
        try:
            token = self._token(Role.PRACTITIONER, referral.setting.organisation_id, referral.setting.name)
            response = await self._send("POST", f"{self.endpoints.intake}/v1/referrals", token, referral.body)
            result = ReferralResult(referral=referral, http_status=response.status_code)
            if response.status_code == 201:
                result.id = response.json()["id"]
                self._own_referrals.add(result.id)
                result.status = response.json()["status"]
            else:
                result.error = response.text[:300]
            self.summary.add(result)
        finally:
            self._limit.release()

    async def _wait_for_decisions(self) -> None:
        """Until routing has decided every accepted referral, as intake shows it (or time runs out)."""
        deadline = time.monotonic() + DECISION_WAIT_S
        undecided = [r for r in self.summary.accepted_results() if r.status == "submitted"]
        while undecided and time.monotonic() < deadline:
            await asyncio.sleep(self.options.poll_interval_s)
            await self._refresh(undecided)
            undecided = [r for r in undecided if r.status == "submitted"]
            self.summary.live = (await self._counts()).since(self._baseline)
            self._report(self.summary.sent)

    async def _refresh(self, results: list[ReferralResult]) -> None:
        """Each referral's status now, read as the practitioner who sent it."""

        async def fetch(result: ReferralResult) -> None:
            async with self._limit:
                setting = result.referral.setting
                token = self._token(Role.PRACTITIONER, setting.organisation_id, setting.name)
                view = await self._get(f"{self.endpoints.intake}/v1/referrals/{result.id}", token)
                result.status = view["status"]
                result.escalation_reason = view.get("escalation_reason")

        await asyncio.gather(*(fetch(result) for result in results))

    # --- agencies -----------------------------------------------------------------------

    async def _agencies(self, organisations: list[str]) -> None:
        """Agencies at work through the period, until `_period_over` (their moves finish first)."""
        while not self._period_over.is_set():
            await self._poll_offers(organisations)
            await self._act(until=min(self.clock.now(), self.period_end))
            self.summary.live = (await self._counts()).since(self._baseline)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._period_over.wait(), self.options.poll_interval_s)

    async def _poll_offers(self, organisations: list[str]) -> int:
        """Each agency reads the offers of the demo's referrals waiting for it; returns how many were new."""

        async def poll(organisation: str) -> int:
            async with self._agency_limit:
                return await self._poll_organisation(organisation)

        return sum(await asyncio.gather(*(poll(organisation) for organisation in organisations)))

    async def _poll_organisation(self, organisation: str) -> int:
        token = self._token(Role.AGENCY, organisation)
        new, cursor = 0, ""
        while True:
            page = await self._get(
                f"{self.endpoints.intake}/v1/offers?status=routed&limit=100{cursor}", token
            )
            for offer in page["items"]:
                key = (offer["referral_id"], offer["provision_id"])
                # Someone else's referral is theirs to decide. Not marked seen: an offer of the
                # demo's own can be listed before intake's 201 reached it, and is taken next time.
                if offer["referral_id"] not in self._own_referrals or key in self._seen_offers:
                    continue
                self._seen_offers.add(key)
                self.summary.offers_seen += 1
                new += 1
                decision = self.agencies.decide(offer)
                self._schedule(self.clock.now() + decision.decide_after, "decide", offer, decision)
            if not page.get("next_cursor"):
                return new
            cursor = f"&cursor={page['next_cursor']}"

    def _schedule(self, due: datetime, move: str, offer: dict[str, Any], decision: Decision) -> None:
        heapq.heappush(self._actions, _Action(due, next(self._order), move, offer, decision))

    async def _act(self, *, until: datetime) -> None:
        due = []
        while self._actions and self._actions[0].due <= until:
            due.append(heapq.heappop(self._actions))
        await self._run(due)

    async def _run(self, actions: list[_Action]) -> None:
        """Several agencies at once; one offer's moves stay in order, since each next move is
        scheduled only when the one before it succeeded."""

        async def move(action: _Action) -> None:
            async with self._agency_limit:
                await self._move(action)

        await asyncio.gather(*(move(action) for action in actions))

    async def _move(self, action: _Action) -> None:
        offer, decision = action.offer, action.decision
        base = f"{self.endpoints.intake}/v1/referrals/{offer['referral_id']}/offers/{offer['provision_id']}"
        token = self._token(Role.AGENCY, offer["organisation_id"], f"{offer['provision_name']} duty worker")
        if action.move == "decide" and not decision.accept:
            assert decision.reason is not None
            response = await self._send("POST", f"{base}/decline", token, {"reason": decision.reason.value})
            self.summary.record_move(
                "declined",
                response.status_code,
                referral_id=offer["referral_id"],
                reason=decision.reason.value,
            )
        elif action.move == "decide":
            response = await self._send("POST", f"{base}/accept", token, None)
            if self.summary.record_move("accepted", response.status_code, referral_id=offer["referral_id"]):
                self._schedule(action.due + decision.start_after, "start", offer, decision)
        elif action.move == "start":
            response = await self._send("POST", f"{base}/start", token, None)
            if self.summary.record_move("started", response.status_code, referral_id=offer["referral_id"]):
                self._schedule(action.due + decision.support_for, "complete", offer, decision)
        else:
            completion = self.agencies.complete(offer)
            response = await self._send("POST", f"{base}/complete", token, completion.body)
            if self.summary.record_move("completed", response.status_code, referral_id=offer["referral_id"]):
                self.summary.record_completion(offer, completion)

    async def _drain(self, organisations: list[str]) -> None:
        """The period is over: agencies still decide every offer they hold (and any re-routed ones);
        support due to start or end after the period stays open."""
        for _ in range(MAX_DRAIN_ROUNDS):
            await self._poll_offers(organisations)
            await self._act(until=self.period_end)
            decisions = [a for a in self._actions if a.move == "decide"]
            if not decisions:
                break
            self._actions = [a for a in self._actions if a.move != "decide"]
            heapq.heapify(self._actions)
            await self._run(decisions)
            await asyncio.sleep(2 * self.options.poll_interval_s)  # routing re-routes declined offers
        self.summary.still_open = len(self._actions)

    # --- HTTP ---------------------------------------------------------------------------

    def _token(self, role: Role, organisation: str, name: str | None = None) -> str:
        key = (role, organisation, name or "")
        if key not in self._tokens:
            self._tokens[key] = dev_token(
                self.settings, role=role, organisation=organisation, name=name or f"Demo {role.value}"
            )
        return self._tokens[key]

    async def _get(self, url: str, token: str | None = None) -> Any:
        response = await self._send("GET", url, token, None)
        if response.status_code != 200:
            raise DemoFailed(f"GET {url} answered {response.status_code}: {response.text[:300]}")
        return response.json()

    async def _send(self, method: str, url: str, token: str | None, body: Any) -> httpx.Response:
        """One request, waiting out 429 and 503 as their Retry-After asks (a few times)."""
        headers = {"authorization": f"Bearer {token}"} if token else {}
        for attempt in range(MAX_RETRIES + 1):
            try:
                response = await self.http.request(method, url, json=body, headers=headers)
            except httpx.TransportError as exc:
                raise PlatformUnreachable(f"lost the platform at {url} ({type(exc).__name__})") from None
            if response.status_code not in (429, 503) or attempt == MAX_RETRIES:
                return response
            await asyncio.sleep(float(response.headers.get("retry-after", "1")))
        raise AssertionError("unreachable")

    def _report(self, total: int) -> None:
        self.progress(self.summary.status_line(), self.summary.sent, total)


def _as_utc(timestamp: str) -> datetime:
    at = datetime.fromisoformat(timestamp)
    return at if at.tzinfo else at.replace(tzinfo=UTC)


async def run_demo(
    settings: Settings, endpoints: Endpoints, options: DemoOptions, *, progress: Progress
) -> DemoSummary:
    return await Demo(settings, endpoints, options, progress=progress).run()
