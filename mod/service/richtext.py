"""Formatted text between the protocols.

In: a Matrix message's `formatted_body` (HTML) is kept only as the Matrix spec's safe subset
(the tags and attributes it lists, links of web and mail schemes, pictures of this kind of
server's `mxc://` media only), so no client that trusts the server's copy renders anything
else. Out: an MTP text that uses the web client's small formatting subset (**bold**,
*italic* or _italic_, `code`, "> " quoted lines, web links) gets a `formatted_body` for
Matrix clients, built from escaped text, so nothing a user wrote becomes markup.
"""

from __future__ import annotations

import html
import re

import nh3

HTML = "org.matrix.custom.html"

# The spec's list of tags clients should render (client-server API, "m.room.message msgtypes",
# m.text), plus mx-reply, the reply fallback's wrapper.
TAGS = {"font", "del", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "p", "a", "ul", "ol",
        "sup", "sub", "li", "b", "i", "u", "strong", "em", "s", "code", "hr", "br", "div",
        "table", "thead", "tbody", "tr", "th", "td", "caption", "pre", "span", "img",
        "details", "summary", "mx-reply"}
ATTRIBUTES = {
    "font": {"data-mx-bg-color", "data-mx-color", "color"},
    "span": {"data-mx-bg-color", "data-mx-color", "data-mx-spoiler", "data-mx-maths"},
    "div": {"data-mx-maths"},
    "a": {"name", "target", "href"},
    "img": {"width", "height", "alt", "title", "src"},
    "ol": {"start"},
    "code": {"class"},
}
SCHEMES = {"https", "http", "ftp", "mailto", "magnet", "mxc"}


def _attribute(element: str, attribute: str, value: str) -> str | None:
    if element == "img" and attribute == "src":
        return value if value.startswith("mxc://") else None
    if element == "a" and attribute == "href" and value.startswith("mxc://"):
        return None
    if element == "code" and attribute == "class":
        return value if re.fullmatch(r"language-[\w+#.-]{1,40}", value) else None
    return value


def sanitise(formatted: str) -> str:
    """HTML as the safe subset: other tags dropped (their text kept; script and style with
    theirs), other attributes and schemes dropped."""
    return nh3.clean(formatted, tags=TAGS, attributes=ATTRIBUTES, url_schemes=SCHEMES,
                     link_rel="noopener noreferrer", attribute_filter=_attribute,
                     clean_content_tags={"script", "style"})


_INLINE = re.compile("|".join((
    r"(`[^`\n]+`)",                                            # code: nothing inside
    r"(\*\*[^*\n]+\*\*)",                                      # bold
    r"((?<![\w*])\*[^*\s](?:[^*\n]*[^*\s])?\*(?![\w*]))",      # italic, *so*
    r"((?<!\w)_[^_\s](?:[^_\n]*[^_\s])?_(?!\w))",              # italic, _so_ (not snake_case)
    r"(https?://[^\s<>\"]+)",                                  # a web link
)))
_TRAILING = re.compile(r"[.,;:!?'\"]+$")
_QUOTED = re.compile(r"^> ?")


def _link(url: str) -> tuple[str, str]:
    """A link without the punctuation that ends the sentence, and what followed it."""
    href = _TRAILING.sub("", url)
    while href.endswith(")") and href.count("(") < href.count(")"):
        href = href[:-1]
    return href, url[len(href):]


def _inline(text: str) -> str:
    out, at = [], 0
    for match in _INLINE.finditer(text):
        out.append(html.escape(text[at:match.start()]))
        whole = match.group(0)
        code, bold, star, underscore, url = match.groups()
        if code:
            out.append(f"<code>{html.escape(code[1:-1])}</code>")
        elif bold:
            out.append(f"<strong>{html.escape(bold[2:-2])}</strong>")
        elif star or underscore:
            out.append(f"<em>{html.escape(whole[1:-1])}</em>")
        else:
            href, rest = _link(url)
            out.append(f'<a href="{html.escape(href)}">{html.escape(href)}</a>'
                       f"{html.escape(rest)}")
        at = match.end()
    out.append(html.escape(text[at:]))
    return "".join(out).replace("\n", "<br>")


def to_html(text: str) -> str | None:
    """The HTML of a text in the web client's formatting subset; None when it uses none."""
    lines, parts, index = text.split("\n"), [], 0
    while index < len(lines):
        quoted = bool(_QUOTED.match(lines[index]))
        run = []
        while index < len(lines) and bool(_QUOTED.match(lines[index])) == quoted:
            run.append(_QUOTED.sub("", lines[index]) if quoted else lines[index])
            index += 1
        body = _inline("\n".join(run))
        parts.append(f"<blockquote>{body}</blockquote>" if quoted else body)
    rendered = "".join(parts)
    return None if rendered == html.escape(text).replace("\n", "<br>") else rendered
