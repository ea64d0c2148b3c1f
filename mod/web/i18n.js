// UI strings live in i18n/<language>.json, one file per language: a translation is one file.
// The language is the first of the browser's that has a file, else English.

export const LANGUAGES = ["en", "ru"];
let strings = {};

export async function loadStrings(wanted = navigator.languages || [navigator.language]) {
  const found = wanted.map((tag) => String(tag).slice(0, 2).toLowerCase())
    .find((code) => LANGUAGES.includes(code)) || "en";
  const reply = await fetch(`/web/i18n/${found}.json`);
  strings = await reply.json();
  document.documentElement.lang = found;
  return found;
}

// The string `key`, with {0}, {1}... replaced by the arguments.
export function t(key, ...args) {
  const text = strings[key] ?? key;
  return text.replace(/\{(\d+)\}/g, (_, index) => String(args[Number(index)] ?? ""));
}

// Fills the page's fixed text: data-i18n (text), data-i18n-label (aria-label and title),
// data-i18n-placeholder.
export function translatePage(root = document) {
  for (const node of root.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const node of root.querySelectorAll("[data-i18n-label]")) {
    node.setAttribute("aria-label", t(node.dataset.i18nLabel));
    node.title = t(node.dataset.i18nLabel);
  }
  for (const node of root.querySelectorAll("[data-i18n-placeholder]")) {
    node.placeholder = t(node.dataset.i18nPlaceholder);
  }
}
