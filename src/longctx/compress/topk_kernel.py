"""Build and load the fused CPU kernel of ``topk_decode`` (``topk_kernel.cpp``).

The kernel is compiled on first use with torch's C++ extension builder (the system C++ compiler
and ninja) for the CPU it runs on, once per machine: the build folder is keyed by the source, the
torch version and the CPU, under ``$LONGCTX_KERNEL_DIR`` or the ``kernels`` folder of
:func:`longctx.models.loader.cache_root` (``~/.cache/longctx/kernels`` by default). Where it
cannot be built, :func:`load_topk_kernel` warns once and returns ``None``, and ``topk_decode``
keeps its torch implementation.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import warnings
from functools import cache
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)
SOURCE = Path(__file__).with_name("topk_kernel.cpp")
CFLAGS = ["-O3", "-march=native", "-fopenmp", "-fno-math-errno", "-fno-trapping-math"]
LDFLAGS = ["-fopenmp"]  # links the libgomp torch already loaded (at::parallel_for is OpenMP)


def _cpu_signature() -> str:
    """The CPU model and flags (``-march=native`` code is only valid on the same CPU)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    keep = [line for line in lines if line.startswith(("model name", "flags"))]
    return "\n".join(sorted(set(keep)))


def kernel_build_dir() -> Path:
    """The build folder for this source, torch version and CPU."""
    digest = hashlib.sha256()
    for part in (
        SOURCE.read_bytes(),
        torch.__version__.encode(),
        " ".join(CFLAGS + LDFLAGS).encode(),
    ):
        digest.update(part)
    digest.update(_cpu_signature().encode())
    from longctx.models.loader import cache_root

    root = os.environ.get("LONGCTX_KERNEL_DIR") or cache_root() / "kernels"
    return Path(root) / f"topk_{digest.hexdigest()[:16]}"


@cache
def load_topk_kernel() -> Any | None:
    """The compiled extension (with ``topk_decode_step``), or ``None`` where it cannot be built.

    Set ``LONGCTX_TOPK_KERNEL=0`` to skip it and use the torch implementation.
    """
    if os.environ.get("LONGCTX_TOPK_KERNEL", "1") == "0":
        return None
    from torch.utils.cpp_extension import load

    build = kernel_build_dir()
    if not (build / "longctx_topk_kernel.so").exists():
        logger.info("compiling the topk_decode CPU kernel in %s (once per machine)", build)
    try:
        build.mkdir(parents=True, exist_ok=True)
        return load(
            name="longctx_topk_kernel",
            sources=[str(SOURCE)],
            extra_cflags=CFLAGS,
            extra_ldflags=LDFLAGS,
            build_directory=str(build),
            verbose=False,
        )
    except Exception as error:  # no compiler, no ninja, read-only cache...
        warnings.warn(
            f"topk_decode: the fused CPU kernel could not be built in {build} ({error}); "
            "using the slower torch implementation",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
