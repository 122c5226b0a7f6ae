"""Clients: the remote-write sender (:mod:`promwire.client.writer`) and the
remote-read client (:mod:`promwire.client.reader`).

Imports only the codec and chunk layers.
"""
