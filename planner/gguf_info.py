"""What a GGUF file says about itself (read with the `gguf` package): which model it is, so it can be planned."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from planner.catalog import MODELS
from planner.errors import UsageError

GPT_OSS_ARCHITECTURE = "gpt-oss"


@dataclass(frozen=True)
class GgufInfo:
    path: Path
    architecture: str
    name: str
    block_count: int | None
    expert_count: int | None
    context_length: int | None
    size_bytes: int

    @property
    def gpt_oss_size(self) -> str | None:
        """'20b' or '120b' when the file is a gpt-oss (fine-tunes included) of a known shape, else None."""
        if self.architecture != GPT_OSS_ARCHITECTURE:
            return None
        for size, model in MODELS.items():
            if (self.block_count, self.expert_count) == (model.layers, model.experts):
                return size
        return None

    @property
    def served_name(self) -> str:
        return self.path.name.removesuffix(".gguf")


def read_gguf(path: Path) -> GgufInfo:
    """Read PATH's metadata (not its tensors): a bad path or a file that is not GGUF is a usage error."""
    from gguf import GGUFReader

    if not path.is_file():
        raise UsageError(f"--gguf {path}: no such file")
    try:
        fields = GGUFReader(path).fields
    except (ValueError, OSError) as err:
        raise UsageError(f"--gguf {path} is not a readable GGUF file ({err})") from None

    def value(key: str):
        field = fields.get(key)
        return field.contents() if field is not None else None

    arch = value("general.architecture") or "unknown"
    return GgufInfo(path=path, architecture=arch, name=value("general.name") or path.stem,
                    block_count=value(f"{arch}.block_count"), expert_count=value(f"{arch}.expert_count"),
                    context_length=value(f"{arch}.context_length"), size_bytes=path.stat().st_size)
