"""Morelia Server: a self-hosted messenger server speaking MTP and the Matrix client API."""

__version__ = "1.0.0"
