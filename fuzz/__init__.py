"""Fuzzing harnesses for promwire's decoders.

The contract every target checks: any input is either accepted or refused
with a :class:`promwire.errors.PromwireError`; any other exception is a crash.

* :mod:`fuzz.targets` - the targets (one per decoder and per snappy backend);
* :mod:`fuzz.corpus` - seed inputs built from the Prometheus 2.42 captures;
* :mod:`fuzz.mutate` - a deterministic, dependency-free mutation driver;
* :mod:`fuzz.run` - the runner: ``python3 fuzz/run.py --seconds 60``
  (``--engine atheris`` for coverage-guided fuzzing when atheris is installed);
* :mod:`fuzz.bench_snappy` - throughput of both snappy backends.

See docs/robustness.md.
"""
