"""The house rules that keep the package easy to change, checked on its source.

* No module imports another module's ``_private`` names: what a module shares, it names
  without a leading underscore.
* No import cycles, counting the imports made only for type checking: a cycle there is
  still two modules that cannot be understood one without the other.
* The public surface is one ``__init__`` whose ``__all__`` lists every public name it
  binds, sorted, and nothing private.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import patchworks_async
import patchworks_async.testing

PACKAGE = Path(patchworks_async.__file__).parent
NAME = "patchworks_async"


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def imports(module: str, path: Path) -> Iterator[tuple[str, list[str], int]]:
    """``(imported module, names, line)`` for each import of the package's own modules."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if target == NAME or target.startswith(NAME + "."):
                names = [alias.name for alias in node.names]
                if node.module is None:  # from . import _x: modules, not names
                    for name in names:
                        yield f"{target}.{name}", [], node.lineno
                else:
                    yield target, names, node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(NAME):
                    yield alias.name, [], node.lineno


ALL = dict(modules())


def test_no_module_imports_another_modules_private_names() -> None:
    offences = [
        f"{module}:{line} imports {name} from {target}"
        for module, path in ALL.items()
        for target, names, line in imports(module, path)
        for name in names
        if name.startswith("_") and not name.startswith("__") and target != module
    ]
    assert offences == []


def test_there_is_no_import_cycle() -> None:
    graph: dict[str, set[str]] = {module: set() for module in ALL}
    for module, path in ALL.items():
        for target, names, _ in imports(module, path):
            # "from package import submodule" depends on the submodule.
            for candidate in [f"{target}.{name}" for name in names] or [target]:
                if candidate in ALL:
                    graph[module].add(candidate)
                    break
            else:
                if target in ALL and target != module:
                    graph[module].add(target)
    cycles = []
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*trail[trail.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def public_names(module: object) -> set[str]:
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and getattr(value, "__module__", "").startswith(NAME)
        and not isinstance(value, type(patchworks_async))
    }


def test_every_public_name_is_exported_and_nothing_private() -> None:
    exported = set(patchworks_async.__all__)
    # TimeoutError is exported as RequestTimeoutError: `import *` must not shadow the builtin.
    assert exported >= public_names(patchworks_async) - {"TimeoutError"}
    assert "TimeoutError" not in exported
    assert patchworks_async.RequestTimeoutError is patchworks_async.TimeoutError
    assert not [name for name in exported if name.startswith("_") and name != "__version__"]
    assert list(patchworks_async.__all__) == sorted(patchworks_async.__all__)
    for name in exported:
        assert getattr(patchworks_async, name) is not None


def test_the_testing_package_exports_all_it_binds() -> None:
    exported = set(patchworks_async.testing.__all__)
    assert exported >= public_names(patchworks_async.testing)
    assert list(patchworks_async.testing.__all__) == sorted(patchworks_async.testing.__all__)
