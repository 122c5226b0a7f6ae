from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.urls import URLPattern, path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

import promwire.server.handlers as pw

# settings.py: Django refuses (400) bodies over DATA_UPLOAD_MAX_MEMORY_SIZE (default 2.5 MB)
#     DATA_UPLOAD_MAX_MEMORY_SIZE = 32 * 1024 * 1024


def to_django(resp: pw.Response) -> HttpResponseBase:
    if isinstance(resp.body, bytes):
        out: HttpResponseBase = HttpResponse(resp.body, status=resp.status)
    else:
        out = StreamingHttpResponse(resp.body, status=resp.status)
    for name, value in resp.headers:
        out[name] = value
    return out


def make_urlpatterns(storage: Any) -> list[URLPattern]:
    @csrf_exempt
    @require_POST
    def write(request: HttpRequest) -> HttpResponseBase:
        return to_django(pw.handle_write(request.body, request.headers, storage))

    @csrf_exempt
    @require_POST
    def read(request: HttpRequest) -> HttpResponseBase:
        resp = pw.handle_read(request.body, request.headers, storage)
        # A streamed answer is lazy: compute its first frame now, so a failing
        # storage gets an error status instead of a broken 200.
        return to_django(pw.prime_response(resp))

    return [path("api/v1/write", write), path("api/v1/read", read)]
