"""Fetching a file from a URL or a folder, checked against its md5, written atomically."""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import urllib.parse
import urllib.request
from pathlib import Path

from pvae.files import write_atomically

__all__ = ["check_md5_argument", "fetch", "file_md5", "is_url"]

CHUNK_BYTES = 1 << 20

logger = logging.getLogger(__name__)


def file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def check_md5_argument(md5, name: str) -> str | None:
    if md5 is None:
        return None
    if (
        not isinstance(md5, str)
        or len(md5) != 32
        or any(c not in "0123456789abcdef" for c in md5.lower())
    ):
        raise ValueError(f"{name} must be an md5 digest of 32 hex digits or None, got {md5!r}")
    return md5.lower()


def is_url(source) -> bool:
    return isinstance(source, str) and "://" in source


def _download_chunks(url: str, response):
    """Yield the body of ``response`` and check its length against Content-Length, so a
    connection that closes early is an error rather than a short file."""
    expected = response.headers.get("Content-Length")
    received = 0
    while chunk := response.read(CHUNK_BYTES):
        received += len(chunk)
        yield chunk
    if expected is not None and expected.isdigit() and received != int(expected):
        raise OSError(
            f"could not download {url!r}: received {received} bytes of the {expected} announced"
        )


def fetch(
    source: str | os.PathLike,
    *,
    md5: str | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> Path:
    """A local file for ``source``, downloaded first if it is a URL, with its md5 checked.

    A URL (``http://``, ``https://`` or ``file://``) is downloaded with :mod:`urllib` into
    ``cache_dir/<key>/<file name>``, where ``<key>`` is the first 16 hex digits of the URL's
    SHA-256 (so that, e.g., MNIST's and Fashion-MNIST's ``train-images-idx3-ubyte.gz`` do not
    overwrite each other). The download goes to a temporary file in that folder, is fsynced,
    checked, and only then renamed into place, so the cache never holds a partial or rejected
    file. A file already in the cache is used as it is if it has the requested md5 (or if no
    md5 is given: it was complete when it was renamed there); one with another md5 is downloaded
    again.

    :param source: a local path, or a URL.
    :param str md5: the expected md5 hex digest, or ``None`` (default) for no check.
    :param cache_dir: download folder (default ``~/.cache/pvae``; created if needed). Unused
        for a local path.
    :returns: the path of the local (or cached) file.
    :raises FileNotFoundError: if a local ``source`` does not exist.
    :raises ValueError: on an md5 mismatch, naming the file, the expected and the actual digest;
        on a URL of another scheme or without a file name.
    :raises OSError: naming the URL, if the download fails.
    """
    md5 = check_md5_argument(md5, "md5")
    if not is_url(source):
        if not isinstance(source, (str, os.PathLike)):
            raise TypeError(f"source must be a path or a URL string, got {type(source).__name__}")
        path = Path(source).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"file {str(path)!r} does not exist")
        if md5 is not None and (actual := file_md5(path)) != md5:
            raise ValueError(f"md5 mismatch for {str(path)!r}: expected {md5}, got {actual}")
        return path

    parts = urllib.parse.urlsplit(source)
    if parts.scheme.lower() not in ("http", "https", "file"):
        raise ValueError(f"source URL must be http://, https:// or file://, got {source!r}")
    name = urllib.parse.unquote(parts.path.rsplit("/", 1)[-1])
    # The name becomes a path in the cache: an encoded slash or '..' must not escape it.
    if name in ("", ".", "..") or "/" in name or "\\" in name:
        raise ValueError(f"source URL {source!r} does not end in a file name")
    key = hashlib.sha256(source.encode()).hexdigest()[:16]
    folder = Path(cache_dir if cache_dir is not None else "~/.cache/pvae").expanduser() / key
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if path.is_file():
        if md5 is None or file_md5(path) == md5:
            logger.debug("using cached %s for %s", path, source)
            return path
        logger.info("cached %s does not have md5 %s; downloading %s again", path, md5, source)
    logger.info("downloading %s to %s", source, path)
    try:
        with urllib.request.urlopen(source, timeout=60) as response:
            write_atomically(path, _download_chunks(source, response), md5=md5, source=source)
    except (OSError, http.client.HTTPException) as error:
        # URLError is an OSError; IncompleteRead is not. Either way the message must say which
        # URL failed.
        if source in str(error):
            raise
        raise OSError(f"could not download {source!r}: {error}") from error
    return path
