"""One module per library measured, all with the same interface.

``NAME``; ``version()``; ``decode(body)``: snappy block -> the library's
message object; ``walk(obj)``: read every field into Python values (returns
the number of series); ``content(obj)``: the plain content of
:mod:`benchmarks.workloads`; ``build(plain)``: plain content -> message object;
``encode(obj)``: message object -> snappy block. Peers are benchmark-only
dependencies: promwire never imports them.
"""
