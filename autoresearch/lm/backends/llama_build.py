"""How llama-cpp-python is built so that one wheel runs on every CPU, and how to read what a build uses.

llama-cpp-python compiles llama.cpp with `-march=native` unless told otherwise: the wheel then carries the
build machine's instruction set (AVX-512, or AMX, whose matmul path segfaults on the embedded model:
llama.cpp issue 20824), and pip's wheel cache hands that wheel to the next install on any CPU. The flags
below are the portable build that `scripts/setup.sh` compiles and caches under a key of version + flags.

Standard library only: `scripts/setup.sh` runs this file as a script before autoresearch is installed,
so the flags live in this one place:

    python autoresearch/lm/backends/llama_build.py version|cmake-args|key|check
"""

from __future__ import annotations

import hashlib
import platform
import sys

LLAMA_CPP_VERSION = "0.3.36"  # the release scripts/setup.sh builds; tested, inside pyproject's range

# No native detection and no AMX anywhere. On x86-64 the AVX2 class of features, which every x86-64 CPU
# we support has (Haswell / Zen 1 on); on ARM64 llama.cpp's own portable defaults.
PORTABLE_CMAKE_ARGS: dict[str, tuple[str, ...]] = {
    "x86_64": (
        "-DGGML_NATIVE=OFF", "-DGGML_AVX=ON", "-DGGML_AVX2=ON", "-DGGML_FMA=ON", "-DGGML_F16C=ON",
        "-DGGML_BMI2=ON", "-DGGML_AVX512=OFF", "-DGGML_AMX_TILE=OFF", "-DGGML_AMX_INT8=OFF",
        "-DGGML_AMX_BF16=OFF",
    ),
    "aarch64": ("-DGGML_NATIVE=OFF",),
}
_MACHINE_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64"}


def machine() -> str:
    """This machine's architecture under the names PORTABLE_CMAKE_ARGS uses."""
    name = platform.machine().lower()
    return _MACHINE_ALIASES.get(name, name)


def cmake_args(arch: str | None = None) -> str:
    """The CMAKE_ARGS of the portable build for an architecture (default: this one)."""
    arch = arch or machine()
    # An architecture we have not tested still gets the one flag that matters: no native detection.
    return " ".join(PORTABLE_CMAKE_ARGS.get(arch, ("-DGGML_NATIVE=OFF",)))


def build_key(arch: str | None = None) -> str:
    """What a cached wheel depends on: version, flags, architecture and Python (a short hash)."""
    arch = arch or machine()
    parts = (LLAMA_CPP_VERSION, cmake_args(arch), arch, f"cp{sys.version_info[0]}{sys.version_info[1]}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def reinstall_command(python: str | None = None, version: str = LLAMA_CPP_VERSION) -> str:
    """The one command that replaces an installed llama-cpp-python with the portable build."""
    return (f'CMAKE_ARGS="{cmake_args()}" {python or sys.executable} -m pip install --force-reinstall '
            f"--no-deps --no-cache-dir --no-binary llama-cpp-python llama-cpp-python=={version}")


def system_info() -> str:
    """llama.cpp's own account of the installed build (`llama_print_system_info()`); imports llama_cpp."""
    import llama_cpp

    raw = llama_cpp.llama_print_system_info()
    return (raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)).strip()


def features(info: str) -> dict[str, str]:
    """The "NAME = value" pairs of a system-info string: "CPU : AVX2 = 1 | AMX_INT8 = 1 |" → {AVX2: 1, …}."""
    found: dict[str, str] = {}
    for part in info.split("|"):
        if "=" not in part:
            continue
        name, value = part.split("=", 1)
        name = name.rsplit(":", 1)[-1].strip()  # "CPU : SSE3" names the backend before the feature
        if name:
            found[name] = value.strip()
    return found


def amx_features(info: str) -> list[str]:
    """The AMX features a build was compiled with (empty for a portable build)."""
    return sorted(name for name, value in features(info).items() if name.startswith("AMX") and value != "0")


def cpu_features(info: str) -> list[str]:
    """The instruction-set features a build uses, in llama.cpp's order (without its settings)."""
    settings = {"LLAMAFILE", "OPENMP", "REPACK", "KLEIDIAI", "ACCELERATE", "SVE_CNT", "RVV_VLEN"}
    return [name for name, value in features(info).items() if value != "0" and name not in settings]


def _main(argv: list[str]) -> int:
    command = argv[0] if argv else ""
    if command == "version":
        print(LLAMA_CPP_VERSION)
    elif command == "cmake-args":
        print(cmake_args())
    elif command == "key":
        print(build_key())
    elif command == "check":  # run by setup.sh with the venv's Python after the install
        info = system_info()
        print(f"llama.cpp build: {info}")
        amx = amx_features(info)
        if amx:
            print(f"error: the installed llama-cpp-python uses {', '.join(amx)}, which crashes the embedded "
                  f"model; reinstall it portably: {reinstall_command()}", file=sys.stderr)
            return 1
    else:
        print("usage: llama_build.py version|cmake-args|key|check", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
