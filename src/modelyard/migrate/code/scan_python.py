"""Find GPU-specific sites in one Python file with ``ast``: aliases resolved, device strings followed.

Two passes over the tree. The first records what each imported name stands for (``import torch.cuda as tc``,
``from torch.cuda.amp import autocast``), simple aliases (``sync = torch.cuda.synchronize``) and every value
assigned to a name or attribute (``dev = "cuda:0"``, ``self.device = ...``, parameter defaults) - flow- and
scope-insensitive, which is enough to follow a device string to where it is used. The second pass matches the
rules. Comments never reach the tree, and a string only matters when it flows into a device argument
(``.to()``, ``device=``, ``torch.device``, ``map_location``, ``autocast``), is compared, names an environment
variable or a command - so "cuda" in a docstring, a log message or a dict key is never a finding.

``ast`` rather than libcst because it is several times faster on large trees; ``apply`` re-finds the sites in
libcst by their exact positions.
"""

from __future__ import annotations

import ast
import fnmatch
import re
import warnings
from typing import Any

from modelyard.migrate.code.findings import FileResult, Finding, make_snippet
from modelyard.migrate.code.rules import Rule, RuleSet

SUBPROCESS_CALLS = frozenset(
    {"subprocess.run", "subprocess.call", "subprocess.check_call", "subprocess.check_output", "subprocess.Popen",
     "subprocess.getoutput", "subprocess.getstatusoutput", "os.system", "os.popen", "os.execvp", "os.execv",
     "os.spawnlp", "os.spawnvp"}
)
ENV_CALLS = frozenset({"os.getenv", "os.environ.get", "os.environ.setdefault", "os.environ.pop", "os.putenv",
                       "os.unsetenv"})
AUTOCAST_CALLS = frozenset({"torch.autocast", "torch.amp.autocast", "torch.amp.autocast_mode.autocast"})
SCALER_CALLS = frozenset({"torch.amp.GradScaler", "torch.amp.grad_scaler.GradScaler"})
DEVICE_ARG0_CALLS = frozenset({"torch.device", "torch.set_default_device", "torch.get_device_module"})
MAX_VALUE_DEPTH = 4
_NEWLINES = re.compile(r"\r\n|\r|\n")
_Value = tuple[Any, ast.AST]


# fields that never hold a child node (names, flags, contexts, operators)
_SCALAR_FIELDS = frozenset({"ctx", "op", "ops", "type_comment", "type_ignores", "id", "attr", "arg", "module",
                            "asname", "kind", "level", "conversion", "is_async", "simple"})
_FIELDS: dict[type, tuple[str, ...] | None] = {ast.Constant: ()}


def walk(tree: ast.AST) -> list[ast.AST]:
    """Every node, parents before children (what the matcher's 'consumed' bookkeeping needs).

    A plain stack over each type's child fields that skips scalar fields, expression contexts and operators:
    about 2.5x faster than ``ast.walk`` on large files, which matters when scanning thousands of them.
    """
    nodes: list[ast.AST] = []
    stack: list[Any] = [tree]
    pop, push, extend, append = stack.pop, stack.append, stack.extend, nodes.append
    while stack:
        node = pop()
        kind = node.__class__
        fields = _FIELDS.get(kind, ...)
        if fields is ...:
            fields = _FIELDS[kind] = (
                tuple(f for f in kind._fields if f not in _SCALAR_FIELDS) if issubclass(kind, ast.AST) else None
            )
        if fields is None:  # a str / None / constant inside a list field
            continue
        append(node)
        for name in fields:
            value = getattr(node, name, None)
            if value is None:
                continue
            value_kind = value.__class__
            if value_kind is list:
                extend(value)
            elif value_kind is not str:
                push(value)
    return nodes


def split_lines(text: str) -> list[str]:
    """Split like the Python tokenizer (\\n, \\r\\n, \\r), not like ``str.splitlines`` (form feeds etc.)."""
    lines = _NEWLINES.split(text)
    if lines and lines[-1] == "":
        lines.pop()
    return lines


class PythonScanner:
    """Scan one module's source for the rules of one target.

    Args:
        rules: the target's ``RuleSet``.
        rel: the file's path relative to the analysed root (goes into every finding).
        text: the decoded source.
    """

    def __init__(self, rules: RuleSet, rel: str, text: str):
        self.rules = rules
        self.rel = rel
        self.text = text
        self.lines = split_lines(text)
        self.imported: dict[str, str] = {}  # names bound by import statements -> qualified name
        self.aliases: dict[str, str] = {}  # imported plus simple aliases (x = torch.cuda)
        self.values: dict[str, list[ast.expr]] = {}  # "dev" / "self.device" -> assigned expressions
        self.findings: list[Finding] = []
        self._seen: set[tuple[str, int]] = set()
        self._consumed: set[int] = set()
        self._handlers = {
            ast.Call: self._call, ast.Attribute: self._maybe_reference, ast.Name: self._maybe_reference,
            ast.Import: self._import, ast.ImportFrom: self._import, ast.Compare: self._compare,
            ast.Subscript: self._subscript, ast.FunctionDef: self._decorators,
            ast.AsyncFunctionDef: self._decorators, ast.ClassDef: self._decorators,
        }

    def scan(self) -> FileResult:
        """Parse and match; a syntax error becomes a ``parse-error`` finding instead of an exception."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # SyntaxWarning for invalid escapes etc. is not our business
                tree = ast.parse(self.text)
        except SyntaxError as exc:
            return self._parse_error(exc.lineno or 1, f"{exc.msg} (line {exc.lineno})")
        except (ValueError, RecursionError, MemoryError) as exc:
            return self._parse_error(1, f"{type(exc).__name__}: {exc}")
        nodes = walk(tree)
        self._collect(nodes)
        for node in nodes:
            handler = self._handlers.get(type(node))
            if handler is not None:
                handler(node)
        self.findings.sort(key=lambda f: (f.line, f.column, f.rule))
        return FileResult(self.rel, "python", len(self.lines), tuple(self.findings))

    def _parse_error(self, line: int, reason: str) -> FileResult:
        rule = self.rules.builtins.get("parse-error")
        findings: tuple[Finding, ...] = ()
        if rule is not None:
            line = max(1, min(line, len(self.lines) or 1))
            findings = (Finding(self.rel, line, 1, line, 1, rule.id, "syntax", rule.status_for(self.rules.target) or "",
                                make_snippet(self.lines, line), "line", reason),)
        return FileResult(self.rel, "python", len(self.lines), findings, reason)

    # ----------------------------------------------------------------------------------------------------------
    # pass 1: names and values

    def _collect(self, nodes: list[ast.AST]) -> None:
        wanted = (ast.Import, ast.ImportFrom, ast.Assign, ast.AnnAssign, ast.NamedExpr, ast.arguments)
        for node in nodes:
            if not isinstance(node, wanted):
                continue
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self.imported[alias.asname] = alias.name
                    else:
                        top = alias.name.split(".")[0]
                        self.imported[top] = top
            elif isinstance(node, ast.ImportFrom):
                if node.level == 0 and node.module:
                    for alias in node.names:
                        if alias.name != "*":
                            self.imported[alias.asname or alias.name] = f"{node.module}.{alias.name}"
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    self._record(target, node.value)
            elif isinstance(node, (ast.AnnAssign, ast.NamedExpr)) and node.value is not None:
                self._record(node.target, node.value)
            elif isinstance(node, ast.arguments):
                positional = node.posonlyargs + node.args
                for arg, default in zip(positional[len(positional) - len(node.defaults):], node.defaults, strict=True):
                    self.values.setdefault(arg.arg, []).append(default)
                for arg, default in zip(node.kwonlyargs, node.kw_defaults, strict=True):
                    if default is not None:
                        self.values.setdefault(arg.arg, []).append(default)
        self.aliases = dict(self.imported)
        for _ in range(2):  # x = torch.cuda; y = x.synchronize -> two rounds
            for key, exprs in self.values.items():
                if "." in key or key in self.aliases:
                    continue
                targets = {self.qualname(e) if isinstance(e, (ast.Attribute, ast.Name)) else None for e in exprs}
                if len(targets) == 1 and None not in targets:
                    self.aliases[key] = targets.pop()  # type: ignore[assignment]

    def _record(self, target: ast.expr, value: ast.expr) -> None:
        if isinstance(target, (ast.Tuple, ast.List)):
            if isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(target.elts):
                for sub_target, sub_value in zip(target.elts, value.elts, strict=True):
                    self._record(sub_target, sub_value)
            return
        key = _chain_key(target)
        if key:
            self.values.setdefault(key, []).append(value)

    def qualname(self, node: ast.AST) -> str | None:
        """The qualified name an expression stands for (``tc.synchronize`` -> ``torch.cuda.synchronize``)."""
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return None
        base = self.aliases.get(node.id)
        if base is None:
            return None
        return ".".join([base, *reversed(parts)]) if parts else base

    def values_of(self, node: ast.AST, depth: int = 0, seen: frozenset[str] = frozenset()) -> list[_Value]:
        """Literal values an expression may take, each with the node that spells it (for the rewrite)."""
        if depth > MAX_VALUE_DEPTH:
            return []
        if isinstance(node, ast.Constant):
            return [(node.value, node)] if isinstance(node.value, (str, bool, int, float)) else []
        if isinstance(node, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
            return [(text, node)]
        if isinstance(node, ast.IfExp):
            return self.values_of(node.body, depth + 1, seen) + self.values_of(node.orelse, depth + 1, seen)
        if isinstance(node, ast.BoolOp):
            return [v for value in node.values for v in self.values_of(value, depth + 1, seen)]
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            return [v for elt in node.elts for v in self.values_of(elt, depth + 1, seen)]
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mod)):
            return [
                (v + "{}", origin) for v, origin in self.values_of(node.left, depth + 1, seen) if isinstance(v, str)
            ]
        if isinstance(node, (ast.Name, ast.Attribute)):
            key = _chain_key(node)
            if key and key not in seen and key in self.values:
                return [v for e in self.values[key] for v in self.values_of(e, depth + 1, seen | {key})]
            return []
        if isinstance(node, ast.Call):
            return self._call_values(node, depth, seen)
        return []

    def _call_values(self, node: ast.Call, depth: int, seen: frozenset[str]) -> list[_Value]:
        q = self.qualname(node.func)
        if q == "torch.device" and node.args:
            return self.values_of(node.args[0], depth + 1, seen)
        if q in ("os.environ.get", "os.getenv"):
            default = node.args[1] if len(node.args) > 1 else _keyword(node, "default")
            return self.values_of(default, depth + 1, seen) if default is not None else []
        if q in ("os.path.join", "posixpath.join") and node.args:  # a path's suffix is its last part's
            return [(f"{{}}/{v}", origin) for v, origin in self.values_of(node.args[-1], depth + 1, seen)
                    if isinstance(v, str)]
        if isinstance(node.func, ast.Name) and node.func.id == "str" and node.args:
            return self.values_of(node.args[0], depth + 1, seen)
        if isinstance(node.func, ast.Attribute) and node.func.attr in ("format", "lower", "strip") and q is None:
            return self.values_of(node.func.value, depth + 1, seen)
        return []

    # ----------------------------------------------------------------------------------------------------------
    # pass 2: matching

    def _maybe_reference(self, node: ast.Attribute | ast.Name) -> None:
        if id(node) in self._consumed:
            return
        if type(node) is ast.Name and node.id not in self.imported:
            return  # the common case: a local variable
        self._reference(node)

    def _subscript(self, node: ast.Subscript) -> None:
        if self.qualname(node.value) == "os.environ":
            self._env_literal(node.slice)

    def _decorators(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        for decorator in node.decorator_list:
            if not isinstance(decorator, ast.Call):
                self._consume_chain(decorator)
                q = self.qualname(decorator)
                for rule in self.rules.calls.lookup(q) if q else ():
                    # a bare decorator cannot take a call template, so an auto rule needs a person here
                    auto = rule.status_for(self.rules.target) == "auto"
                    self._add(rule, decorator, "reference", q, status="manual" if auto else None)

    def _consume_chain(self, node: ast.AST) -> None:
        while isinstance(node, ast.Attribute):
            self._consumed.add(id(node))
            node = node.value
        if isinstance(node, ast.Name):
            self._consumed.add(id(node))

    def _call(self, node: ast.Call) -> None:
        func = node.func
        self._consume_chain(func)
        q = self.qualname(func)
        method = func.attr if isinstance(func, ast.Attribute) and q is None else None
        if q:
            for rule in self.rules.calls.lookup(q):
                self._add(rule, node, "call", q, status=self._call_status(rule, node))
            if q in SUBPROCESS_CALLS and node.args:
                self._command(node.args[0], q)
            if q in ENV_CALLS and node.args:
                self._env_literal(node.args[0])
        elif method:
            for rule in self.rules.methods.get(method, ()):
                self._add(rule, node, "method", f".{method}()", status=self._call_status(rule, node))
            if method in ("startswith", "endswith") and node.args:
                self._compare_literals([node.args[0]])  # device.startswith("cuda") is a device check
        for keyword in node.keywords:
            if keyword.arg == "env" and isinstance(keyword.value, ast.Dict):
                for key in keyword.value.keys:
                    if key is not None:
                        self._env_literal(key)
        if self.rules.arguments:
            self._arguments(node, q, method)
        if "string_device" in self.rules.regex_rules:
            for sink, what in self._device_sinks(node, q, method):
                self._device_string(sink, what, node)

    def _call_status(self, rule: Rule, node: ast.Call) -> str | None:
        """``manual`` instead of ``auto`` when the rewrite template would drop positional arguments."""
        rewrite = rule.rewrite.get(self.rules.target)  # type: ignore[call-overload]
        if rewrite is None or rewrite.template is None or not node.args:
            return None
        if "{args}" in rewrite.template or "{,args}" in rewrite.template:
            return None
        return "manual"

    def _arguments(self, node: ast.Call, q: str | None, method: str | None) -> None:
        keywords = {k.arg for k in node.keywords}
        for matcher, rule in self.rules.arguments:
            if matcher.keyword not in keywords and (matcher.position is None or matcher.position >= len(node.args)):
                continue  # the argument is not there: skip the (slower) name checks
            if matcher.call and not (q and any(fnmatch.fnmatchcase(q, p) for p in matcher.call)):
                continue
            if matcher.method and method not in matcher.method:
                continue
            arg = _argument(node, matcher.keyword, matcher.position)
            if arg is None:
                continue
            api = f"{q or ('.' + method if method else 'call')}({matcher.keyword or matcher.position}=...)"
            if matcher.value is None and matcher.value_regex is None:
                self._add(rule, arg, "value", api)
                continue
            for value, origin in self.values_of(arg):
                if _value_matches(value, matcher.value, matcher.value_regex):
                    self._add(rule, origin, "value", f"{api[:-4]}{value!r})", _flow(origin, node))

    def _device_sinks(self, node: ast.Call, q: str | None, method: str | None) -> list[tuple[ast.expr, str]]:
        sinks: list[tuple[ast.expr, str]] = []
        for keyword in node.keywords:
            if keyword.arg in ("device", "map_location"):
                sinks.append((keyword.value, f"{keyword.arg}="))
        if method == "to":
            if node.args:
                sinks.append((node.args[0], ".to()"))
        elif q in DEVICE_ARG0_CALLS or q in AUTOCAST_CALLS or q in SCALER_CALLS:
            if node.args:
                sinks.append((node.args[0], f"{q}()"))
            keyword = _keyword(node, "device_type") or _keyword(node, "type")
            if keyword is not None:
                sinks.append((keyword, f"{q}()"))
        elif method == "add_argument" and any(
            isinstance(a, ast.Constant) and isinstance(a.value, str) and "device" in a.value for a in node.args
        ):
            default = _keyword(node, "default")
            if default is not None:
                sinks.append((default, "the --device option's default"))
        return sinks

    def _device_string(self, sink: ast.expr, what: str, call: ast.Call) -> None:
        for value, origin in self.values_of(sink):
            if not isinstance(value, str):
                continue
            for pattern, rule in self.rules.regex_rules["string_device"]:
                if pattern.search(value):
                    self._add(rule, origin, "value", repr(value), _flow(origin, call, what))

    def _reference(self, node: ast.Attribute | ast.Name) -> None:
        if isinstance(node, ast.Attribute):
            self._consume_chain(node.value)
        q = self.qualname(node)
        if q is not None:
            if isinstance(node, ast.Name) and node.id not in self.imported:
                return  # a local alias: its uses are matched as calls, its definition as the reference
            for rule in self.rules.attributes.lookup(q):
                self._add(rule, node, "reference", q)
        elif isinstance(node, ast.Attribute):
            for rule in self.rules.members.get(node.attr, ()):
                self._add(rule, node, "reference", f".{node.attr}")

    def _import(self, node: ast.Import | ast.ImportFrom) -> None:
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif node.level == 0 and node.module:
            candidates = [node.module] + [f"{node.module}.{a.name}" for a in node.names if a.name != "*"]
        else:
            return
        done: set[str] = set()
        for name in candidates:
            for rule in self.rules.imports.lookup(name):
                if rule.id not in done:
                    done.add(rule.id)
                    self._add(rule, node, "import", name)

    def _compare(self, node: ast.Compare) -> None:
        operands = [node.left, *node.comparators]
        if any(self.qualname(o) == "os.environ" for o in node.comparators):
            self._env_literal(node.left)
        if any(isinstance(op, (ast.Eq, ast.NotEq, ast.In, ast.NotIn)) for op in node.ops):
            self._compare_literals(operands)

    def _compare_literals(self, operands: list[ast.expr]) -> None:
        patterns = self.rules.regex_rules.get("compare")
        if not patterns:
            return
        for operand in operands:
            literals = operand.elts if isinstance(operand, (ast.Tuple, ast.List, ast.Set)) else [operand]
            for literal in literals:
                if isinstance(literal, ast.Constant) and isinstance(literal.value, str):
                    for pattern, rule in patterns:
                        if pattern.search(literal.value):
                            self._add(rule, literal, "value", repr(literal.value))

    def _env_literal(self, node: ast.AST) -> None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            for pattern, rule in self.rules.regex_rules.get("env", ()):
                if pattern.search(node.value):
                    self._add(rule, node, "value", node.value)

    def _command(self, arg: ast.expr, q: str) -> None:
        first = arg.elts[0] if isinstance(arg, (ast.List, ast.Tuple)) and arg.elts else arg
        for value, origin in self.values_of(first):
            if isinstance(value, str):
                for pattern, rule in self.rules.regex_rules.get("command", ()):
                    if pattern.search(value):
                        self._add(rule, origin, "value", f"{q}({value.split()[0] if value.split() else value!r})")

    def _add(self, rule: Rule, node: Any, anchor: str, api: str, detail: str = "", status: str | None = None) -> None:
        key = (rule.id, id(node))
        if key in self._seen:
            return
        self._seen.add(key)
        line, end_line = node.lineno, node.end_lineno or node.lineno
        column = self._char_column(line, node.col_offset)
        end_column = self._char_column(end_line, node.end_col_offset or node.col_offset)
        self.findings.append(
            Finding(self.rel, line, column + 1, end_line, end_column + 1, rule.id, api,
                    status or rule.status_for(self.rules.target) or "", make_snippet(self.lines, line, end_line),
                    anchor, detail)
        )

    def _char_column(self, line: int, byte_offset: int) -> int:
        """ast columns count UTF-8 bytes; findings and libcst count characters."""
        text = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        if text.isascii():
            return byte_offset
        return len(text.encode("utf-8")[:byte_offset].decode("utf-8", errors="ignore"))


def _chain_key(node: ast.AST) -> str | None:
    """``dev`` for a Name, ``self.device`` for an attribute chain on a name; None otherwise."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id, *reversed(parts)])
    return None


def _keyword(node: ast.Call, name: str) -> ast.expr | None:
    for keyword in node.keywords:
        if keyword.arg == name:
            return keyword.value
    return None


def _argument(node: ast.Call, keyword: str | None, position: int | None) -> ast.expr | None:
    if keyword is not None:
        found = _keyword(node, keyword)
        if found is not None:
            return found
    if (position is not None and position < len(node.args)
            and not any(isinstance(a, ast.Starred) for a in node.args[: position + 1])):
        return node.args[position]
    return None


def _value_matches(value: Any, expected: Any, regex: str | None) -> bool:
    if regex is not None:
        return isinstance(value, str) and re.search(regex, value) is not None
    return type(value) is type(expected) and value == expected


def _flow(origin: ast.AST, call: ast.Call, what: str = "") -> str:
    """Say where a value defined elsewhere is used, so the report explains an indirect finding."""
    if origin.lineno == call.lineno or (call.lineno <= origin.lineno <= (call.end_lineno or call.lineno)):
        return ""
    target = what or "a matched argument"
    return f"flows into {target} at line {call.lineno}"


def scan_python(rules: RuleSet, rel: str, text: str) -> FileResult:
    """Scan one Python source; see ``PythonScanner``."""
    return PythonScanner(rules, rel, text).scan()
