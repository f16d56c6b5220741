"""The ``clob replay`` tool: JSON-lines commands in, JSON-lines events out (ENGINE_SPEC.md).

``ReplaySession`` wraps one ``MatchingEngine`` behind the replay format's dicts;
``run`` streams lines; ``replay_main`` is the whole command-line tool minus argument parsing
and file handling, so the CLI is a thin shim around it. Lines that are empty or only
whitespace carry no command and are skipped (no event, no ``seq``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from actors.engine.codec import command_from_dict, command_from_line, dumps, event_to_dict
from actors.engine.engine import MatchingEngine
from actors.engine.spec import InvalidMarketSpecError, MarketSpec
from actors.engine.views import OrderView


class ReplaySession:
    """One market replayed through the replay format.

    Args:
        spec_dict: The market spec as a JSON object (``{"symbol": "X"}`` is enough).

    Raises:
        InvalidMarketSpecError: The spec is invalid.
    """

    def __init__(self, spec_dict: dict[str, Any]) -> None:
        self.engine = MatchingEngine(MarketSpec.from_dict(spec_dict))

    def apply(self, cmd: dict[str, Any] | str) -> list[dict[str, Any]]:
        """Apply one command (a dict, or a raw JSON line) and return its event dicts.

        Never raises on bad input: a malformed command yields one ``rejected`` event with
        reason ``invalid_command``. A blank line yields no event.
        """
        if isinstance(cmd, str):
            if not cmd.strip():
                return []
            command = command_from_line(cmd)
        else:
            command = command_from_dict(cmd)
        return [event_to_dict(e) for e in self.engine.submit(command)]

    def book(self) -> dict[str, Any]:
        """Return the book in the exact ``--book-out`` format."""
        bids: list[dict[str, Any]] = []
        asks: list[dict[str, Any]] = []
        for view in self.engine.l3():
            levels = bids if view.side == "buy" else asks
            if not levels or levels[-1]["price"] != view.price:
                levels.append({"price": view.price, "orders": []})
            levels[-1]["orders"].append(_book_order(view))
        stops = [_book_stop(s) for s in self.engine.stops()]
        return {"bids": bids, "asks": asks, "stops": stops}

    def dump(self) -> dict[str, Any]:
        """Return the engine's full state (JSON-serialisable)."""
        return self.engine.dump()

    @classmethod
    def restore(cls, dump: dict[str, Any]) -> ReplaySession:
        """Rebuild a session from ``dump()``; it continues exactly like the original."""
        session = cls.__new__(cls)
        session.engine = MatchingEngine.restore(dump)
        return session


def _book_order(view: OrderView) -> dict[str, Any]:
    return {
        "id": view.id,
        "owner": view.owner,
        "visible_qty": view.visible_qty,
        "remaining_qty": view.remaining_qty,
    }


def _book_stop(view: OrderView) -> dict[str, Any]:
    return {
        "id": view.id,
        "owner": view.owner,
        "side": view.side.value,
        "kind": view.kind.value,
        "stop_price": view.stop_price,
        "qty": view.remaining_qty,
    }


def run(
    spec_dict: dict[str, Any], lines: Iterable[str], session: ReplaySession | None = None
) -> Iterator[str]:
    """Replay command lines and yield one compact JSON event line (no newline) per event.

    Args:
        spec_dict: The market spec (ignored when ``session`` is given).
        lines: Command lines; trailing newlines are fine.
        session: Replay into this session instead of a new one, e.g. to read its final
            ``book()`` afterwards.
    """
    if session is None:
        session = ReplaySession(spec_dict)
    for line in lines:
        for event in session.apply(line):
            yield dumps(event)


def replay_main(
    spec_dict: dict[str, Any],
    in_lines: Iterable[str],
    out_write: Callable[[str], object],
    book_out_write: Callable[[str], object] | None = None,
    err_write: Callable[[str], object] | None = None,
) -> int:
    """Run the whole ``clob replay`` tool and return its exit status.

    Args:
        spec_dict: The parsed ``--market`` JSON.
        in_lines: Command lines (e.g. ``sys.stdin``).
        out_write: Receives each event line, newline included (e.g. ``sys.stdout.write``).
        book_out_write: If given, receives ``json.dumps(book)`` once at the end.
        err_write: If given, receives a one-line error message.

    Returns:
        0 on success, 2 if the market spec is invalid.
    """
    try:
        session = ReplaySession(spec_dict)
    except InvalidMarketSpecError as exc:
        if err_write is not None:
            err_write(f"clob replay: {exc}\n")
        return 2
    for line in run(spec_dict, in_lines, session):
        out_write(line + "\n")
    if book_out_write is not None:
        book_out_write(dumps(session.book()))
    return 0
