"""The admin in a real browser: headless Chromium (Debian's `chromium` and
`chromium-driver`) driving the production server (uvicorn) over seeded demo data.

One server and one browser for the module, and few page loads, so it stays fast.
Outside CI a machine without /usr/bin/chromium skips these tests; in CI (CI set) a
missing browser fails them. Screenshots go to test-results/ (git-ignored).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
RESULTS = ROOT / "test-results"
STAFF = ("staffer", "staff-pass-4821")
VISITOR = ("visitor", "visitor-pass-4821")
FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1400,2200",
)  # fmt: skip


def _missing() -> str | None:
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        return f"headless Chromium is not installed ({CHROMIUM}, {CHROMEDRIVER}: apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    return None


def _require_browser() -> None:
    reason = _missing()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"the browser tests must run in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def server(live_server_process):
    _require_browser()
    live_server_process.manage("seed_demo", "--days", "3", "--no-progress", "--verbosity", "0")
    live_server_process.manage(
        "shell", "-c",
        "from django.contrib.auth import get_user_model; U = get_user_model(); "
        f"U.objects.create_superuser({STAFF[0]!r}, 'staff@example.com', {STAFF[1]!r}); "
        f"U.objects.create_user({VISITOR[0]!r}, password={VISITOR[1]!r})",
    )  # fmt: skip
    return live_server_process


@pytest.fixture(scope="module")
def browser(server) -> Iterator:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    # An explicit browser and driver: Selenium Manager never runs, nothing is downloaded.
    options.binary_location = str(CHROMIUM)
    profile = tempfile.mkdtemp(prefix="statsite-chromium-")
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def as_staff(browser, server) -> None:
    """The browser signed in as the staff account. Each test that needs it signs in
    itself: pytest-xdist may run this module's tests in different processes, each with
    a browser of its own that no earlier test has signed in."""
    log_in(browser, server, *STAFF)


def shell_json(server, code: str) -> dict:
    """Run CODE in `manage.py shell` against the server's database; it must print one JSON line."""
    return json.loads(server.manage("shell", "-c", code).strip().splitlines()[-1])


def log_in(browser, server, username: str, password: str) -> None:
    from selenium.webdriver.common.by import By

    browser.delete_all_cookies()
    browser.get(server.base + "/admin/login/?next=/admin/")
    browser.find_element(By.ID, "id_username").send_keys(username)
    browser.find_element(By.ID, "id_password").send_keys(password)
    click_and_wait(browser, browser.find_element(By.CSS_SELECTOR, "input[type=submit]"))


def click_and_wait(browser, element) -> None:
    """Click ELEMENT and wait until the page it was on has been replaced: reading the
    next page before it loads would read the old one."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    page = browser.find_element(By.TAG_NAME, "html")
    element.click()

    def replaced(_driver) -> bool:
        try:
            page.is_enabled()
        except WebDriverException:
            # Stale, or Chromium's "node does not belong to the document" when the
            # check lands mid-navigation: either way the old page is gone.
            return True
        return False

    WebDriverWait(browser, 15).until(replaced)


def card(browser, label: str) -> int:
    from selenium.webdriver.common.by import By

    return int(browser.find_element(By.CSS_SELECTOR, f'[data-card="{label}"]').text.replace(",", ""))


def screenshot(browser, name: str) -> None:
    RESULTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(RESULTS / name))


# The numbers a page should show, computed in the server's own database: raw rows
# counted directly, and the selectors the API uses.
EXPECTED = """
import json
from django.utils import timezone
from logs.models import Log
from usage.selectors import console_model_stats, stats_zone, totals
from statsite.periods import last_calendar_days
start, end = last_calendar_days({days}, tz=stats_zone(), now=timezone.now())
calls = Log.objects.llm_calls().filter(created_at__gte=start, created_at__lt=end)
models = console_model_stats(start=start, end=end)
print(json.dumps({{
    "raw_requests": calls.count(),
    "requests": totals("llm", start=start, end=end)["requests"],
    "tool_calls": totals("tools", start=start, end=end)["calls"],
    "top_model": [models[0]["model"], models[0]["requests"]],
}}))
"""


def test_staff_see_the_dashboard_and_change_its_range(browser, server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    log_in(browser, server, *STAFF)
    assert browser.current_url.endswith("/admin/")
    click_and_wait(browser, browser.find_element(By.LINK_TEXT, "Dashboard"))
    assert "/admin/dashboard/" in browser.current_url
    assert browser.find_element(By.ID, "chart-requests").find_element(By.CSS_SELECTOR, "svg[role=img]")

    # The last 7 days hold all three seeded days.
    week = shell_json(server, EXPECTED.format(days=7))
    assert week["raw_requests"] > 0
    assert card(browser, "Requests") == week["requests"] == week["raw_requests"]
    assert card(browser, "Tool calls") == week["tool_calls"]
    screenshot(browser, "dashboard-7d.png")

    Select(browser.find_element(By.ID, "id_range")).select_by_value("24h")
    click_and_wait(browser, browser.find_element(By.ID, "dashboard-submit"))
    assert "range=24h" in browser.current_url
    assert "hourly buckets" in browser.find_element(By.ID, "dashboard-window").text
    labels = browser.find_elements(By.CSS_SELECTOR, "#series-table tbody tr")
    assert len(labels) in (24, 25)
    screenshot(browser, "dashboard-24h.png")

    Select(browser.find_element(By.ID, "id_range")).select_by_value("30d")
    click_and_wait(browser, browser.find_element(By.ID, "dashboard-submit"))
    month = shell_json(server, EXPECTED.format(days=30))
    assert card(browser, "Requests") == month["requests"] == month["raw_requests"]
    first = browser.find_element(By.CSS_SELECTOR, "#top-models tbody tr")
    assert first.find_element(By.TAG_NAME, "th").text == month["top_model"][0]
    assert first.find_elements(By.CSS_SELECTOR, "td.num")[0].text.replace(",", "") == str(month["top_model"][1])
    assert browser.find_elements(By.CSS_SELECTOR, "#top-models svg.sparkline")
    screenshot(browser, "dashboard-30d.png")


def test_a_bad_custom_range_is_a_form_error(browser, server, as_staff):
    from selenium.webdriver.common.by import By

    browser.get(server.base + "/admin/dashboard/?range=custom&start=2026-05-10&end=2026-05-01")
    assert "must not be before" in browser.find_element(By.ID, "field-end").text
    assert browser.find_element(By.ID, "dashboard-errors")


def test_staff_open_a_log(browser, server, as_staff):
    from selenium.webdriver.common.by import By

    browser.get(server.base + "/admin/logs/log/")
    click_and_wait(browser, browser.find_element(By.CSS_SELECTOR, "#result_list tbody tr th a"))
    assert "/change/" in browser.current_url
    assert browser.find_element(By.CSS_SELECTOR, "#content h1").text.startswith("View log")


def test_staff_purge_with_confirmation_and_see_the_audit_row(browser, server, as_staff):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    cutoff = shell_json(
        server,
        "import json; from datetime import timedelta; from django.utils import timezone; "
        "from logs.models import Log; day = (timezone.localdate() - timedelta(days=1)).isoformat(); "
        "print(json.dumps({'day': day, 'count': Log.objects.filter(created_at__lt=day).count()}))",
    )
    assert cutoff["count"] > 0

    browser.get(server.base + "/admin/purge/")
    Select(browser.find_element(By.ID, "id_kind")).select_by_value("logs")
    browser.find_element(By.ID, "id_before").send_keys(cutoff["day"])
    click_and_wait(browser, browser.find_element(By.CSS_SELECTOR, "input[value='Count rows']"))
    count = int(browser.find_element(By.ID, "purge-count").text)
    assert count == cutoff["count"]

    browser.find_element(By.ID, "id_confirmation").send_keys("1")  # a wrong number deletes nothing
    click_and_wait(browser, browser.find_element(By.CSS_SELECTOR, "input[value='Purge']"))
    assert "to confirm" in browser.find_element(By.CSS_SELECTOR, ".errorlist").text

    box = browser.find_element(By.ID, "id_confirmation")
    box.clear()
    box.send_keys(str(count))
    click_and_wait(browser, browser.find_element(By.CSS_SELECTOR, "input[value='Purge']"))
    assert f"Purged {count} logs created before" in browser.find_element(By.CSS_SELECTOR, ".messagelist").text

    # The audit row is a manage log like any other: find it in the log admin and open it.
    browser.get(server.base + "/admin/logs/log/?type__exact=3&q=purged")
    rows = browser.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")
    assert len(rows) == 1 and STAFF[0] in rows[0].text
    click_and_wait(browser, rows[0].find_element(By.CSS_SELECTOR, "th a"))
    assert f"purged {count} logs created before {cutoff['day']}" in browser.find_element(By.ID, "content").text
    audit = shell_json(
        server,
        "import json; from logs.models import Log; "
        "row = Log.objects.filter(type=3, content__startswith='purged').latest('id'); "
        "print(json.dumps({'username': row.username, 'level': row.level, 'other': row.other}))",
    )
    assert audit["username"] == STAFF[0] and audit["level"] == "info"
    assert audit["other"]["kind"] == "logs" and audit["other"]["deleted"] == count


def test_a_non_staff_account_is_refused(browser, server):
    from selenium.webdriver.common.by import By

    log_in(browser, server, *VISITOR)
    assert "/admin/login/" in browser.current_url
    assert "staff account" in browser.find_element(By.CSS_SELECTOR, ".errornote").text
    for path in ("/admin/dashboard/", "/admin/purge/"):
        browser.get(server.base + path)
        assert "/admin/login/" in browser.current_url
        assert not browser.find_elements(By.ID, "dashboard-cards")
