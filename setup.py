"""The one compiled part: the custody log's checker (evidence/_custodycheck.c).

Everything else is in pyproject.toml. The checker only makes `evidence custody verify` faster:
where it cannot be built (no C compiler, or no SQLite or OpenSSL headers), the install goes on
without it and the log is checked in Python, which finds the same. `./dev` installs what it
needs with apt and stops when it did not build.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension(
    "evidence._custodycheck",
    sources=["evidence/_custodycheck.c"],
    libraries=["sqlite3", "crypto"],
    extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
    optional=True,
)])
