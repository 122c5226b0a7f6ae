"""The proto3 JSON mapping of promwire messages (``to_dict`` / ``from_dict``).

Same shape protobuf's ``MessageToDict(..., preserving_proto_field_name=True)``
gives: proto field names, 64-bit integers as strings, enums by name (an
unknown number stays a number), non-finite doubles as ``"NaN"``,
``"Infinity"``, ``"-Infinity"``, bytes as base64, defaults left out (oneof
members are kept whenever present).

**NaN bits are kept.** proto3 JSON has a single ``"NaN"``, but Prometheus
gives NaNs meaning by their bits: the stale marker is ``0x7ff0000000000002``
and Go's ``math.NaN()`` (summary quantiles without observations) is
``0x7ff8000000000001``. So ``"NaN"`` stands for exactly one bit pattern,
``0x7ff8000000000000`` (Python's ``float("nan")``), and every other NaN is
written ``"NaN:0x"`` + its 16 hex digits, e.g. ``"NaN:0x7ff0000000000002"``.
``from_dict`` reads both (and plain numbers, ``"Infinity"``...), so
``from_dict(to_dict(m))`` encodes to the same bytes as ``m``. Only messages
holding such NaNs differ from protobuf's ``MessageToDict``; pass
``keep_nan_bits=False`` to get plain ``"NaN"`` there too (protobuf's parser
refuses the ``NaN:0x`` form).
"""

from __future__ import annotations

import base64
import math
from typing import Any, TypeVar

from ..errors import DecodeError
from .fields import SCHEMAS, FieldSpec, Kind
from .wire import bits_double, double_bits

__all__ = [
    "CANONICAL_NAN_BITS",
    "NAN_PREFIX",
    "float_from_text",
    "from_dict",
    "nan_text",
    "to_dict",
]

#: The NaN that plain ``"NaN"`` stands for (Python's ``float("nan")``).
CANONICAL_NAN_BITS = 0x7FF8000000000000
#: Prefix of the exact form of any other NaN: ``"NaN:0x7ff0000000000002"``.
NAN_PREFIX = "NaN:0x"
_EXP_MASK = 0x7FF0000000000000
_FRACTION_MASK = (1 << 52) - 1

T = TypeVar("T")

_INT64_KINDS = (Kind.INT64, Kind.UINT64, Kind.SINT64)
_INT_RANGES = {
    Kind.INT64: (-(1 << 63), (1 << 63) - 1),
    Kind.SINT64: (-(1 << 63), (1 << 63) - 1),
    Kind.UINT64: (0, (1 << 64) - 1),
    Kind.UINT32: (0, (1 << 32) - 1),
    Kind.SINT32: (-(1 << 31), (1 << 31) - 1),
}


def nan_text(value: float) -> str:
    """``"NaN"`` for the canonical NaN, ``"NaN:0x<16 hex digits>"`` for any other."""
    bits = double_bits(value)
    return "NaN" if bits == CANONICAL_NAN_BITS else f"{NAN_PREFIX}{bits:016x}"


def float_from_text(text: str) -> float:
    """The float a ``"NaN:0x..."`` string names, bits and all.

    Raises ValueError unless ``text`` is the prefix and 16 hex digits of a NaN.
    """
    digits = text[len(NAN_PREFIX) :]
    if not text.startswith(NAN_PREFIX) or len(digits) != 16:
        raise ValueError(f"{text!r}: expected {NAN_PREFIX} and 16 hex digits")
    bits = int(digits, 16)  # ValueError for a non-hex digit
    if bits & _EXP_MASK != _EXP_MASK or not bits & _FRACTION_MASK:
        raise ValueError(f"{text!r}: the bits are not a NaN")
    return bits_double(bits)


def _value_to_json(spec: FieldSpec, v: Any, keep_nan_bits: bool) -> Any:
    kind = spec.kind
    if kind == Kind.MESSAGE:
        return to_dict(v, keep_nan_bits=keep_nan_bits)
    if kind in _INT64_KINDS:
        return str(v)
    if kind == Kind.DOUBLE:
        if math.isnan(v):
            return nan_text(v) if keep_nan_bits else "NaN"
        if math.isinf(v):
            return "Infinity" if v > 0 else "-Infinity"
        return v
    if kind == Kind.ENUM:
        try:
            return spec.enum(v).name
        except ValueError:
            return int(v)
    if kind == Kind.BYTES:
        return base64.b64encode(v).decode("ascii")
    return v


def _is_default(spec: FieldSpec, v: Any) -> bool:
    if spec.repeated:
        return not v
    if spec.oneof or spec.kind == Kind.MESSAGE:
        return v is None
    if spec.kind == Kind.DOUBLE:
        return v == 0.0 and math.copysign(1.0, v) > 0
    return not v


def to_dict(message: Any, *, keep_nan_bits: bool = True) -> dict[str, Any]:
    """The proto3 JSON form of ``message`` as plain Python data.

    NaNs other than ``float("nan")`` are written ``"NaN:0x<bits>"`` unless
    ``keep_nan_bits=False`` (then every NaN is ``"NaN"``, as protobuf writes it).
    """
    out: dict[str, Any] = {}
    for spec in SCHEMAS[type(message)]:
        v = getattr(message, spec.name)
        if _is_default(spec, v):
            continue
        if spec.repeated:
            out[spec.name] = [_value_to_json(spec, x, keep_nan_bits) for x in v]
        else:
            out[spec.name] = _value_to_json(spec, v, keep_nan_bits)
    return out


def _value_from_json(spec: FieldSpec, v: Any) -> Any:
    kind = spec.kind
    if kind == Kind.MESSAGE:
        return from_dict(spec.message, v)
    if kind == Kind.DOUBLE:
        if isinstance(v, str):
            try:
                if v.startswith(NAN_PREFIX):
                    return float_from_text(v)
                return float({"NaN": "nan", "Infinity": "inf", "-Infinity": "-inf"}.get(v, v))
            except ValueError:
                raise DecodeError(f"{spec.name}: {v!r} is not a number") from None
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise DecodeError(f"{spec.name}: {v!r} is not a number")
        return float(v)
    if kind == Kind.ENUM:
        if isinstance(v, str):
            try:
                return spec.enum[v]
            except KeyError:
                raise DecodeError(f"{spec.name}: unknown enum name {v!r}") from None
        if not isinstance(v, int) or isinstance(v, bool) or not -(1 << 31) <= v < 1 << 31:
            raise DecodeError(f"{spec.name}: {v!r} is not an enum value")
        try:
            return spec.enum(v)
        except ValueError:
            return v
    if kind == Kind.STRING:
        if not isinstance(v, str):
            raise DecodeError(f"{spec.name}: {v!r} is not a string")
        try:
            v.encode("utf-8")  # a lone surrogate could never be encoded
        except UnicodeEncodeError:
            raise DecodeError(f"{spec.name}: string is not valid Unicode") from None
        return v
    if kind == Kind.BYTES:
        try:
            return base64.b64decode(v, validate=True)
        except (ValueError, TypeError):
            raise DecodeError(f"{spec.name}: not valid base64") from None
    if kind == Kind.BOOL:
        if not isinstance(v, bool):
            raise DecodeError(f"{spec.name}: {v!r} is not a boolean")
        return v
    # Like protobuf's parser: no bools, no fractions, and the field's range.
    if isinstance(v, bool) or (isinstance(v, float) and not v.is_integer()):
        raise DecodeError(f"{spec.name}: {v!r} is not an integer")
    try:
        n = int(v)
    except (TypeError, ValueError, OverflowError):
        raise DecodeError(f"{spec.name}: {v!r} is not an integer") from None
    lo, hi = _INT_RANGES[kind]
    if not lo <= n <= hi:
        raise DecodeError(f"{spec.name}: {n} out of range for {kind.name.lower()}")
    return n


def from_dict(cls: type[T], data: Any) -> T:
    """Build a message of class ``cls`` from its proto3 JSON form.

    Raises :class:`~promwire.errors.DecodeError` for unknown fields or values
    of the wrong type.
    """
    if not isinstance(data, dict):
        raise DecodeError(f"{cls.__name__}: expected a JSON object")
    fields = {spec.name: spec for spec in SCHEMAS[cls]}
    kw: dict[str, Any] = {}
    for key, v in data.items():
        spec = fields.get(key)
        if spec is None:
            raise DecodeError(f"{cls.__name__}: unknown field {key!r}")
        if v is None:  # proto3 JSON: null means the field's default
            continue
        if spec.repeated:
            if not isinstance(v, list):
                raise DecodeError(f"{cls.__name__}.{key}: expected a list")
            kw[key] = [_value_from_json(spec, x) for x in v]
        else:
            kw[key] = _value_from_json(spec, v)
    return cls(**kw)
