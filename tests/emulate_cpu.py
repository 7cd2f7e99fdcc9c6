"""Run a command as if on another CPU: `make test-portable` runs nbval under each setting here.

    python tests/emulate_cpu.py avx2 -- python -m pytest notebooks --nbval ...

Float results differ in their last bits from one processor to another, because PyTorch and the
libraries under it pick kernels for the instruction set at hand, and the kernels add their terms
in different orders. Three libraries decide, and each can be told to act as on an older CPU:

- ATen's own vectorised kernels (element-wise ops, reductions, pooling): ATEN_CPU_CAPABILITY,
  read once at import (torch.backends.cpu.get_cpu_capability() reports the choice);
- oneDNN (float32 convolutions): ONEDNN_MAX_CPU_ISA (ONEDNN_VERBOSE=1 prints the kernel, e.g.
  "jit:avx2");
- MKL (matrix products, float64 convolutions through im2col): MKL_CBWR, its conditional numerical
  reproducibility mode (MKL_VERBOSE=1 prints "CNR:AVX2").

OMP_NUM_THREADS=1 in one setting stands for a machine with another core count: a parallel sum is
split into one chunk per thread. A setting can only lower the instruction set, never raise it:
on a CPU without AVX2 the "avx2" setting runs what the CPU has.
"""

from __future__ import annotations

import os
import sys

SETTINGS: dict[str, dict[str, str]] = {
    "sse41": {  # a CPU from before AVX (2008), with one core
        "ATEN_CPU_CAPABILITY": "default",
        "ONEDNN_MAX_CPU_ISA": "SSE41",
        "MKL_CBWR": "COMPATIBLE",
        "OMP_NUM_THREADS": "1",
    },
    "avx2": {  # a typical laptop or desktop CPU of the last ten years, without AVX-512
        "ATEN_CPU_CAPABILITY": "avx2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "MKL_CBWR": "AVX2",
    },
}


def environment(setting: str) -> dict[str, str]:
    """os.environ with ``setting``'s variables added (an unknown name lists the known ones)."""
    if setting not in SETTINGS:
        raise SystemExit(f"unknown CPU setting {setting!r}; choose one of {', '.join(SETTINGS)}")
    return {**os.environ, **SETTINGS[setting]}


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        raise SystemExit(f"usage: python tests/emulate_cpu.py {{{','.join(SETTINGS)}}} -- COMMAND ...")
    setting, command = argv[0], argv[2:]
    env = environment(setting)
    print(f"== as on a {setting} CPU: "
          + " ".join(f"{key}={value}" for key, value in SETTINGS[setting].items()), flush=True)
    os.execvpe(command[0], command, env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
