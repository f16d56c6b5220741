"""The base of errors whose message is meant for the operator as it is (one line)."""


class ClobError(Exception):
    """An expected failure: the CLI prints its message alone, without a traceback."""
