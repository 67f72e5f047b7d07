"""The decorator every daily warehouse table shares."""

from typing import Any

from dagster import (
    BackfillPolicy,
    TableColumn,
    TableColumnConstraints,
    TableSchema,
    asset,
)

from asx_pipeline.configured import DAILY_PARTITIONS
from asx_pipeline.warehouse.io_manager import TABLE_NAME
from asx_pipeline.warehouse.tables import TableSpec


def daily_table_asset(table: TableSpec, group_name: str, **options: Any) -> Any:
    """`@asset` for a table with one partition per ASX session, stored by the warehouse.

    Every daily asset backfills a range in a single run (so a source is asked once per batch for
    the whole range) and handles any window of sessions, never only one day.
    """
    return asset(
        partitions_def=DAILY_PARTITIONS,
        backfill_policy=BackfillPolicy.single_run(),
        group_name=group_name,
        kinds=options.pop("kinds", {"pandas"}),
        description=table.description,
        metadata=table_metadata(table),
        **options,
    )


def table_metadata(table: TableSpec) -> dict[str, Any]:
    """The table contract where the UI shows it: its name and its columns with their logical
    types (tables.py); the key columns and the non-nullable ones are marked not nullable."""
    columns = [
        TableColumn(
            name=column.name,
            type=column.type,
            constraints=TableColumnConstraints(
                nullable=column.nullable and column.name not in table.key,
                other=["primary key"] if column.name in table.key else [],
            ),
        )
        for column in table.columns
    ]
    return {TABLE_NAME: table.name, "dagster/column_schema": TableSchema(columns)}
