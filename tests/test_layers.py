"""The package's layers import only downward: each module imports its own layer or those below it."""

import ast
from pathlib import Path

import fakeface_ray

PACKAGE = Path(fakeface_ray.__file__).parent
# Bottom to top; a module may import from its own rank or a lower one.
LAYERS = ("errors", "config", "console", "storage", "cluster", "stages", "learning", "reporting", "pipeline", "runs",
          "demo", "cli")


def _layer(module: str) -> str:
    """`fakeface_ray.stages.extract` -> `stages`."""
    return module.split(".")[1]


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every fakeface_ray import in `path`, lazy ones inside functions too."""
    package = ".".join(("fakeface_ray",) + path.relative_to(PACKAGE).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
                # `from . import faces` names modules, not attributes of the package
                targets = [target] if node.module else [f"{target}.{a.name}" for a in node.names]
            else:
                targets = [node.module] if node.module and node.module.startswith("fakeface_ray.") else []
            found += [(node.lineno, t) for t in targets]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("fakeface_ray.")]
    return found


def test_every_module_belongs_to_a_layer():
    modules = [p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE]
    layers = {(p.relative_to(PACKAGE).parts[0]).removesuffix(".py") for p in modules}
    assert layers == set(LAYERS)


def test_imports_flow_downward():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.parent == PACKAGE and path.name == "__init__.py":
            continue
        own = LAYERS.index(path.relative_to(PACKAGE).parts[0].removesuffix(".py"))
        for line, target in _imports(path):
            if target.count(".") and LAYERS.index(_layer(target)) > own:
                upward.append(f"{path.relative_to(PACKAGE)}:{line} imports {target}")
    assert not upward, "\n".join(upward)
