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

    from signpost.platform.supervisor import run_platform, run_service

    if args.service:
        try:
            return run_service(settings, args.service)
        except ValueError as exc:
            print(f"signpost: {exc}", file=sys.stderr)
            return 2
    return run_platform(settings)


if __name__ == "__main__":
    sys.exit(main())
