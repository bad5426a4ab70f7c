"""capcast: downstream-capability forecasting for language models."""
import os
import platform

__version__ = "0.1.0"


def _pin_numerics() -> None:
    """Same arithmetic on every x86-64 machine, so that committed outputs are the same bytes.

    The bootstrap refits behind the intervals follow the optimizer's path, and that path depends
    on the last bits of BLAS and numpy's vector kernels: OpenBLAS picks its kernels by CPU
    (Zen/Haswell vs SkylakeX gave interval ends 0.7% apart on forecast_curves.csv) and numpy
    dispatches AVX-512 loops where the CPU has them.  Before numpy loads, pin OpenBLAS to its
    Haswell kernels (AVX2 + FMA, every x86-64 CPU since 2015) on one thread, and numpy to its AVX2
    loops.  Only where the CPU has AVX2 and FMA, and never over a value the user set.
    """
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # not OMP_NUM_THREADS: torch (evaluate) uses it
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return
    if "avx2" in flags and "fma" in flags:
        os.environ.setdefault("OPENBLAS_CORETYPE", "Haswell")
        os.environ.setdefault("NPY_DISABLE_CPU_FEATURES", "X86_V4 AVX512_ICL AVX512_SPR")


_pin_numerics()
