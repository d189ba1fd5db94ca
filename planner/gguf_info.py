"""What a GGUF file says about itself (its key/value header): which model it is, so it can be planned."""
from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from gptoss_deploy.planner.catalog import MODELS
from gptoss_deploy.planner.errors import UsageError

GPT_OSS_ARCHITECTURE = "gpt-oss"


@dataclass(frozen=True)
class GgufInfo:
    path: Path
    architecture: str
    block_count: int | None
    expert_count: int | None
    context_length: int | None
    size_bytes: int
    embedding_length: int | None = None
    parameters: int = 0           # every tensor's elements, from the tensor table
    tensor_bytes: int = 0         # what the tensors hold: the weights a dense model reads for each token

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


# struct codes of the fixed-size GGUF value types, by the names of the gguf package's GGUFValueType.
_STRUCT_CODES = {"UINT8": "B", "INT8": "b", "UINT16": "H", "INT16": "h", "UINT32": "I", "INT32": "i",
                 "FLOAT32": "f", "BOOL": "?", "UINT64": "Q", "INT64": "q", "FLOAT64": "d"}


def read_gguf(path: Path) -> GgufInfo:
    """Read PATH's metadata (not its tensors): a bad path or a file that is not GGUF is a usage error."""
    if path.is_dir():
        raise UsageError(f"--gguf {path} is a directory: give the .gguf file in it (the first shard of a split model)")
    if not path.is_file():
        raise UsageError(f"--gguf {path}: no such file")
    try:
        with open(path, "rb") as stream:
            fields, tensors = _read_metadata(stream)
    except (ValueError, KeyError, OSError, struct.error, UnicodeDecodeError, OverflowError, RecursionError) as err:
        raise UsageError(f"--gguf {path} is not a readable GGUF file ({err or type(err).__name__})") from None
    arch = fields.get("general.architecture")
    arch = arch if isinstance(arch, str) and arch else "unknown"

    def count(key: str) -> int | None:     # a crafted header may put any type under any key
        value = fields.get(f"{arch}.{key}")
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None

    return GgufInfo(path=path, architecture=arch, block_count=count("block_count"), expert_count=count("expert_count"),
                    context_length=count("context_length"), size_bytes=path.stat().st_size,
                    embedding_length=count("embedding_length"), parameters=tensors.parameters,
                    tensor_bytes=tensors.data_bytes)


@dataclass(frozen=True)
class _Tensors:
    parameters: int
    data_bytes: int


def _read_metadata(stream: BinaryIO) -> tuple[dict, _Tensors]:
    """The key/value header, arrays skipped, and the tensor table's totals. gguf's GGUFReader parses the whole vocabulary into fields:
    2.2 s for SmolLM2's 49k tokens here, seconds more for gpt-oss's 201k. The keys we need are scalars."""
    from gguf import GGUF_MAGIC

    header = _Header(stream)
    if header.unpack("I") != GGUF_MAGIC:
        raise ValueError("no GGUF magic number")
    stream.seek(4, 1)                       # version (u32): not needed
    tensor_count, kv_count = header.unpack("Q"), header.unpack("Q")
    fields = {}
    for _ in range(kv_count):
        key, value_type = header.string(), header.unpack("I")
        if value_type == header.ARRAY:
            header.skip_array()
        else:
            fields[key] = header.value(value_type)
    return fields, _read_tensor_table(header, tensor_count, fields.get("general.alignment"))


def _read_tensor_table(header: _Header, tensor_count: int, alignment) -> _Tensors:
    """The tensors' totals. The table says where each tensor's data ends: a file shorter than that is an interrupted
    copy."""
    from gguf import GGML_QUANT_SIZES, GGUF_DEFAULT_ALIGNMENT, GGMLQuantizationType

    data_end = parameters = data_bytes = 0
    for _ in range(tensor_count):
        header.string()                                          # the tensor's name
        dims = [header.unpack("Q") for _ in range(header.unpack("I"))]
        block, block_bytes = GGML_QUANT_SIZES[GGMLQuantizationType(header.unpack("I"))]
        offset = header.unpack("Q")
        elements = math.prod(dims)
        parameters, data_bytes = parameters + elements, data_bytes + elements // block * block_bytes
        data_end = max(data_end, offset + elements // block * block_bytes)
    alignment = alignment if isinstance(alignment, int) and alignment > 0 else GGUF_DEFAULT_ALIGNMENT
    data_start = -(-header.stream.tell() // alignment) * alignment
    if data_start + data_end > header.size:
        raise ValueError(f"truncated: its tensors need {data_start + data_end} bytes and the file has {header.size}; "
                         "an interrupted download or copy?")
    return _Tensors(parameters, data_bytes)


class _Header:
    """Reads GGUF values off a stream, with the value types of the gguf package. A header is untrusted: no read
    goes past the end of the file, and arrays nest only so deep."""

    MAX_ARRAY_DEPTH = 8

    def __init__(self, stream: BinaryIO):
        from gguf import GGUFValueType

        self.stream = stream
        self.size = os.fstat(stream.fileno()).st_size
        self.scalars = {GGUFValueType[name]: code for name, code in _STRUCT_CODES.items()}
        self.STRING, self.ARRAY = GGUFValueType.STRING, GGUFValueType.ARRAY

    def unpack(self, code: str):
        return struct.unpack("<" + code, self.stream.read(struct.calcsize(code)))[0]   # short read: struct.error

    def read(self, length: int) -> bytes:
        """LENGTH bytes, where LENGTH came from the file: never more than the file still holds."""
        if length > self.size - self.stream.tell():
            raise ValueError("a length runs past the end of the file")
        return self.stream.read(length)

    def string(self) -> str:
        return self.read(self.unpack("Q")).decode("utf-8")

    def value(self, value_type: int):
        if value_type == self.STRING:
            return self.string()
        if value_type not in self.scalars:
            raise ValueError(f"unknown GGUF value type {value_type}")
        return self.unpack(self.scalars[value_type])

    def skip_array(self, depth: int = 0) -> None:
        if depth > self.MAX_ARRAY_DEPTH:
            raise ValueError("arrays nested too deep")
        element_type, count = self.unpack("I"), self.unpack("Q")
        if element_type in self.scalars:
            self.stream.seek(count * struct.calcsize(self.scalars[element_type]), 1)   # past the end: reads fail
            return
        for _ in range(count):              # strings (or nested arrays): each carries its own length
            if element_type == self.STRING:
                self.stream.seek(self.unpack("Q"), 1)
            elif element_type == self.ARRAY:
                self.skip_array(depth + 1)
            else:
                raise ValueError(f"unknown GGUF array element type {element_type}")
