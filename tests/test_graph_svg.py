"""plots.graph_svg: the graph of a result drawn as SVG, one box per tensor, one arrow per input."""
import xml.etree.ElementTree as ET

import numpy as np

from minran import Tensor, plots

SVG = "{http://www.w3.org/2000/svg}"


def boxes_and_arrows(text):
    root = ET.fromstring(text)
    boxes = {}
    for g in root.iter(f"{SVG}g"):
        rect, title, shape = g.find(f"{SVG}rect"), *g.findall(f"{SVG}text")
        boxes[title.text] = (float(rect.get("x")), float(rect.get("y")), shape.text)
    return boxes, root.findall(f"{SVG}path")


def test_each_tensor_is_one_box_in_the_column_after_its_inputs(tmp_path):
    a = Tensor(np.ones((2, 3)), requires_grad=True)
    b = Tensor(np.ones(3), requires_grad=True)
    h = a * b            # used twice below: one box, two arrows out
    out = (h + h.exp()).sum()
    text = plots.graph_svg(out, tmp_path / "g.svg", names={"a": a, "b": b, "h": h, "out & <x>": out})
    assert (tmp_path / "g.svg").read_text() == text
    boxes, arrows = boxes_and_arrows(text)
    assert set(boxes) == {"a", "b", "h = mul", "exp", "add", "out & <x> = sum"}   # escaped, read back
    assert len(arrows) == 6   # a, b -> mul; mul -> exp; mul, exp -> add; add -> sum
    columns = {name: x for name, (x, y, shape) in boxes.items()}
    assert columns["a"] == columns["b"] < columns["h = mul"] < columns["exp"] < columns["add"]
    assert boxes["a"][2] == "(2, 3)" and boxes["b"][2] == "(3,)" and boxes["out & <x> = sum"][2] == "()"


def test_a_constant_is_drawn_with_its_value_next_to_its_reader():
    x = Tensor(np.array([3.0]), requires_grad=True)
    y = (x * x) * 2 + x
    boxes, arrows = boxes_and_arrows(plots.graph_svg(y))
    assert "const 2" in boxes and "leaf" in boxes
    assert boxes["const 2"][0] > boxes["leaf"][0]   # beside the second mul, not with the leaves
    assert len(arrows) == 6


def test_a_deep_graph_draws_without_recursion():
    x = Tensor(np.ones(2), requires_grad=True)
    h = x
    for _ in range(3000):
        h = h * 1.0
    boxes, arrows = boxes_and_arrows(plots.graph_svg(h))
    assert len(arrows) == 2 * 3000   # each mul reads h and a constant


def test_after_backward_only_the_root_is_left():
    x = Tensor(np.ones(2), requires_grad=True)
    y = (x * x).sum()
    y.backward()   # frees the graph, as the docstring warns
    boxes, arrows = boxes_and_arrows(plots.graph_svg(y))
    assert list(boxes) == ["sum"] and arrows == []   # it still names the op that made it
