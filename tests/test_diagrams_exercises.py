"""Pictures are deterministic and legible; exercises check against computed answers."""

from __future__ import annotations

import pytest

import coursekit as ck
from coursekit import diagrams as dg
from coursekit import exercises as X
from coursekit.explore import apply
from coursekit.widgets import figure_png


@pytest.mark.parametrize("make", [
    lambda sc, w: dg.topology(sc),
    lambda sc, w: dg.walk_diagram(sc, w),
    lambda sc, w: dg.timeline(w.at("meizu", "docker0")),
    lambda sc, w: dg.encapsulation(w.at("meizu", "enp4s0")[3]),
    lambda sc, w: dg.byte_map(w.at("meizu", "enp4s0")[3]),
])
def test_figures_are_deterministic(article, article_walk, make):
    assert figure_png(make(article, article_walk)) == figure_png(make(article, article_walk))


def test_topology_text_shows_addresses(article):
    fig = dg.topology(apply(article, {"replicas": 2}))
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert any("eth0 172.30.20.3" in t for t in texts)            # the second replica is drawn
    assert any("flannel.1 (VXLAN, VNI 1, UDP 8472)" in t for t in texts)
    assert any("endpoints 172.30.20.2, 172.30.20.3" in t for t in texts)


def test_text_fits_inside_the_figure(article, article_walk):
    """Legible at notebook width: no label runs off the canvas."""
    for fig in (dg.topology(article), dg.walk_diagram(article, article_walk),
                dg.timeline(article_walk.at("meizu", "docker0"))):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        r = canvas.get_renderer()
        W, H = fig.bbox.width, fig.bbox.height
        for ax in fig.axes:
            for t in ax.texts:
                bb = t.get_window_extent(r)
                assert bb.x0 >= -1 and bb.x1 <= W + 1 and bb.y0 >= -1 and bb.y1 <= H + 1, t.get_text()


def test_encapsulation_sizes(article_walk):
    fig = dg.encapsulation(article_walk.at("meizu", "enp4s0")[3])
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "+50 bytes of encapsulation" in texts
    assert "outer\nEthernet\n14 B" in texts and "VXLAN\n8 B" in texts and "HTTP\n81 B" in texts


def test_every_exercise_has_an_answer_and_checks(article):
    for e in X.EXERCISES:
        want = X.expected(e.id, article)
        assert want not in (None, "", "none"), e.id
        assert ck.check(e.id, want).correct is True
        assert ck.check(e.id, None).correct is None
        assert ck.check(e.id, "certainly wrong").correct is False


def test_exercise_answers_follow_the_scenario(article):
    other = apply(article, {"server_node_ip": "10.167.226.77", "masquerade": False})
    assert X.expected("01.outer-dst", other) == "10.167.226.77"
    assert X.expected("04.nginx-sees", other) == "172.30.83.9"
    assert ck.check("01.outer-dst", "10.167.226.77", other)


def test_unknown_exercise():
    with pytest.raises(ck.CourseError, match="no exercise '09.x'"):
        ck.check("09.x", 1)
