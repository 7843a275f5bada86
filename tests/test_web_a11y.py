"""The Explorer's accessibility: axe-core on the main states, colour contrast to WCAG AA, and the
screenshots under docs/ taken from the same states.

axe-core comes from the PyPI package axe-playwright-python (MIT; it bundles axe-core's
``axe.min.js``, MPL-2.0) and is injected into the test page by Playwright: nothing is fetched.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from web_support import ARTIFACTS, DESKTOP, PHONE, WebTasks, new_page, open_task, sign_in

DOCS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
BLOCKING = ("serious", "critical")


def axe_violations(page: Any) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(
        page, options={"resultTypes": ["violations"], "runOnly": ["wcag2a", "wcag2aa", "wcag21aa", "best-practice"]}
    )
    return [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:5]}"
        for v in results.response["violations"]
        if v["impact"] in BLOCKING
    ]


def shoot(page: Any, name: str) -> None:
    """A screenshot into artifacts/ (and docs/screenshots/ with MIDISCRIBE_UPDATE_SCREENSHOTS=1)."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
    if os.environ.get("MIDISCRIBE_UPDATE_SCREENSHOTS") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS / f"{name}.png"))


def test_axe_on_the_main_states(browser: Any, web_tasks: WebTasks) -> None:
    task = web_tasks.done("main")
    page, errors = new_page(browser, web_tasks.svc, None)
    page.wait_for_selector("#signin:not([hidden])")
    found = {"sign-in": axe_violations(page)}
    sign_in(page, web_tasks.key)
    page.click("summary:has-text('Note options')")
    found["form"] = axe_violations(page)
    open_task(page, task["task_id"])
    page.click("#notes-table-box summary")
    found["result"] = axe_violations(page)
    page.evaluate("window.scrollTo(0, document.getElementById('result').offsetTop - 8)")
    page.click("#notes-table-box summary")  # closed again for the picture
    roll = page.locator("#roll").bounding_box()
    x = roll["x"] + page.evaluate("window.explorer.roll.x(2)")
    page.mouse.move(x, roll["y"] + 8)  # loop 2-3.5 s on the time ruler
    page.mouse.down()
    page.mouse.move(x + 1.5 * page.evaluate("window.explorer.roll.view.pxPerSec"), roll["y"] + 8, steps=4)
    page.mouse.up()
    page.mouse.move(x + 5, roll["y"] + 40)  # select the notes in it
    page.mouse.down()
    page.mouse.move(
        x + 1.4 * page.evaluate("window.explorer.roll.view.pxPerSec"), roll["y"] + roll["height"] - 4, steps=4
    )
    page.mouse.up()
    page.evaluate("window.explorer.transport.seek(2.6)")
    found["editing"] = axe_violations(page)
    shoot(page, "explorer-desktop")
    page.set_viewport_size(PHONE)
    page.evaluate("window.scrollTo(0, document.getElementById('result').offsetTop - 4)")
    found["result (phone)"] = axe_violations(page)
    shoot(page, "explorer-phone")
    page.set_viewport_size(DESKTOP)
    blocking = {state: v for state, v in found.items() if v}
    assert not blocking, blocking
    assert not errors, errors
    page.context.close()


def _luminance(color: str) -> float:
    rgb = [int(c) for c in re.findall(r"\d+", color)[:3]]

    def channel(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


TEXT_PAIRS = [  # (foreground, background), at least 4.5:1
    ("--ink", "--card"),
    ("--muted", "--card"),
    ("--muted", "--bg"),
    ("--accent-ink", "--accent"),
    ("--secondary-ink", "--secondary"),
    ("--badge-ink", "--badge-bg"),
    ("--error", "--card"),
    ("--accent", "--card"),
    ("--roll-label", "--roll-key-white"),
    ("--roll-label", "--roll-ruler"),
    ("--roll-label", "--roll-bg"),
]
MARK_PAIRS = [  # borders, focus rings, marks on the roll: at least 3:1 (WCAG 1.4.11)
    ("--field-border", "--card"),
    ("--field-border", "--bg"),
    ("--focus", "--card"),
    ("--focus", "--bg"),
    ("--focus-on-dark", "--ink"),
    ("--roll-playhead", "--roll-bg"),
    ("--roll-note-edge", "--roll-bg"),
    ("--roll-bend", "--roll-bg"),
    ("--roll-note-selected", "--roll-bg"),
    ("--roll-key-black", "--roll-key-white"),
]


@pytest.mark.parametrize(("pairs", "least"), [(TEXT_PAIRS, 4.5), (MARK_PAIRS, 3.0)], ids=["text", "marks"])
def test_colours_meet_wcag_aa(browser: Any, web_tasks: WebTasks, pairs: list[tuple[str, str]], least: float) -> None:
    page, _ = new_page(browser, web_tasks.svc, None)
    css = page.evaluate(
        """(names) => {
             const s = getComputedStyle(document.documentElement);
             const c = document.createElement('canvas').getContext('2d');
             return Object.fromEntries(names.map((n) => {
               c.fillStyle = '#000'; c.fillStyle = s.getPropertyValue(n).trim(); return [n, c.fillStyle];
             }));
           }""",
        sorted({n for pair in pairs for n in pair}),
    )
    low = {f"{a} on {b}": round(contrast(_rgb(css[a]), _rgb(css[b])), 2) for a, b in pairs}
    assert all(v >= least for v in low.values()), {k: v for k, v in low.items() if v < least}
    page.context.close()


def _rgb(value: str) -> str:
    """'#rrggbb' (what a canvas answers) as 'r, g, b'."""
    h = value.lstrip("#")
    return ", ".join(str(int(h[i : i + 2], 16)) for i in (0, 2, 4))
