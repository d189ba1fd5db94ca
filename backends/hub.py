"""Model files from the Hugging Face hub, through huggingface_hub's cache: free disk checked first, progress reported."""
from __future__ import annotations

import errno
import io
import os
import shutil
from pathlib import Path

from gptoss_deploy.planner.errors import BackendError
from gptoss_deploy.planner.probe import model_cache_dir
from gptoss_deploy.planner.units import GIB, gib

DISK_MARGIN_BYTES = 2 * GIB   # leave the disk some room after the download
REACH_TIMEOUT_S = 5.0         # a hub that has not answered by then will not serve gigabytes


def cache_dir() -> Path:
    """The hub cache, as huggingface_hub resolves it (read now: the environment may change after import)."""
    return model_cache_dir(os.environ)


def cached_path(repo: str, filename: str) -> Path | None:
    """The file's path when it is already in the hub cache (no network), else None."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, filename, cache_dir=cache_dir())
    return Path(found) if isinstance(found, str) else None


def download_plan(repo: str, files: list[str], size_bytes: int) -> dict:
    """What `up` would fetch, for --dry-run and the disk check."""
    missing = [f for f in files if cached_path(repo, f) is None]
    return {"repo": repo, "files": files, "missing": missing,
            "bytes": int(size_bytes * len(missing) / len(files)) if files else 0}


def _offline() -> bool:
    """huggingface_hub's offline mode, read now (its own constant is read once, at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


def _require_network() -> None:
    """Fail at once, in one line, when the hub cannot be reached at all: huggingface_hub would retry for half a
    minute, printing each retry."""
    import httpx
    from huggingface_hub import constants

    try:
        httpx.head(constants.ENDPOINT, timeout=httpx.Timeout(REACH_TIMEOUT_S))   # proxies honoured, as hf does
    except httpx.TransportError as err:
        raise BackendError(f"no network: cannot reach {constants.ENDPOINT} ({err or type(err).__name__}); connect "
                           "this machine, pass --gguf PATH to a local copy, or set HF_HUB_OFFLINE=1 once the "
                           "model is in the cache") from None


def _remove_abandoned_partials(repo: str) -> None:
    """huggingface_hub 2.x downloads into blobs/<etag>.<id>.incomplete and removes it when a download fails; a
    process killed outright leaves it behind, and no later download reuses it (the id is new each time). 1.x keeps
    blobs/<etag>.incomplete to resume from. Remove those whose download lock nobody holds."""
    from filelock import FileLock, Timeout
    from huggingface_hub.file_download import repo_folder_name

    folder = repo_folder_name(repo_id=repo, repo_type="model")
    for partial in (cache_dir() / folder / "blobs").glob("*.incomplete"):
        lock = cache_dir() / ".locks" / folder / f"{partial.name.split('.')[0]}.lock"
        try:
            lock.parent.mkdir(parents=True, exist_ok=True)
            with FileLock(lock, timeout=0):
                partial.unlink(missing_ok=True)
        except (Timeout, OSError):
            pass                               # a download in progress, or not ours to remove


def _reporting_tqdm(progress, filename: str):
    """A tqdm that draws nothing itself and hands each new whole percent to PROGRESS (spinner or log line)."""
    from tqdm import tqdm

    class Reporting(tqdm):
        def __init__(self, *args, **kwargs):
            self.reported = -1
            super().__init__(*args, file=io.StringIO(), **kwargs)

        def display(self, msg=None, pos=None):
            percent = int(100 * self.n / self.total) if self.total else 0
            if percent != self.reported:
                self.reported = percent
                progress(f"downloading {filename}: {percent}% of {gib(self.total)}")
            return True

    return Reporting


def fetch(repo: str, files: list[str], size_bytes: int, progress=lambda _: None) -> Path:
    """Download what is missing (progress reported) and return the first file: llama.cpp finds the other shards."""
    plan = download_plan(repo, files, size_bytes)
    if plan["missing"]:
        _remove_abandoned_partials(repo)
        if not _offline():
            _require_network()
        cache = cache_dir()
        cache.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(cache).free
        if free < plan["bytes"] + DISK_MARGIN_BYTES:
            raise BackendError(f"{repo} needs {gib(plan['bytes'])} in {cache} and only "
                               f"{gib(free)} is free; free some space, set HF_HUB_CACHE to a bigger "
                               "disk, or pass --gguf PATH")
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    paths = []
    for filename in files:
        try:
            paths.append(Path(hf_hub_download(repo, filename, cache_dir=cache_dir(), local_files_only=_offline(),
                                              tqdm_class=_reporting_tqdm(progress, filename))))
        except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as err:
            if _offline():
                raise BackendError(f"{repo}/{filename} is not in the model cache {cache_dir()} and HF_HUB_OFFLINE "
                                   "is set: unset it to download, or pass --gguf PATH to a local copy") from None
            if isinstance(err, OSError) and err.errno == errno.ENOSPC:     # the disk filled while downloading
                raise BackendError(f"the disk holding {cache_dir()} filled up while downloading {repo}/{filename}: "
                                   "free some space, set HF_HUB_CACHE to a bigger disk, or pass --gguf PATH") \
                    from None
            first_line = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise BackendError(f"could not download {repo}/{filename} ({first_line}); check the network and "
                               "HF_TOKEN, or pass --gguf PATH to a local copy") from None
        except BaseException:     # Ctrl-C or SIGTERM: huggingface_hub 1.x keeps its partial blob, 2.x does not
            _remove_abandoned_partials(repo)
            raise
    return paths[0]
