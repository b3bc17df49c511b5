"""LibriSpeech: a resumable, checksum-verified download, and a reader of its layout.

Layout: <split>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac, with one
<speaker>-<chapter>.trans.txt per chapter holding "<utt-id> UPPERCASE TRANSCRIPT" lines.
`voxlm synth` writes the same layout, so one reader serves both.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tarfile
import urllib.request
from pathlib import Path

import soundfile as sf
from tqdm import tqdm

from voxlm.data.manifest import Utterance

logger = logging.getLogger("voxlm")

_BASE_URL = "https://www.openslr.org/resources/12"
LIBRISPEECH_SUBSETS = (
    "train-clean-100",
    "train-clean-360",
    "train-other-500",
    "dev-clean",
    "dev-other",
    "test-clean",
    "test-other",
)
LIBRISPEECH_URLS = {subset: f"{_BASE_URL}/{subset}.tar.gz" for subset in LIBRISPEECH_SUBSETS}
# SHA-256 of the OpenSLR archives, as pinned by torchaudio's LIBRISPEECH dataset (openslr.org
# itself publishes MD5 sums; SHA-256 is the stronger check). Pass `sha256=` to override.
LIBRISPEECH_SHA256 = {
    "dev-clean": "76f87d090650617fca0cac8f88b9416e0ebf80350acb97b343a85fa903728ab3",
    "dev-other": "12661c48e8c3fe1de2c1caa4c3e135193bfb1811584f11f569dd12645aa84365",
    "test-clean": "39fde525e59672dc6d1551919b1478f724438a95aa55f874b576be21967e6c23",
    "test-other": "d09c181bba5cf717b3dee7d4d592af11a3ee3a09e08ae025c5506f6ebe961c29",
    "train-clean-100": "d4ddd1d5a6ab303066f14971d768ee43278a5f2a0aa43dc716b0e64ecbbbf6e2",
    "train-clean-360": "146a56496217e96c14334a160df97fffedd6e0a04e66b9c5af0d40be3c792ecf",
    "train-other-500": "ddb22f27f96ec163645d53215559df6aa36515f26e01dd70798188350adcb6d2",
}
_CHUNK = 1 << 20  # bytes per read


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _fetch(url: str, part: Path, progress: bool, timeout: float) -> None:
    """Download `url` into `part`, continuing from its current size with an HTTP Range request."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        if have and response.status != 206:  # the server ignored Range: start over
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        with (
            part.open("ab" if have else "wb") as f,
            tqdm(
                total=total,
                initial=have,
                unit="B",
                unit_scale=True,
                desc=part.name,
                disable=not progress,
            ) as bar,
        ):
            while block := response.read(_CHUNK):
                f.write(block)
                bar.update(len(block))
    size = part.stat().st_size
    if total is not None and size != total:  # urllib returns a cut-off body without raising
        raise ConnectionError(
            f"{url}: connection closed after {size} of {total} bytes; "
            f"{part} is kept, run again to resume"
        )


def download_librispeech(
    subset: str,
    root: str | Path,
    progress: bool = True,
    *,
    url: str | None = None,
    sha256: str | None = None,
    timeout: float = 60.0,
) -> Path:
    """Download, verify and extract a LibriSpeech subset; returns `root/LibriSpeech/<subset>`.

    Idempotent (an extracted subset is returned as is) and resumable: an interrupted download
    stays in `<subset>.tar.gz.part` and continues from there. The archive must match `sha256`
    (default: `LIBRISPEECH_SHA256[subset]`); a mismatch deletes it and raises ValueError.
    `url` overrides the OpenSLR address (a mirror).
    """
    if subset not in LIBRISPEECH_URLS:
        raise ValueError(
            f"unknown LibriSpeech subset {subset!r}; expected one of {LIBRISPEECH_SUBSETS}"
        )
    root = Path(root)
    target = root / "LibriSpeech" / subset
    if (target / ".complete").exists():
        return target
    root.mkdir(parents=True, exist_ok=True)
    archive = root / f"{subset}.tar.gz"
    expected = (sha256 or LIBRISPEECH_SHA256[subset]).lower()
    if not archive.exists():
        part = archive.with_name(archive.name + ".part")
        _fetch(url or LIBRISPEECH_URLS[subset], part, progress, timeout)
        os.replace(part, archive)
    actual = _sha256(archive)
    if actual != expected:
        archive.unlink()
        raise ValueError(f"{archive}: SHA-256 {actual} does not match the expected {expected}")
    _extract(archive, root, target)
    return target


def _extract(archive: Path, root: Path, target: Path) -> None:
    """Extract into a temporary folder, then move the subset into place and mark it complete."""
    staging = root / f".{archive.name}.extract"
    shutil.rmtree(staging, ignore_errors=True)
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(staging, filter="data")
    extracted = staging / "LibriSpeech" / target.name
    if not extracted.is_dir():
        raise ValueError(f"{archive}: no LibriSpeech/{target.name}/ folder inside the archive")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(extracted, target)
    for name in (p for p in (staging / "LibriSpeech").iterdir() if p.is_file()):
        os.replace(name, target.parent / name.name)  # README, SPEAKERS.TXT, ...
    shutil.rmtree(staging, ignore_errors=True)
    (target / ".complete").touch()
    logger.info("extracted %s to %s", archive.name, target)


def read_librispeech(path: str | Path) -> list[Utterance]:
    """Utterances under `path` (a LibriSpeech root or one split folder), sorted by id.

    Transcripts come from `*.trans.txt` (lowercased); `words` is None and `duration` is read
    from the FLAC header. A transcript line without its .flac file raises ValueError; an
    unreadable file is logged and skipped.
    """
    path = Path(path)
    transcripts = sorted(path.rglob("*.trans.txt"))
    if not transcripts:
        raise ValueError(f"{path}: no *.trans.txt files (expected the LibriSpeech layout)")
    utterances = []
    for trans in transcripts:
        speaker = trans.name.split("-")[0]
        for number, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            utt_id, _, text = line.strip().partition(" ")
            audio = trans.parent / f"{utt_id}.flac"
            if not audio.is_file():
                raise ValueError(f"{trans}:{number}: no audio file {audio.name} for {utt_id}")
            try:
                duration = sf.info(str(audio)).duration
            except (sf.LibsndfileError, RuntimeError) as error:
                logger.warning("skipping unreadable %s: %s", audio, error)
                continue
            utterances.append(
                Utterance(
                    id=utt_id,
                    audio_path=str(audio.resolve()),
                    text=text.lower(),
                    duration=duration,
                    words=None,
                    speaker=speaker,
                )
            )
    return sorted(utterances, key=lambda u: u.id)
