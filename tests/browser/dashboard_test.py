"""The dashboard in headless Chromium, driven by Selenium through Debian's
chromedriver: members and flows appear, and update after traffic sent with
hubctl; the page loads nothing from elsewhere and logs no errors; screenshots
are saved. Run by run.sh, which starts the hub.

Everything here comes from Debian 12's own packages (python3-selenium,
chromium, chromium-driver): no npm, no download at test time.

The page's Content-Security-Policy forbids eval, so every wait is a Python
predicate over elements found with CSS selectors, never a script string.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from urllib.parse import urlparse

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

URL = os.environ.get("HUB_URL", "")
ECHO = os.environ.get("ECHO_MEMBER", "")
OPS = os.environ.get("OPS_MEMBER", "")
FLOW_KEY = f"{OPS}|{ECHO}|echo/v1"
ARTIFACTS = os.environ.get("HUB_ARTIFACTS", ".")
WAIT_S = 15


class Failure(Exception):
    """An assertion about the page that did not hold."""


def check(condition, message):
    if not condition:
        raise Failure(message)


def request(n):
    for i in range(n):
        subprocess.run([os.environ["HUBCTL"], "--config", os.environ["HUBCTL_CONFIG"], "request",
                        ECHO, "echo/v1", "--data", json.dumps({"n": i})],
                       stdout=subprocess.DEVNULL, timeout=30, check=True)


def wait(driver, predicate, what, timeout=WAIT_S):
    """Waits until predicate(driver) is true; a row replaced while being read
    counts as "not yet"."""
    def guarded(d):
        try:
            return predicate(d)
        except StaleElementReferenceException:
            return False
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1).until(guarded)
    except TimeoutException:
        raise Failure(f"timed out after {timeout} s waiting for {what}") from None


def css(driver, selector):
    return driver.find_elements(By.CSS_SELECTOR, selector)


def text(driver, selector):
    found = css(driver, selector)
    return found[0].text if found else None


def number(s):
    """A figure as the page prints it ("1.234" in Vietnamese, "1,234" in English)."""
    digits = "".join(ch for ch in (s or "") if ch.isdigit())
    return int(digits) if digits else None


def flow_cell(driver, cls):
    return text(driver, f'#flows tbody tr[data-flow="{FLOW_KEY}"] td.{cls}')


def start_browser(profile):
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    # Without the background-networking flags Chromium waits on a closed
    # network for services it does not need here.
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                f"--user-data-dir={profile}", "--window-size=1400,1100", "--lang=en-US"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    service = Service(executable_path=os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"),
                      log_path=os.path.join(ARTIFACTS, "chromedriver.log"))
    return webdriver.Chrome(service=service, options=options)


def page_problems(driver, origin):
    """Requests the dashboard made to anywhere but the hub, and errors the
    page logged. Chromium's own pages (the new-tab page it opens first) load
    chrome:// resources: only requests made by a document from the hub count."""
    foreign, problems = [], []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") != "Network.requestWillBeSent":
            continue
        if not message["params"].get("documentURL", "").startswith(origin):
            continue
        url = message["params"]["request"]["url"]
        if not url.startswith(origin) and not url.startswith("data:"):
            foreign.append(url)
    for entry in driver.get_log("browser"):
        if entry.get("level") == "SEVERE":
            problems.append(entry.get("message"))
    return foreign, problems


def screenshot(driver, name):
    """A full-page screenshot: the window grows to the page's height first."""
    height = driver.find_element(By.TAG_NAME, "body").rect["height"]
    driver.set_window_size(1400, max(1100, int(height) + 40))
    path = os.path.join(ARTIFACTS, name)
    driver.save_screenshot(path)
    driver.set_window_size(1400, 1100)
    return path


def check_language(driver, lang, labels):
    """The page is in the language asked for: html lang, and the labels an
    operator reads first."""
    wait(driver, lambda d: d.find_element(By.TAG_NAME, "html").get_attribute("lang") == lang,
         f'<html lang="{lang}">')
    for selector, expected in labels.items():
        wait(driver, lambda d, s=selector, e=expected: (text(d, s) or "").startswith(e),
             f'"{expected}" in {selector} (it says "{text(driver, selector)}")')


def main():
    check(URL and ECHO and OPS, "run me from run.sh")
    origin = "{0.scheme}://{0.netloc}".format(urlparse(URL))
    profile = tempfile.mkdtemp(prefix="lth-chromium-")
    driver = start_browser(profile)
    shots = []
    try:
        driver.get(URL)
        # Members: the echo adapter connected, 200 offline ones listed.
        echo_row = f'#members tbody tr[data-id="{ECHO}"]'
        wait(driver, lambda d: css(d, echo_row), f"the row of {ECHO}")
        wait(driver, lambda d: css(d, echo_row)[0].get_attribute("data-state") == "connected",
             f"{ECHO} shown connected")
        wait(driver, lambda d: len(css(d, "#members tbody tr")) >= 202, "202 member rows")
        count = text(driver, "#members-count")
        check("of 202" in count, f'#members-count says "{count}", not "... of 202"')
        cells = len(css(driver, "#member-grid span"))
        check(cells == 202, f"the member grid has {cells} cells, not 202")
        # Readable with 200 members: the table scrolls inside its box, rows are compact.
        box = css(driver, "#members-section .scroll")[0].rect
        check(box["height"] <= 440, f"members box grows with the list: {box['height']}px")
        row_height = css(driver, echo_row)[0].rect["height"]
        check(row_height <= 26, f"member rows are {row_height}px high")
        # The filter narrows the list; the state selector shows the connected ones.
        css(driver, "#members-filter")[0].send_keys("Q017")
        wait(driver, lambda d: len(css(d, "#members tbody tr")) == 1, "the filter to leave one row")
        css(driver, "#members-filter")[0].clear()
        # clear() sends no input event: type and erase a character so the list follows.
        css(driver, "#members-filter")[0].send_keys("x\b")
        wait(driver, lambda d: len(css(d, "#members tbody tr")) >= 202, "the filter to be undone")
        Select(css(driver, "#members-state")[0]).select_by_value("connected")
        wait(driver, lambda d: css(d, "#members tbody tr") and
             not css(d, '#members tbody tr:not([data-state="connected"])'),
             "only connected members shown")
        Select(css(driver, "#members-state")[0]).select_by_value("all")

        # Flows appear after traffic and update after more.
        check(not css(driver, f'#flows tbody tr[data-flow="{FLOW_KEY}"]'), "a flow before any traffic")
        request(3)
        wait(driver, lambda d: flow_cell(d, "accepted") == "3", "the flow to show 3 accepted")
        in_before = number(text(driver, f"{echo_row} td.msgs-in"))
        check(in_before is not None, "no messages-in figure for the echo member")
        request(2)
        wait(driver, lambda d: flow_cell(d, "accepted") == "5", "the flow to show 5 accepted")
        wait(driver, lambda d: (number(text(d, f"{echo_row} td.msgs-in")) or 0) >= in_before + 2,
             "the echo member's messages in to grow by 2")
        # Latency and the summary cards follow.
        wait(driver, lambda d: flow_cell(d, "p50") not in (None, "", "–"), "a p50 latency")
        wait(driver, lambda d: (number(text(d, "#sum-accepted")) or 0) >= 10,
             "10 accepted in the summary")
        ready = css(driver, "#ready")[0].get_attribute("data-ready")
        check(ready == "true", f'#ready data-ready is "{ready}"')

        # The dead-letter list asks for the token and keeps it out of the URL.
        css(driver, "#dlq-token")[0].send_keys(os.environ["HUB_TOKEN"])
        css(driver, "#dlq-token-form button[type=submit]")[0].click()
        # Wait for the listing itself: the prompt before it also says "dead letters".
        wait(driver, lambda d: css(d, '#dlq-status[data-total]'), "the dead-letter listing")
        total = css(driver, "#dlq-status")[0].get_attribute("data-total")
        check(total == "0", f"{total} dead letters listed, expected 0")
        check(os.environ["HUB_TOKEN"] not in driver.current_url, "token in the URL")

        time.sleep(1.2)  # let the chart take the last second in
        shots.append(screenshot(driver, "dashboard.png"))
        foreign, problems = page_problems(driver, origin)
        check(not foreign, f"the page fetched from elsewhere: {foreign}")
        check(not problems, f"errors in the page: {problems}")
        print(f"dashboard: members and flows shown and updated; screenshots {' '.join(shots)}")
        return 0
    except Failure as e:
        print(f"dashboard test FAILED: {e}", file=sys.stderr)
        try:
            print(f"dashboard test: screenshot at failure {screenshot(driver, 'dashboard-failure.png')}",
                  file=sys.stderr)
        except Exception:  # the failure above matters more
            pass
        return 1
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
