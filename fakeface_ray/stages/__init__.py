"""Stages: list and read sources, decode, find faces, embed; each a callable that maps a batch."""
