"""Build glue: the folder-to-package mapping and the optional Cython twins.

Everything else lives in pyproject.toml. ``PYDAPR_NO_EXTENSIONS=1`` builds a
pure-Python install; otherwise a failed compile fails the install, so a slow
build never hides behind a green one.
"""
import glob
import os
import platform

from setuptools import find_packages, setup

# kernel/ is the package root `pydapr`; the other folders are its subpackages.
FOLDERS = {
    "pydapr": "kernel",
    "pydapr.plugins": "plugins",
    "pydapr.components": "components",
    "pydapr.sentry": "sentry",
    "pydapr._speedups": "_speedups",
}


def packages():
    found = []
    for name, folder in FOLDERS.items():
        found.append(name)
        found += [f"{name}.{sub}" for sub in find_packages(folder)]
    return found


def extensions():
    if os.environ.get("PYDAPR_NO_EXTENSIONS") or platform.python_implementation() != "CPython":
        print("*** pydapr: pure-Python build (PYDAPR_NO_EXTENSIONS) ***")
        return []
    from Cython.Build import cythonize
    from setuptools import Extension

    print("*** pydapr: accelerated build (Cython) ***")
    mods = [
        Extension(f"pydapr._speedups.{os.path.basename(p)[:-4]}", [p])
        for p in sorted(glob.glob("_speedups/*.pyx"))
    ]
    directives = {"language_level": 3, "embedsignature": True, "freethreading_compatible": True}
    if os.environ.get("PYDAPR_CYTHON_TRACE"):
        directives["linetrace"] = True
        for m in mods:
            m.define_macros = [("CYTHON_TRACE", "1")]
    return cythonize(mods, compiler_directives=directives,
                     annotate=bool(os.environ.get("PYDAPR_CYTHON_ANNOTATE")))


setup(package_dir=FOLDERS, packages=packages(), ext_modules=extensions())
