"""Areas and lengths in the units a GIS user reads: m², ha, km² (never "square map units")."""

from __future__ import annotations


def format_area(m2: float) -> str:
    """Square metres under 1 ha, hectares under 10 km², then km²; three significant figures."""
    if m2 < 0 or m2 != m2:
        raise ValueError(f"An area cannot be {m2}.")
    if m2 == 0:
        return "0 m²"  # not "0.00 m²": nothing is not a measurement to two decimals
    if m2 < 1e4:
        return f"{_sig(m2)} m²"
    if m2 < 1e7:
        return f"{_sig(m2 / 1e4)} ha"
    return f"{_sig(m2 / 1e6)} km²"


def _sig(v: float) -> str:
    """Three significant figures without scientific notation; whole numbers stay whole."""
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"
