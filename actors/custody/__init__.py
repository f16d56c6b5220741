"""Custody records: the withdrawal lifecycle, the withdrawal policy and their SQL."""
