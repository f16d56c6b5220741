"""`python -m actors.chain.rpc_server`: run the embedded chain until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from pathlib import Path

import uvicorn
from solders.pubkey import Pubkey

from actors.chain.rpc_server.app import build_app
from actors.chain.rpc_server.chain import Chain, Program

PID_FILE = "server.pid"
PORT_FILE = "port"


def parse_program(text: str) -> Program:
    """Parse `<program id>=<path to .so>`.

    Raises:
        argparse.ArgumentTypeError: Not of that form, or no such file.
    """
    key, sep, path = text.partition("=")
    try:
        program_id = Pubkey.from_string(key.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{key!r} is not a base58 program id") from None
    if not sep or not Path(path).is_file():
        raise argparse.ArgumentTypeError(f"--program {text!r}: expected <id>=<existing .so file>")
    return Program(program_id, Path(path))


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, open the chain, serve JSON-RPC."""
    parser = argparse.ArgumentParser(prog="python -m actors.chain.rpc_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--slot-ms", type=int, default=400, help="milliseconds per slot")
    parser.add_argument(
        "--program", type=parse_program, action="append", default=[], metavar="ID=PATH",
        help="an extra SBF program to load (repeatable)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if not 1 <= args.slot_ms <= 60_000:
        parser.error("--slot-ms must be 1 to 60000")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    data_dir: Path = args.data_dir.resolve()
    chain = Chain(data_dir, args.program)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    # The port file is written once the socket is bound, so a reader never sees a port
    # that is not ours; the pid file names this process.
    _write(data_dir / PORT_FILE, str(sock.getsockname()[1]))
    _write(data_dir / PID_FILE, str(os.getpid()))
    config = uvicorn.Config(build_app(chain, args.slot_ms), log_level="warning",
                            access_log=False, lifespan="on")  # fmt: skip
    uvicorn.Server(config).run(sockets=[sock])
    return 0


def _write(path: Path, text: str) -> None:
    partial = path.with_suffix(".tmp")
    partial.write_text(text)
    partial.replace(path)


if __name__ == "__main__":
    sys.exit(main())
