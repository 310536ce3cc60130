"""archivestore.plot.plate_map and channel_composite: the wells and the composite they draw."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from archivestore.errors import InvalidInputError

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402
from matplotlib.patches import Circle  # noqa: E402

from archivestore import plot  # noqa: E402


def plate(rows: str = "AB", columns: tuple[str, ...] = ("1", "2", "3")) -> xr.Dataset:
    ids = np.full((len(rows), len(columns), 2), "", dtype=object)
    ids[0, 0] = ["11", "12"]
    ids[0, 2] = ["13", ""]  # one field imaged
    ids[1, 1] = ["14", "15"]
    return xr.Dataset({"image_id": (("row", "column", "field"), ids.astype(np.dtypes.StringDType()))},
                      coords={"row": list(rows), "column": list(columns), "field": [0, 1]})


def wells(fig) -> dict[str, Circle]:
    return {p.get_gid(): p for p in fig.axes[0].patches if isinstance(p, Circle)}


def test_plate_map_draws_every_well_at_its_position_imaged_ones_filled():
    fig = plot.plate_map(plate(), title="plate 1")
    drawn = wells(fig)
    assert sorted(drawn) == ["A1", "A2", "A3", "B1", "B2", "B3"]
    assert drawn["B3"].center == (2, 1) and drawn["A1"].center == (0, 0)
    filled = {w for w, c in drawn.items() if c.get_facecolor() != to_rgba("white")}
    assert filled == {"A1", "A3", "B2"}
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "3"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["A", "B"]
    assert ax.get_ylim()[0] > ax.get_ylim()[1]  # row A on top
    assert ax.get_title() == "plate 1"
    plt.close(fig)


def test_plate_map_colours_numeric_values_on_the_colour_map():
    fig = plot.plate_map(plate(), {"A1": 0.0, "A3": 5.0, "B2": 10.0}, cmap="viridis")
    drawn = wells(fig)
    cmap = matplotlib.colormaps["viridis"]
    for well, fraction in (("A1", 0.0), ("A3", 0.5), ("B2", 1.0)):
        np.testing.assert_allclose(drawn[well].get_facecolor(), cmap(fraction))
    assert drawn["A2"].get_facecolor() == to_rgba("white")
    assert len(fig.axes) == 2  # the colour bar
    plt.close(fig)


def test_plate_map_gives_categories_their_own_colours_and_joins_repeated_values():
    values = {"A1": ["CDK1", "cdk1"], "A3": "PLK1", "B2": "PLK1"}
    fig = plot.plate_map(plate(), values)
    drawn = wells(fig)
    assert drawn["A3"].get_facecolor() == drawn["B2"].get_facecolor() != drawn["A1"].get_facecolor()
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["CDK1, cdk1", "PLK1", "no image"]
    written = {t.get_text() for t in fig.axes[0].texts}
    assert written == {"CDK1, cdk1", "PLK1"}
    plt.close(fig)


def test_plate_map_takes_a_series_by_well_as_the_metadata_table_gives_it():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"well": ["A1", "A1", "B2"], "map.Gene Symbol": [["CDK1", "CDC2"], ["CDK1", "CDC2"], "PLK1"]})
    fig = plot.plate_map(plate(), frame.groupby("well")["map.Gene Symbol"].first())
    assert {t.get_text() for t in fig.axes[0].texts} == {"CDK1, CDC2", "PLK1"}
    plt.close(fig)


def test_plate_map_accepts_the_image_id_array_and_rejects_other_grids():
    fig = plot.plate_map(plate()["image_id"], {"A1": "x"})
    assert wells(fig)["A3"].get_facecolor() == to_rgba("0.75")  # imaged, no value
    plt.close(fig)
    with pytest.raises(InvalidInputError, match="row, column"):
        plot.plate_map(xr.DataArray(np.zeros((2, 2), dtype=str), dims=("y", "x")))


CHANNELS = [{"label": "DAPI", "color": "0000FF", "window": {"start": 100.0, "end": 300.0}, "active": True},
            {"label": "GFP", "color": "00FF00", "window": {"start": 0.0, "end": 1000.0}, "active": True}]


def image(channels=CHANNELS) -> xr.Dataset:
    """(t=2, channel=2, z=3, y=4, x=5) with known values; y and x in µm."""
    values = np.zeros((2, 2, 3, 4, 5), dtype=np.uint16)
    values[0, 0, :, 0, 0] = [50, 200, 120]  # DAPI, max over z 200 -> 0.5
    values[0, 1, :, 1, 2] = [0, 0, 2000]  # GFP, saturated at z=2 only
    values[1, 0] = 300  # the second time point: all blue
    da = xr.DataArray(values, dims=("t", "channel", "z", "y", "x"),
                      coords={"channel": ["DAPI", "GFP"], "y": 0.5 * np.arange(4), "x": 0.5 * np.arange(5)},
                      attrs={"channels": channels} if channels else {})
    da["x"].attrs["units"] = "micrometer"
    return xr.Dataset({"image": da}, attrs={"Name": "well A1 field 0"})


def test_composite_is_the_windowed_channels_in_their_colours_max_over_z():
    rgb = plot.composite_rgb(image())
    expected = np.zeros((4, 5, 3))
    expected[0, 0] = (0, 0, 0.5)
    expected[1, 2] = (0, 1, 0)
    np.testing.assert_allclose(rgb, expected)
    plane = plot.composite_rgb(image(), z=0)
    assert plane[0, 0, 2] == 0 and plane[1, 2, 1] == 0  # 50 is below the DAPI window; no GFP at z=0
    np.testing.assert_allclose(plot.composite_rgb(image(), t=1)[..., 2], 1.0)


def test_composite_leaves_inactive_channels_out_and_uses_defaults_without_settings():
    inactive = [CHANNELS[0], {**CHANNELS[1], "active": False}]
    assert plot.composite_rgb(image(inactive))[1, 2].sum() == 0
    rgb = plot.composite_rgb(image(None))  # red and green, each over its own range
    np.testing.assert_allclose(rgb[0, 0], (1, 0, 0))
    np.testing.assert_allclose(rgb[1, 2], (0, 1, 0))


def test_channel_composite_draws_the_composite_in_physical_units_with_the_channels_named():
    fig = plot.channel_composite(image())
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.images[0].get_array(), plot.composite_rgb(image()))
    np.testing.assert_allclose(ax.images[0].get_extent(), (-0.25, 2.25, 1.75, -0.25))
    assert ax.get_xlabel() == "x (µm)"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["DAPI (100–300)", "GFP (0–1000)"]
    assert ax.get_title() == "well A1 field 0, max over z"
    plt.close(fig)


def test_composite_rejects_bad_indices_axes_and_settings():
    with pytest.raises(InvalidInputError, match="z=3"):
        plot.composite_rgb(image(), z=3)
    with pytest.raises(InvalidInputError, match="1 channel settings for 2"):
        plot.composite_rgb(image(CHANNELS[:1]))
    with pytest.raises(InvalidInputError, match="dimensions"):
        plot.channel_composite(xr.DataArray(np.zeros((2, 2, 3)), dims=("y", "x", "rgb")))
