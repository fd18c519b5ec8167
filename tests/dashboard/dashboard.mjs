// The partner dashboard in a real browser: Debian's chromium driven by npm playwright-core
// (tests/dashboard/fetch.sh installs both; Playwright downloads no browser of its own).
// tests/dashboard.rs starts clickgate, makes the data and runs this script; it prints what it
// read off the pages as one JSON line, and the Rust test checks it against the JSON API.
//
// Environment: DASHBOARD_BASE (the API listener's http://host:port), DASHBOARD_KEY (partner A's
// key), DASHBOARD_PARTNER (A's id), DASHBOARD_OTHER (partner B's id), DASHBOARD_SCREENSHOT (a
// PNG path), DASHBOARD_README_SHOT (optional: a second, viewport-sized PNG for the README).
// DASHBOARD_NODE_DIR is fetch.sh's install directory, whose node_modules holds playwright-core
// (an ES module does not read NODE_PATH). Every request that leaves DASHBOARD_BASE is aborted
// and counted: the page must work offline.
import { createRequire } from "node:module";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const { chromium } = createRequire(`${env("DASHBOARD_NODE_DIR")}/`)("playwright-core");
const base = env("DASHBOARD_BASE");
const partner = env("DASHBOARD_PARTNER");

const browser = await chromium.launch({
  executablePath: process.env.DASHBOARD_CHROMIUM || "/usr/bin/chromium",
  headless: true,
  // Root in a container has no user namespace for chromium's sandbox.
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
const out = { offsite: [], console_errors: [] };
try {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  await context.route("**/*", (route) => {
    if (route.request().url().startsWith(base + "/")) return route.continue();
    out.offsite.push(route.request().url());
    return route.abort();
  });
  const page = await context.newPage();
  // Errors are recorded until the deliberate 404 below, which the console reports too.
  let recording = true;
  page.on("console", (m) => { if (recording && m.type() === "error") out.console_errors.push(m.text()); });
  page.on("pageerror", (e) => out.console_errors.push(String(e)));

  // Unsigned, the dashboard sends the browser to the sign-in form.
  await page.goto(`${base}/dashboard`);
  out.unsigned_url = page.url();
  await page.fill("#key", env("DASHBOARD_KEY"));
  const posted = page.waitForResponse((r) => r.request().method() === "POST");
  await page.click("#sign-in");
  const post = await posted;
  out.sign_in_status = post.status();
  try {
    await page.waitForURL(`**/dashboard/partners/${partner}**`, { timeout: 15000 });
  } catch (e) {
    throw new Error(`sign-in answered ${post.status()} ${JSON.stringify(post.headers())}; the page says: ${await page.textContent("main")}`);
  }
  out.signed_in_url = page.url();
  const cookies = await context.cookies();
  out.cookie = cookies.filter((c) => c.name === "cg_session").map((c) => ({ name: c.name, httpOnly: c.httpOnly, sameSite: c.sameSite, path: c.path, expires: c.expires }));

  const figures = async () => page.$$eval("[data-figure]", (cells) => Object.fromEntries(cells.map((c) => [c.dataset.figure, c.dataset.value])));
  const chart = async () => page.$$eval("#clicks-chart g.day", (gs) => gs.map((g) => ({
    date: g.dataset.date,
    valid: Number(g.dataset.valid),
    flagged: Number(g.dataset.flagged),
    title: g.querySelector("title").textContent,
  })));
  out.figures = await figures();
  out.chart = await chart();
  out.stylesheet_applied = await page.$eval("header", (h) => getComputedStyle(h).backgroundColor);

  // The link's QR code loads as an image under the session's cookie, and opens on its own.
  const qr = await page.$eval("img.qr", (img) => ({ src: img.getAttribute("src"), complete: img.complete, width: img.naturalWidth }));
  out.qr = qr;
  // The copy button puts the link's URL in the clipboard.
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: base });
  await page.click("button.copy");
  out.copied = await page.evaluate(() => navigator.clipboard.readText());
  out.copy_source = await page.$eval("input.copy-source", (i) => i.value);

  await page.screenshot({ path: env("DASHBOARD_SCREENSHOT"), fullPage: true });
  if (process.env.DASHBOARD_README_SHOT) {
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: process.env.DASHBOARD_README_SHOT, fullPage: false });
  }

  // A chosen period: the page shows the API's report of those days.
  const from = process.env.DASHBOARD_FROM;
  const to = process.env.DASHBOARD_TO;
  if (from && to) {
    await page.fill("input[name=from]", from);
    await page.fill("input[name=to]", to);
    await Promise.all([page.waitForURL(`**from=${from}**`), page.click("form.period button")]);
    out.period_figures = await figures();
    out.period_chart = await chart();
  }

  const qrPage = await page.goto(`${base}${qr.src}`);
  out.qr_status = qrPage.status();
  out.qr_type = qrPage.headers()["content-type"];

  recording = false;
  const other = await page.goto(`${base}/dashboard/partners/${env("DASHBOARD_OTHER")}`);
  out.other_status = other.status();
  out.other_text = await page.textContent("h1");

  // Sign-out ends the session: the next page is the sign-in form again.
  await page.goto(`${base}/dashboard/partners/${partner}`);
  await Promise.all([page.waitForURL("**/dashboard/login"), page.click("#sign-out")]);
  const after = await page.goto(`${base}/dashboard/partners/${partner}`);
  out.after_sign_out_url = page.url();
  out.after_sign_out_status = after.status();
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
