// DOM building without HTML parsing: text always goes in as text nodes.

export const SAFE_SCHEMES = ["http:", "https:", "mailto:"];

/** An absolute http(s)/mailto URL as the browser will read it, or null. */
export function safeHref(raw) {
  const text = String(raw ?? "").trim();
  // Whitespace or control characters inside hide schemes ("java\tscript:").
  if (!text || /[\u0000-\u0020\u007f-\u009f]/.test(text)) return null;
  let url;
  try {
    url = new URL(text);
  } catch {
    return null; // relative: nothing a model reply should point at
  }
  return SAFE_SCHEMES.includes(url.protocol) ? url.href : null;
}

const BOOLEAN = new Set(["hidden", "disabled", "checked", "readonly", "required", "selected", "open", "multiple"]);

/**
 * h(doc, "button", {class: "x", on: {click: f}, title: "t"}, "text", child...)
 * Attributes are set one by one; `href` must pass safeHref; no "on*" or style attributes.
 */
export function h(doc, tag, props, ...children) {
  const el = doc.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "on") {
      for (const [type, fn] of Object.entries(value)) el.addEventListener(type, fn);
    } else if (key === "class") {
      el.className = Array.isArray(value) ? value.filter(Boolean).join(" ") : String(value);
    } else if (key === "text") {
      el.textContent = String(value);
    } else if (key === "value") {
      el.value = String(value);
    } else if (key === "href") {
      const href = safeHref(value);
      if (href) el.setAttribute("href", href);
    } else if (/^on/i.test(key) || key === "style" || key === "srcdoc") {
      throw new Error(`refusing attribute ${key}`);
    } else if (BOOLEAN.has(key)) {
      if (value) el.setAttribute(key, "");
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(doc, el, children);
  return el;
}

export function append(doc, el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.appendChild(typeof child === "object" ? child : doc.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}
