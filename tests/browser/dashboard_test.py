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
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
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


def request_big():
    subprocess.run([os.environ["HUBCTL"], "--config", os.environ["HUBCTL_CONFIG"], "request",
                    ECHO, "echo/v1", "--data", BIG_PAYLOAD],
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
    driver.set_window_size(1400, max(1100, int(height) + 200))
    path = os.path.join(ARTIFACTS, name)
    driver.save_screenshot(path)
    driver.set_window_size(1400, 1100)
    return path


# What an operator reads in each language: written here, not taken from the
# catalogues, so that a wrong or missing translation fails.
LABELS = {
    "vi": {
        "#members-section h2 span": "Thành viên",
        "#flows-section h2 span": "Luồng trao đổi",
        "#queues-section h2": "Hàng đợi",
        "#dlq-section h2": "Thư chết",
        "#summary .card .label": "Thành viên đang kết nối",
        "#members thead th:nth-child(3)": "cơ quan",
        "#ready": "sẵn sàng",
    },
    "en": {
        "#members-section h2 span": "Members",
        "#flows-section h2 span": "Flows",
        "#queues-section h2": "Queues",
        "#dlq-section h2": "Dead letters",
        "#summary .card .label": "Members connected",
        "#members thead th:nth-child(3)": "agency",
        "#ready": "ready",
    },
}
# The member count, the echo member's state, and the dead-letter count.
# (The operator's hubctl is connected for a while after each request.)
COUNT_TEXT = {"vi": r"[12] đang kết nối / 202", "en": r"[12] connected of 202"}
CONNECTED = {"vi": "đang kết nối", "en": "connected"}
DLQ_NONE = {"vi": "0 thư chết", "en": "0 dead letters"}
ACCEPTED = {"vi": "đã nhận", "en": "accepted"}
# Agency names come from the member directory run.sh writes: shown in both
# languages (they are names).
ECHO_AGENCY = "Bộ Công an — Cơ sở dữ liệu quốc gia về dân cư"
# The alarm state: the operator's member is refused three times in a minute
# (alarm_refusals_warn = 3 in run.sh), a warning: the badge and its row turn
# amber, and the reason is in words, with the agency's name.
OPS_AGENCY = "Sở Thông tin và Truyền thông Hà Nội"
NOBODY = "VN/GOV/HN-XX/NOBODY"
ALARM = {
    "vi": {"level": "Cảnh báo", "reason": "3 phong bì bị từ chối trong 1 phút qua (ngưỡng 3)",
           "badge": "suy giảm: 1 cảnh báo (Cảnh báo)", "section": "Cảnh báo"},
    "en": {"level": "Warning", "reason": "3 envelopes refused in the last minute (limit 3)",
           "badge": "degraded: 1 alarm (Warning)", "section": "Alarms"},
}
AMBER = "rgba(201, 138, 0, 1)"       # --warn
AMBER_ROW = "rgba(255, 247, 224, 1)"  # a warning row's cells
# Over a thousand bytes: the thousands separator differs ("1.234" / "1,234").
BIG_PAYLOAD = json.dumps({"pad": "x" * 1500})


def check_language(driver, lang):
    """The page is in the language asked for: html lang, the labels an
    operator reads first, and no label left without a translation."""
    wait(driver, lambda d: d.find_element(By.TAG_NAME, "html").get_attribute("lang") == lang,
         f'<html lang="{lang}">')
    for selector, expected in LABELS[lang].items():
        wait(driver, lambda d, s=selector, e=expected: (text(d, s) or "") == e,
             f'"{expected}" in {selector} (it says "{text(driver, selector)}")')
    for el in css(driver, "[data-i18n]"):
        key = el.get_attribute("data-i18n")
        shown = el.get_attribute("textContent")
        check(shown and shown != key, f"no {lang} text for {key}")
    current = css(driver, '#languages a[aria-current="true"]')
    check(len(current) == 1 and current[0].get_attribute("data-lang") == lang,
          f"the language switcher does not mark {lang}")


def check_vietnam_time(driver):
    """#last-update shows the time in Asia/Ho_Chi_Minh (UTC+7) although the
    browser runs with TZ=UTC."""
    def hour_ok(d):
        shown = text(d, "#last-update") or ""
        digits = [p for p in shown.replace(":", " ").split() if p.isdigit()]
        if len(digits) < 3:
            return False
        now = time.gmtime(time.time() + 7 * 3600)
        return int(digits[-3]) == now.tm_hour and abs(int(digits[-2]) - now.tm_min) <= 1
    wait(driver, hour_ok, f"the last update in Vietnam time (it says \"{text(driver, '#last-update')}\")")


def check_http(origin):
    """The catalogue route refuses a language it does not have, saying
    which it has; the members API carries the directory's names."""
    try:
        urllib.request.urlopen(origin + "/i18n.json?lang=fr", timeout=10)
        raise Failure("/i18n.json?lang=fr was answered")
    except urllib.error.HTTPError as e:
        body = e.read().decode()
        check(e.code == 400 and "vi" in body and "en" in body,
              f"/i18n.json?lang=fr: {e.code} {body}")
    with urllib.request.urlopen(origin + "/i18n.json", timeout=10) as r:
        check(json.load(r)["lang"] == "vi", "the hub's default language is not Vietnamese")
    with urllib.request.urlopen(origin + "/api/v1/members", timeout=10) as r:
        members = {m["id"]: m for m in json.load(r)["members"]}
    echo = members.get(ECHO, {})
    check(echo.get("name") == "Bộ Công an" and echo.get("unit") ==
          "Cơ sở dữ liệu quốc gia về dân cư", f"/api/v1/members gives {ECHO} as {echo}")
    other = members.get("VN/GOV/HN-UBND-Q001/MOTCUA", {})
    check("name" in other and other["name"] is None,
          f"a member not in the directory has a name: {other}")


def check_members(driver, lang):
    """Members: the echo adapter connected with its agency's name, 200
    offline ones listed; readable; the filter and state selector work."""
    echo_row = f'#members tbody tr[data-id="{ECHO}"]'
    wait(driver, lambda d: css(d, echo_row), f"the row of {ECHO}")
    wait(driver, lambda d: css(d, echo_row)[0].get_attribute("data-state") == "connected",
         f"{ECHO} shown connected")
    wait(driver, lambda d: len(css(d, "#members tbody tr")) >= 202, "202 member rows")
    wait(driver, lambda d: re.fullmatch(COUNT_TEXT[lang], text(d, "#members-count") or ""),
         f'#members-count to say "{COUNT_TEXT[lang]}" (it says "{text(driver, "#members-count")}")')
    state = text(driver, f"{echo_row} td.member-state")
    check(state == CONNECTED[lang], f'the echo member\'s state reads "{state}"')
    agency = text(driver, f"{echo_row} td.agency")
    check(agency == ECHO_AGENCY, f'the echo member\'s agency reads "{agency}"')
    unnamed = text(driver, '#members tbody tr[data-id="VN/GOV/HN-UBND-Q001/MOTCUA"] td.agency')
    check(unnamed == "–", f'a member outside the directory shows agency "{unnamed}"')
    cells = len(css(driver, "#member-grid span"))
    check(cells == 202, f"the member grid has {cells} cells, not 202")
    # Readable with 200 members: the table scrolls inside its box, rows are compact.
    box = css(driver, "#members-section .scroll")[0].rect
    check(box["height"] <= 440, f"members box grows with the list: {box['height']}px")
    row_height = css(driver, echo_row)[0].rect["height"]
    check(row_height <= 26, f"member rows are {row_height}px high")
    # The filter narrows the list, by id or by agency name; the state
    # selector shows the connected ones.
    search = css(driver, "#members-filter")[0]
    for needle in ("Q017", "dân cư"):
        search.send_keys(needle)
        wait(driver, lambda d: len(css(d, "#members tbody tr")) == 1,
             f'the filter "{needle}" to leave one row')
        # clear() sends no input event: type and erase a character so the list follows.
        search.clear()
        search.send_keys("x\b")
        wait(driver, lambda d: len(css(d, "#members tbody tr")) >= 202, "the filter to be undone")
    Select(css(driver, "#members-state")[0]).select_by_value("connected")
    wait(driver, lambda d: css(d, "#members tbody tr") and
         not css(d, '#members tbody tr:not([data-state="connected"])'),
         "only connected members shown")
    Select(css(driver, "#members-state")[0]).select_by_value("all")
    wait(driver, lambda d: len(css(d, "#members tbody tr")) >= 202, "all members shown again")


def check_big_exchange(driver, lang):
    """The recent exchange of over a thousand bytes, with the language's
    thousands separator."""
    sep = "." if lang == "vi" else ","

    def shown(d):
        for cell in css(d, "#exchanges tbody td.bytes"):
            value = cell.text
            if len(value) == 5 and value[1] == sep and value.replace(sep, "").isdigit():
                return True
        return False
    wait(driver, shown, f'a byte count written "1{sep}xxx" in the recent exchanges')
    wait(driver, lambda d: any(c.text == ACCEPTED[lang] for c in css(d, "#exchanges tbody td.outcome")),
         f'an exchange "{ACCEPTED[lang]}" in the recent exchanges')


def refuse(n):
    """Envelopes the hub refuses (UNKNOWN_RECEIVER), sent as the operator."""
    for _ in range(n):
        subprocess.run([os.environ["HUBCTL"], "--config", os.environ["HUBCTL_CONFIG"], "request",
                        NOBODY, "echo/v1", "--data", "{}"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)


def check_alarm(driver, lang):
    """The alarm in the list, on the badge and on the member's row: colour,
    level and reason in the page's language, the agency's name."""
    want = ALARM[lang]
    item = f'#alarms li[data-code="member_refused"][data-subject="{OPS}"]'
    wait(driver, lambda d: css(d, item), f"the member_refused alarm of {OPS} in the list")
    shown = text(driver, item)
    check(shown == f'{want["level"]} · {OPS_AGENCY} ({OPS}): {want["reason"]}',
          f'the alarm reads "{shown}"')
    check(text(driver, "#alarms-section h2 span") == want["section"],
          f'the alarm section is titled "{text(driver, "#alarms-section h2 span")}"')
    border = css(driver, item)[0].value_of_css_property("border-left-color")
    check(border == AMBER, f"the warning's mark is {border}, not amber")
    badge = css(driver, "#ready")[0]
    wait(driver, lambda d: badge.get_attribute("data-alarm") == "warning", "the badge in alarm")
    check(badge.text == want["badge"], f'the badge reads "{badge.text}"')
    colour = badge.value_of_css_property("background-color")
    check(colour == AMBER, f"the badge is {colour}, not amber")
    row = f'#members tbody tr[data-id="{OPS}"]'
    wait(driver, lambda d: css(d, row) and css(d, row)[0].get_attribute("data-alarm") == "warning",
         f"the row of {OPS} marked with its alarm")
    reason = text(driver, f"{row} td.alarm-reason")
    check(reason == f'{want["level"]}: {want["reason"]}', f'the row\'s alarm reads "{reason}"')
    cell = css(driver, f"{row} td.alarm-reason")[0].value_of_css_property("background-color")
    check(cell == AMBER_ROW, f"the row is {cell}, not amber")


def main():
    check(URL and ECHO and OPS, "run me from run.sh")
    origin = "{0.scheme}://{0.netloc}".format(urlparse(URL))
    profile = tempfile.mkdtemp(prefix="lth-chromium-")
    driver = start_browser(profile)
    shots = []
    try:
        check_http(origin)
        # Vietnamese first: no ?lang, and the browser asks for English.
        driver.get(URL)
        check_language(driver, "vi")
        check_members(driver, "vi")
        echo_row = f'#members tbody tr[data-id="{ECHO}"]'
        # The nodes table: one node alone lists itself, alive.
        wait(driver, lambda d: len(css(d, "#nodes tbody tr")) == 1, "one row in the nodes table")
        node_row = text(driver, "#nodes tbody tr")
        check("đang chạy" in node_row, f'the node row says "{node_row}"')

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
        # Latency and the summary cards follow; a latency under 100 ms has
        # a decimal comma in Vietnamese.
        wait(driver, lambda d: flow_cell(d, "p50") not in (None, "", "–"), "a p50 latency")
        p50 = flow_cell(driver, "p50")
        check("." not in p50, f'p50 "{p50}" is not written the Vietnamese way (decimal comma)')
        wait(driver, lambda d: (number(text(d, "#sum-accepted")) or 0) >= 10,
             "10 accepted in the summary")
        ready = css(driver, "#ready")[0].get_attribute("data-ready")
        check(ready == "true", f'#ready data-ready is "{ready}"')
        request_big()
        check_big_exchange(driver, "vi")
        check_vietnam_time(driver)

        # The dead-letter list asks for the token and keeps it out of the URL.
        css(driver, "#dlq-token")[0].send_keys(os.environ["HUB_TOKEN"])
        css(driver, "#dlq-token-form button[type=submit]")[0].click()
        # Wait for the listing itself: the prompt before it also says "dead letters".
        wait(driver, lambda d: css(d, "#dlq-status[data-total]"), "the dead-letter listing")
        status = text(driver, "#dlq-status")
        check(status == DLQ_NONE["vi"], f'the dead-letter listing says "{status}"')
        check(os.environ["HUB_TOKEN"] not in driver.current_url, "token in the URL")

        time.sleep(1.2)  # let the chart take the last second in
        shots.append(screenshot(driver, "dashboard-vi.png"))
        # Read the logs per page: ChromeDriver keeps them only until read.
        foreign, problems = page_problems(driver, origin)

        # English when asked; the token stays for the tab's session.
        driver.get(URL + "?lang=en")
        check_language(driver, "en")
        check_members(driver, "en")
        wait(driver, lambda d: flow_cell(d, "accepted") == "6", "the flow to show 6 accepted")
        check_big_exchange(driver, "en")
        wait(driver, lambda d: text(d, "#dlq-status") == DLQ_NONE["en"],
             f'the dead-letter listing in English (it says "{text(driver, "#dlq-status")}")')
        check(os.environ["HUB_TOKEN"] not in driver.current_url, "token in the URL")
        time.sleep(1.2)
        shots.append(screenshot(driver, "dashboard-en.png"))

        # Alarm state: three refusals of the operator's member in a minute
        # (the alarm holds for that minute: both languages fit in it).
        check(not css(driver, "#alarms li"), "an alarm before any refusal")
        refuse(3)
        check_alarm(driver, "en")
        shots.append(screenshot(driver, "dashboard-alarm-en.png"))
        more_foreign, more_problems = page_problems(driver, origin)
        foreign += more_foreign
        problems += more_problems
        driver.get(URL)
        wait(driver, lambda d: d.find_element(By.TAG_NAME, "html").get_attribute("lang") == "vi",
             '<html lang="vi">')
        check_alarm(driver, "vi")
        shots.append(screenshot(driver, "dashboard-alarm-vi.png"))

        more_foreign, more_problems = page_problems(driver, origin)
        foreign += more_foreign
        problems += more_problems
        check(not foreign, f"the page fetched from elsewhere: {foreign}")
        check(not problems, f"errors in the page: {problems}")
        print("dashboard: members with agency names, flows shown and updated, an alarm "
              f"with its colour and reason, in Vietnamese and English; screenshots {' '.join(shots)}")
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
