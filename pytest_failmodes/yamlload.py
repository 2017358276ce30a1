"""Definition YAML read with bounds: every problem is one :class:`DefinitionError` line.

PyYAML's ``safe_load`` is safe against code execution, not against an unlucky
or hostile file: a repeated key silently drops the first value (a whole
``failure_modes:`` list can vanish), nine nested aliases expand to hundreds of
millions of nodes, a self-referencing alias or a few thousand nested brackets
blow the stack, and an explicit tag on a bad scalar (``!!int abc``) escapes as
a raw ``ValueError``. This module composes the node graph first, checks it
(repeated keys, nesting depth, alias cycles, alias expansion) and only then
builds Python objects.
"""

from __future__ import annotations

from typing import Any

import yaml

from .errors import DefinitionError

__all__ = ["load_definition_yaml", "MAX_DEPTH", "MAX_ALIAS_NODES"]

#: deepest nesting of mappings and lists, aliases expanded; real definitions
#: (rules in ``any``/``not``, JSON schemas) stay far below it
MAX_DEPTH = 100
#: how many nodes aliases may add beyond those written out in the file
MAX_ALIAS_NODES = 100_000

_MERGE = "tag:yaml.org,2002:merge"


class _Problem(Exception):
    def __init__(self, message: str, line: int, key: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.key = key


def _tag(tag: str) -> str:
    return "!!" + tag.rsplit(":", 1)[-1] if tag.startswith("tag:yaml.org,2002:") else tag


class _Loader(yaml.SafeLoader):
    """SafeLoader that stops composing past :data:`MAX_DEPTH` and names bad scalars."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._depth = 0
        #: id(node) -> its key path, filled by _check, to name the key of a bad scalar
        self.paths: dict[int, tuple[str | int, ...]] = {}
        #: (id(parent), index or id(key node)) -> line of an alias used there: the
        #: composer hands back the anchored node itself, whose mark is the anchor's
        self.alias_lines: dict[tuple[int, int], int] = {}

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                # before recursing further: the composer recurses once per level
                mark = self.peek_event().start_mark
                raise _Problem(f"nested more than {MAX_DEPTH} levels deep", mark.line + 1)
            if parent is not None and self.check_event(yaml.AliasEvent):
                where = (id(parent), index if isinstance(index, int) else id(index))
                self.alias_lines[where] = self.peek_event().start_mark.line + 1
            node: yaml.Node | None = super().compose_node(parent, index)
            return node
        finally:
            self._depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, AttributeError, OverflowError) as exc:
            # an explicit tag on a scalar it does not fit: !!int abc, !!timestamp yesterday
            key = _key_text(self.paths.get(id(node), ()))
            if isinstance(node, yaml.ScalarNode):
                raise _Problem(f"{node.value!r} is not a valid {_tag(node.tag)}", node.start_mark.line + 1, key) from None
            raise _Problem(f"cannot read this {_tag(node.tag)}: {exc}", node.start_mark.line + 1, key) from None


def _key_text(path: tuple[str | int, ...]) -> str | None:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or None


def _check(root: yaml.Node, paths: dict[int, tuple[str | int, ...]], alias_lines: dict[tuple[int, int], int]) -> None:
    """Repeated keys, alias cycles, nesting and alias expansion, each visited node once;
    ``paths`` receives each node's (first) key path."""
    sizes: dict[int, int] = {}  # id(node) -> nodes it expands to
    depths: dict[int, int] = {}  # id(node) -> levels below it, aliases expanded
    on_path: set[int] = set()
    written = 0

    def visit(node: yaml.Node, path: tuple[str | int, ...], level: int, line: int) -> None:
        nonlocal written
        ident = id(node)
        if ident in on_path:
            raise _Problem("an alias refers to a node that contains it (a recursive alias)", line, _key_text(path))
        if ident in sizes:
            if level + depths[ident] > MAX_DEPTH:
                raise _Problem(f"nested more than {MAX_DEPTH} levels deep (aliases expanded)", line, _key_text(path))
            return
        if level > MAX_DEPTH:
            raise _Problem(f"nested more than {MAX_DEPTH} levels deep (aliases expanded)", line, _key_text(path))
        written += 1
        paths[ident] = path
        children: list[tuple[yaml.Node, tuple[str | int, ...], int]] = []
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key, value in node.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else None
                if name is not None and key.tag != _MERGE:
                    first = seen.get(name)
                    if first is not None:
                        raise _Problem(
                            f"key {name!r} is given twice (lines {first} and {key.start_mark.line + 1}); "
                            "YAML would keep only the last: give each key once",
                            key.start_mark.line + 1,
                            _key_text((*path, name)),
                        )
                    seen[name] = key.start_mark.line + 1
                children.append((key, path, key.start_mark.line + 1))
                used = alias_lines.get((ident, id(key)), value.start_mark.line + 1)
                children.append((value, (*path, name if name is not None else "?"), used))
        elif isinstance(node, yaml.SequenceNode):
            children = [
                (item, (*path, i), alias_lines.get((ident, i), item.start_mark.line + 1)) for i, item in enumerate(node.value)
            ]
        on_path.add(ident)
        size, deepest = 1, 0
        for child, where, at in children:
            visit(child, where, level + 1, at)
            size += sizes[id(child)]
            deepest = max(deepest, depths[id(child)] + 1)
            if size - written > MAX_ALIAS_NODES:
                raise _Problem(
                    f"aliases expand to more than {MAX_ALIAS_NODES:,} extra nodes (an alias bomb?)", at, _key_text(where)
                )
        on_path.discard(ident)
        sizes[ident] = size
        depths[ident] = deepest

    visit(root, (), 0, root.start_mark.line + 1)


def load_definition_yaml(text: str, shown: str) -> tuple[Any, yaml.Node | None]:
    """Parse one YAML document: ``(data, root node)``, or a DefinitionError naming ``shown``."""
    try:
        loader = _Loader(text)  # the reader rejects control characters right here
        try:
            node = loader.get_single_node()
            if node is None:
                return None, None
            _check(node, loader.paths, loader.alias_lines)
            return loader.construct_document(node), node
        finally:
            loader.dispose()
    except _Problem as exc:
        raise DefinitionError(exc.message, file=shown, line=exc.line, key=exc.key) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        if isinstance(exc, yaml.reader.ReaderError):
            # a control character: str(exc) spans lines and there is no mark
            problem = f"character {exc.character!r} is not allowed"
            line = text.count("\n", 0, exc.position) + 1
        else:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise DefinitionError(f"invalid YAML: {problem}", file=shown, line=line) from None
    except RecursionError:  # pragma: no cover - the depth cap comes first; a last resort
        raise DefinitionError(f"nested too deeply (more than {MAX_DEPTH} levels)", file=shown) from None
