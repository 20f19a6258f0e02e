"""``modelyard-agent``: the device process. ``activate`` once with the code from ``modelyard edge register``, then
``run`` (as a service). Light imports: no server, store or CLI stack."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from modelyard.edge.agent.agent import Agent, PlatformError, activate
    from modelyard.edge.agent.home import AgentHome

    parser = argparse.ArgumentParser(prog="modelyard-agent", description="Modelyard edge device agent.")
    parser.add_argument("--home", type=Path, required=True, help="The agent's own folder (identity, slots, queue).")
    commands = parser.add_subparsers(dest="command", required=True)
    act = commands.add_parser("activate", help="Exchange a one-time activation code for this device's credential.")
    act.add_argument("--url", required=True, help="Platform URL, e.g. https://modelyard.example:8765")
    act.add_argument("--code", required=True, help="The activation code 'modelyard edge register' printed.")
    run = commands.add_parser("run", help="Run the reconcile loop (long-poll, apply, supervise, report).")
    run.add_argument("--poll-wait", type=float, default=20.0, help="Long-poll seconds (default 20).")
    run.add_argument("--report-interval", type=float, default=10.0, help="Seconds between reports (default 10).")
    run.add_argument("--max-download-bps", type=int, default=None, help="Bandwidth cap for bundle downloads.")
    run.add_argument("--once", action="store_true", help="One reconcile pass, then exit.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per poll would drown the agent's own lines
    home = AgentHome(args.home)
    try:
        if args.command == "activate":
            identity = activate(home, args.url, args.code)
            print(f"activated as device {identity['name']} ({identity['device_id']})")
            return 0
        Agent(home, poll_wait=args.poll_wait, report_interval=args.report_interval,
              max_download_bps=args.max_download_bps).run(once=args.once)
        return 0
    except PlatformError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
