"""asx-pipeline: a Dagster data platform for an ASX market-data warehouse."""

import warnings

from dagster import BetaWarning

# BackfillPolicy is "beta" in Dagster 1.13; the warning, printed on every load, says nothing a
# user can act on.
warnings.filterwarnings("ignore", category=BetaWarning)
