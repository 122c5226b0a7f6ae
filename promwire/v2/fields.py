"""Field tables of the remote write 2.0 messages, registered with :mod:`promwire.codec.fields`.

Importing this module (``import promwire.v2`` does) makes ``promwire.decode``,
``promwire.encode``, ``to_dict``/``from_dict`` and ``promwire.testing.canonical``
work for the classes of :mod:`promwire.v2.messages`.
"""

from __future__ import annotations

from dataclasses import replace

from ..codec import messages as m
from ..codec.fields import SCHEMAS, FieldSpec, Kind, register
from . import messages as v2

__all__ = ["FIELDS"]

F = FieldSpec
K = Kind

#: Field tables keyed by class, from ``io/prometheus/write/v2/types.proto``.
FIELDS: dict[type[object], tuple[FieldSpec, ...]] = {
    v2.Sample: (
        F(1, "value", K.DOUBLE),
        F(2, "timestamp", K.INT64),
        F(3, "start_timestamp", K.INT64),
    ),
    v2.Exemplar: (
        F(1, "labels_refs", K.UINT32, True),
        F(2, "value", K.DOUBLE),
        F(3, "timestamp", K.INT64),
    ),
    # Same layout as prometheus.Histogram (fields 1-16), v2's ResetHint names, plus field 17.
    v2.Histogram: (
        *(replace(f, enum=v2.ResetHint) if f.kind == K.ENUM else f for f in SCHEMAS[m.Histogram]),
        F(17, "start_timestamp", K.INT64),
    ),
    v2.Metadata: (
        F(1, "type", K.ENUM, enum=v2.MetricType),
        F(3, "help_ref", K.UINT32),
        F(4, "unit_ref", K.UINT32),
    ),
    v2.TimeSeries: (
        F(1, "labels_refs", K.UINT32, True),
        F(2, "samples", K.MESSAGE, True, v2.Sample),
        F(3, "histograms", K.MESSAGE, True, v2.Histogram),
        F(4, "exemplars", K.MESSAGE, True, v2.Exemplar),
        F(5, "metadata", K.MESSAGE, False, v2.Metadata),
        # rc.3's TimeSeries.created_timestamp (reserved since rc.4): read, and
        # written only when set (see promwire.v2.messages).
        F(6, "created_timestamp", K.INT64),
    ),
    v2.Request: (
        F(4, "symbols", K.STRING, True),
        F(5, "timeseries", K.MESSAGE, True, v2.TimeSeries),
    ),
}

for _cls, _fields in FIELDS.items():
    if _cls not in SCHEMAS:
        register(_cls, _fields)
