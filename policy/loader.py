"""YAML reading for policy documents: YAML 1.1's surprises turned off, positions kept.

PyYAML follows YAML 1.1, where `17:00` is the base-60 integer 1020; shift times would then
arrive as numbers. Our loader resolves numbers in plain decimal only.
"""

import re

import yaml

from policy.errors import PolicyError, Problem
from policy.positions import Positions

_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"


class _PolicyLoader(yaml.SafeLoader):
    """SafeLoader whose int and float resolvers do not read sexagesimal (base-60) numbers."""


_PolicyLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag not in (_INT, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_PolicyLoader.add_implicit_resolver(_INT, re.compile(r"^[-+]?(0|[1-9][0-9_]*)$"), list("-+0123456789"))
_PolicyLoader.add_implicit_resolver(
    _FLOAT, re.compile(r"^[-+]?([0-9][0-9_]*)?\.[0-9_]+([eE][-+][0-9]+)?$"), list("-+0123456789.")
)


def read_yaml(text: str) -> tuple[object, Positions]:
    """Parse one YAML document into plain data and the positions of its values."""
    loader = _PolicyLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise PolicyError([Problem(1, 1, "", "the policy document is empty")])
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        raise PolicyError([Problem(line, column, "", f"not valid YAML: {error.problem}")]) from None
    finally:
        loader.dispose()
    return data, Positions(node)
