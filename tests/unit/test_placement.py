"""The controller places each new market on the alive node with the fewest markets."""

from __future__ import annotations

from actors.controller import least_loaded_node


def test_no_alive_node_leaves_the_choice_to_ray() -> None:
    assert least_loaded_node([], {"A-USD": "n1"}) is None


def test_an_empty_node_is_chosen_first() -> None:
    assert least_loaded_node(["n1", "n2"], {"A-USD": "n1"}) == "n2"


def test_markets_fill_nodes_round_robin() -> None:
    placed: dict[str, str] = {}
    for i in range(7):
        node = least_loaded_node(["n1", "n2", "n3"], placed)
        assert node is not None
        placed[f"M{i}"] = node
    counts = sorted(list(placed.values()).count(n) for n in ("n1", "n2", "n3"))
    assert counts == [2, 2, 3]


def test_markets_on_a_dead_node_do_not_count() -> None:
    placed = {"A": "gone", "B": "gone", "C": "n1"}
    assert least_loaded_node(["n1", "n2"], placed) == "n2"
    assert least_loaded_node(["n1"], placed) == "n1"
