"""asx-pipeline: a Dagster data platform for an ASX market-data warehouse."""

import warnings

from dagster import BetaWarning, PreviewWarning

# BackfillPolicy is "beta" and partitioned asset checks are "preview" in Dagster 1.13; the
# warnings, printed on every load, say nothing a user can act on.
warnings.filterwarnings("ignore", category=BetaWarning)
warnings.filterwarnings("ignore", category=PreviewWarning)
