"""Helpers the tests share: the local stack's client (`stack`) and hostile receivers (`receivers`)."""
