"""The wire codec: protobuf primitives, message classes, field tables, decode and
encode, snappy, and the JSON and text forms of messages.

The bottom layer: it imports nothing of promwire but :mod:`promwire.errors`.
"""
