from typing import Any

import flask

import promwire.server.handlers as pw


def to_flask(resp: pw.Response) -> flask.Response:
    return flask.Response(resp.body, status=resp.status, headers=resp.headers)


def make_app(storage: Any) -> flask.Flask:
    app = flask.Flask(__name__)
    # Werkzeug answers 413 for a Content-Length over this, before reading.
    app.config["MAX_CONTENT_LENGTH"] = pw.DEFAULT_MAX_BODY_SIZE

    @app.post("/api/v1/write")
    def write() -> flask.Response:
        body = flask.request.get_data()
        return to_flask(pw.handle_write(body, flask.request.headers, storage))

    @app.post("/api/v1/read")
    def read() -> flask.Response:
        body = flask.request.get_data()
        resp = pw.handle_read(body, flask.request.headers, storage)
        # A streamed answer is lazy: compute its first frame now, so a failing
        # storage gets an error status instead of a broken 200.
        return to_flask(pw.prime_response(resp))

    return app
