"""The SVG charts: labelled for screen readers, escaped, and drawn to scale."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from statsite import charts
from statsite.charts import Series

SVG = "{http://www.w3.org/2000/svg}"


def svg_of(markup: str) -> ET.Element:
    """The <svg> element of MARKUP (which may be followed by a legend), parsed as XML:
    malformed or unescaped markup fails here."""
    return ET.fromstring(markup[: markup.index("</svg>") + len("</svg>")])


@pytest.mark.parametrize(
    "value, expected", [(0, 1), (-3, 1), (0.7, 1), (1, 1), (3, 5), (7, 10), (11, 20), (240, 250), (2600, 5000)]
)
def test_the_axis_top_is_a_round_number_at_or_above_the_peak(value, expected):
    assert charts.nice_ceiling(value) == expected


@pytest.mark.parametrize(
    "value, text", [(0, "0"), (999, "999"), (1000, "1k"), (1234, "1.2k"), (2_500_000, "2.5M"), (0.125, "0.12"), (3e9, "3G")]
)
def test_numbers_are_short(value, text):
    assert charts.short_number(value) == text


def test_stacked_bars_are_labelled_and_stack_to_the_total():
    markup = charts.stacked_bars(["a", "b"], [Series("x", [1, 3]), Series("y", [1, 1])], label="Requests")
    root = svg_of(markup)
    assert root.get("role") == "img" and root.get("aria-label") == "Requests"
    assert root.find(f"{SVG}title").text == "Requests"
    rects = root.findall(f"{SVG}rect")
    assert len(rects) == 4
    heights = [float(r.get("height")) for r in rects]
    # Bar b (3 + 1 = 4) is twice as tall as bar a (1 + 1 = 2), and x over y in a is 1:1.
    assert heights[2] + heights[3] == pytest.approx(2 * (heights[0] + heights[1]), abs=0.2)
    assert heights[0] == pytest.approx(heights[1], abs=0.1)
    assert [r.find(f"{SVG}title").text for r in rects][:2] == ["a · x: 1", "a · y: 1"]
    assert "chart-legend" in markup and ">x</li>" in markup


def test_every_label_and_name_is_escaped():
    hostile = '<script>alert("x")</script>'
    for markup in (
        charts.stacked_bars([hostile], [Series(hostile, [1])], label=hostile),
        charts.lines([hostile], [Series(hostile, [1, None])], label=hostile),
        charts.share_bars([(hostile, 2)], label=hostile),
        charts.sparkline([1, 2], label=hostile),
        charts.meter(0.5, label=hostile),
    ):
        assert "<script>" not in markup
        svg_of(markup)  # still well-formed XML


def test_a_missing_value_breaks_a_line():
    root = svg_of(charts.lines(["a", "b", "c", "d"], [Series("p95", [1, 2, None, 4])], label="Latency"))
    assert len(root.findall(f"{SVG}polyline")) == 1
    assert len(root.findall(f"{SVG}circle")) == 1  # d stands alone


def test_shares_add_up_to_the_whole():
    markup = charts.share_bars([("a", 3), ("b", 1)], label="Share")
    assert re.findall(r">(\d+\.\d)%</text>", markup) == ["75.0", "25.0"]


def test_empty_charts_still_draw():
    for markup in (
        charts.stacked_bars([], [], label="Nothing"),
        charts.lines([], [], label="Nothing"),
        charts.share_bars([], label="Nothing"),
        charts.sparkline([], label="Nothing"),
    ):
        assert svg_of(markup).get("aria-label") == "Nothing"


def test_a_meter_is_clamped_to_its_width():
    assert 'width="120" height="12"' in charts.meter(7, label="m")
    full = svg_of(charts.meter(7, label="m")).findall(f"{SVG}rect")[1]
    empty = svg_of(charts.meter(-1, label="m")).findall(f"{SVG}rect")[1]
    assert (full.get("width"), empty.get("width")) == ("120", "0")
