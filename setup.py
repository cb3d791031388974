"""Build the optional Cython hot paths in ext/ into ccr_fast._ext.

Everything else is declared in pyproject.toml.  When Cython or a C compiler is
missing (or CCR_FAST_NO_EXT=1 is set) the package installs as pure Python and
uses the twins in ccr_fast.protocol; ``ccr-fast version`` says which is active.
"""

from __future__ import annotations

import glob
import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """Never fail the install because an extension did not compile."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - any build failure means: pure Python
            print(f"ccr-fast: building C extensions failed ({exc}); using pure Python", file=sys.stderr)

    def build_extension(self, ext) -> None:  # type: ignore[no-untyped-def]
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001
            print(f"ccr-fast: could not build {ext.name} ({exc}); using pure Python", file=sys.stderr)


def extensions() -> list:
    if os.environ.get("CCR_FAST_NO_EXT") == "1":
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        print("ccr-fast: Cython not available; installing pure Python", file=sys.stderr)
        return []
    sources = sorted(glob.glob(os.path.join("ext", "*.pyx")))
    from setuptools import Extension

    exts = [
        Extension(
            f"ccr_fast._ext.{os.path.splitext(os.path.basename(src))[0]}",
            [src],
            extra_compile_args=["-O3"],
        )
        for src in sources
    ]
    try:
        return cythonize(
            exts,
            language_level=3,
            compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True},
        )
    except Exception as exc:  # noqa: BLE001
        print(f"ccr-fast: cythonize failed ({exc}); installing pure Python", file=sys.stderr)
        return []


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
