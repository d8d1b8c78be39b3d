"""Build the Cython core; everything else is declared in pyproject.toml.

The poller is chosen here: epoll on Linux, kqueue where <sys/event.h>
exists (macOS, the BSDs).  ``NGI_POLLER=kqueue`` forces kqueue; with
``NGI_LIBKQUEUE=PREFIX`` it is built on Linux against libkqueue (see
``../shared/tools/build-libkqueue``), together with the portable twins of
the Linux-only socket calls, so that both are tested here.
"""
import os
import sys

from Cython.Build import cythonize
from setuptools import Extension, setup


def has_kqueue():
    from setuptools._distutils.ccompiler import new_compiler
    from setuptools._distutils.sysconfig import customize_compiler
    compiler = new_compiler()
    customize_compiler(compiler)
    return compiler.has_function("kqueue", includes=["sys/event.h"])


def chosen_poller():
    poller = os.environ.get("NGI_POLLER")
    if poller is None:
        if sys.platform.startswith("linux"):
            poller = "epoll"
        elif has_kqueue():
            poller = "kqueue"
        else:
            sys.exit("ngi: no supported poller (epoll or kqueue) on this platform")
    if poller not in ("epoll", "kqueue"):
        sys.exit(f"ngi: NGI_POLLER must be 'epoll' or 'kqueue', not {poller!r}")
    return poller


def poller_options(poller):
    """Macros, include and library paths for the chosen poller."""
    if poller == "epoll":
        return {}
    options = {"define_macros": [("NGI_USE_KQUEUE", "1")]}
    prefix = os.environ.get("NGI_LIBKQUEUE")
    if prefix:  # libkqueue: the kqueue API on Linux
        lib = os.path.join(prefix, "lib")
        options.update(
            include_dirs=[os.path.join(prefix, "include", "kqueue")],
            library_dirs=[lib], runtime_library_dirs=[lib],
            libraries=["kqueue"])
    if sys.platform.startswith("linux"):
        options["define_macros"].append(("NGI_PORTABLE", "1"))
    return options


poller = chosen_poller()
options = poller_options(poller)
options.setdefault("include_dirs", []).insert(0, "src/ngi")
if sys.platform.startswith("linux"):
    # dlopen, for _openssl.h (in libc itself from glibc 2.34 on).
    options.setdefault("libraries", []).append("dl")

setup(
    # A build directory per poller: an epoll build left in build/ must not
    # pass for a kqueue one (the sources are the same, the macros are not).
    options={"build": {"build_base": os.path.join("build", poller)}},
    ext_modules=cythonize(
        [Extension("ngi._core", ["src/ngi/_core.pyx"], extra_compile_args=["-O2"],
                   depends=[os.path.join("src", "ngi", name) for name in
                            os.listdir(os.path.join("src", "ngi"))
                            if name.endswith((".pxi", ".pxd", ".h"))],
                   **options)],
        # No pickling and no __test__ dict: the core's objects wrap
        # descriptors, and _core.pyi lists what is there.
        compiler_directives={"language_level": "3", "boundscheck": False,
                             "wraparound": False, "cdivision": True,
                             "auto_pickle": False, "autotestdict": False},
    ),
)
