// Lighthouse's accessibility audit of the web client as a signed-in user sees it: the login
// page, a conversation (with a reply, a reaction and a mention in it) and the settings.
// Usage: node audit.mjs BASE_URL LOGIN PASSWORD LANGUAGE light|dark. Prints one JSON line:
// {"login": 100, "conversation": 100, "settings": 100, "failed": [...]} (scores out of 100,
// and the audits that failed, with the elements they name).
import puppeteer from "puppeteer-core";
import { startFlow } from "lighthouse";

const [base, login, password, language, scheme] = process.argv.slice(2);
const browser = await puppeteer.launch({
  executablePath: process.env.CHROME_PATH || "/usr/bin/chromium",
  args: ["--headless=new", "--no-sandbox", `--lang=${language}`],
});
const page = await browser.newPage();
await page.evaluateOnNewDocument((tag) => {  // the language the page picks its strings by
  Object.defineProperty(navigator, "languages", { get: () => [tag] });
  Object.defineProperty(navigator, "language", { get: () => tag });
}, language);
await page.emulateMediaFeatures([{ name: "prefers-color-scheme", value: scheme }]);
const flow = await startFlow(page, {
  config: { extends: "lighthouse:default", settings: { onlyCategories: ["accessibility"] } },
});
await page.goto(base);
await page.waitForSelector("#auth-login");
await flow.snapshot({ name: "login" });
await page.type("#auth-login", login);
await page.type("#auth-password", password);
await page.click("#auth-submit");
await page.waitForSelector("#flows button.flow");
await page.click("#flows button.flow");
await page.waitForSelector("#messages .message[data-uuid] .reactions");
await flow.snapshot({ name: "conversation" });
await page.click("#settings");
await page.waitForSelector("#settings-dialog[open]");
await flow.snapshot({ name: "settings" });
const result = { failed: [] };
for (const step of (await flow.createFlowResult()).steps) {
  result[step.name] = Math.round(step.lhr.categories.accessibility.score * 100);
  for (const audit of Object.values(step.lhr.audits).filter((item) => item.score === 0)) {
    const nodes = (audit.details?.items ?? []).map((item) => item.node?.snippet ?? "");
    result.failed.push(`${step.name}: ${audit.id} ${nodes.join(" ")}`);
  }
}
console.log(JSON.stringify(result));
await browser.close();
