"""Compiled Cython hot paths (built from ext/*.pyx). May be empty: see ccr_fast._speedups."""
