"""The warehouse as a Dagster resource: one class per backend, chosen once (definitions.py).

Assets that read around the IO manager (a history load, the directory snapshots), the asset
checks, the IO manager itself and the CLI all reach the tables through the same resource, so a
run and a shell command can never disagree about where the data is. Secrets are fields that
definitions.py fills with `EnvVar`s: Dagster resolves them when a run starts (or in
`build_resources`, outside a run) and the UI shows only the variable's name.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from dagster import ConfigurableResource, build_resources
from pydantic import PrivateAttr

from asx_pipeline.warehouse.backend import WarehouseBackend


class WarehouseResource(ConfigurableResource):
    """What every backend's resource offers: the backend, opened once per process."""

    _backend: WarehouseBackend | None = PrivateAttr(default=None)

    def open(self) -> WarehouseBackend:
        if self._backend is None:
            self._backend = self._connect()
        return self._backend

    def _connect(self) -> WarehouseBackend:
        raise NotImplementedError(f"{type(self).__name__} does not name a backend")


class DuckDBWarehouseResource(WarehouseResource):
    """The embedded default: one DuckDB file on this machine (ASX_DATA_DIR)."""

    path: str = "data/warehouse.duckdb"
    lock_timeout_seconds: float = 600.0

    def _connect(self) -> WarehouseBackend:
        from asx_pipeline.warehouse.duckdb_backend import DuckDBWarehouse

        return DuckDBWarehouse(self.path, self.lock_timeout_seconds)


class PostgresWarehouseResource(WarehouseResource):
    """Supabase's (or any) Postgres through a direct or session-pooler connection."""

    url: str

    def _connect(self) -> WarehouseBackend:
        from asx_pipeline.warehouse.postgres_backend import PostgresWarehouse

        return PostgresWarehouse(self.url)


class SupabaseRestWarehouseResource(WarehouseResource):
    """Supabase through PostgREST, for a box that may only speak HTTPS."""

    url: str
    service_role_key: str

    def _connect(self) -> WarehouseBackend:
        from asx_pipeline.warehouse.rest_backend import SupabaseRestWarehouse

        return SupabaseRestWarehouse(url=self.url, service_role_key=self.service_role_key)


@contextmanager
def opened(resource: WarehouseResource) -> Iterator[WarehouseBackend]:
    """The backend of `resource` outside a run, its `EnvVar`s resolved as a run would."""
    with build_resources({"warehouse": resource}) as resources:
        yield resources.warehouse.open()
