import hashlib
import http.server
import io
import tarfile
import threading

import numpy as np
import pytest
import soundfile as sf

from voxlm.data.librispeech import LIBRISPEECH_URLS, download_librispeech, read_librispeech

TRANSCRIPTS = {
    "19-198-0000": "NORTHANGER ABBEY",
    "19-198-0001": "CHAPTER ONE",
    "26-495-0000": "IT'S A TEST",
}


def _make_split(folder):
    """A LibriSpeech-layout split folder with three short FLAC files."""
    for utt_id, text in TRANSCRIPTS.items():
        speaker, chapter, _ = utt_id.split("-")
        chapter_dir = folder / speaker / chapter
        chapter_dir.mkdir(parents=True, exist_ok=True)
        sf.write(chapter_dir / f"{utt_id}.flac", np.zeros(8000, np.float32), 16000)
        with (chapter_dir / f"{speaker}-{chapter}.trans.txt").open("a") as f:
            f.write(f"{utt_id} {text}\n")


def test_read_librispeech(tmp_path):
    _make_split(tmp_path / "LibriSpeech" / "dev-clean")
    for root in (tmp_path / "LibriSpeech", tmp_path / "LibriSpeech" / "dev-clean"):
        utterances = read_librispeech(root)
        assert [u.id for u in utterances] == sorted(TRANSCRIPTS)
        assert utterances[2].text == "it's a test" and utterances[2].speaker == "26"
        assert utterances[0].duration == pytest.approx(0.5) and utterances[0].words is None


def test_read_librispeech_errors(tmp_path):
    with pytest.raises(ValueError, match="trans.txt"):
        read_librispeech(tmp_path)
    _make_split(tmp_path)
    (tmp_path / "19" / "198" / "19-198-0001.flac").unlink()
    with pytest.raises(ValueError, match=r"19-198.trans.txt:2"):
        read_librispeech(tmp_path)


class _Server:
    """A local HTTP server with Range support; `truncate_next` cuts the next response short."""

    def __init__(self, payload):
        self.payload, self.requests, self.truncate_next = payload, [], False
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                owner.requests.append(self.headers.get("Range"))
                start = 0
                if self.headers.get("Range"):
                    start = int(self.headers["Range"].removeprefix("bytes=").rstrip("-"))
                    self.send_response(206)
                else:
                    self.send_response(200)
                body = owner.payload[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if owner.truncate_next:
                    owner.truncate_next = False
                    body = body[: len(body) // 2]
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/dev-clean.tar.gz"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def archive(tmp_path):
    source = tmp_path / "source" / "LibriSpeech" / "dev-clean"
    _make_split(source)
    (source.parent / "README.TXT").write_text("readme\n")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(source.parent, arcname="LibriSpeech")
    return buffer.getvalue()


@pytest.fixture
def server(archive):
    server = _Server(archive)
    yield server
    server.close()


def test_download_resumes_verifies_extracts_and_is_idempotent(tmp_path, server, archive):
    sha = hashlib.sha256(archive).hexdigest()
    root = tmp_path / "data"
    server.truncate_next = True
    with pytest.raises(ConnectionError, match="resume"):
        download_librispeech("dev-clean", root, False, url=server.url, sha256=sha, timeout=5)
    part = root / "dev-clean.tar.gz.part"
    assert 0 < part.stat().st_size < len(archive)
    have = part.stat().st_size

    target = download_librispeech("dev-clean", root, False, url=server.url, sha256=sha, timeout=5)
    assert server.requests == [None, f"bytes={have}-"]
    assert [u.id for u in read_librispeech(target)] == sorted(TRANSCRIPTS)
    assert (root / "LibriSpeech" / "README.TXT").exists() and not part.exists()

    again = download_librispeech("dev-clean", root, False, url=server.url, sha256=sha, timeout=5)
    assert again == target and len(server.requests) == 2


def test_download_rejects_a_wrong_checksum(tmp_path, server):
    with pytest.raises(ValueError, match="SHA-256"):
        download_librispeech(
            "dev-clean", tmp_path, False, url=server.url, sha256="0" * 64, timeout=5
        )
    assert not (tmp_path / "dev-clean.tar.gz").exists()
    assert not (tmp_path / "LibriSpeech").exists()


def test_unknown_subset_and_official_urls():
    assert (
        LIBRISPEECH_URLS["test-clean"] == "https://www.openslr.org/resources/12/test-clean.tar.gz"
    )
    assert len(LIBRISPEECH_URLS) == 7
    with pytest.raises(ValueError, match="subset"):
        download_librispeech("train-clean-1000", "/nonexistent", False)
