"""`signpost`: the one command a person runs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pydantic import ValidationError
from signpost.shared.auth.principal import Role
from signpost.shared.settings import SERVICE_NAMES, Settings


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
    run.add_argument("--service", choices=SERVICE_NAMES, help="run only this service (what a container does)")
    token = commands.add_parser(
        "token",
        help="print a development bearer token (embedded mode only)",
        description="Signs a token with the local development issuer; refused when SIGNPOST_AUTH_ISSUER is set.",
    )
    token.add_argument("--role", required=True, choices=[role.value for role in Role])
    token.add_argument("--org", required=True, help="the caller's organisation id, e.g. la-inclusion-service")
    token.add_argument("--user", help="the caller's display name (recorded in audit records)")
    token.add_argument(
        "--subject", help="a stable user id (default: from the name, or role and organisation)"
    )
    dlq = commands.add_parser(
        "dlq",
        help="inspect and replay dead letters (messages no consumer could read)",
        description="Reads the dead-letter topic on SIGNPOST_KAFKA_BOOTSTRAP (`signpost run` prints the embedded one).",
    )
    dlq_commands = dlq.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")
    dlq_commands.add_parser("list", help="one line per dead letter: offset, service, origin, type, error")
    show = dlq_commands.add_parser("show", help="one dead letter in full: error, origin, headers and body")
    show.add_argument("offset", type=int)
    replay = dlq_commands.add_parser("replay", help="publish dead letters to their original topic again")
    replay.add_argument("offsets", type=int, nargs="*", help="which (see `list`)")
    replay.add_argument("--all", action="store_true", help="every dead letter")
    analytics = commands.add_parser(
        "analytics",
        help="analytics maintenance: rebuild the pulse projections from the log",
        description="Works against SIGNPOST_KAFKA_BOOTSTRAP and SIGNPOST_MONGODB_URL while the platform runs.",
    )
    analytics_commands = analytics.add_subparsers(dest="analytics_command", required=True, metavar="ACTION")
    analytics_commands.add_parser(
        "rebuild",
        help="replay the retained log into fresh projections and swap them in when caught up",
        description="Folds every retained referral, provision and settings-register event into a new "
        "projection set while the live consumer keeps going, then makes it the one the pulse reads.",
    )
    args = parser.parse_args(argv)

    try:
        settings = Settings()
    except ValidationError as exc:
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"])
            name = f"SIGNPOST_{field.upper()}" if field else "settings"
            print(f"signpost: {name}: {error['msg']}", file=sys.stderr)
        return 2

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
        return 0

    if args.command == "dlq":
        return _dead_letters(settings, args)

    if args.command == "analytics":
        return _rebuild_analytics(settings)

    from signpost.platform.supervisor import run_platform, run_service

    if args.service:
        try:
            return run_service(settings, args.service)
        except ValueError as exc:
            print(f"signpost: {exc}", file=sys.stderr)
            return 2
    return run_platform(settings)


def _dead_letters(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    from signpost.shared.topics import Topics

    from signpost.platform.deadletters import read_dead_letters, replay

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
        for letter in letters:
            print(letter.summary())
        return 0
    wanted = (
        list(by_offset)
        if args.dlq_command == "replay" and args.all
        else ([args.offset] if args.dlq_command == "show" else args.offsets)
    )
    unknown = [offset for offset in wanted if offset not in by_offset]
    if unknown or not wanted:
        print(
            f"signpost: no dead letter at offset(s) {unknown or '(none given)'}; see `signpost dlq list`",
            file=sys.stderr,
        )
        return 2
    if args.dlq_command == "show":
        print(by_offset[wanted[0]].details())
        return 0
    chosen = [by_offset[offset] for offset in wanted]
    asyncio.run(replay(bootstrap=settings.kafka_bootstrap, letters=chosen))
    for letter in chosen:
        print(f"replayed {letter.offset} to {letter.original_topic}")
    return 0


def _rebuild_analytics(settings: Settings) -> int:
    import asyncio

    from signpost.analytics.projections.sets import RebuildInProgress
    from signpost.analytics.rebuild.service import rebuild

    if not (settings.kafka_bootstrap and settings.mongodb_url):
        print(
            "signpost: set SIGNPOST_KAFKA_BOOTSTRAP and SIGNPOST_MONGODB_URL (`signpost run` prints the embedded ones)",
            file=sys.stderr,
        )
        return 2
    try:
        report = asyncio.run(
            rebuild(settings, progress=lambda done: print(f"  {done} events folded", flush=True))
        )
    except RebuildInProgress as exc:
        print(f"signpost: {exc}; wait for it to finish", file=sys.stderr)
        return 2
    print(
        f"rebuilt the analytics projections from {report.events} events into {report.active!r} and swapped it in "
        f"(replacing {report.replaced!r}, kept for comparison; {report.skipped} invalid records skipped; "
        f"dropped: {', '.join(report.dropped) or 'none'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
