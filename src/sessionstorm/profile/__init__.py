"""Target profiles: a TOML file describing the service under test, never how to run it.

A profile says where the service is (``target.base_url``) or what the stack launches
(``target.command``), which API flavors it speaks, how each operation looks on the wire
(``[paths]``, the short form for services shaped like the reference target, or declared
``[ops.NAME]`` tables with request templates and JMESPath reply fields), auth, models, how
to get API keys, the SQL invariants of its database, the thresholds of a run and what the
service promises (``[contract]``). The reference target ships as package data
(`sessionstorm.profiles.REFERENCE`); ``fixtures/example-external.toml`` documents every key.

Modules by job: `schema` (the tables), `load` (read, merge, validate), `templates` (the
one template engine). Launching what a profile describes is the stack's job
(`sessionstorm.stack.launch`).
"""
from sessionstorm.profile.load import (
    check_reachable,
    load_profile,
    parse_sets,
    profile_dir,
    profile_options,
    resolve_hook,
    with_base_url,
)
from sessionstorm.profile.schema import (
    FAMILIES,
    FLAVORS,
    KEY_SOURCES,
    PATH_NAMES,
    SECTIONS,
    ContractSection,
    OpSpec,
    Profile,
)
from sessionstorm.profile.templates import (
    OP_NAMES,
    PLACEHOLDER,
    STACK_NAMES,
    fill,
    fill_tree,
)

__all__ = ["FAMILIES", "FLAVORS", "KEY_SOURCES", "OP_NAMES", "PATH_NAMES", "PLACEHOLDER", "SECTIONS", "STACK_NAMES",
           "ContractSection", "OpSpec", "Profile", "check_reachable", "fill", "fill_tree", "load_profile",
           "parse_sets", "profile_dir", "profile_options", "resolve_hook", "with_base_url"]
