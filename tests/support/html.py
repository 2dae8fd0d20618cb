"""What a rendered fleet page holds: its elements, text, titles, row nodes and links."""

from __future__ import annotations

from html.parser import HTMLParser

# Everything the fleet page itself may contain: no script, no image, no form, no frame.
PAGE_TAGS = frozenset(
    {"html", "head", "meta", "title", "style", "body", "h1", "p", "a"}
    | {"table", "thead", "tbody", "tr", "th", "td", "span", "code", "br"}
)


class Page(HTMLParser):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.text: list[str] = []
        self.titles: list[str] = []
        self.rows: list[str] = []
        self.links: list[str] = []
        self.document_title = ""
        self._in_title = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self._in_title = tag == "title"
        found = dict(attrs)
        if tag == "tr" and found.get("data-node") is not None:
            self.rows.append(str(found["data-node"]))
        if found.get("title"):
            self.titles.append(str(found["title"]))
        if tag == "a" and found.get("href"):
            self.links.append(str(found["href"]))

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in_title:
            self.document_title += data
