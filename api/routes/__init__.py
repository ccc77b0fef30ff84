"""Thin HTTP routes, one module per area: parse, call one service, shape the answer."""
