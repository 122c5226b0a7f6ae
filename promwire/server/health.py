"""``/-/healthy`` and ``/-/ready``, as Prometheus answers them.

``/-/healthy`` is 200 while the process serves requests. ``/-/ready`` is 200
when the storage is open and writable (its optional ``check_writable()``
returns ``None``) and 503 with the reason otherwise, so a load balancer or
Kubernetes stops sending writes to a receiver that would answer them 5xx.
"""

from __future__ import annotations

from typing import Any

from .handlers import Response, text_response

__all__ = ["HEALTHY_PATH", "READY_PATH", "health_response"]

HEALTHY_PATH = "/-/healthy"
READY_PATH = "/-/ready"


def health_response(path: str, storage: Any) -> Response | None:
    """The answer for a health path, or ``None`` for any other path."""
    if path == HEALTHY_PATH:
        return text_response(200, "promwire is Healthy.")
    if path != READY_PATH:
        return None
    check = getattr(storage, "check_writable", None)
    try:
        problem = None if check is None else check()
    except Exception as exc:  # a broken store is "not ready", never a crash
        problem = f"{type(exc).__name__}: {exc}"
    if problem is not None:
        return text_response(503, f"promwire is not ready: {str(problem)[:200]}")
    return text_response(200, "promwire is Ready.")
