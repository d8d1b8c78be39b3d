"""Build the Cython core; everything else is declared in pyproject.toml."""
from Cython.Build import cythonize
from setuptools import Extension, setup

setup(
    ext_modules=cythonize(
        [Extension("ngi._core", ["src/ngi/_core.pyx"], extra_compile_args=["-O2"])],
        # No pickling and no __test__ dict: the core's objects wrap
        # descriptors, and _core.pyi lists what is there.
        compiler_directives={"language_level": "3", "boundscheck": False,
                             "wraparound": False, "cdivision": True,
                             "auto_pickle": False, "autotestdict": False},
    ),
)
