"""Chunks and streams: Prometheus' XOR and native histogram chunk codecs, CRC-32C,
the frames of a streamed remote-read answer, and building and reading such answers.

Imports only :mod:`promwire.codec` and :mod:`promwire.errors`.
"""
