// A message's text as the page shows it: web links clickable, and a small formatting subset —
// **bold**, *italic* or _italic_, `code`, and "> " quoted lines. It builds elements and text
// nodes only: nothing a user wrote ever becomes markup.

import { el } from "./dom.js";

const INLINE = new RegExp([
  "(`[^`\\n]+`)",                               // code: nothing formatted inside
  "(\\*\\*[^*\\n]+\\*\\*)",                     // bold
  "((?<![\\w*])\\*[^*\\s](?:[^*\\n]*[^*\\s])?\\*(?![\\w*]))",  // italic, *so*
  "((?<!\\w)_[^_\\s](?:[^_\\n]*[^_\\s])?_(?!\\w))",            // italic, _so_ (not snake_case)
  "(https?://[^\\s<>\"]+)",                      // a web link
].join("|"), "g");
const TRAILING = /[.,;:!?'"]+$/;  // punctuation after a link ends the sentence, not the link

function link(url) {
  let href = url.replace(TRAILING, "");
  // a closing bracket belongs to the link only when the link opens one too
  while (href.endsWith(")") && (href.match(/\(/g) || []).length < (href.match(/\)/g) || []).length) {
    href = href.slice(0, -1);
  }
  return [el("a", { href, rel: "noopener noreferrer", target: "_blank", text: href }),
    url.slice(href.length)];
}

function inline(text) {
  const nodes = [];
  let at = 0;
  for (const match of text.matchAll(INLINE)) {
    nodes.push(text.slice(at, match.index));
    const [whole, code, bold, star, underscore, url] = match;
    if (code) nodes.push(el("code", { text: code.slice(1, -1) }));
    else if (bold) nodes.push(el("strong", { text: bold.slice(2, -2) }));
    else if (star || underscore) nodes.push(el("em", { text: whole.slice(1, -1) }));
    else if (url) nodes.push(...link(url));
    at = match.index + whole.length;
  }
  nodes.push(text.slice(at));
  return nodes.filter((node) => node !== "");
}

// The nodes of `text`: runs of quoted lines in blockquotes, the rest inline.
export function formatted(text) {
  const nodes = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length;) {
    if (/^> ?/.test(lines[i])) {
      const quoted = [];
      while (i < lines.length && /^> ?/.test(lines[i])) quoted.push(lines[i++].replace(/^> ?/, ""));
      nodes.push(el("blockquote", {}, inline(quoted.join("\n"))));
    } else {
      const plain = [];
      while (i < lines.length && !/^> ?/.test(lines[i])) plain.push(lines[i++]);
      nodes.push(...inline(plain.join("\n")));
    }
  }
  return nodes;
}

// The line a list shows for a message: its first line that is not quoted.
export function firstLine(text) {
  const lines = text.split("\n");
  return (lines.find((line) => line.trim() && !/^> ?/.test(line)) ?? lines[0]).trim();
}
