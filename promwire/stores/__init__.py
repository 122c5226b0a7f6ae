"""Storage: the :class:`~promwire.stores.protocol.RemoteStorage` protocol that
users implement, Prometheus' label-matcher semantics, and the built-in stores
(:mod:`promwire.stores.sqlite`).

Imports only the codec and chunk layers.
"""
