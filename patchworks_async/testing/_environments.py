"""The fake's virtual environments: what ``virtual_environment_id`` names.

A start may run a flow in a virtual environment (``virtual_environment_id``, a body field
of the standard variant and a query parameter of the raw one); a client finds the ids with
``GET /flow-version-deployments/virtual-environments``. The fake seeds two, and tests add
more with ``FakePatchworks.add_virtual_environment``. Starts do not check the id against
them: whether the real service refuses an unknown one is not documented.
"""

from __future__ import annotations

from typing import Any, Final

from ._laravel_query import ListSpec
from ._resources import SEED_TIMESTAMP, CoreRequest, IdSequence, Reply, list_reply

__all__ = ["SEEDED_ENVIRONMENTS", "VirtualEnvironments"]

SEEDED_ENVIRONMENTS: Final = ("Staging", "Development")
"""The environments every fake starts with, ids 1 and 2."""

_SPEC: Final = ListSpec(resource="virtual_environments", sorts=("id", "name"))


class VirtualEnvironments:
    """Every virtual environment of one fake, and the route that lists them.

    Attributes:
        environments: Environments by id; a live dict.
    """

    def __init__(self) -> None:
        """The two seeded environments."""
        self.environments: dict[int, dict[str, Any]] = {}
        self._ids = IdSequence()
        for name in SEEDED_ENVIRONMENTS:
            self.add(name)

    def add(self, name: str, **fields: Any) -> dict[str, Any]:
        """Seed an environment; ``fields`` add or override (``id`` picks the id).

        Raises:
            ValueError: If the id is already used.
        """
        raw_id = fields.pop("id", None)
        env_id = self._ids.allocate(self.environments) if raw_id is None else int(raw_id)
        if env_id in self.environments:
            raise ValueError(f"virtual environment id {env_id} is already used")
        self._ids.claim(env_id)
        environment = {"id": env_id, "name": name, "created_at": SEED_TIMESTAMP}
        environment.update(fields)
        self.environments[env_id] = environment
        return environment

    def list_virtual_environments(self, request: CoreRequest) -> Reply:
        """``GET /flow-version-deployments/virtual-environments``."""
        return list_reply(request, _SPEC, self.environments.values())
