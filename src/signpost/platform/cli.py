"""`signpost`: the one command a person runs."""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import ValidationError
from signpost.shared.auth.principal import Role
from signpost.shared.settings import SERVICE_NAMES, Settings

from signpost.platform.datadir import PathUnusable
from signpost.platform.demo.area import DEFAULT_SEED
from signpost.platform.demo.calendar import PERIODS

# RFC 6750's b64token: all an Authorization header may carry.
BEARER_TOKEN = re.compile(r"[A-Za-z0-9._~+/-]+=*")
# The token's claims, as `signpost token` takes them.
CLAIM_FLAGS = {"organisation": "--org", "subject": "--subject", "name": "--user"}
# `signpost demo`'s options that only streaming reads (`--feed` reads --seed alone), by their dest.
STREAMING_OPTIONS = ("term", "minutes", "referrals", "rate", *(f"{service}_url" for service in SERVICE_NAMES))
# A period in 6 s to a year; one referral in 1000 s to 1000 a second (more than one machine's platform takes).
MINUTES = (0.1, 365 * 24 * 60)
RATE = (0.001, 1000.0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="signpost",
        description="Signpost: early-help referrals for children with SEND. Settings come from SIGNPOST_* variables.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "run",
        help="run the platform (embedded Kafka and MongoDB unless their URLs are set)",
        description="Without --service: the whole platform, each service its own process. "
        "With --service: that one service against SIGNPOST_KAFKA_BOOTSTRAP and SIGNPOST_MONGODB_URL.",
    )
    alone_or_demo = run.add_mutually_exclusive_group()
    alone_or_demo.add_argument(
        "--service", choices=SERVICE_NAMES, help="run only this service (what a container does)"
    )
    alone_or_demo.add_argument(
        "--demo",
        action="store_true",
        help="once the platform is up, stream a demo autumn term into it (`signpost demo` with its defaults)",
    )
    service_command = commands.add_parser(
        "service",
        help="stop or start one service of a running `signpost run` (e.g. to watch its lag in the ops view)",
        description="Talks to the `signpost run` using this SIGNPOST_DATA_DIR. A service stopped this way "
        "drains and leaves its consumer group; the rest of the platform keeps running until it is started again.",
    )
    service_command.add_argument("action", choices=["stop", "start"])
    service_command.add_argument(
        "name", metavar="SERVICE", choices=SERVICE_NAMES, help=", ".join(SERVICE_NAMES)
    )
    token = commands.add_parser(
        "token",
        help="print a development bearer token (refused with SIGNPOST_AUTH_ISSUER set, or in production)",
        description="Signs a token with the local development issuer; refused when SIGNPOST_AUTH_ISSUER is set "
        "or SIGNPOST_ENVIRONMENT is production.",
    )
    token.add_argument("--role", required=True, choices=[role.value for role in Role])
    token.add_argument("--org", required=True, help="the caller's organisation id, e.g. la-inclusion-service")
    token.add_argument("--user", help="the caller's display name (recorded in audit records)")
    token.add_argument(
        "--subject", help="a stable user id (default: from the name, or role and organisation)"
    )
    demo = commands.add_parser(
        "demo",
        help="import a synthetic local area's Local Offer and stream calibrated referrals into a running platform",
        description="Acts as the area's practitioners and agencies through the public HTTP APIs only. "
        "One school term passes in --minutes (default 3), or --referrals N at --rate R per second.",
    )
    demo.add_argument("--term", choices=PERIODS, help="the period to stream (default autumn)")
    pace = demo.add_mutually_exclusive_group()
    pace.add_argument(
        "--minutes",
        type=_number_in(*MINUTES),
        help=f"real minutes the period takes (default 3; {MINUTES[0]:g} to {MINUTES[1]:g})",
    )
    demo.add_argument(
        "--referrals", type=_positive_int, help="how many referrals (default: the period's calibrated volume)"
    )
    pace.add_argument(
        "--rate",
        type=_number_in(*RATE),
        help=f"referrals per second, instead of --minutes ({RATE[0]:g} to {RATE[1]:g})",
    )
    demo.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help="the area and its referrals (default 2025)"
    )
    for service in SERVICE_NAMES:
        demo.add_argument(
            f"--{service}-url",
            type=_http_url,
            help=f"{service}'s base URL (default http://SIGNPOST_HOST:SIGNPOST_{service.upper()}_PORT)",
        )
    demo.add_argument(
        "--feed",
        metavar="FILE",
        type=_not_empty,
        help="only write the area's Open Referral UK feed to FILE ('-': stdout); takes only --seed",
    )
    dlq = commands.add_parser(
        "dlq",
        help="inspect and replay dead letters (messages no consumer could read)",
        description="Reads the dead-letter topic on SIGNPOST_KAFKA_BOOTSTRAP (`signpost run` prints the embedded one).",
    )
    dlq_commands = dlq.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")
    dlq_commands.add_parser(
        "list", help="one line per dead letter: offset, service, attempts, origin, type, reason"
    )
    show = dlq_commands.add_parser("show", help="one dead letter in full: error, origin, headers and body")
    show.add_argument("offset", type=int)
    replay = dlq_commands.add_parser("replay", help="publish dead letters to their original topic again")
    replay.add_argument("offsets", type=int, nargs="*", help="which (see `list`)")
    replay.add_argument("--all", action="store_true", help="every dead letter (instead of offsets)")
    commands.add_parser(
        "migrate",
        help="create missing topics and apply every service's MongoDB indexes (idempotent; run before a rollout)",
        description="Against SIGNPOST_KAFKA_BOOTSTRAP and SIGNPOST_MONGODB_URL: creates each missing topic with its "
        "final partition count, SIGNPOST_TOPIC_REPLICATION_FACTOR replicas and its retention, then "
        "applies the indexes of intake, routing and analytics, drops analytics collections that earlier "
        "releases kept and nothing reads any more, and writes the inbox keys (offer_keys) of referrals "
        "stored without them or with stale ones.",
    )
    health = commands.add_parser(
        "health",
        help="exit 0 if the service on this host is alive (a container's health check)",
        description="Asks /healthz (or /readyz with --ready) of the service listening on 127.0.0.1.",
    )
    health.add_argument("--service", choices=SERVICE_NAMES, help="which one (default: whichever listens)")
    health.add_argument(
        "--ready", action="store_true", help="also require /readyz: MongoDB answers (Kafka is only reported)"
    )
    catalogue = commands.add_parser(
        "catalogue",
        help="manage the Local Offer catalogue through routing's API",
        description="Talks to routing's HTTP API with an admin token; never to the database.",
    )
    catalogue_commands = catalogue.add_subparsers(dest="catalogue_command", required=True, metavar="ACTION")
    oruk_import = catalogue_commands.add_parser(
        "import",
        help="import an Open Referral UK feed (a base URL or a JSON file) and print the report",
    )
    oruk_import.add_argument(
        "source", metavar="PATH_OR_URL", type=_not_empty, help="an ORUK feed's base URL, or a JSON file"
    )
    oruk_import.add_argument(
        "--routing",
        type=_http_url,
        help="routing's URL (default: SIGNPOST_ROUTING_URL, else http://SIGNPOST_HOST:SIGNPOST_ROUTING_PORT)",
    )
    oruk_import.add_argument(
        "--token", type=_bearer_token, help="an admin bearer token (default: a development admin token)"
    )
    analytics = commands.add_parser(
        "analytics",
        help="analytics maintenance: rebuild the pulse projections from the log",
        description="Works against SIGNPOST_KAFKA_BOOTSTRAP and SIGNPOST_MONGODB_URL while the platform runs.",
    )
    analytics_commands = analytics.add_subparsers(dest="analytics_command", required=True, metavar="ACTION")
    rebuild = analytics_commands.add_parser(
        "rebuild",
        help="replay the retained log into fresh projections and swap them in when caught up",
        description="Folds every retained referral, provision and settings-register event into a new "
        "projection set while the live consumer keeps going, compares it document by document with the "
        "live set, then makes it the one the pulse reads; unless --force, not when the log has lost "
        "events the live set was folded from.",
    )
    rebuild.add_argument(
        "--abandon",
        action="store_true",
        help="give up the rebuild under way instead (one whose process died leaves it 'being rebuilt' for good): "
        "its set is dropped and nothing is swapped in",
    )
    rebuild.add_argument(
        "--no-compare",
        action="store_true",
        help="skip the comparison with the live set (it reads both sets in full)",
    )
    rebuild.add_argument(
        "--force",
        action="store_true",
        help="swap in even what is rebuilt from a log that has lost events (documents only in the live "
        "set, or a partition's log no longer starting at offset 0): what only the live set has is lost",
    )
    contract = commands.add_parser(
        "contract",
        help="write the partners' event contract: a JSON Schema per event type and an AsyncAPI document",
        description="Generated from the pydantic event models; docs/contract holds the published copy, "
        "which a test keeps equal to what this writes.",
    )
    contract.add_argument(
        "--out", type=_not_empty, default="docs/contract", help="the folder (default docs/contract)"
    )
    args = parser.parse_args(argv)
    if args.command == "demo" and args.feed is not None:
        streaming = [
            f"--{name.replace('_', '-')}" for name in STREAMING_OPTIONS if getattr(args, name) is not None
        ]
        if streaming:
            demo.error(
                f"--feed only writes the area's feed (from --seed); it takes no {', '.join(streaming)}"
            )
    if args.command == "dlq" and args.dlq_command == "replay" and args.all == bool(args.offsets):
        replay.error(
            "give the offsets to replay or --all, not both"
            if args.all
            else "give the offsets to replay (see `signpost dlq list`), or --all"
        )

    try:
        settings = Settings()
    except ValidationError as exc:
        return _invalid(exc, lambda field: f"SIGNPOST_{field.upper()}" if field else "settings")

    try:
        return _command(settings, args)
    except _unusable_files() as exc:  # the data directory, or the development key, cannot be used
        print(f"signpost: {exc}", file=sys.stderr)
        return 2
    except _server_errors() as exc:  # commands let a server's failure rise to here
        return _server_failed(settings, exc)


def _command(settings: Settings, args: argparse.Namespace) -> int:
    if args.command == "token":
        from signpost.platform.devtokens import DevTokensRefused, dev_token

        try:
            print(
                dev_token(
                    settings,
                    role=Role(args.role),
                    organisation=args.org,
                    name=args.user,
                    subject=args.subject,
                )
            )
        except DevTokensRefused as exc:
            print(f"signpost: {exc}", file=sys.stderr)
            return 2
        except ValidationError as exc:
            return _invalid(exc, lambda field: CLAIM_FLAGS.get(field, field))
        return 0

    if args.command == "service":
        from signpost.platform.control import request
        from signpost.platform.supervisor import READY_TIMEOUT_S

        done, message = request(settings, args.action, args.name, timeout_s=READY_TIMEOUT_S + 15)
        print(f"signpost: {message}", file=sys.stdout if done else sys.stderr)
        return 0 if done else 2

    if args.command == "dlq":
        return _dead_letters(settings, args)

    if args.command == "health":
        from signpost.platform.health import probe

        healthy, detail = probe(
            settings, services=[args.service] if args.service else SERVICE_NAMES, ready=args.ready
        )
        print(f"signpost: {detail}", file=sys.stdout if healthy else sys.stderr)
        return 0 if healthy else 1

    if args.command == "migrate":
        return _migrate(settings)

    if args.command == "demo":
        return _demo(settings, args)

    if args.command == "contract":
        return _contract(Path(args.out))

    if args.command == "catalogue":
        return _import_catalogue(settings, args)
    if args.command == "analytics":
        if args.abandon:
            return _abandon_rebuild(settings)
        return _rebuild_analytics(settings, compare=not args.no_compare, force=args.force)

    from signpost.platform.supervisor import run_platform, run_service

    if args.service:
        try:
            return run_service(settings, args.service)
        except ValueError as exc:
            print(f"signpost: {exc}", file=sys.stderr)
            return 2
    if args.demo:
        from signpost.platform.demo.console import demo_command
        from signpost.platform.demo.runner import DemoOptions, Endpoints

        endpoints = Endpoints.from_settings(settings)
        return run_platform(
            settings,
            when_ready=lambda platform_stopping: demo_command(
                settings,
                endpoints,
                DemoOptions(),
                prefix="demo      | ",
                in_place=False,
                platform_stopping=platform_stopping,
            ),
        )
    return run_platform(settings)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text}")
    return value


def _migrate(settings: Settings) -> int:
    import asyncio

    from signpost.shared.area import DatabaseOfAnotherArea

    from signpost.platform.migrate import migrate

    if _servers_unset(settings):
        return 2
    try:
        asyncio.run(migrate(settings))
    except DatabaseOfAnotherArea as exc:
        print(f"signpost: {exc}", file=sys.stderr)
        return 2
    print("signpost: topics, indexes and inbox keys are in place")
    return 0


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, not {text!r}") from None
    if not math.isfinite(value):  # float() reads "inf" and "nan" too
        raise argparse.ArgumentTypeError(f"must be a finite number, not {text}")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, not {text}")
    return value


def _number_in(low: float, high: float) -> Callable[[str], float]:
    """An argparse type: a number from `low` to `high`."""

    def number(text: str) -> float:
        value = _positive(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low:g} to {high:g}, not {text}")
        return value

    return number


def _not_empty(text: str) -> str:
    if not text:  # a path: read as the current folder
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def _http_url(text: str) -> str:
    """A URL httpx can send to, checked before anything is sent."""
    import httpx

    try:
        url = httpx.URL(text)
    except httpx.InvalidURL as exc:
        raise argparse.ArgumentTypeError(f"not a valid URL: {text!r} ({exc})") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise argparse.ArgumentTypeError(f"must be an http:// or https:// URL with a host, not {text!r}")
    if url.port is not None and not 1 <= url.port <= 65535:
        raise argparse.ArgumentTypeError(f"the port must be from 1 to 65535, not {url.port} in {text!r}")
    return text


def _bearer_token(text: str) -> str:
    if not BEARER_TOKEN.fullmatch(text):  # never echoed: it may be a real token with a typo
        raise argparse.ArgumentTypeError("not a bearer token (letters, digits and -._~+/ then any =)")
    return text


def _invalid(exc: ValidationError, name: Callable[[str], str]) -> int:
    """Each validation error as `signpost: NAME: why`, NAME being what the person set (a flag, a variable)."""
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"])
        print(f"signpost: {name(field)}: {error['msg']}", file=sys.stderr)
    return 2


def _unusable_files() -> tuple[type[Exception], ...]:
    # Called only once something was raised, as `_server_errors`: devtokens imports the JWT library.
    from signpost.platform.devtokens import SigningKeyUnusable

    return PathUnusable, SigningKeyUnusable


def _servers_unset(settings: Settings) -> bool:
    """Whether a command that works against both servers lacks one; says which."""
    if missing := settings.missing_servers:
        print(
            f"signpost: set {' and '.join(missing)} (`signpost run` prints the embedded ones)",
            file=sys.stderr,
        )
    return bool(missing)


def _server_errors() -> tuple[type[Exception], ...]:
    # Called only once something was raised: importing these up front costs every command
    # (`signpost health`, run every few seconds in a container) a third of a second.
    from aiokafka.errors import KafkaError
    from pymongo.errors import PyMongoError

    return KafkaError, PyMongoError


def _server_failed(settings: Settings, exc: Exception) -> int:
    from aiokafka.errors import KafkaConnectionError, KafkaError
    from pymongo.errors import ConnectionFailure

    if isinstance(exc, KafkaError):
        server = f"Kafka at {settings.kafka_bootstrap} (SIGNPOST_KAFKA_BOOTSTRAP)"
    else:  # the URL may hold a password: pymongo's message names the host instead
        server = "MongoDB at SIGNPOST_MONGODB_URL"
    failure = (
        f"cannot reach {server}"
        if isinstance(exc, KafkaConnectionError | ConnectionFailure)
        else f"{server} failed"
    )
    # pymongo appends its whole topology description, which repeats the reason.
    reason = str(exc).partition(", Topology Description:")[0]
    print(f"signpost: {failure}: {reason}", file=sys.stderr)
    return 1


def _demo(settings: Settings, args: argparse.Namespace) -> int:
    import json
    from dataclasses import replace

    from signpost.platform.demo.area import build_area
    from signpost.platform.demo.console import demo_command
    from signpost.platform.demo.oruk import oruk_feed
    from signpost.platform.demo.runner import DemoOptions, Endpoints

    if args.feed is not None:
        feed = json.dumps(oruk_feed(build_area(args.seed)), indent=2)
        if args.feed == "-":
            try:
                print(feed, flush=True)
            except BrokenPipeError:  # the reader stopped early (`| head`): it read what it wanted
                # Python's own flush at exit would raise again: point stdout at nothing first.
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        try:
            Path(args.feed).write_text(feed + "\n")
        except OSError as exc:
            print(f"signpost: cannot write --feed {args.feed}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        return 0
    defaults = Endpoints.from_settings(settings)
    endpoints = replace(
        defaults,
        **{
            service: getattr(args, f"{service}_url").rstrip("/")
            for service in SERVICE_NAMES
            if getattr(args, f"{service}_url")
        },
    )
    options = DemoOptions(  # a dataclass's class attributes hold its defaults
        period=args.term or DemoOptions.period,
        minutes=args.minutes or DemoOptions.minutes,
        referrals=args.referrals,
        rate=args.rate,
        seed=args.seed,
    )
    return demo_command(settings, endpoints, options)


def _contract(folder: Path) -> int:
    from signpost.platform.contract import write_contract

    try:
        written = write_contract(folder)
    except OSError as exc:
        print(f"signpost: cannot write --out {folder}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(f"signpost: wrote {len(written)} files of the event contract to {folder}")
    return 0


def _import_catalogue(settings: Settings, args: argparse.Namespace) -> int:
    from signpost.platform.catalogue import import_feed
    from signpost.platform.devtokens import DevTokensRefused, dev_token

    token = args.token
    if token is None:
        try:
            token = dev_token(settings, role=Role.ADMIN, organisation="la-digital", name="Catalogue import")
        except DevTokensRefused:
            print("signpost: pass --token with an admin token from the identity provider", file=sys.stderr)
            return 2
    routing = args.routing or settings.service_url("routing")  # '::' or 0.0.0.0: loopback
    code, text = import_feed(args.source, routing=routing, token=token)
    print(text, file=sys.stdout if code == 0 else sys.stderr)
    return code


def _dead_letters(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    from signpost.shared.topics import Topics

    from signpost.platform.deadletters import CutShort, DeadLetter, one_per_source, read_dead_letters, replay

    if not settings.kafka_bootstrap:
        print(
            "signpost: set SIGNPOST_KAFKA_BOOTSTRAP (`signpost run` prints the embedded broker's)",
            file=sys.stderr,
        )
        return 2
    letters = asyncio.run(
        read_dead_letters(
            bootstrap=settings.kafka_bootstrap, topic=Topics.from_settings(settings).dead_letters
        )
    )
    by_offset = {letter.offset: letter for letter in letters}
    if args.dlq_command == "list":
        print(f"{len(letters)} dead letter(s)")
        if letters:
            print(DeadLetter.HEADING)
        for letter in letters:
            print(letter.summary())
        return 0
    if args.dlq_command == "replay" and args.all and not letters:
        print("nothing to replay: the dead-letter topic is empty")
        return 0
    wanted = (
        list(by_offset)
        if args.dlq_command == "replay" and args.all
        else ([args.offset] if args.dlq_command == "show" else args.offsets)
    )
    unknown = [offset for offset in wanted if offset not in by_offset]
    if unknown:
        print(f"signpost: no dead letter at offset(s) {unknown}; see `signpost dlq list`", file=sys.stderr)
        return 2
    if args.dlq_command == "show":
        print(by_offset[wanted[0]].details())
        return 0
    chosen, folded = one_per_source(by_offset[offset] for offset in wanted)
    orphans = [letter.offset for letter in chosen if not letter.replayable]
    if orphans:
        print(f"signpost: dead letter(s) {orphans} do not say which topic they came from", file=sys.stderr)
        return 2
    if cut := [letter.offset for letter in chosen if letter.cut_short]:
        print(f"signpost: {CutShort(cut)}; `signpost dlq show` prints what was kept", file=sys.stderr)
        return 2
    asyncio.run(replay(bootstrap=settings.kafka_bootstrap, letters=chosen))
    for letter in chosen:
        copies = folded.get(letter.offset)
        also = f" (once for dead letter(s) {copies} too: the same message)" if copies else ""
        print(f"replayed {letter.offset} to {letter.original_topic}{also}")
    if folded:
        count = sum(len(copies) for copies in folded.values())
        print(
            f"{count} dead letter(s) repeated a message another service refused too; each was published once"
        )
    return 0


def _abandon_rebuild(settings: Settings) -> int:
    import asyncio

    from signpost.analytics.rebuild.service import abandon_rebuild

    if _servers_unset(settings):
        return 2
    name = asyncio.run(abandon_rebuild(settings))
    if name is None:
        print("no rebuild under way: nothing to abandon")
    else:
        print(f"abandoned the rebuild of {name!r} and dropped its set; the active set stays in use")
    return 0


def _rebuild_analytics(settings: Settings, *, compare: bool, force: bool) -> int:
    import asyncio

    from signpost.analytics.projections.sets import RebuildAbandoned, RebuildInProgress
    from signpost.analytics.rebuild.service import IncompleteLog, rebuild

    if _servers_unset(settings):
        return 2
    try:
        report = asyncio.run(
            rebuild(
                settings,
                progress=lambda done: print(f"  {done} events folded", flush=True),
                compare=compare,
                force=force,
            )
        )
    except RebuildInProgress as exc:
        print(
            f"signpost: {exc}; wait for it to finish, or, if its process is gone, give it up with "
            "`signpost analytics rebuild --abandon`",
            file=sys.stderr,
        )
        return 2
    except RebuildAbandoned as exc:
        print(f"signpost: nothing swapped in: {exc}. The active set stays in use", file=sys.stderr)
        return 1
    except IncompleteLog as exc:
        print(
            f"signpost: nothing swapped in: {exc}. The active set stays in use and the rebuilt one "
            "was dropped; --force swaps in what the log still holds, losing the rest",
            file=sys.stderr,
        )
        for difference in exc.comparison.differences if exc.comparison else ():
            print(f"  {difference.describe()}", file=sys.stderr)
        return 1
    print(
        f"rebuilt the analytics projections from {report.events} events into {report.active!r} and swapped it in "
        f"(replacing {report.replaced!r}, kept for comparison; {report.skipped} invalid records skipped; "
        f"dropped: {', '.join(report.dropped) or 'none'})"
    )
    comparison = report.comparison
    if comparison is None:
        return 0
    if comparison.identical:
        print(
            f"compared with {report.replaced!r} before the swap: all {comparison.documents} projection "
            "documents are identical"
        )
        return 0
    print(
        f"compared with {report.replaced!r} before the swap, the rebuilt projections differ "
        f"(the rebuilt set, from the log, is now active; {report.replaced!r} is kept to inspect):",
        file=sys.stderr,
    )
    for difference in comparison.differences:
        print(f"  {difference.describe()}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
