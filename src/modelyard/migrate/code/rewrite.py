"""Rewrite the ``auto`` sites an analysis found, with libcst, keeping formatting and comments.

The analysis (``ast``) says where each site is; here libcst finds the node with exactly that span and applies
the rule's rewrite for the target: a template expression (``torch.cuda.synchronize()`` ->
``torch.get_device_module(_migrate_device()).synchronize()``), a device-string rewrite (``"cuda:1"`` ->
``f"{_migrate_device().type}:1"`` or ``"npu:1"``) or an import rename (``torch.cuda.amp`` -> ``torch.amp``).
Every ``manual``/``unsupported`` site gets a ``# MIGRATE(<rule-id>): <what to do>`` line above its statement.
Nothing is added twice, so rewriting already-migrated code changes nothing.

Example::

    new_text, rows = rewrite_python(text, findings, load_rules("any"))
"""

from __future__ import annotations

import ast
import re
import warnings
from dataclasses import dataclass

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from modelyard.migrate.code.findings import Finding
from modelyard.migrate.code.rules import Rule, RuleSet

COMMENT_PREFIX = "MIGRATE"
HELPER_NAME = "_migrate_device"
_STATEMENT_TYPES = (cst.SimpleStatementLine, cst.BaseCompoundStatement, cst.ExceptHandler)


@dataclass(frozen=True)
class ChangeRow:
    """One line of ``change_list.csv``: where, which rule, the code before and after."""

    file: str
    line: int
    rule: str
    before: str
    after: str

    def to_dict(self) -> dict:
        return {"file": self.file, "line": self.line, "rule": self.rule, "before": self.before, "after": self.after}


def migrate_comment(rule: Rule, target: str, note: str = "") -> str:
    """The one-line comment put above a site a person must change."""
    text = rule.suggestion_by_target.get(target, rule.suggestion)  # type: ignore[call-overload]
    text = " ".join(f"{text} {note}".split())
    return f"{COMMENT_PREFIX}({rule.id}): {text}"


def template_needs_positionals(template: str) -> bool:
    return "{args}" in template or "{,args}" in template


class _NotRewritable(Exception):
    """The site matched an auto rule, but this spelling cannot be rewritten safely; a person gets a comment."""


def _code(node: cst.CSTNode) -> str:
    return cst.Module(body=[]).code_for_node(node)


def _arg_code(arg: cst.Arg) -> str:
    value = _code(arg.value)
    if arg.keyword is not None:
        return f"{arg.keyword.value}={value}"
    return f"{arg.star}{value}"


def _dotted(node: cst.BaseExpression) -> str | None:
    parts = []
    while isinstance(node, cst.Attribute):
        parts.append(node.attr.value)
        node = node.value
    if isinstance(node, cst.Name):
        return ".".join([node.value, *reversed(parts)])
    return None


class _Rewriter(cst.CSTTransformer):
    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self, rules: RuleSet, rel: str, findings: list[Finding], imported: dict[str, str]):
        super().__init__()
        self.rules = rules
        self.target = rules.target
        self.profile = rules.profile
        self.rel = rel
        self.imported = imported
        self.edits: dict[tuple[int, int, int, int], list[Finding]] = {}
        self.comments: dict[int, list[str]] = {}
        self.rows: list[ChangeRow] = []
        self.needs_helper = False
        self.applied = 0
        self.renamed_modules = {
            self._old_module(rules.get(f.rule)) for f in findings if f.status == "auto" and f.anchor == "import"
        }
        for finding in findings:
            if finding.status == "auto":
                key = (finding.line, finding.column - 1, finding.end_line, finding.end_column - 1)
                self.edits.setdefault(key, []).append(finding)
            elif finding.status in ("manual", "unsupported"):
                self._comment(finding.line, migrate_comment(rules.get(finding.rule), self.target))

    @staticmethod
    def _old_module(rule: Rule) -> str:
        return min((p.removesuffix(".*") for p in rule.match.import_), key=len)

    def _comment(self, line: int, text: str) -> None:
        pending = self.comments.setdefault(line, [])
        if text not in pending:
            pending.append(text)

    # -- node replacement ------------------------------------------------------------------------------------

    def on_leave(self, original_node, updated_node):
        updated_node = super().on_leave(original_node, updated_node)
        if isinstance(original_node, _STATEMENT_TYPES) and self.comments:
            updated_node = self._attach_comments(original_node, updated_node)
        if not isinstance(original_node, (cst.BaseExpression, cst.Import, cst.ImportFrom)) or not self.edits:
            return updated_node
        position = self.get_metadata(PositionProvider, original_node, None)
        if position is None:
            return updated_node
        key = (position.start.line, position.start.column, position.end.line, position.end.column)
        findings = self.edits.pop(key, None)
        if not findings:
            return updated_node
        for finding in findings:
            rule = self.rules.get(finding.rule)
            before = _code(updated_node)
            try:
                replaced = self._rewrite(finding, rule, updated_node)
            except _NotRewritable as exc:
                self._comment(finding.line, migrate_comment(rule, self.target, f"(not rewritten: {exc})"))
                continue
            updated_node = replaced
            self.applied += 1
            self.rows.append(ChangeRow(self.rel, finding.line, rule.id, before, _code(updated_node)))
        return updated_node

    def _rewrite(self, finding: Finding, rule: Rule, node):
        rewrite = rule.rewrite[self.target]  # type: ignore[index]
        if rewrite.rename_module:
            return self._rename_import(node, self._old_module(rule), rewrite.rename_module)
        if rewrite.device_string:
            return self._device_string(node)
        assert rewrite.template is not None
        return self._render(rewrite.template, finding, node, rewrite.callee)

    def _render(self, template: str, finding: Finding, node, callee: str | None) -> cst.BaseExpression:
        values = {"device": self.profile.device, "device_type": self.profile.device_type,
                  "attr": finding.api.rsplit(".", 1)[-1], "value": _code(node)}
        if isinstance(node, cst.Call):
            positionals = [a for a in node.args if a.keyword is None and a.star != "**"]
            if positionals and not template_needs_positionals(template):
                raise _NotRewritable("positional arguments")
            args = ", ".join(_arg_code(a) for a in node.args)
            kwargs = ", ".join(_arg_code(a) for a in node.args if a not in positionals)
            values.update({"args": args, ",args": f", {args}" if args else "", "kwargs": kwargs,
                           ",kwargs": f", {kwargs}" if kwargs else ""})
            if isinstance(node.func, cst.Attribute):
                values["receiver"] = _code(node.func.value)
            values["callee"] = self._callee(node.func, finding, callee)
        try:
            code = re.sub(r"\{(,?[a-z_]+)\}", lambda m: values[m.group(1)], template)
        except KeyError as exc:
            raise _NotRewritable(f"template placeholder {exc} does not apply to this site") from None
        if HELPER_NAME in code:
            self.needs_helper = True
        try:
            return cst.parse_expression(code)
        except cst.ParserSyntaxError as exc:
            raise _NotRewritable(f"the rewritten code does not parse: {code}") from exc

    def _callee(self, func: cst.BaseExpression, finding: Finding, callee: str | None) -> str:
        """The function as written when its import is being renamed too; else the rule's new name."""
        dotted = _dotted(func)
        if callee is None:
            return _code(func)
        if dotted and dotted != finding.api:
            root = self.imported.get(dotted.split(".")[0], "")
            if any(root == old or root.startswith(old + ".") for old in self.renamed_modules):
                return _code(func)
        return callee

    def _device_string(self, node):
        device_type = self.profile.device_type
        literal = device_type[1:-1] if device_type[:1] in "\"'" else None
        if isinstance(node, cst.SimpleString):
            raw = node.value
            quote_at = len(raw) - len(raw.lstrip("rRbBuU"))
            body = raw[quote_at:]
            index = body.find("cuda")
            if index < 0:
                raise _NotRewritable("no 'cuda' in the literal")
            if literal is not None:
                return node.with_changes(value=raw[:quote_at] + body[:index] + literal + body[index + 4:])
            value = node.evaluated_value
            if not isinstance(value, str) or "{" in value or "}" in value or "\\" in raw:
                raise _NotRewritable("unusual string literal")
            rest = value[4:]
            if not rest:
                return cst.parse_expression(device_type)
            quote = body[0]
            return cst.parse_expression(f"f{quote}{{{device_type}}}{rest}{quote}")
        if isinstance(node, cst.FormattedString) and node.parts and isinstance(node.parts[0], cst.FormattedStringText):
            first = node.parts[0]
            if not first.value.startswith("cuda"):
                raise _NotRewritable("the f-string does not start with 'cuda'")
            if literal is not None:
                return node.with_changes(parts=[first.with_changes(value=literal + first.value[4:]), *node.parts[1:]])
            expression = cst.FormattedStringExpression(expression=cst.parse_expression(device_type))
            rest = [cst.FormattedStringText(first.value[4:])] if first.value[4:] else []
            self.needs_helper = self.needs_helper or HELPER_NAME in device_type
            return node.with_changes(parts=[expression, *rest, *node.parts[1:]])
        raise _NotRewritable(f"cannot rewrite a {type(node).__name__} device value")

    def _rename_import(self, node, old: str, new: str):
        def renamed(dotted: str) -> str | None:
            if dotted == old or dotted.startswith(old + "."):
                return new + dotted[len(old):]
            return None

        if isinstance(node, cst.Import):
            names = []
            for alias in node.names:
                target = renamed(_code(alias.name))
                names.append(alias.with_changes(name=cst.parse_expression(target)) if target else alias)
            return node.with_changes(names=names)
        if isinstance(node, cst.ImportFrom) and node.module is not None and not node.relative:
            module = _code(node.module)
            target = renamed(module)
            if target:
                return node.with_changes(module=cst.parse_expression(target))
            if isinstance(node.names, cst.ImportStar):
                raise _NotRewritable("star import")
            full = [renamed(f"{module}.{_code(alias.name)}") for alias in node.names]
            if all(full):
                parents = {name.rsplit(".", 1)[0] for name in full}  # type: ignore[union-attr]
                if len(parents) == 1:
                    names = [a.with_changes(name=cst.Name(n.rsplit(".", 1)[1]))  # type: ignore[union-attr]
                             for a, n in zip(node.names, full, strict=True)]
                    return node.with_changes(module=cst.parse_expression(parents.pop()), names=names)
            raise _NotRewritable("the import mixes names from different modules; split it first")
        raise _NotRewritable("unsupported import form")

    # -- comments --------------------------------------------------------------------------------------------

    def _attach_comments(self, original_node, updated_node):
        position = self.get_metadata(PositionProvider, original_node, None)
        if position is None or not hasattr(updated_node, "leading_lines"):
            return updated_node
        start = position.start.line
        for decorator in getattr(original_node, "decorators", ()):  # decorators sit above the def's position
            decorator_position = self.get_metadata(PositionProvider, decorator, None)
            if decorator_position is not None:
                start = min(start, decorator_position.start.line)
        lines = [n for n in self.comments if start <= n <= position.end.line]
        if not lines:
            return updated_node
        existing = {line.comment.value for line in updated_node.leading_lines if line.comment is not None}
        added = []
        for number in sorted(lines):
            for text in self.comments.pop(number):
                comment = f"# {text}"
                if comment not in existing:
                    existing.add(comment)
                    added.append(cst.EmptyLine(indent=True, comment=cst.Comment(comment)))
                    self.rows.append(
                        ChangeRow(self.rel, number, text[len(COMMENT_PREFIX) + 1 :].split(")")[0], "", comment)
                    )
        if not added:
            return updated_node
        return updated_node.with_changes(leading_lines=[*updated_node.leading_lines, *added])


def _imports(text: str) -> dict[str, str]:
    """Names bound by top-level imports, for the rewriter's decisions."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tree = ast.parse(text)
    bound: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                bound[alias.asname or alias.name.split(".")[0]] = (
                    alias.name if alias.asname else alias.name.split(".")[0]
                )
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                bound[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return bound


def _is_import_line(stmt: cst.CSTNode) -> bool:
    if isinstance(stmt, cst.SimpleStatementLine):
        return all(isinstance(s, (cst.Import, cst.ImportFrom)) for s in stmt.body)
    if isinstance(stmt, cst.Try):  # try: import x / except ImportError: ...
        return all(_is_import_line(s) for s in stmt.body.body)
    return False


def _header_end(module: cst.Module) -> int:
    """Index after the module's leading docstring and import block: where helpers and imports go."""
    index = 0
    body = module.body
    if body and isinstance(body[0], cst.SimpleStatementLine) and isinstance(body[0].body[0], cst.Expr) and \
            isinstance(body[0].body[0].value, (cst.SimpleString, cst.ConcatenatedString)):
        index = 1
    while index < len(body) and _is_import_line(body[index]):
        index += 1
    return index


def _add_header(module: cst.Module, rewriter: _Rewriter, text: str, imported: dict[str, str]) -> cst.Module:
    """Add what rewritten code needs: ``import torch``, the target's imports, the device helper."""
    profile = rewriter.profile
    statements: list[cst.BaseStatement] = []
    rows = []
    if imported.get("torch") != "torch":
        statements.append(cst.parse_statement("import torch\n"))
        rows.append("import torch")
    for name in profile.imports:
        if name not in imported:
            statements.append(cst.parse_statement(f"import {name}  # noqa: F401 (registers the device with torch)\n"))
            rows.append(f"import {name}")
    helper_needed = rewriter.needs_helper and profile.helper and f"def {HELPER_NAME}(" not in text
    if helper_needed:
        helper = cst.parse_module(profile.helper).body[0]
        statements.append(helper.with_changes(leading_lines=[cst.EmptyLine(), cst.EmptyLine()]))
        rows.append(f"def {HELPER_NAME}()")
    if not statements:
        return module
    index = _header_end(module)
    body = list(module.body)
    if index < len(body) and helper_needed:
        following = body[index]
        blank = sum(1 for line in following.leading_lines if line.comment is None)
        if blank < 2:
            body[index] = following.with_changes(
                leading_lines=[cst.EmptyLine()] * (2 - blank) + list(following.leading_lines)
            )
    line = 1 + sum(_code(s).count("\n") for s in body[:index]) + (len(module.header))
    for added in rows:
        rewriter.rows.append(ChangeRow(rewriter.rel, line, "migrate-header", "", added))
    return module.with_changes(body=[*body[:index], *statements, *body[index:]])


def rewrite_python(text: str, findings: list[Finding], rules: RuleSet, rel: str = "") -> tuple[str, list[ChangeRow]]:
    """Apply the rules' rewrites and MIGRATE comments to one Python source.

    Args:
        text: the source.
        findings: this file's findings from an analysis of the same ``text`` for ``rules.target``.
        rules: the target's rules.
        rel: the file's relative path (for the change rows).

    Returns:
        (new text, change rows). The text is unchanged when there is nothing to do or libcst cannot parse it.
    """
    todo = [f for f in findings if f.status in ("auto", "manual", "unsupported") and f.anchor != "line"]
    todo += [
        f for f in findings if f.status in ("manual", "unsupported") and f.anchor == "line" and f.rule != "parse-error"
    ]
    if not todo:
        return text, []
    try:
        module = cst.parse_module(text)
    except cst.ParserSyntaxError:
        return text, []
    imported = _imports(text)
    rewriter = _Rewriter(rules, rel, todo, imported)
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    new_module = wrapper.visit(rewriter)
    if rewriter.applied:
        new_module = _add_header(new_module, rewriter, text, imported)
    for line, texts in sorted(rewriter.comments.items()):  # sites outside any statement (never expected)
        for comment in texts:
            rewriter.rows.append(
                ChangeRow(rel, line, comment.split("(", 1)[1].split(")")[0], "", f"(not placed) # {comment}")
            )
    rewriter.rows.sort(key=lambda r: (r.line, r.rule))
    return new_module.code, rewriter.rows


def rewrite_text(
    text: str, kind: str, findings: list[Finding], rules: RuleSet, rel: str = ""
) -> tuple[str, list[ChangeRow]]:
    """Put a MIGRATE comment above each line of a non-Python file a person must change (``//`` in CUDA)."""
    marker = "//" if kind == "cuda" else "#"
    newline = "\r\n" if "\r\n" in text else "\n"
    lines = text.split(newline)
    wanted: dict[int, list[str]] = {}
    for finding in findings:
        if finding.status in ("auto", "manual", "unsupported") and finding.rule not in ("file-skipped", "parse-error"):
            comment = f"{marker} {migrate_comment(rules.get(finding.rule), rules.target)}"
            if comment not in wanted.setdefault(finding.line, []):
                wanted[finding.line].append(comment)
    rows: list[ChangeRow] = []
    for number in sorted(wanted, reverse=True):
        index = number - 1
        if kind == "shell" and index == 0 and lines and lines[0].startswith("#!"):
            index = 1  # keep the shebang first
        indent = re.match(r"\s*", lines[number - 1] if number - 1 < len(lines) else "").group(0)
        above = set()
        probe = index - 1
        while probe >= 0 and lines[probe].strip().startswith(f"{marker} {COMMENT_PREFIX}("):
            above.add(lines[probe].strip())
            probe -= 1
        probe = index  # a file-level note sits on line 1: its comment is then at or below the site
        while probe < len(lines) and lines[probe].strip().startswith(f"{marker} {COMMENT_PREFIX}("):
            above.add(lines[probe].strip())
            probe += 1
        new = [indent + c for c in wanted[number] if c not in above]
        lines[index:index] = new
        rows += [ChangeRow(rel, number, c.split("(", 1)[1].split(")")[0], "", c) for c in new]
    rows.sort(key=lambda r: (r.line, r.rule))
    return newline.join(lines), rows
