// Markdown to DOM nodes, for untrusted model text.
//
// Nothing is ever parsed as HTML: every character of the source ends up in a
// text node or decides which element is made. Links keep only http(s)/mailto
// targets (others stay as their source text) and open with rel=noopener.
// Images are never loaded from the text. Work is bounded per render.

import { h, safeHref } from "./dom.js";

const MAX_CHARS = 200000; // beyond this the rest is shown as plain text
const MAX_DEPTH = 8; // nesting of quotes, lists and emphasis
const WINDOW = 2000; // how far a closing delimiter is looked for
const BUDGET = 2000000; // characters scanned looking for closers, per render

const FENCE = /^ {0,3}(`{3,}|~{3,})[ \t]*([^\s`]*)[^`]*$/;
const HEADING = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;
const RULE = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const QUOTE = /^ {0,3}> ?(.*)$/;
const BULLET = /^( {0,3})([-*+])[ \t]+(.*)$/;
const ORDERED = /^( {0,3})(\d{1,9})([.)])[ \t]+(.*)$/;
const PUNCT = /[!-/:-@[-`{-~]/;
const BARE_URL = /(?:https?:\/\/|mailto:)[^\s<>"'`]+/iy;
const LANG = /^[\w+#.-]{1,32}$/;

/**
 * The rendered text as a `div.md`. `options.copy(text, button)` is called by
 * the Copy button of a code block.
 */
export function renderMarkdown(doc, source, options = {}) {
  const state = { doc, options, budget: BUDGET };
  const root = h(doc, "div", { class: "md" });
  let text = String(source ?? "").replace(/\r\n?/g, "\n");
  let rest = "";
  if (text.length > MAX_CHARS) {
    rest = text.slice(MAX_CHARS);
    text = text.slice(0, MAX_CHARS);
  }
  blocks(state, text.split("\n"), root, 0);
  if (rest) root.appendChild(h(doc, "pre", { class: "md-rest" }, rest));
  return root;
}

function leading(line) {
  return line.length - line.trimStart().length;
}

function startsBlock(line) {
  return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) || BULLET.test(line) || ORDERED.test(line);
}

function blocks(state, lines, parent, depth) {
  const { doc } = state;
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) {
      i++;
      continue;
    }
    let m;
    if ((m = FENCE.exec(line))) {
      const closing = new RegExp(`^ {0,3}${m[1][0] === "`" ? "`" : "~"}{${m[1].length},}[ \\t]*$`);
      const body = [];
      i++;
      while (i < lines.length && !closing.test(lines[i])) body.push(lines[i++]);
      i++; // the closing fence (a reply still streaming may not have it yet)
      parent.appendChild(codeBlock(state, body.join("\n"), m[2]));
    } else if ((m = HEADING.exec(line))) {
      const heading = h(doc, `h${m[1].length}`);
      inline(state, heading, m[2] || "", depth);
      parent.appendChild(heading);
      i++;
    } else if (RULE.test(line)) {
      parent.appendChild(h(doc, "hr"));
      i++;
    } else if (QUOTE.test(line)) {
      const inner = [];
      while (i < lines.length && (m = QUOTE.exec(lines[i]))) {
        inner.push(m[1]);
        i++;
      }
      const quote = h(doc, "blockquote");
      if (depth < MAX_DEPTH) blocks(state, inner, quote, depth + 1);
      else quote.appendChild(doc.createTextNode(inner.join("\n")));
      parent.appendChild(quote);
    } else if (BULLET.test(line) || ORDERED.test(line)) {
      i = list(state, lines, i, parent, depth);
    } else {
      const para = [line.trim()];
      i++;
      while (i < lines.length && lines[i].trim() && !startsBlock(lines[i])) para.push(lines[i++].trim());
      const p = h(doc, "p");
      inline(state, p, para.join("\n"), depth);
      parent.appendChild(p);
    }
  }
}

function list(state, lines, i, parent, depth) {
  const { doc } = state;
  const ordered = !BULLET.test(lines[i]);
  const pattern = ordered ? ORDERED : BULLET;
  const first = pattern.exec(lines[i]);
  const el = h(doc, ordered ? "ol" : "ul");
  if (ordered && first[2] !== "1") el.setAttribute("start", String(parseInt(first[2], 10)));
  const indent = first[1].length;
  while (i < lines.length) {
    const m = pattern.exec(lines[i]);
    if (!m || m[1].length !== indent) break;
    const marker = ordered ? m[2].length + 2 : 2;
    const content = [ordered ? m[4] : m[3]];
    i++;
    while (i < lines.length) {
      const next = lines[i];
      if (!next.trim()) {
        let j = i + 1;
        while (j < lines.length && !lines[j].trim()) j++;
        if (j < lines.length && leading(lines[j]) >= indent + 2) {
          while (i < j) {
            content.push("");
            i++;
          }
          continue;
        }
        break;
      }
      if (leading(next) >= indent + 2) {
        content.push(next.slice(Math.min(leading(next), indent + marker)));
      } else if (!startsBlock(next)) {
        content.push(next.trim()); // a lazy continuation of the item's text
      } else {
        break;
      }
      i++;
    }
    const item = h(doc, "li");
    if (depth < MAX_DEPTH) blocks(state, content, item, depth + 1);
    else item.appendChild(doc.createTextNode(content.join("\n")));
    el.appendChild(item);
    let j = i;
    while (j < lines.length && !lines[j].trim()) j++;
    const again = j < lines.length ? pattern.exec(lines[j]) : null;
    if (!again || again[1].length !== indent) break;
    i = j;
  }
  parent.appendChild(el);
  return i;
}

function codeBlock(state, code, lang) {
  const { doc, options } = state;
  const language = LANG.test(lang || "") ? lang : "";
  const copy = h(doc, "button", { type: "button", class: "copy", title: "Copy to clipboard" }, "Copy");
  copy.addEventListener("click", () => options.copy && options.copy(code, copy));
  return h(
    doc,
    "div",
    { class: "md-code" },
    h(doc, "div", { class: "md-code-bar" }, h(doc, "span", { class: "md-lang" }, language), copy),
    h(doc, "pre", null, h(doc, "code", { class: language ? `language-${language}` : null }, code)),
  );
}

function link(state, href, parent, label, depth) {
  const a = h(state.doc, "a", { href, rel: "noopener noreferrer nofollow", target: "_blank" });
  inline(state, a, label, MAX_DEPTH + 1 + depth); // no links inside links; emphasis still shown as text
  parent.appendChild(a);
}

/** `[label](url)` starting at `i` (the "["): {label, url, end} or null. */
function parseLink(state, text, i) {
  let level = 0;
  let j = i;
  const limit = Math.min(text.length, i + WINDOW);
  for (; j < limit; j++) {
    const c = text[j];
    if (c === "\\") j++;
    else if (c === "[") level++;
    else if (c === "]" && --level === 0) break;
  }
  state.budget -= j - i;
  if (j >= limit || text[j + 1] !== "(") return null;
  const labelEnd = j;
  let k = j + 2;
  let parens = 0;
  for (; k < limit + WINDOW && k < text.length; k++) {
    const c = text[k];
    if (c === "\\") k++;
    else if (c === "(") parens++;
    else if (c === ")" && parens-- === 0) break;
    else if (c === "\n") return null;
  }
  state.budget -= k - j;
  if (k >= text.length || text[k] !== ")") return null;
  let target = text.slice(labelEnd + 2, k).trim();
  if (target.startsWith("<") && target.includes(">")) target = target.slice(1, target.indexOf(">"));
  else target = target.split(/\s+/)[0] || "";
  return { label: text.slice(i + 1, labelEnd), url: target, end: k + 1 };
}

/** Where the closing `delim` of an emphasis opened before `start` is, or -1. */
function findClose(state, text, delim, start) {
  const limit = Math.min(text.length, start + WINDOW);
  let j = start;
  while (j < limit && state.budget > 0) {
    const at = text.indexOf(delim, j + 1);
    if (at < 0 || at >= limit) {
      state.budget -= limit - j;
      return -1;
    }
    state.budget -= at - j;
    j = at;
    const single = delim.length === 1;
    if (/\s/.test(text[at - 1])) continue;
    if (single && (text[at + 1] === delim || text[at - 1] === delim)) continue; // part of a double
    if (delim[0] === "_" && /\w/.test(text[at + delim.length] || "")) continue; // intraword underscore
    return at;
  }
  return -1;
}

function inline(state, parent, text, depth) {
  const { doc } = state;
  let buf = "";
  const flush = () => {
    if (!buf) return;
    buf.split("\n").forEach((part, n) => {
      if (n) parent.appendChild(h(doc, "br"));
      if (part) parent.appendChild(doc.createTextNode(part));
    });
    buf = "";
  };
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (state.budget <= 0) {
      buf += text.slice(i);
      break;
    }
    if (c === "\\" && i + 1 < text.length && PUNCT.test(text[i + 1])) {
      buf += text[i + 1];
      i += 2;
      continue;
    }
    if (c === "`") {
      let n = 1;
      while (text[i + n] === "`") n++;
      const fence = "`".repeat(n);
      const end = text.indexOf(fence, i + n);
      state.budget -= end < 0 ? text.length - i : end - i;
      if (end > i && end - i < WINDOW * 4 && text[end + n] !== "`") {
        flush();
        parent.appendChild(h(doc, "code", null, text.slice(i + n, end).replace(/\n/g, " ")));
        i = end + n;
      } else {
        buf += fence;
        i += n;
      }
      continue;
    }
    if (c === "!" && text[i + 1] === "[") {
      const found = parseLink(state, text, i + 1);
      if (found) {
        buf += text.slice(i, found.end); // images are not loaded: shown as written
        i = found.end;
        continue;
      }
    }
    if (c === "[" && depth <= MAX_DEPTH) {
      const found = parseLink(state, text, i);
      if (found) {
        const href = safeHref(found.url);
        if (href) {
          flush();
          link(state, href, parent, found.label, depth);
        } else {
          buf += text.slice(i, found.end); // a javascript:, data: or relative link stays text
        }
        i = found.end;
        continue;
      }
    }
    if (c === "<") {
      const close = text.indexOf(">", i);
      state.budget -= close < 0 ? text.length - i : close - i;
      if (close > i && close - i < WINDOW) {
        const inner = text.slice(i + 1, close);
        const href = /^(?:https?:\/\/|mailto:)/i.test(inner) && depth <= MAX_DEPTH ? safeHref(inner) : null;
        if (href) {
          flush();
          link(state, href, parent, inner, depth);
          i = close + 1;
          continue;
        }
      }
    }
    if ((c === "h" || c === "H" || c === "m" || c === "M") && depth <= MAX_DEPTH && (i === 0 || !/\w/.test(text[i - 1]))) {
      BARE_URL.lastIndex = i;
      const m = BARE_URL.exec(text);
      if (m) {
        state.budget -= m[0].length;
        let url = m[0].replace(/[.,;:!?]+$/, "");
        while (url.endsWith(")") && (url.match(/\(/g) || []).length < (url.match(/\)/g) || []).length) url = url.slice(0, -1);
        const href = safeHref(url);
        if (href && url.length > 8) {
          flush();
          link(state, href, parent, url, depth);
          i += url.length;
          continue;
        }
      }
    }
    if (c === "*" || c === "_" || c === "~") {
      const delim = text[i + 1] === c ? c + c : c;
      const start = i + delim.length;
      const opens =
        !(c === "~" && delim.length === 1) &&
        !(c === "_" && i > 0 && /\w/.test(text[i - 1])) &&
        start < text.length &&
        !/\s/.test(text[start]);
      const end = opens ? findClose(state, text, delim, start) : -1;
      if (end > start) {
        flush();
        const tag = delim === "~~" ? "del" : delim.length === 2 ? "strong" : "em";
        const el = h(doc, tag);
        if (depth < MAX_DEPTH) inline(state, el, text.slice(start, end), depth + 1);
        else el.appendChild(doc.createTextNode(text.slice(start, end)));
        parent.appendChild(el);
        i = end + delim.length;
      } else {
        buf += delim;
        i += delim.length;
      }
      continue;
    }
    buf += c;
    i++;
  }
  flush();
}
