"""How reports print a measured score: cut to its digits, never rounded up.

Every report, card and tool table prints quality numbers (AUC, accuracy, sensitivity,
specificity, agreement, ECE, thresholds, shares) through these two functions, so that no printed
score is higher than the measured one (0.96785 prints 0.9678, not 0.9679) and a parity message
never shows 98.996% as "99.00% < 99%". The cut is toward zero (a negative delta shrinks too) and
works on the decimal the float prints as (after dropping noise below 1e-12), so 0.29 stays 0.29
and 37/40 - 38/40 prints -0.0250. Times and sizes keep plain rounding.

Example:
    >>> down(0.96785), down(0.29, 2), down(37 / 40 - 38 / 40), down(float("nan"))
    ('0.9678', '0.29', '-0.0250', 'nan')
    >>> pct(0.98996), pct(1.0, 0), pct(0.5)
    ('98.99%', '100%', '50.00%')
"""
from __future__ import annotations

import math
from decimal import ROUND_DOWN, Decimal


def down(value: float, digits: int = 4, sign: bool = False) -> str:
    """``value`` with ``digits`` decimals, the rest cut off (as ``f"{value:.{digits}f}"`` looks).

    ``sign`` writes a "+" before a value that is not negative (for a change, like ``:+.4f``).

    >>> down(0.1682499), down(12, 1), down(0.123456789, 6), down(0.00519, sign=True)
    ('0.1682', '12.0', '0.123456', '+0.0051')
    """
    value = float(value)
    plus = "+" if sign else ""
    if not math.isfinite(value):
        return f"{value:{plus}.{digits}f}"
    # round(.., 12) drops float noise first: 37/40 - 38/40 is -0.024999999999999911, not -0.025
    cut = Decimal(repr(round(value, 12))).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_DOWN)
    return f"{cut:{plus}.{digits}f}"


def pct(share: float, digits: int = 2) -> str:
    """``share`` (0..1) as a percentage with ``digits`` decimals, cut like :func:`down`.

    >>> pct(0.9), pct(0.87875), pct(0.033333, 1)
    ('90.00%', '87.87%', '3.3%')
    """
    return down(float(share) * 100, digits) + "%"  # down's round(.., 12) absorbs the * 100 noise


def named(values: dict[str, float], digits: int = 4) -> str:
    """``"name value, ..."`` with every value cut like ``down`` (e.g. per-modality thresholds).

    >>> named({"dermoscopic": 0.12764, "phone": 0.44499})
    'dermoscopic 0.1276, phone 0.4449'
    """
    return ", ".join(f"{k} {down(v, digits)}" for k, v in values.items())
