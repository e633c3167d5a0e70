"""The package's shape: embcli/'s modules import each other without a cycle, cli.py holds only
commands, and no function is long without saying why (the rules are in ARCHITECTURE.md)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "embcli"


def embcli_imports(path: Path, modules: set[str]) -> set[str]:
    """The embcli modules a file imports, at the top or inside a function (a cycle through a
    function-level import is still a cycle: it only moves the moment it bites)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 1:  # from .x import y, from . import x
            found.update([node.module.split(".")[0]] if node.module else [a.name for a in node.names])
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("embcli"):
            parts = node.module.split(".")
            found.update([parts[1]] if len(parts) > 1 else [a.name for a in node.names])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("embcli."))
    return (found & modules) - {path.stem}


def import_graph() -> dict[str, set[str]]:
    files = {p.stem: p for p in PACKAGE.glob("*.py")}
    return {name: embcli_imports(path, set(files)) for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path (first module repeated at the end), or None."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" after

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt, path + [nxt])):
                return cycle
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [start])):
            return cycle
    return None


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_sees_every_kind_of_import():
    graph = import_graph()
    assert "space" in graph["queries"]  # from .space import ... (top level)
    assert "shell" in graph["cli"]  # from .shell import run_shell (inside a command)
    assert "queries" in graph["shell"]  # from . import queries


def test_no_import_cycle_in_embcli():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " → ".join(cycle)


# cli.py holds only commands: no classes, and every function is a Typer command or callback
# (decorated ``@<app>.command(...)`` / ``@<app>.callback()``) or at most CLI_HELPER_LINES long.
# What commands share lives in commandline.py.
CLI_HELPER_LINES = 8


def is_command(fn: ast.FunctionDef) -> bool:
    return any(isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute) and d.func.attr in ("command", "callback")
               for d in fn.decorator_list)


def cli_misfits(source: str) -> list[str]:
    """What in a cli.py's source breaks the rule: its classes, and functions that are neither commands nor short."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef):
            found.append(f"class {node.name}")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not is_command(node):
            lines = node.end_lineno - node.lineno + 1
            if lines > CLI_HELPER_LINES:
                found.append(f"{node.name} ({lines} lines, not a command)")
    return found


def test_the_cli_rule_sees_classes_and_long_helpers():
    source = ("@app.command()\n@handle_errors\ndef verb():\n" + "    x = 1\n" * 20
              + "def main():\n    run_app(app)\n"
              + "class Group:\n    pass\n"
              + "def _helper():\n" + "    x = 1\n" * 8)
    assert cli_misfits(source) == ["class Group", "_helper (9 lines, not a command)"]


def test_cli_holds_only_commands():
    misfits = cli_misfits((PACKAGE / "cli.py").read_text())
    assert not misfits, f"cli.py holds only commands (the rest goes in commandline.py): {misfits}"


# No function in embcli/ is longer than LONG_FUNCTION lines (from its ``def`` to its last line,
# docstring included, decorators not) unless it says why, in a comment with LONG_MARKER on the line
# above it (above its decorators) or between its ``def`` and its first statement.
LONG_FUNCTION = 60
LONG_MARKER = "# long:"


def long_functions(source: str, name: str = "<source>") -> list[str]:
    """The functions (and methods) of a file over LONG_FUNCTION lines that give no reason."""
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        length = node.end_lineno - node.lineno + 1
        top = min([node.lineno] + [d.lineno for d in node.decorator_list])
        # 1-based line numbers: lines[top - 2] is the line above; lines[node.lineno - 1 : body - 1]
        # run from the def to the line before the first statement
        nearby = lines[max(top - 2, 0):top - 1] + lines[node.lineno - 1:node.body[0].lineno - 1]
        if length > LONG_FUNCTION and not any(LONG_MARKER in line for line in nearby):
            found.append(f"{name}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_the_length_rule_sees_long_functions_and_their_reasons():
    body = "    x = 1\n" * LONG_FUNCTION
    assert long_functions("def short():\n    x = 1\n") == []
    assert long_functions("def step_by_step():\n" + body) == [f"<source>:1 step_by_step ({LONG_FUNCTION + 1} lines)"]
    assert long_functions("# long: a linear script of steps\ndef step_by_step():\n" + body) == []
    assert long_functions("# long: why\n@decorated\ndef step_by_step():\n" + body) == []
    assert long_functions("def step_by_step(a,\n                 b):\n    # long: why\n" + body) == []
    assert long_functions("# long: why\n\ndef step_by_step():\n" + body) != []  # not directly above
    assert long_functions("class Trainer:\n    def fit(self):\n" + "    " + body.replace("\n", "\n    ")) != []


def test_no_long_function_without_a_reason():
    found = [f for path in sorted(PACKAGE.glob("*.py")) for f in long_functions(path.read_text(), path.name)]
    assert not found, f"over {LONG_FUNCTION} lines: split it, or say why it stays long ({LONG_MARKER} ...): {found}"
