"""The promwire benchmark suite: ``python3 -m benchmarks`` (see docs/performance.md).

Modules: :mod:`.workloads` (seeded inputs), :mod:`.peers` (one module per
library measured), :mod:`.timing` (interleaved repeats), :mod:`.runner`
(checks and cells), :mod:`.report` (markdown and targets), :mod:`.memory` and
:mod:`.pyproto_worker` (child-process entry points).
"""
