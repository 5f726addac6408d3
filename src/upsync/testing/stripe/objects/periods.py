"""Billing-period arithmetic (calendar months, like Stripe's billing cycle anchors)."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta

__all__ = ["period_end"]


def period_end(start: int, interval: str, count: int = 1) -> int:
    """The end of a billing period of ``count`` ``interval``s starting at ``start``."""
    moment = datetime.fromtimestamp(start, UTC)
    if interval == "day":
        moment += timedelta(days=count)
    elif interval == "week":
        moment += timedelta(weeks=count)
    else:
        months = count * (12 if interval == "year" else 1)
        month0 = moment.month - 1 + months
        year, month = moment.year + month0 // 12, month0 % 12 + 1
        day = min(moment.day, calendar.monthrange(year, month)[1])
        moment = moment.replace(year=year, month=month, day=day)
    return int(moment.timestamp())
