"""Just enough HTML parsing to find forms, their fields and links (standard library only)."""
from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Optional


@dataclass
class Field:
    name: str
    tag: str  # input / select / textarea
    type: str = "text"
    value: str = ""
    options: list[str] = field(default_factory=list)
    selected: list[str] = field(default_factory=list)
    required: bool = False
    multiple: bool = False
    checked: bool = False


@dataclass
class Form:
    action: str
    method: str
    enctype: str
    fields: list[Field] = field(default_factory=list)

    def names(self) -> list[str]:
        return [f.name for f in self.fields]

    def get(self, name: str) -> Optional[Field]:
        return next((f for f in self.fields if f.name == name), None)

    def find(self, *fragments: str) -> Optional[Field]:
        """The first field whose name equals, then contains, one of the fragments."""
        for frag in fragments:
            for f in self.fields:
                if f.name == frag:
                    return f
        for frag in fragments:
            for f in self.fields:
                if frag in f.name:
                    return f
        return None


class _Parser(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self.links: list[dict] = []
        self._form: Optional[Form] = None
        self._select: Optional[Field] = None
        self._option: Optional[dict] = None
        self._textarea: Optional[Field] = None

    def handle_starttag(self, tag, attrs):
        a = {k: (v if v is not None else "") for k, v in attrs}
        if tag == "form":
            self._form = Form(action=a.get("action", ""), method=a.get("method", "get").lower(),
                              enctype=a.get("enctype", ""))
            self.forms.append(self._form)
        elif tag == "a" and "href" in a:
            self.links.append(a)
        if self._form is None:
            return
        if tag == "input" and a.get("name"):
            self._form.fields.append(Field(a["name"], "input", a.get("type", "text").lower(), a.get("value", ""),
                                           required="required" in a, checked="checked" in a))
        elif tag == "select" and a.get("name"):
            self._select = Field(a["name"], "select", "select", required="required" in a, multiple="multiple" in a)
            self._form.fields.append(self._select)
        elif tag == "option" and self._select is not None:
            self._option = {"value": a.get("value"), "text": "", "selected": "selected" in a}
        elif tag == "textarea" and a.get("name"):
            self._textarea = Field(a["name"], "textarea", "textarea", required="required" in a)
            self._form.fields.append(self._textarea)

    def handle_data(self, data):
        if self._option is not None:
            self._option["text"] += data
        elif self._textarea is not None:
            self._textarea.value += data

    def handle_endtag(self, tag):
        if tag == "option" and self._option is not None:
            self._close_option()
        elif tag == "select":
            if self._option is not None:
                self._close_option()
            self._select = None
        elif tag == "textarea":
            self._textarea = None
        elif tag == "form":
            self._form = None

    def _close_option(self):
        o, self._option = self._option, None
        value = o["value"] if o["value"] is not None else o["text"].strip()
        self._select.options.append(value)
        if o["selected"]:
            self._select.selected.append(value)


def parse(html: str) -> tuple[list[Form], list[dict]]:
    p = _Parser()
    p.feed(html)
    p.close()
    return p.forms, p.links
