"""Package discovery for the dlc wheel (metadata lives in pyproject.toml).

compiler/, plugins/ and runtime/ install as dlc, dlc.plugins and dlc.runtime. Every folder
with an __init__.py below them is a package, so a new block family under plugins/ ships
without editing a package list.
"""

from pathlib import Path

from setuptools import setup

ROOTS = {"dlc": "compiler", "dlc.plugins": "plugins", "dlc.runtime": "runtime"}


def packages() -> list[str]:
    found = set()
    for package, directory in ROOTS.items():
        for init in Path(directory).rglob("__init__.py"):
            relative = init.parent.relative_to(directory)
            found.add(".".join([package, *relative.parts]))
    return sorted(found)


setup(packages=packages(), package_dir=ROOTS, package_data={"": ["*.yaml"]})
