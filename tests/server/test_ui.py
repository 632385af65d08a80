"""The web UI end to end in headless Chromium (Debian's /usr/bin/chromium driven by Playwright).

Sign in with a token; a pending approval is shown with its provenance; a new one appears
live; a 2,000-character argument is shown whole and a right-to-left override visibly; the
human approves and a waiting agent process continues; a kill from the session page halts it.
Screenshots of the main pages are kept under the test's tmp dir (``screens/``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.server.conftest import LONG, Served, agent_session

CHROMIUM = os.environ.get("TETHER_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

AGENT = textwrap.dedent(
    """
    import sys, time
    from tether import SQLiteStore
    from tether.session import Guard
    db, sid, call = sys.argv[1:4]
    store = SQLiteStore(db)
    session = Guard.for_session(store, sid).open_session(sid)
    print("waiting", flush=True)
    print("approved" if session.wait_for_approval(call, poll_s=0.05) else "refused", flush=True)
    while True:
        decision = session.check("read_inbox", {"folder": "inbox"})
        if decision.verdict != "allow":
            print("halted:", decision.reasons[0].message, flush=True)
            break
        time.sleep(0.2)  # the policy's 50-call budget lasts 10 s: the pages (charts drawn on the server) have time to load
    """
)


def test_chromium_is_installed() -> None:
    """The end-to-end test never skips: CI installs Debian's chromium (.ci/run), and so must a developer."""
    assert os.path.exists(CHROMIUM), f"needs Chromium at {CHROMIUM} (apt-get install chromium)"


def _line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    return proc.stdout.readline().strip()


def test_inbox_approve_and_kill_in_chromium(served: Served, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    screens = tmp_path / "screens"
    screens.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    agent = subprocess.Popen(
        [sys.executable, "-c", AGENT, served.db, served.session.id, served.pending_call], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert _line(agent) == "waiting"
        with sync_playwright() as pw:
            # Playwright gives every launch a fresh, throw-away user-data-dir.
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("dialog", lambda dialog: dialog.accept())
            page.set_default_timeout(15_000)

            page.goto(f"{served.url}/approvals")
            assert page.url.startswith(f"{served.url}/login")
            page.screenshot(path=screens / "login.png")
            page.fill("input[name=token]", served.token)
            page.click("button.approve")
            card = page.locator(f"#call-{served.pending_call}")
            expect(card).to_be_visible()

            # Provenance: where each argument's data came from.
            to_row = card.locator("tr.arg", has_text="to[0]")
            expect(to_row.locator(".prov")).to_contain_text("output of read_inbox")
            expect(to_row.locator(".label.untrusted").first).to_be_visible()
            body_row = card.locator("tr.arg", has_text="body")
            expect(body_row.locator(".prov")).to_contain_text("found in nothing the agent read")
            expect(card.locator(".why")).to_contain_text("write-after-untrusted")

            # The right-to-left override is shown as a mark, never applied.
            mark = body_row.locator("mark.cp.hidden").first
            expect(mark).to_contain_text("U+202E RIGHT-TO-LEFT OVERRIDE")
            assert "\u202e" not in body_row.inner_text()

            # The 2,000-character value: folded with a visible mark, then shown whole.
            expect(body_row.locator(".foldmark")).to_contain_text("more characters folded")
            body_row.locator("details.fold summary").click()
            whole = body_row.locator(".whole").inner_text()
            assert LONG.split("\u202e")[1] in whole and whole.startswith("Invoice ")
            page.screenshot(path=screens / "inbox.png", full_page=True)

            # A new ask appears live, without a reload.
            _, second = agent_session(served.db, body="A short note", principal="bob")
            expect(page.locator(f"#call-{second}")).to_be_visible()

            # Approve: the waiting agent process continues.
            page.locator(f"#call-{served.pending_call} button.approve").click()
            assert _line(agent) == "approved"
            expect(page.locator(".flash")).to_contain_text("approved by ops")

            # The sessions list and the session page with its live timeline.
            page.goto(f"{served.url}/")
            expect(page.locator("table")).to_contain_text("bank-assistant")
            page.screenshot(path=screens / "sessions.png", full_page=True)
            page.goto(f"{served.url}/sessions/{served.session.id}")
            expect(page.locator(".live.on")).to_be_visible()
            expect(page.locator("#timeline")).to_contain_text("APPROVED by ops")
            expect(page.locator("#timeline .entry.k-call_proposed").first).to_contain_text("read_inbox")  # the agent's live calls
            page.screenshot(path=screens / "session.png", full_page=True)

            # Kill from the UI: the agent's next check is denied.
            page.click("button.kill")
            line = _line(agent)
            assert line.startswith("halted:") and "killed" in line
            expect(page.locator("#status")).to_have_text("killed")
            browser.close()
        assert agent.wait(10) == 0
        assert {p.name for p in screens.iterdir()} == {"login.png", "inbox.png", "sessions.png", "session.png"}
    finally:
        agent.kill()
        agent.wait()
        if agent.stdout is not None:
            agent.stdout.close()


AGAIN = textwrap.dedent(
    """
    import sys
    from tether import SQLiteStore
    from tether.session import Guard
    db, sid, call, body = sys.argv[1:5]
    session = Guard.for_session(SQLiteStore(db), sid).open_session(sid)
    print("waiting", flush=True)
    print("approved" if session.wait_for_approval(call, poll_s=0.05) else "refused", flush=True)
    # The same call again: spared by the endorsement, it runs without a new pending approval.
    again = session.check("send_email", {"to": ["ops-team@company.com"], "body": body})
    print(again.verdict, ",".join(again.endorsements), flush=True)
    """
)


def test_approve_and_remember_in_chromium_spares_the_next_identical_ask(served: Served, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    screens = tmp_path / "screens"
    screens.mkdir()
    body = "Quarterly figures attached: revenue up 4%."
    session, call = agent_session(served.db, body=body)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    agent = subprocess.Popen([sys.executable, "-c", AGAIN, served.db, session.id, call, body], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert _line(agent) == "waiting"
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(15_000)
            page.goto(f"{served.url}/login?next=/approvals")
            page.fill("input[name=token]", served.token)
            page.click("button.approve")
            card = page.locator(f"#call-{call}")
            expect(card).to_contain_text("Approve and remember trusts")
            card.locator("select[name=scope]").select_option("principal")
            card.locator("button.remember").click()
            assert _line(agent) == "approved"
            verdict, spared = _line(agent).split(" ")
            assert verdict == "allow" and spared  # no new pending call: the agent went on
            expect(page.locator(".flash")).to_contain_text("(and remembered)")
            expect(page.locator(f"#call-{call}")).to_have_count(0)
            page.goto(f"{served.url}/approvals")
            rows = page.locator("#endorsements tr.endorsement")
            expect(rows).to_have_count(2)  # "to" and "body": the arguments whose provenance caused the ask
            to_row = page.locator("#endorsements tr.endorsement", has_text="send_email.to")
            expect(to_row.locator(".spared")).to_contain_text("1")
            expect(to_row).to_contain_text("principal")
            page.screenshot(path=screens / "endorsements.png", full_page=True)
            to_row.locator("button.deny").click()
            expect(page.locator(".flash")).to_contain_text("revoked")
            expect(page.locator("#endorsements tr.endorsement")).to_have_count(1)
            browser.close()
        assert agent.wait(10) == 0
        assert (screens / "endorsements.png").stat().st_size > 0
    finally:
        agent.kill()
        agent.wait()
        if agent.stdout is not None:
            agent.stdout.close()
