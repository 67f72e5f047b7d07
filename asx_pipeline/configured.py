"""What the decorators need from the settings, read once when the code location loads.

Dagster fixes a definition's partitions, retry policy and schedule when its decorator runs, so
those come from the settings here, at import time, and nowhere else: `calendar.py` and
`retries.py` stay pure functions of their arguments, and a bad setting fails the code location
at load time with the message settings.py gives it. definitions.py configures the resources
from the settings; the alerts resource reads the channels from them when it sends.
"""

from asx_pipeline.calendar import trading_day_partitions
from asx_pipeline.retries import yahoo_retry_policy
from asx_pipeline.settings import get_settings

SETTINGS = get_settings()

# The partitions every daily asset and check shares: ASX sessions from ASX_START_DATE.
DAILY_PARTITIONS = trading_day_partitions(SETTINGS.asx_start_date)

# Steps that call Yahoo (or fetch the ASX directory) rerun after longer trouble.
YAHOO_RETRY_POLICY = yahoo_retry_policy(
    SETTINGS.asx_step_max_retries, SETTINGS.asx_step_retry_delay_seconds
)

# When the daily refresh runs and when a missing session is late, Sydney time.
DAILY_REFRESH_TIME = SETTINGS.asx_daily_refresh_time
FRESHNESS_DEADLINE = SETTINGS.asx_freshness_deadline
