"""A stand-in for foundry-local-sdk 2.x, for what a GPU machine would do past the catalog: the calls
backends/foundry_service.py makes (Configuration, FoundryLocalManager, catalog.get_model, download, load, the web
service, unload), with the web service played by the fake OpenAI server (no /health, as Foundry's has none).

The real SDK runs in tests too, as far as it can offline (its catalog lives on Azure). Put this folder first on
PYTHONPATH to use the stand-in. FAKE_FOUNDRY_RECORD: a file the stand-in appends each step to.
FAKE_FOUNDRY_VARIANTS: the catalog's variants of gpt-oss-20b here, comma-separated, the catalog's own choice first
(default: the CUDA one, then the CPU one); only the CPU one stands for foundry-local issues 895, 1109 and 1121.
"""
from __future__ import annotations

import os
import sys
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).parents[2]))       # tests/, for the fake OpenAI server
os.environ["FAKE_SERVER_NO_HEALTH"] = "1"

from fake_openai_server import Handler  # noqa: E402


def _record(step: str) -> None:
    if os.environ.get("FAKE_FOUNDRY_RECORD"):
        with open(os.environ["FAKE_FOUNDRY_RECORD"], "a") as out:
            out.write(step + "\n")


class Configuration:
    class WebService:
        def __init__(self, urls: str | None = None, external_url: str | None = None):
            self.urls = urls

    def __init__(self, app_name: str, web: WebService | None = None, **_):
        self.app_name, self.web = app_name, web


class _Model:
    def __init__(self, alias: str, model_id: str | None = None):
        ids = os.environ.get("FAKE_FOUNDRY_VARIANTS", f"{alias}-cuda-gpu:1,{alias}-generic-cpu:1").split(",")
        self.alias, self.id, self.is_cached = alias, model_id or ids[0], False
        self._ids = ids

    @property
    def variants(self) -> list[_Model]:
        return [_Model(self.alias, model_id) for model_id in self._ids]

    def select_variant(self, variant: _Model) -> None:
        if variant.id not in self._ids:
            raise ValueError(f"{variant.id} is not a variant of {self.alias}")
        self.id = variant.id
        _record(f"select {self.id}")

    def download(self, progress_callback=None, cancel_event=None) -> None:
        for percent in (0.0, 50.0, 100.0):
            progress_callback and progress_callback(percent)
        _record(f"download {self.id}")

    def load(self) -> None:
        _record(f"load {self.id}")

    def unload(self) -> None:
        _record(f"unload {self.id}")


class _Catalog:
    def get_model(self, alias: str) -> _Model | None:
        return _Model(alias) if alias == "gpt-oss-20b" else None


class FoundryLocalManager:
    instance: FoundryLocalManager | None = None

    def __init__(self, config: Configuration):
        self.config, self.catalog, self.urls, self._server = config, _Catalog(), [], None

    @classmethod
    def initialize(cls, config: Configuration) -> None:
        cls.instance = cls(config)

    def start_web_service(self) -> None:
        url = urlsplit(self.config.web.urls)
        Handler.model = "gpt-oss-20b"          # Foundry's service answers to the alias (assumed here, see README)
        self._server = ThreadingHTTPServer((url.hostname, url.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.urls = [self.config.web.urls]
        _record("start_web_service")

    def stop_web_service(self) -> None:
        self._server.shutdown()
        _record("stop_web_service")
