// The HTML frame of the public pages: small inline stylesheet, readable on a phone, no scripts.

export function escapeHtml(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!,
  );
}

const CSS = `
:root{color-scheme:light dark;--fg:#1b1f24;--muted:#5b6470;--bg:#f6f7f9;--card:#fff;--accent:#2563eb;--line:#e2e5ea}
@media (prefers-color-scheme:dark){:root{--fg:#e8eaed;--muted:#a0a8b3;--bg:#14171b;--card:#1d2126;--accent:#6ea1ff;--line:#2c3138}}
*{box-sizing:border-box}
body{margin:0;font:16px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
main{max-width:40rem;margin:0 auto;padding:1.5rem 1rem 3rem}
h1{font-size:1.6rem;line-height:1.25;margin:.5rem 0 1rem}
h2{font-size:1.15rem;margin:1.75rem 0 .5rem}
a{color:var(--accent)}
.card{background:var(--card);border:1px solid var(--line);border-radius:12px;padding:1.25rem;margin:1.25rem 0}
.qr{display:block;width:min(288px,80vw);height:auto;margin:0 auto 1rem;background:#fff;border-radius:8px}
.button{display:block;text-align:center;background:var(--accent);color:#fff;text-decoration:none;font-weight:600;padding:.8rem 1rem;border-radius:10px;word-break:break-word}
.muted{color:var(--muted);font-size:.92rem}
code{word-break:break-all;font-size:.85rem}
nav{display:flex;gap:1rem;justify-content:center;margin-top:2rem}
ul{padding-left:1.25rem}
`;

/** A full page; `body` must already be escaped HTML. */
export function htmlPage(options: { title: string; body: string }): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${escapeHtml(options.title)}</title>
<style>${CSS}</style>
</head>
<body>
<main>
${options.body}
<nav><a href="/">Home</a><a href="/info">Info</a><a href="/privacy">Privacy</a></nav>
</main>
</body>
</html>
`;
}
