// The dashboard in headless Chromium: members and flows appear, and update
// after traffic sent with hubctl; the page loads nothing from elsewhere and
// logs no errors; a screenshot is saved. Run by run.sh, which starts the hub.
import { chromium } from "playwright-core";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const url = process.env.HUB_URL;
const echo = process.env.ECHO_MEMBER;
const ops = process.env.OPS_MEMBER;
const flowKey = `${ops}|${echo}|echo/v1`;
assert.ok(url && echo && ops, "run me from run.sh");

function request(n) {
  for (let i = 0; i < n; i++) {
    execFileSync(process.env.HUBCTL,
      ["--config", process.env.HUBCTL_CONFIG, "request", echo, "echo/v1", "--data", `{"n":${i}}`],
      { stdio: ["ignore", "ignore", "inherit"], timeout: 30000 });
  }
}

const profile = mkdtempSync(join(tmpdir(), "lth-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1400, height: 1100 },
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"],
});
let failed = false;
try {
  const page = context.pages()[0] || await context.newPage();
  const origin = new URL(url).origin;
  const foreign = [];
  const problems = [];
  page.on("request", (r) => { if (!r.url().startsWith(origin) && !r.url().startsWith("data:")) foreign.push(r.url()); });
  page.on("console", (m) => { if (m.type() === "error") problems.push(m.text()); });
  page.on("pageerror", (e) => problems.push(String(e)));

  await page.goto(url);
  // Members: the echo adapter connected, 200 offline ones listed.
  const echoRow = page.locator(`#members tbody tr[data-id="${echo}"]`);
  await echoRow.waitFor({ timeout: 15000 });
  await page.waitForFunction((id) =>
    document.querySelector(`#members tbody tr[data-id="${id}"]`)?.dataset.state === "connected",
  echo, { timeout: 15000 });
  await page.waitForFunction(() => document.querySelectorAll("#members tbody tr").length >= 202,
    null, { timeout: 15000 });
  assert.match(await page.locator("#members-count").textContent(), /of 202/);
  assert.equal(await page.locator("#member-grid span").count(), 202);
  // Readable with 200 members: the table scrolls inside its box, rows are compact.
  const box = await page.locator("#members-section .scroll").boundingBox();
  assert.ok(box.height <= 440, `members box grows with the list: ${box.height}px`);
  const rowHeight = (await echoRow.boundingBox()).height;
  assert.ok(rowHeight <= 26, `member rows are ${rowHeight}px high`);
  // The filter narrows the list; the state selector shows the offline ones.
  await page.fill("#members-filter", "Q017");
  await page.waitForFunction(() => document.querySelectorAll("#members tbody tr").length === 1);
  await page.fill("#members-filter", "");
  await page.selectOption("#members-state", "connected");
  await page.waitForFunction(() => [...document.querySelectorAll("#members tbody tr")]
    .every((tr) => tr.dataset.state === "connected"));
  await page.selectOption("#members-state", "all");

  // Flows appear after traffic and update after more.
  const flowRow = page.locator(`#flows tbody tr[data-flow="${flowKey}"]`);
  assert.equal(await flowRow.count(), 0, "a flow before any traffic");
  request(3);
  await page.waitForFunction((key) => {
    const tr = document.querySelector(`#flows tbody tr[data-flow="${key}"]`);
    return tr && tr.querySelector("td.accepted").textContent === "3";
  }, flowKey, { timeout: 15000 });
  const inBefore = Number((await echoRow.locator("td.msgs-in").textContent()).replace(/,/g, ""));
  request(2);
  await page.waitForFunction((key) => {
    const tr = document.querySelector(`#flows tbody tr[data-flow="${key}"]`);
    return tr && tr.querySelector("td.accepted").textContent === "5";
  }, flowKey, { timeout: 15000 });
  await page.waitForFunction(([id, before]) => {
    const td = document.querySelector(`#members tbody tr[data-id="${id}"] td.msgs-in`);
    return td && Number(td.textContent.replace(/,/g, "")) >= before + 2;
  }, [echo, inBefore], { timeout: 15000 });
  // Latency and the summary cards follow.
  await page.waitForFunction((key) => {
    const tr = document.querySelector(`#flows tbody tr[data-flow="${key}"]`);
    return tr && tr.querySelector("td.p50").textContent !== "–";
  }, flowKey, { timeout: 15000 });
  await page.waitForFunction(() => Number(document.getElementById("sum-accepted").textContent) >= 10,
    null, { timeout: 15000 });
  assert.equal(await page.locator("#ready").getAttribute("data-ready"), "true");

  // The dead-letter list asks for the token and keeps it out of the URL.
  await page.fill("#dlq-token", process.env.HUB_TOKEN);
  await page.click("#dlq-token-form button[type=submit]");
  // Wait for the listing itself: the prompt before it also says "dead letters".
  await page.waitForFunction(() => /^\d+ dead letters?/.test(document.getElementById("dlq-status").textContent),
    null, { timeout: 15000 });
  assert.match(await page.locator("#dlq-status").textContent(), /^0 dead letters/);
  assert.ok(!page.url().includes(process.env.HUB_TOKEN), "token in the URL");

  await page.waitForTimeout(1200); // let the chart take the last second in
  await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
  assert.deepEqual(foreign, [], "the page fetched from elsewhere");
  assert.deepEqual(problems, [], "errors in the page");
  console.log(`dashboard: members and flows shown and updated; screenshot ${process.env.SCREENSHOT}`);
} catch (e) {
  failed = true;
  console.error(e);
  try {
    const page = context.pages()[0];
    if (page) await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
  } catch (_) { /* the failure above matters more */ }
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
