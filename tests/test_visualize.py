"""matterport's visualize functions, headless: PNG sizes, exact pixels of the numpy renderers."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image

from maskrcnn import visualize

H, W = 80, 120
CLASS_NAMES = ["BG", "circle", "square"]


@pytest.fixture
def scene():
    image = np.full((H, W, 3), 100, np.uint8)
    boxes = np.array([[30, 10, 60, 50], [20, 60, 70, 110]])
    masks = np.zeros((H, W, 2), bool)
    masks[30:60, 10:50, 0] = True
    masks[20:70, 60:110, 1] = True
    return image, boxes, masks, np.array([1, 2]), np.array([0.9, 0.75])


def png_size(path):
    with Image.open(path) as im:
        return im.size


def test_random_colors():
    colors = visualize.random_colors(5, seed=3)
    assert colors == visualize.random_colors(5, seed=3)
    assert len(set(colors)) == 5
    assert all(0 <= c <= 1 for rgb in colors for c in rgb)
    assert max(max(rgb) for rgb in visualize.random_colors(4, bright=False)) == pytest.approx(0.7)


def test_apply_mask_exact():
    image = np.full((2, 3, 3), 100, np.uint8)
    mask = np.array([[1, 0, 0], [0, 0, 1]], bool)
    out = visualize.apply_mask(image, mask, (1.0, 0.0, 0.5), alpha=0.5)
    assert out is image  # in place, as matterport
    # 100*.5 + .5*255 = 177.5 -> 177; 100*.5 + 0 = 50; 100*.5 + .5*127.5 = 113.75 -> 113
    np.testing.assert_array_equal(image[0, 0], [177, 50, 113])
    np.testing.assert_array_equal(image[1, 2], [177, 50, 113])
    np.testing.assert_array_equal(image[0, 1], [100, 100, 100])


def test_draw_box_exact():
    image = np.zeros((10, 10, 3), np.uint8)
    visualize.draw_box(image, (2, 3, 7, 8), (255, 0, 0), thickness=1)
    drawn = image[..., 0] > 0
    expected = np.zeros((10, 10), bool)
    expected[2, 3:9] = expected[7, 3:9] = expected[2:8, 3] = expected[2:8, 8] = True
    np.testing.assert_array_equal(drawn, expected)
    visualize.draw_box(image, (-5, -5, 30, 30), (0, 255, 0))  # clipped, no error
    assert image[..., 1].sum() == 0  # fully outside edges: nothing drawn


def test_unmold_mask_and_outline():
    full = visualize.unmold_mask(np.ones((4, 4)), (2, 3, 6, 9), (10, 12, 3))
    expected = np.zeros((10, 12), bool)
    expected[2:6, 3:9] = True
    np.testing.assert_array_equal(full, expected)
    outline = visualize.mask_outline(expected)
    assert outline.sum() == 2 * 6 + 2 * 2  # 4x6 rectangle: perimeter pixels
    assert not outline[3:5, 4:8].any()


def test_render_instances_exact_pixels(scene):
    image, boxes, masks, class_ids, scores = scene
    before = image.copy()
    out = visualize.render_instances(image, boxes, masks, class_ids, CLASS_NAMES, scores,
                                     colors=[(1.0, 0.0, 0.0), (0.0, 0.0, 1.0)])
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(image, before)  # input untouched
    np.testing.assert_array_equal(out[45, 30], [177, 50, 50])  # inside mask 0, away from edges/caption
    np.testing.assert_array_equal(out[50, 85], [50, 50, 177])
    np.testing.assert_array_equal(out[45, 10], [255, 0, 0])  # the box / outline color
    np.testing.assert_array_equal(out[79, 0], [100, 100, 100])  # background
    # without instances the picture is the image
    empty = visualize.render_instances(image, np.zeros((0, 4)), np.zeros((H, W, 0), bool), [], CLASS_NAMES)
    np.testing.assert_array_equal(empty, image)
    with pytest.raises(ValueError, match="masks of shape"):
        visualize.render_instances(image, boxes, masks[:10], class_ids, CLASS_NAMES)


def test_display_instances_png_size(scene, tmp_path):
    image, boxes, masks, class_ids, scores = scene
    fig = visualize.display_instances(image, boxes, masks, class_ids, CLASS_NAMES, scores, title="t",
                                      figsize=(4, 3), dpi=50, save_path=tmp_path / "di.png")
    assert png_size(tmp_path / "di.png") == (200, 150)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == ["circle 0.900", "square 0.750"]
    assert len(ax.patches) == 2  # the two boxes
    # on a given axis: draws there and returns its figure
    from maskrcnn.evaluation.plots import new_figure

    host = new_figure(figsize=(2, 2), dpi=50)
    ax = host.add_subplot(1, 1, 1)
    assert visualize.display_instances(image, boxes, masks, class_ids, CLASS_NAMES, ax=ax,
                                       captions=["a", "b"], show_bbox=False) is host
    assert [t.get_text() for t in ax.texts] == ["a", "b"] and not ax.patches
    with pytest.raises(ValueError, match="agree on the number"):
        visualize.display_instances(image, boxes, masks[..., :1], class_ids, CLASS_NAMES)


def test_display_differences_captions(scene, tmp_path):
    image, boxes, masks, class_ids, scores = scene
    # prediction 1 (score .75) is exactly GT 1; prediction 0 (score .9) is GT 0 of the wrong class
    fig = visualize.display_differences(image, boxes, class_ids, masks, boxes, np.array([2, 2]), scores, masks,
                                        CLASS_NAMES, figsize=(3, 2), dpi=50, save_path=tmp_path / "dd.png")
    assert png_size(tmp_path / "dd.png") == (150, 100)
    assert [t.get_text() for t in fig.axes[0].texts] == ["", "", "0.90 / 1.00", "0.75 / 1.00"]


def test_other_figures_png_sizes(scene, tmp_path):
    image, boxes, masks, class_ids, scores = scene
    visualize.draw_boxes(image, boxes=boxes, refined_boxes=boxes + 1, masks=masks, captions=["x", "y"],
                         visibilities=[1, 2], figsize=(3, 3), dpi=40, save_path=tmp_path / "db.png")
    assert png_size(tmp_path / "db.png") == (120, 120)
    fig = visualize.draw_boxes(image, refined_boxes=boxes, captions=["a", "b"], visibilities=[0, 2],
                               figsize=(2, 2), dpi=20)
    assert [t.get_text() for t in fig.axes[0].texts] == ["a", "b"]
    assert len(fig.axes[0].patches) == 1  # visibility 0 hides the refined box
    small = np.ones((2, 14, 14), np.float32)
    fig = visualize.draw_rois(image, boxes, boxes + 2, small, np.array([1, 0]), CLASS_NAMES, seed=0,
                              figsize=(3, 3), dpi=40, save_path=tmp_path / "dr.png")
    assert png_size(tmp_path / "dr.png") == (120, 120)
    assert fig.axes[0].get_title() == "2 ROIs"
    visualize.display_top_masks(image, masks, class_ids, CLASS_NAMES, limit=2, dpi=20,
                                save_path=tmp_path / "tm.png")
    assert png_size(tmp_path / "tm.png") == (280, 93)  # 3 images in a row: 14 x 14/3 inches at 20 dpi
    visualize.display_images([image, image[..., 0]], titles=["rgb", "gray"], cols=2, figsize=(4, 2), dpi=25,
                             save_path=tmp_path / "im.png")
    assert png_size(tmp_path / "im.png") == (100, 50)
    visualize.plot_precision_recall(0.5, [1, 1, 0.5, 0], [0, 0.5, 0.5, 1], dpi=25, save_path=tmp_path / "pr.png")
    assert png_size(tmp_path / "pr.png") == (160, 120)
    visualize.plot_overlaps(np.array([1, 2]), np.array([1, 2, 1]), np.array([0.9, 0.8, 0.7]),
                            np.array([[0.9, 0.0], [0.0, 0.6], [0.3, 0.0]]), CLASS_NAMES,
                            figsize=(4, 4), dpi=30, save_path=tmp_path / "ov.png")
    assert png_size(tmp_path / "ov.png") == (120, 120)


def test_weight_stats_of_a_torch_model(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Linear(2, 2))
    with torch.no_grad():
        model[2].weight.fill_(2000.0)
    rows = visualize.weight_stats(model)
    assert [r["name"] for r in rows] == ["0.weight", "0.bias", "1.weight", "1.bias", "2.weight", "2.bias"]
    w = model[0].weight.detach().numpy()
    assert rows[0]["shape"] == (4, 3, 3, 3)
    assert rows[0]["min"] == pytest.approx(w.min()) and rows[0]["std"] == pytest.approx(w.std(), rel=1e-5)
    assert rows[0]["alert"] == "" and rows[3]["alert"] == ""  # a constant bias is fine
    assert rows[2]["alert"] == "dead?"  # BatchNorm weights all 1
    assert rows[4]["alert"] == "dead? overflow?"
    text = visualize.weight_stats_text(model)
    assert text.splitlines()[0].split() == ["WEIGHT", "NAME", "SHAPE", "MIN", "MAX", "STD"]
    assert "<span style='color:red'>*** dead? overflow?</span>" in visualize.weight_stats_html(model)
    fig = visualize.display_weight_stats(model, save_path=tmp_path / "w.png", html_path=tmp_path / "w.html")
    width, height = (fig.get_size_inches() * fig.dpi).round().astype(int)
    assert png_size(tmp_path / "w.png") == (width, height)
    assert height > 7 * 9  # header + 6 rows of 9 pt text
    assert (tmp_path / "w.html").read_text().startswith("<table>")
    with pytest.raises(TypeError, match="nn.Module"):
        visualize.weight_stats(object())


def test_headless_without_pyplot(tmp_path):
    """No display and no pyplot: the functions draw on Agg canvases."""
    code = textwrap.dedent(f"""
        import os, sys
        os.environ.pop("DISPLAY", None)
        import numpy as np
        from maskrcnn import visualize
        img = np.zeros((20, 30, 3), np.uint8); m = np.zeros((20, 30, 1), bool); m[2:8, 2:9] = True
        visualize.display_instances(img, np.array([[2, 2, 8, 9]]), m, np.array([1]), ["BG", "a"],
                                    figsize=(2, 2), dpi=30, save_path={str(tmp_path / 'h.png')!r})
        assert "matplotlib.pyplot" not in sys.modules
    """)
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("DISPLAY", "MPLBACKEND")}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)
    assert png_size(tmp_path / "h.png") == (60, 60)
