"""HTTP API: OpenAI-compatible ``POST /v1/audio/transcriptions``, with per-word confidence.

Clients written for OpenAI's transcription endpoint work unchanged: multipart ``file``,
``model``, ``prompt`` (VoxLM's instruction), ``language``, ``response_format``
(json | text | srt | vtt | verbose_json) and ``timestamp_granularities[]``. ``verbose_json``
adds ``confidence`` to every word and VoxLM's ``stop_reason``.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoint annotations at runtime.
import json
import logging
import threading
from dataclasses import replace
from typing import Annotated

from voxlm.decoding import DecodingOptions
from voxlm.formats import write_result
from voxlm.model import VoxLM

logger = logging.getLogger("voxlm")

RESPONSE_FORMATS = {
    "json": None,
    "text": "txt",
    "srt": "srt",
    "vtt": "vtt",
    "verbose_json": "verbose_json",
}
MAX_UPLOAD_BYTES = 200 * 1024 * 1024


def create_app(model: VoxLM, model_name: str, options: DecodingOptions | None = None):
    """A FastAPI app serving ``model``; requests are decoded one at a time (one model)."""
    from fastapi import FastAPI, File, Form, UploadFile
    from fastapi.responses import JSONResponse, PlainTextResponse

    app = FastAPI(title="VoxLM", description=__doc__)
    lock = threading.Lock()
    options = options or DecodingOptions(**model.decoding)

    def error(status: int, message: str, param: str | None = None) -> JSONResponse:
        body = {"error": {"message": message, "type": "invalid_request_error", "param": param}}
        return JSONResponse(body, status_code=status)

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "model": model_name}

    @app.post("/v1/audio/transcriptions")
    def transcriptions(
        file: Annotated[UploadFile, File()],
        model_field: Annotated[str | None, Form(alias="model")] = None,
        prompt: Annotated[str | None, Form()] = None,
        language: Annotated[str | None, Form()] = None,
        response_format: Annotated[str, Form()] = "json",
        granularities: Annotated[list[str] | None, Form(alias="timestamp_granularities[]")] = None,
        vad: Annotated[str | None, Form()] = None,
        vad_threshold: Annotated[float | None, Form()] = None,
        min_speech_ms: Annotated[int | None, Form()] = None,
        min_silence_ms: Annotated[int | None, Form()] = None,
        speech_pad_ms: Annotated[int | None, Form()] = None,
    ):
        vad_fields = (vad, vad_threshold, min_speech_ms, min_silence_ms, speech_pad_ms)
        try:
            request_options = _with_vad_fields(options, vad_fields)
        except ValueError as problem:
            return error(400, str(problem), str(problem).split()[0])
        if response_format not in RESPONSE_FORMATS:
            return error(
                400,
                f"response_format must be one of {', '.join(RESPONSE_FORMATS)}",
                "response_format",
            )
        data = file.file.read(MAX_UPLOAD_BYTES + 1)
        if len(data) > MAX_UPLOAD_BYTES:
            return error(413, f"file is larger than {MAX_UPLOAD_BYTES} bytes", "file")
        try:
            with lock:
                result = model.transcribe(data, instruction=prompt or None, options=request_options)
        except ValueError as problem:
            return error(400, f"{file.filename}: {problem}", "file")
        if response_format == "json":
            return {"text": result.text}
        fmt = RESPONSE_FORMATS[response_format]
        text = write_result(result, fmt)
        if fmt != "verbose_json":
            return PlainTextResponse(text)
        return _verbose_body(text, language, granularities)

    return app


def _verbose_body(text: str, language: str | None, granularities: list[str] | None) -> dict:
    """A verbose_json response with the language and the granularities asked for."""
    body = json.loads(text)
    body["language"] = language or body.get("language")
    wanted = set(granularities or ["segment", "word"])  # words by default: VoxLM's point
    if "word" not in wanted:
        body.pop("words", None)
    if "segment" not in wanted and "word" in wanted:
        body.pop("segments", None)
    return body


VAD_FIELDS = ("vad", "vad_threshold", "min_speech_ms", "min_silence_ms", "speech_pad_ms")


def _with_vad_fields(options: DecodingOptions, values: tuple) -> DecodingOptions:
    """The server's options with a request's speech-detector fields (those it sent)."""
    sent = {k: v for k, v in zip(VAD_FIELDS, values, strict=True) if v is not None}
    return replace(options, **sent) if sent else options


def serve(model: VoxLM, model_path: str, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve a loaded model (named ``model_path`` in responses); localhost only unless ``host``
    says otherwise. The caller loads the model once, so a bad one fails before the server
    starts and the weights are in memory once."""
    import uvicorn

    model.eval()
    logger.info("serving %s on http://%s:%d", model_path, host, port)
    uvicorn.run(create_app(model, str(model_path)), host=host, port=port)
