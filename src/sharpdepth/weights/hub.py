"""Finding weights: an explicit file, else the local cache, else a Hugging Face hub download.

Downloads go through `huggingface_hub`, so the standard variables apply:
`HF_HOME` (cache location), `HF_HUB_OFFLINE=1` (never touch the network) and
`HF_ENDPOINT` (a mirror — or, in our tests, a local fake hub). Every
downloaded file is checked against the SHA-256 the hub advertises for it (its
LFS ETag) and against the registry's pinned hash where we know one; a file that
fails is deleted from the cache and reported, never loaded.
"""

from __future__ import annotations

import logging
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..errors import WeightsError, first_line
from ..family import WeightSource
from .checkpoint import record_digest, sha256_file


class ModelSpec(Protocol):
    """What weight resolution needs of a `family.ModelSpec`: its name and sources."""

    @property
    def name(self) -> str: ...

    @property
    def sources(self) -> tuple[WeightSource, ...]: ...


_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ResolvedWeights:
    path: Path
    layout: str
    """"official", "hf" or "auto" (a user file: detected from its keys)."""
    origin: str
    """"user", "cache" or "download"."""
    source: WeightSource | None = None


def _fetch_instructions(spec: ModelSpec, source: WeightSource) -> str:
    return (
        f"on a machine with internet run `hf download {source.repo_id} {source.filename}` "
        f"(or open {source.url}), copy the file here and pass --weights PATH"
    )


def cached_path(source: WeightSource) -> Path | None:
    """The file in the local HF cache, or None. Never touches the network."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(source.repo_id, source.filename, revision=source.revision)
    return Path(found) if isinstance(found, str) else None


def download(source: WeightSource, spec: ModelSpec) -> Path:
    """Download one source into the HF cache and verify it."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
    )

    how = _fetch_instructions(spec, source)
    try:
        # One HEAD without retries first: an unreachable hub fails at once, not after a minute of backoff.
        meta = get_hf_file_metadata(hf_hub_url(source.repo_id, source.filename, revision=source.revision))
        etag = (meta.etag or "").strip('"').lower()
        expected = source.sha256 or (etag if _SHA256.match(etag) else None)
        with _quiet_hub_logs():
            path = Path(hf_hub_download(source.repo_id, source.filename, revision=source.revision))
    except (OfflineModeIsEnabled, LocalEntryNotFoundError):
        raise WeightsError(f"weights for {spec.name} are not cached and downloading is off or failed; {how}") from None
    except GatedRepoError:
        raise WeightsError(
            f"{source.repo_id} is gated: accept its licence on the hub and log in (`hf auth login`), or {how}"
        ) from None
    except (RepositoryNotFoundError, EntryNotFoundError):
        raise NotOnHubError(f"{source.repo_id}/{source.filename} not found on the hub; {how}") from None
    except Exception as exc:  # network errors of every flavour
        raise WeightsError(
            f"could not download weights for {spec.name} ({type(exc).__name__}: {first_line(exc)}); {how}"
        ) from None
    verify_file(path, expected, spec, source)
    return path


class NotOnHubError(WeightsError):
    """The hub answered, but this repository/file is not there: the next source may be."""


@contextmanager
def _quiet_hub_logs():
    """huggingface_hub logs each retry as a warning; our one-line error says it all."""
    hub_logger = logging.getLogger("huggingface_hub")
    previous = hub_logger.level
    hub_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        hub_logger.setLevel(previous)


def verify_file(path: Path, expected_sha256: str | None, spec: ModelSpec, source: WeightSource) -> None:
    """Check a download against its expected digest; a verified digest is remembered beside the file."""
    if expected_sha256 is None:
        return
    actual = sha256_file(path)
    if actual == expected_sha256.lower():
        record_digest(path, actual)
    else:
        _evict(path)
        raise WeightsError(
            f"downloaded {source.filename} for {spec.name} is corrupt (sha256 {actual[:12]}… != expected "
            f"{expected_sha256[:12]}…); removed it from the cache — try again, or {_fetch_instructions(spec, source)}"
        )


def _evict(path: Path) -> None:
    """Delete a cached file (the snapshot link and the blob it points to)."""
    try:
        target = path.resolve()
        path.unlink(missing_ok=True)
        if target != path:
            target.unlink(missing_ok=True)
    except OSError:
        pass


def no_weights_message(spec: ModelSpec) -> str:
    return f"{spec.name} has no published weights (nothing to download); pass your own with --weights PATH"


def find_cached(spec: ModelSpec) -> ResolvedWeights | None:
    """The first of the spec's sources already in the local cache; never touches the network."""
    for source in spec.sources:
        path = cached_path(source)
        if path is not None and path.is_file():
            return ResolvedWeights(path, source.layout, "cache", source)
    return None


def locate_cached(spec: ModelSpec) -> Path:
    """The cached weights file of a model, or a WeightsError saying what to do (download, or none exist)."""
    if not spec.sources:
        raise WeightsError(no_weights_message(spec))
    found = find_cached(spec)
    if found is None:
        raise WeightsError(f"weights for {spec.name} are not cached; run `sharpdepth weights download {spec.name}`")
    return found.path


def resolve_weights(spec: ModelSpec, weights: str | Path | None = None, download_ok: bool = True) -> ResolvedWeights:
    """Explicit file > cache > download, in that order."""
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsError(f"--weights {path}: no such file")
        return ResolvedWeights(path, "auto", "user")
    if not spec.sources:
        raise WeightsError(no_weights_message(spec))
    cached = find_cached(spec)
    if cached is not None:
        return cached
    if not download_ok or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        first = spec.sources[0]
        raise WeightsError(
            f"weights for {spec.name} are not in the cache and downloads are off; {_fetch_instructions(spec, first)}"
        )
    errors: list[NotOnHubError] = []
    for source in spec.sources:  # first source is the preferred one; the others are fallbacks
        try:
            return ResolvedWeights(download(source, spec), source.layout, "download", source)
        except NotOnHubError as exc:  # try the next source; any other failure is final
            errors.append(exc)
    raise errors[0]
