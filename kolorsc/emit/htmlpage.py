"""The skeleton every kolorsc HTML page shares (gallery, story pages, `kolorsc diff --html`).

Static and offline: one inline stylesheet, no scripts, no web fonts, no CDN; only relative
links, so a folder of pages opens the same from disk, an artifact or any static host. The
CSS is mobile-first (a one-column flow that becomes a grid on wider screens; images never
wider than the screen) and uses the reader's own fonts, CJK ones included. Same inputs,
same bytes: nothing here reads a clock or the environment.
"""

from __future__ import annotations

import html
from urllib.parse import quote

CSS = """\
:root{color-scheme:light dark;--ink:#1d1d1f;--muted:#6e6e73;--line:#d2d2d7;--card:#fff;--bg:#f5f5f7;
--pass:#137333;--fail:#c5221f;--unknown:#8a6100;--del:#fde7e9;--ins:#e6f4ea}
@media (prefers-color-scheme:dark){:root{--ink:#f5f5f7;--muted:#a1a1a6;--line:#3a3a3c;--card:#1c1c1e;
--bg:#000;--del:#5c1a1a;--ins:#173d24}}
*{box-sizing:border-box}
body{margin:0;padding:16px;background:var(--bg);color:var(--ink);line-height:1.5;
font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans CJK SC","Noto Sans SC","PingFang SC",
"Hiragino Sans GB","Microsoft YaHei","WenQuanYi Micro Hei",sans-serif;overflow-wrap:anywhere}
main{max-width:1200px;margin:0 auto}
h1{font-size:1.6rem;margin:.2em 0}h2{font-size:1.2rem;margin:.2em 0}h3{font-size:1rem;margin:.2em 0}
a{color:inherit}
img{max-width:100%;height:auto;display:block;border-radius:6px;background:var(--line)}
.muted{color:var(--muted)}
.links{display:flex;flex-wrap:wrap;gap:8px;margin:8px 0;padding:0;list-style:none}
.links a{display:inline-block;padding:6px 12px;border:1px solid var(--line);border-radius:999px;
text-decoration:none;background:var(--card)}
.grid{display:grid;gap:16px;grid-template-columns:1fr;align-items:start}
@media (min-width:640px){.grid{grid-template-columns:repeat(2,minmax(0,1fr))}}
@media (min-width:1000px){.grid.panels{grid-template-columns:repeat(4,minmax(0,1fr))}}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:12px;min-width:0}
section.card{margin:0 0 16px}
.badge{display:inline-block;padding:2px 10px;border-radius:999px;color:#fff;font-weight:600;font-size:.85rem}
.PASS{background:var(--pass)}.FAIL,.failed,.invalid{background:var(--fail)}.UNKNOWN,.preview{background:var(--unknown)}
.banner{background:var(--unknown);color:#fff;padding:8px 12px;border-radius:8px;margin:8px 0}
dl{display:grid;grid-template-columns:auto 1fr;gap:2px 10px;margin:8px 0;font-size:.9rem}
dt{color:var(--muted)}dd{margin:0}
.prompt{font-size:.9rem;margin:6px 0}
details{font-size:.9rem;margin:4px 0}
del{background:var(--del);text-decoration:line-through}ins{background:var(--ins);text-decoration:none}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:8px}
.missing{display:flex;align-items:center;justify-content:center;min-height:120px;border:1px dashed var(--line);
border-radius:6px;color:var(--muted);font-size:.85rem;text-align:center;padding:8px}
table{border-collapse:collapse;font-size:.85rem}td,th{padding:2px 8px 2px 0;text-align:left}
"""


def esc(text) -> str:
    return html.escape("" if text is None else str(text), quote=True)


def href(*parts: str) -> str:
    """A relative URL from path parts (each percent-encoded: Chinese bundle names, spaces)."""
    return "/".join(quote(seg, safe="") for p in parts if p for seg in p.split("/") if seg)


def page(title: str, body: str, lang: str = "zh") -> bytes:
    """A complete UTF-8 HTML document: viewport for phones, the shared inline stylesheet."""
    doc = (
        "<!doctype html>\n"
        f'<html lang="{esc(lang)}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>\n{CSS}</style>\n</head>\n"
        f"<body>\n<main>\n{body}</main>\n</body>\n</html>\n"
    )
    return doc.encode("utf-8")


def link_list(links: list[tuple[str, str]]) -> str:
    """A row of pill links [(text, url)]; empty when there is none."""
    if not links:
        return ""
    items = "".join(f'<li><a href="{esc(url)}">{esc(text)}</a></li>' for text, url in links)
    return f'<ul class="links">{items}</ul>\n'


def img(src: str, alt: str, width: int | None = None, height: int | None = None, lazy: bool = True) -> str:
    size = f' width="{width}" height="{height}"' if width and height else ""
    loading = ' loading="lazy"' if lazy else ""
    return f'<img src="{esc(src)}" alt="{esc(alt)}"{size}{loading} decoding="async">'


def png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk; None when it is not a PNG."""
    if len(data) >= 24 and data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return None
