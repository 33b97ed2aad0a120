"""Where each value of a YAML document sits, so a refused policy names the line to fix.

Built from `yaml`'s composer (node `start_mark`s); also catches duplicate keys, which PyYAML
would otherwise resolve silently by keeping the last one.
"""

from collections.abc import Iterable

import yaml

Path = tuple[str | int, ...]


class Positions:
    """Map from a value's path in the document to the (line, column) of its key or list item."""

    def __init__(self, root: yaml.Node) -> None:
        self._marks: dict[Path, tuple[int, int]] = {(): _position(root)}
        self._nodes: dict[Path, yaml.Node] = {(): root}
        self.duplicates: list[tuple[Path, tuple[int, int]]] = []
        self._walk(root, ())

    def _walk(self, node: yaml.Node, path: Path) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                child = (*path, str(key_node.value))
                if child in self._nodes:
                    self.duplicates.append((child, _position(key_node)))
                    continue
                self._marks[child] = _position(key_node)
                self._nodes[child] = value_node
                self._walk(value_node, child)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self._marks[(*path, index)] = _position(item)
                self._nodes[(*path, index)] = item
                self._walk(item, (*path, index))

    def locate(self, location: Iterable[str | int]) -> tuple[Path, tuple[int, int]]:
        """The deepest known path along `location`, skipping parts that are not in the document.

        pydantic's error locations carry extra parts (a union's tag, "[key]") that are not
        document keys; skipping them lands on the nearest key the admin wrote.
        """
        path: Path = ()
        for part in location:
            candidate = (*path, part)
            if candidate in self._marks:
                path = candidate
        return path, self._marks[path]


def _position(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def dotted(path: Path) -> str:
    return ".".join(f"[{part}]" if isinstance(part, int) else part for part in path).replace(".[", "[")
