"""The receiver: framework-agnostic handlers (:mod:`promwire.server.handlers`),
ASGI and WSGI apps built on them, and ``promwire serve``
(:mod:`promwire.server.runner`).

Imports the store, chunk and codec layers; nothing imports it but the CLI.
"""
