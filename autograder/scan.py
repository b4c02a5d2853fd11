"""A static scan of the student's source, in the judge: constructs that tamper with grading or evade it.

The rules part (no torch implementation of the layer, no Python loop, no fixed device) is checked
by tracing the student's forwards, and that trace is recorded in the student's own process, so a
determined student could switch it off. The scan reads the source instead, where such a switch is
plain to see, and flags it for the instructor's review: the rules part scores 0 with "flagged for
review: <construct> at line N of cell K". Values are never trusted from the student's side anyway,
so what the scan looks for is whatever reaches outside the exercise:

- imports beyond the exercise's toolbox (torch, math, numpy, copy, ...): os, sys, gc, inspect,
  ctypes, subprocess, socket, signal, importlib, threading, pathlib, builtins, IPython, the
  grader's own modules, ...;
- torch's internals that switch off or bypass the tracer: torch._C, torch.ops, torch.overrides,
  torch.utils._python_dispatch, torch._dynamo, __torch_function__, __torch_dispatch__;
- dynamic code and introspection: exec, eval, compile, __import__, globals, breakpoint, open,
  get_ipython, frames (f_back, f_locals, tb_frame, ...), __globals__, __builtins__,
  __subclasses__, __code__;
- monkeypatching: assigning or deleting an attribute of an imported module (torch.allclose = ...,
  nn.Module.__call__ = ...), or getattr/setattr/delattr on one.

An honest solution uses none of these (a test scans every reference solution and finds nothing).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass

#: top-level modules a solution may import (the exercise's toolbox)
ALLOWED_IMPORTS = frozenset({
    "math", "cmath", "torch", "numpy", "copy", "functools", "itertools", "collections", "typing", "dataclasses",
    "numbers", "operator", "abc", "enum", "warnings", "random", "statistics", "matplotlib", "sklearn", "scipy",
    "tqdm", "__future__", "string", "textwrap", "time", "fractions", "decimal", "re", "autograder"})
#: what of the grader a notebook may import: its set-up cells' names
ALLOWED_FROM_AUTOGRADER = {"autograder": {"check", "grade", "CHAPTERS", "PARTS"},
                           "autograder.digits": {"check_training", "load_digits_split", "train", "accuracy"}}
#: torch modules and attributes that reach below the tracer
TORCH_INTERNALS = ("torch._C", "torch.ops", "torch.overrides", "torch.utils._python_dispatch", "torch._dynamo",
                   "torch._ops", "torch._subclasses", "torch.fx", "torch.library", "torch._prims", "torch._refs")
#: names whose mere use is flagged
NAMES = frozenset({"exec", "eval", "compile", "__import__", "globals", "breakpoint", "open", "get_ipython",
                   "__builtins__"})
ATTRIBUTES = frozenset({"__torch_function__", "__torch_dispatch__", "__globals__", "__builtins__", "__subclasses__",
                        "__code__", "__closure__", "f_back", "f_locals", "f_globals", "f_code", "tb_frame",
                        "gi_frame", "cr_frame", "ag_frame", "tb_next", "_getframe", "__reduce__", "__reduce_ex__",
                        "__getattribute__", "__import__", "__loader__", "__spec__"})


@dataclass(frozen=True)
class Flag:
    """One construct found: where (cell index, line) and what."""

    cell: int
    line: int
    construct: str

    def __str__(self) -> str:
        return f"flagged for review: {self.construct} at line {self.line} of cell {self.cell}"


def _dotted(node: ast.AST) -> str | None:
    """`torch.nn.functional` for an Attribute chain on a Name, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id, *reversed(parts)])
    return None


class _Scanner(ast.NodeVisitor):
    def __init__(self, cell: int, modules: dict[str, str]):
        self.cell, self.flags = cell, []
        self.modules = modules  # alias -> module, shared across cells (imports of earlier cells count)

    def flag(self, node: ast.AST, construct: str) -> None:
        self.flags.append(Flag(self.cell, getattr(node, "lineno", 0), construct))

    def _module_of(self, dotted: str | None) -> str | None:
        if not dotted:
            return None
        head, _, rest = dotted.partition(".")
        if head not in self.modules:
            return None
        return self.modules[head] + (f".{rest}" if rest else "")

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._check_module(node, alias.name)
            self.modules[(alias.asname or alias.name).split(".")[0]] = alias.name if alias.asname else \
                alias.name.split(".")[0]

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = "." * node.level + (node.module or "")
        self._check_module(node, module)
        allowed = ALLOWED_FROM_AUTOGRADER.get(module)
        for alias in node.names:
            full = f"{module}.{alias.name}"
            if module.split(".")[0] == "autograder" and (allowed is None or alias.name not in allowed):
                self.flag(node, f"import of the grader's {full}")
            elif any(full == t or full.startswith(t + ".") for t in TORCH_INTERNALS):
                self.flag(node, f"import of {full}")
            if alias.name == "*":
                self.flag(node, f"from {module} import *")
            self.modules[alias.asname or alias.name] = full

    def _check_module(self, node: ast.AST, module: str) -> None:
        root = module.split(".")[0]
        if module.startswith(".") or root not in ALLOWED_IMPORTS:
            self.flag(node, f"import of {module}")
        elif root == "autograder" and module not in ALLOWED_FROM_AUTOGRADER:
            self.flag(node, f"import of the grader's {module}")
        elif any(module == t or module.startswith(t + ".") for t in TORCH_INTERNALS):
            self.flag(node, f"import of {module}")

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in NAMES:
            self.flag(node, f"{node.id}")
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr in ATTRIBUTES:
            self.flag(node, f".{node.attr}")
        module = self._module_of(_dotted(node))
        if module and any(module == t or module.startswith(t + ".") for t in TORCH_INTERNALS):
            self.flag(node, module)
            return  # one flag per chain
        self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        if node.name in ATTRIBUTES:
            self.flag(node, f"a method named {node.name}")
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def _targets(self, targets: Iterable[ast.AST], verb: str) -> None:
        for target in targets:
            for t in ast.walk(target) if isinstance(target, (ast.Tuple, ast.List)) else [target]:
                if isinstance(t, ast.Attribute) and self._module_of(_dotted(t.value)):
                    self.flag(t, f"{verb} {self._module_of(_dotted(t))}")

    def visit_Assign(self, node: ast.Assign) -> None:
        self._targets(node.targets, "assignment to")
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._targets([node.target], "assignment to")
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._targets([node.target], "assignment to")
        self.generic_visit(node)

    def visit_Delete(self, node: ast.Delete) -> None:
        self._targets(node.targets, "deletion of")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name) and func.id in ("getattr", "setattr", "delattr", "vars") and node.args:
            target = self._module_of(_dotted(node.args[0]))
            name = node.args[1] if len(node.args) > 1 else None
            dunder = isinstance(name, ast.Constant) and isinstance(name.value, str) and name.value.startswith("_") \
                and name.value not in ("__name__",)
            if target or dunder:
                self.flag(node, f"{func.id}({target or ast.unparse(node.args[0])}"
                          + (f", {ast.unparse(name)}" if name is not None else "") + ")")
        self.generic_visit(node)


def scan(cells: Iterable[tuple[int, str]]) -> list[Flag]:
    """Flags in the code cells (index, source), in order; a cell that does not parse has none (it fails
    on its own when it runs)."""
    flags: list[Flag] = []
    modules: dict[str, str] = {}
    for index, source in cells:
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        scanner = _Scanner(index, modules)
        try:
            scanner.visit(tree)
        except RecursionError:
            scanner.flag(tree, "code nested too deeply to read")
        flags += scanner.flags
    return flags
