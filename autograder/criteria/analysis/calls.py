"""Static analysis of a notebook's code: where it uses banned names, found without running it.

Running the student's code to see what it imports would let that code decide what we see; the
source is data. Cells are read top to bottom as one namespace, the way the notebook runs: IPython
syntax (`%magic`, `!cmd`) is first turned into the Python it stands for, then aliases are followed
(`import a.b as x; x.c()`, `from a.b import c as d`, `m = a.b`, `getattr(a, "b")`). What text
cannot show for certain (a name built at run time for `importlib.import_module`, `exec` of a
computed string, installing a banned package) is reported as `dynamic`, for a human to judge.

Known blind spots, on purpose: scopes (a function parameter named like an import alias counts
as the alias), and objects that arrive already built (unpickled from a file, say).
"""

from __future__ import annotations

import ast
import re
import shlex
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from nbformat import NotebookNode

MAX_NESTING = 3  # exec("exec('...')"): source inside source is followed this deep

# CPython 3.11 keeps the AST constructor's recursion depth per interpreter, not per thread (gh-106905):
# two threads making ASTs at once can fail one with "SystemError: AST constructor recursion depth
# mismatch". `grade --jobs N` judges in threads, so whatever makes ASTs there (this reader; pytest, which
# rewrites the tests' asserts) holds this lock.
AST_LOCK = threading.RLock()

IMPORTERS = {"builtins.__import__", "importlib.import_module", "importlib.__import__"}
EXECUTORS = {"builtins.exec", "builtins.eval", "builtins.compile"}
RUNNERS = {"runpy.run_module", "runpy.run_path", "builtins.execfile"}
SHELL_CALLS = {"os.system", "os.popen", "subprocess.run", "subprocess.call", "subprocess.check_call",
               "subprocess.check_output", "subprocess.Popen", "subprocess.getoutput", "subprocess.getstatusoutput"}
INSTALLERS = {"pip", "pip3", "conda", "mamba", "micromamba", "uv"}
# Distributions whose import name is not their own name, among those a lab is likely to ban.
IMPORT_NAME = {"scikit-learn": "sklearn", "pytorch": "torch", "opencv-python": "cv2",
               "opencv-python-headless": "cv2", "pillow": "PIL", "scikit-image": "skimage",
               "tensorflow-cpu": "tensorflow", "tensorflow-gpu": "tensorflow", "beautifulsoup4": "bs4",
               "pyyaml": "yaml", "pytorch-lightning": "pytorch_lightning", "keras-nightly": "keras"}
PYTHON_MAGICS = {"time", "timeit", "prun", "capture"}  # run their argument in the notebook's namespace
SHELL_MAGICS = {"bash", "sh", "system", "sx", "script"}
PIP_OPTIONS_WITH_VALUE = {"-c", "--constraint", "-i", "--index-url", "--extra-index-url", "-f", "--find-links",
                          "-t", "--target", "--prefix", "--root", "--python", "-p", "--prefix-path",
                          "--channel", "-n", "--name"}
SHELL = "IPython.shell"  # what get_ipython() stands for, so `ip = get_ipython(); ip.system(...)` is seen
DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


@dataclass(frozen=True)
class Use:
    """One place that names something banned: `name` is what the code refers to, resolved."""

    name: str
    banned: str  # the rubric entry it falls under
    how: Literal["import", "call", "reference"]
    cell: int | str  # 1-based, counting every cell as Jupyter shows them; or a student module's file name
    line: int

    @property
    def place(self) -> str:
        return _place(self.cell, self.line)


@dataclass(frozen=True)
class Dynamic:
    """Something a static check cannot see through, in plain words."""

    what: str
    cell: int | str
    line: int

    @property
    def place(self) -> str:
        return _place(self.cell, self.line)


def _place(cell: int | str, line: int) -> str:
    return f"{cell}, line {line}" if isinstance(cell, str) else f"cell {cell}, line {line}"


@dataclass
class Findings:
    uses: list[Use] = field(default_factory=list)
    dynamic: list[Dynamic] = field(default_factory=list)
    unparsed: list[int | str] = field(default_factory=list)  # cells (or modules) skipped: not valid Python


def under(name: str, prefix: str) -> bool:
    """`name` is `prefix` or something inside it (sklearn.svm is under sklearn, sklearnx is not)."""
    return name == prefix or name.startswith(prefix + ".")


def find_uses(nb: NotebookNode, banned: Iterable[str], modules: dict[str, str] | None = None) -> Findings:
    """Every use of a banned name (or anything under one) in the notebook's code cells and in the
    student's own modules (each read in a namespace of its own, as Python imports it)."""
    banned = tuple(banned)
    scanner = _Scanner(banned)
    for number, cell in enumerate(nb.get("cells", []), start=1):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        scanner.scan_cell(source, number)
    findings = scanner.findings
    for name, source in sorted((modules or {}).items()):
        module = _Scanner(banned)
        module.ctx = _Context(cell=name)
        if not module._scan(source):
            findings.unparsed.append(name)
        findings.uses += module.findings.uses
        findings.dynamic += module.findings.dynamic
    return findings


def ipython_to_python(source: str) -> str:
    """The Python a cell stands for (`!cmd` -> get_ipython().system('cmd')), as IPython runs it."""
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        return TransformerManager().transform_cell(source)
    except Exception:  # IPython's transformers on garbage: let the parser judge the text as it is
        return source


@dataclass
class _Context:
    cell: int | str
    line_base: int = 0  # added to a node's line: where this source starts within the cell
    fixed_line: int | None = None  # source from a string (exec): every find is at the call's line
    depth: int = 0


class _Scanner(ast.NodeVisitor):
    def __init__(self, banned: tuple[str, ...]) -> None:
        self.banned = banned
        self.tops = {b.split(".")[0] for b in banned}
        self.findings = Findings()
        self.aliases: dict[str, str] = {}  # notebook name -> dotted name it stands for
        self.star: list[str] = []  # modules imported with `from m import *`
        self.defined: set[str] = set()  # names the notebook binds itself (shadowing builtins)
        self.ctx = _Context(cell=0)

    # --- driving ------------------------------------------------------------------------

    def scan_cell(self, source: str, cell: int) -> None:
        self.ctx = _Context(cell=cell)
        if not self._scan(ipython_to_python(source)):
            self.findings.unparsed.append(cell)

    def _scan(self, source: str, line: int | None = None, base: int = 0) -> bool:
        """Visit `source` in the current namespace; False when it is not valid Python."""
        try:
            with AST_LOCK:
                tree = ast.parse(source)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return False
        outer = self.ctx
        self.ctx = _Context(cell=outer.cell, line_base=outer.line_base + base,
                            fixed_line=line if line is not None else outer.fixed_line, depth=outer.depth)
        try:
            for statement in tree.body:  # one too deep for the visitor hides nothing after it
                try:
                    self.visit(statement)
                except RecursionError:
                    self._dynamic("code nested too deeply for the grader to read", statement)
        finally:
            self.ctx = outer
        return True

    def _nested(self, source: str, node: ast.AST, what: str, body: bool = False, fresh: bool = False) -> None:
        """Source held in a string: read it too, or say it can't be. A magic cell's `body` starts on
        the line after the call; other strings (exec, %time) are found at the call's line."""
        if self.ctx.depth >= MAX_NESTING:
            self._dynamic(f"{what} nested too deeply for the grader to read", node)
            return
        saved = (self.aliases, self.star, self.defined)
        if fresh:  # a separate module or process: a namespace of its own
            self.aliases, self.star, self.defined = {}, [], set()
        self.ctx.depth += 1
        try:
            if body:
                ok = self._scan(ipython_to_python(source), base=getattr(node, "lineno", 1))
            else:
                ok = self._scan(ipython_to_python(source), line=self._line(node))
        finally:
            self.ctx.depth -= 1
            if fresh:
                self.aliases, self.star, self.defined = saved
        if not ok:
            self._dynamic(f"{what} of text that is not valid Python", node)

    # --- recording ----------------------------------------------------------------------

    def _line(self, node: ast.AST) -> int:
        if self.ctx.fixed_line is not None:
            return self.ctx.fixed_line
        return getattr(node, "lineno", 1) + self.ctx.line_base

    def _banned(self, name: str) -> str | None:
        return next((b for b in self.banned if under(name, b)), None)

    def _use(self, name: str, how: Literal["import", "call", "reference"], node: ast.AST) -> bool:
        banned = self._banned(name)
        if banned is not None:
            self.findings.uses.append(Use(name, banned, how, self.ctx.cell, self._line(node)))
        return banned is not None

    def _dynamic(self, what: str, node: ast.AST) -> None:
        self.findings.dynamic.append(Dynamic(what, self.ctx.cell, self._line(node)))

    # --- names --------------------------------------------------------------------------

    def resolve(self, node: ast.AST) -> str | None:
        """The dotted name an expression stands for, when the source shows it; else None."""
        if isinstance(node, ast.Name):
            if node.id in self.aliases:
                return self.aliases[node.id]
            return next((f"{m}.{node.id}" for m in self.star if self._banned(f"{m}.{node.id}")), None)
        if isinstance(node, ast.Attribute):
            base = self.resolve(node.value)
            return f"{base}.{node.attr}" if base else None
        if isinstance(node, ast.Call):
            callee = self.callee(node.func)
            first = _constant(_keyword(node, "name", 0))
            if callee == "builtins.getattr" and len(node.args) >= 2:
                base, attr = self.resolve(node.args[0]), _constant(node.args[1])
                return f"{base}.{attr}" if base and attr and attr.isidentifier() else None
            if callee == "builtins.get_ipython":
                return SHELL
            if callee == "importlib.import_module" and first and DOTTED.match(first):
                return first
            if callee in ("builtins.__import__", "importlib.__import__") and first and DOTTED.match(first):
                fromlist = _keyword(node, "fromlist", 3)
                return first if fromlist is not None and not _empty(fromlist) else first.split(".")[0]
        return None

    def callee(self, func: ast.AST) -> str | None:
        """What a call calls; an unbound bare name is a builtin."""
        name = self.resolve(func)
        if name is None and isinstance(func, ast.Name) and func.id not in self.defined:
            return f"builtins.{func.id}"
        return name

    def _bind(self, name: str, dotted: str | None) -> None:
        if dotted is None:
            self.aliases.pop(name, None)
            self.defined.add(name)
        else:
            self.aliases[name] = dotted
            self.defined.discard(name)

    # --- visitors -----------------------------------------------------------------------

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._use(alias.name, "import", node)
            if alias.asname:
                self._bind(alias.asname, alias.name)
            else:
                top = alias.name.split(".")[0]
                self._bind(top, top)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level or not node.module:  # relative: a notebook has no package around it
            for alias in node.names:
                if alias.name != "*":
                    self._bind(alias.asname or alias.name, None)
            return
        for alias in node.names:
            if alias.name == "*":
                self._use(node.module, "import", node)
                self.star.append(node.module)
                continue
            full = f"{node.module}.{alias.name}"
            self._use(full, "import", node)
            self._bind(alias.asname or alias.name, full)

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            name = self.resolve(node)
            if name:
                self._use(name, "reference", node)
        else:
            self._bind(node.id, None)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        name = self.resolve(node)
        if name is None:
            self.generic_visit(node)
            return
        if under(name, "sys.modules"):
            self._dynamic("sys.modules (modules looked up by name)", node)
        self._use(name, "reference", node)  # a shorter part of the chain can't match if the whole doesn't

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        for target in node.targets:
            self.visit(target)
        dotted = self.resolve(node.value)
        if dotted:
            for target in node.targets:
                if isinstance(target, ast.Name):
                    self._bind(target.id, dotted)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        self._bind(node.target.id, self.resolve(node.value))

    def _visit_definition(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        self._bind(node.name, None)
        self.generic_visit(node)

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _visit_definition

    def visit_Call(self, node: ast.Call) -> None:
        callee = self.callee(node.func)
        if callee in IMPORTERS:
            self._dynamic_import(node, callee)
        elif callee in EXECUTORS:
            self._executed(node, callee)
        elif callee in RUNNERS:
            self._dynamic(f"{callee.removeprefix('builtins.')} (runs code the grader cannot see)", node)
        elif callee == "builtins.getattr" and len(node.args) >= 2 and _constant(node.args[1]) is None:
            base = self.resolve(node.args[0])
            if base and any(under(b, base) and b != base for b in self.banned):
                self._dynamic(f"getattr on {base} with a name computed at run time", node)
        elif callee in SHELL_CALLS or callee == "pip.main":
            self._shell(_command_text(node, callee), node)
        elif self._ipython(node):
            return
        name = self.resolve(node.func)
        if name and self._use(name, "call", node):
            for arg in [*node.args, *node.keywords]:
                self.visit(arg)
            return
        self.generic_visit(node)

    # --- what text alone cannot settle --------------------------------------------------

    def _dynamic_import(self, node: ast.Call, callee: str) -> None:
        name = _constant(_keyword(node, "name", 0))
        short = callee.removeprefix("builtins.")
        if name is None or not DOTTED.match(name):
            self._dynamic(f"{short} with a module name computed at run time", node)
            return
        if not self._use(name, "import", node):
            fromlist = _keyword(node, "fromlist", 3)
            items = fromlist.elts if isinstance(fromlist, (ast.List, ast.Tuple, ast.Set)) else []
            for item in items:
                text = _constant(item)
                if text is None:
                    self._dynamic(f"{short} with names computed at run time", node)
                elif self._use(f"{name}.{text}", "import", node):
                    break

    def _executed(self, node: ast.Call, callee: str) -> None:
        short = callee.removeprefix("builtins.")
        source = _constant(_keyword(node, "source", 0))
        if source is None:
            self._dynamic(f"{short} of code computed at run time", node)
        else:
            self._nested(source, node, short)

    def _ipython(self, node: ast.Call) -> bool:
        """get_ipython().system(...), .run_line_magic(...), .run_cell_magic(...): the magics."""
        func = node.func
        if not (isinstance(func, ast.Attribute) and self.resolve(func.value) == SHELL):
            return False
        args = [_constant(a) for a in node.args]
        method = func.attr
        if method in ("system", "getoutput", "system_piped", "system_raw"):
            self._shell(_text(node.args[0]) if node.args else None, node)
        elif method == "run_line_magic" and len(args) >= 2 and args[0] is not None and args[1] is not None:
            magic, line = args[0], args[1]
            if magic in INSTALLERS:
                self._shell(f"{magic} {line}", node)
            elif magic in ("sx", "system"):
                self._shell(line, node)
            elif magic in PYTHON_MAGICS:
                self._nested(_strip_options(line), node, f"%{magic}")
            elif magic == "run":
                self._dynamic(f"%run {line}".strip()[:80] + " (runs a file the grader cannot see)", node)
            elif magic in ("load_ext", "reload_ext"):
                for module in line.split():
                    self._use(module, "import", node)
        elif (method == "run_cell_magic" and len(args) >= 3
              and args[0] is not None and args[1] is not None and args[2] is not None):
            magic, line, body = args[0], args[1], args[2]
            if magic in ("writefile", "file") and line.split() and line.split()[-1].endswith(".py"):
                self._nested(body, node, f"%%{magic}", body=True, fresh=True)
            elif magic in PYTHON_MAGICS:
                if _strip_options(line).strip():  # %%timeit's line is setup code
                    self._nested(_strip_options(line), node, f"%%{magic}")
                self._nested(body, node, f"%%{magic}", body=True)
            elif magic in ("python", "python3", "pypy") or (magic == "script" and "python" in line):
                self._nested(body, node, f"%%{magic}", body=True, fresh=True)
            elif magic in SHELL_MAGICS:
                self._shell(body, node)
        else:
            self.generic_visit(node)
        return True

    def _shell(self, text: str | None, node: ast.AST) -> None:
        """A shell command: installing a banned package, or one we cannot name, is for a human."""
        if text is None:
            self._dynamic("a shell command computed at run time", node)
            return
        for package in _installed(text):
            if package is None:
                self._dynamic("installs packages the grader cannot identify", node)
                continue
            module = IMPORT_NAME.get(package, package.replace("-", "_"))
            if module in self.tops:
                self._dynamic(f"installs {package} (pip/conda install)", node)


def _constant(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _text(node: ast.AST | None) -> str | None:
    """A string expression's text, with what is computed at run time shown as `{?}`; None when
    none of it is written out (a bare variable)."""
    if isinstance(node, ast.JoinedStr):
        return "".join(c if (c := _constant(v)) is not None else "{?}" for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _text(node.left), _text(node.right)
        return None if left is None and right is None else (left or "{?}") + (right or "{?}")
    return _constant(node)


def _keyword(node: ast.Call, name: str, position: int) -> ast.AST | None:
    for kw in node.keywords:
        if kw.arg == name:
            return kw.value
    return node.args[position] if len(node.args) > position else None


def _empty(node: ast.AST) -> bool:
    return isinstance(node, (ast.List, ast.Tuple)) and not node.elts or (
        isinstance(node, ast.Constant) and not node.value)


def _strip_options(line: str) -> str:
    """`%timeit -n 3 -r 1 f()` -> `f()`: the statement after the magic's own options."""
    rest = line.lstrip()
    while rest.startswith("-"):
        match = re.match(r"-(?:[nrplsTD]\s*\S+|\w+)\s*", rest)
        if match is None:
            break
        rest = rest[match.end():]
    return rest


def _command_text(node: ast.Call, callee: str) -> str | None:
    """The command line an os/subprocess/pip call runs, with what is computed shown as `{?}`."""
    arg = node.args[0] if node.args else _keyword(node, "args", 99)
    prefix = "pip " if callee == "pip.main" else ""
    text = _text(arg)
    if text is not None:
        return prefix + text
    if isinstance(arg, (ast.List, ast.Tuple)):
        words = [_text(e) or "{?}" for e in arg.elts]
        if words and words[0] == "{?}" and len(words) > 2 and words[1] == "-m":
            words = words[2:]  # [sys.executable, "-m", "pip", ...]
        return prefix + " ".join(words)
    return None


def _installed(text: str) -> list[str | None]:
    """Normalised names of the packages a shell text installs; None for one that can't be named."""
    found: list[str | None] = []
    for command in re.split(r"\n|;|&&|\|\||\|", text):
        try:
            words = shlex.split(command, comments=True)
        except ValueError:
            words = command.split()
        while words and (words[0] in ("python", "python3", "sudo", "-m")
                         or words[0].startswith(("python3.", "/", "{", "$"))):
            words = words[1:]
        if len(words) >= 2 and words[0] == "uv" and words[1] == "pip":
            words = words[1:]
        if not words or words[0] not in INSTALLERS or "install" not in words[1:]:
            continue
        rest = words[words.index("install") + 1:]
        skip = False
        for word in rest:
            if skip:
                skip = False
                continue
            if word in ("-r", "--requirement", "-e", "--editable"):
                found.append(None)
                skip = True
            elif word in PIP_OPTIONS_WITH_VALUE:
                skip = True
            elif word.startswith("-"):
                continue
            else:
                name = re.split(r"[\[<>=!~;@ ]", word, maxsplit=1)[0].lower().replace("_", "-").replace(".", "-")
                found.append(name if re.fullmatch(r"[a-z0-9][a-z0-9-]*", name) else None)
    return found
