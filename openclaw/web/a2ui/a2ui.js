/*
 * OpenClaw A2UI host: a small renderer for A2UI v0.8 server-to-client messages
 * (surfaceUpdate, dataModelUpdate, beginRendering, deleteSurface).
 *
 * The store is plain data (testable without a DOM); paint() turns a surface
 * into DOM nodes. User actions go to the native bridge when there is one
 * (iOS/macOS webkit handler, Android interface), else to the parent window.
 *
 * Page API: window.openclawA2UI.applyMessages(messagesOrJsonl), .reset();
 * or postMessage({type: "a2ui.push", messages | jsonl}) / {type: "a2ui.reset"}.
 */
(function (root) {
  "use strict";

  function parseMessages(input) {
    if (typeof input === "string") {
      return input.split("\n").filter(function (l) { return l.trim(); }).map(function (l) { return JSON.parse(l); });
    }
    return Array.isArray(input) ? input : [input];
  }

  // RFC 6901 pointer, with "a.b" accepted as a convenience.
  function pointer(path) {
    if (!path || path === "/") return [];
    if (path.charAt(0) !== "/") return path.split(".");
    return path.slice(1).split("/").map(function (p) { return p.replace(/~1/g, "/").replace(/~0/g, "~"); });
  }

  function getPath(data, path) {
    var node = data;
    var parts = pointer(path);
    for (var i = 0; i < parts.length; i++) {
      if (node === null || typeof node !== "object") return undefined;
      node = node[parts[i]];
    }
    return node;
  }

  function setPath(data, path, value) {
    var parts = pointer(path);
    if (!parts.length) return value;
    var node = data;
    for (var i = 0; i < parts.length - 1; i++) {
      if (node[parts[i]] === null || typeof node[parts[i]] !== "object") node[parts[i]] = {};
      node = node[parts[i]];
    }
    node[parts[parts.length - 1]] = value;
    return data;
  }

  function entryValue(entry) {
    if ("valueString" in entry) return entry.valueString;
    if ("valueNumber" in entry) return entry.valueNumber;
    if ("valueBoolean" in entry) return entry.valueBoolean;
    if ("valueBool" in entry) return entry.valueBool;
    if ("valueNull" in entry) return null;
    if ("valueList" in entry) return entry.valueList.map(entryValue);
    if ("valueMap" in entry) return contentsToObject(entry.valueMap);
    return undefined;
  }

  function contentsToObject(contents) {
    var out = {};
    (contents || []).forEach(function (entry) { if (entry && typeof entry.key === "string") out[entry.key] = entryValue(entry); });
    return out;
  }

  // A bound value: {literalString|literalNumber|literalBoolean} and/or {path}.
  function resolve(value, data) {
    if (value === null || typeof value !== "object") return value;
    if ("path" in value) {
      var found = getPath(data, value.path);
      if (found !== undefined) return found;
    }
    if ("literalString" in value) return value.literalString;
    if ("literalNumber" in value) return value.literalNumber;
    if ("literalBoolean" in value) return value.literalBoolean;
    if ("literalArray" in value) return value.literalArray;
    return undefined;
  }

  function createStore() {
    var surfaces = {};
    function surface(id) {
      if (!surfaces[id]) surfaces[id] = { id: id, components: {}, data: {}, root: null, styles: {}, rendering: false };
      return surfaces[id];
    }
    function apply(message) {
      if (!message || typeof message !== "object") throw new Error("A2UI message must be an object");
      if (message.surfaceUpdate) {
        var s = surface(message.surfaceUpdate.surfaceId || "main");
        (message.surfaceUpdate.components || []).forEach(function (c) {
          var type = c && c.component && Object.keys(c.component)[0];
          if (c && c.id && type) s.components[c.id] = { id: c.id, type: type, props: c.component[type] || {}, weight: c.weight };
        });
        return s.id;
      }
      if (message.dataModelUpdate) {
        var d = surface(message.dataModelUpdate.surfaceId || "main");
        var value = contentsToObject(message.dataModelUpdate.contents);
        var path = message.dataModelUpdate.path;
        if (!path || path === "/") {
          Object.keys(value).forEach(function (k) { d.data[k] = value[k]; });
        } else {
          var existing = getPath(d.data, path);
          setPath(d.data, path, existing && typeof existing === "object" ? Object.assign(existing, value) : value);
        }
        return d.id;
      }
      if (message.beginRendering) {
        var b = surface(message.beginRendering.surfaceId || "main");
        b.root = message.beginRendering.root;
        b.styles = message.beginRendering.styles || {};
        b.rendering = true;
        return b.id;
      }
      if (message.deleteSurface) {
        delete surfaces[message.deleteSurface.surfaceId];
        return message.deleteSurface.surfaceId;
      }
      throw new Error("unknown A2UI message: " + Object.keys(message).join(","));
    }
    // The component tree of a surface as plain objects (what paint() draws).
    function tree(surfaceId) {
      var s = surfaces[surfaceId];
      if (!s || !s.rendering || !s.root) return null;
      var seen = {};
      function build(id, data, scope) {
        var c = s.components[id];
        if (!c || seen[id + "@" + scope] || Object.keys(seen).length > 5000) return null;
        seen[id + "@" + scope] = true;
        var node = { id: id, type: c.type, props: {}, children: [] };
        Object.keys(c.props).forEach(function (k) {
          if (k === "children" || k === "child" || k === "action" || k === "tabItems") return;
          node.props[k] = resolve(c.props[k], data);
          if (c.props[k] && typeof c.props[k] === "object" && "path" in c.props[k]) node.props[k + "Path"] = c.props[k].path;
        });
        if (c.props.action) node.action = c.props.action;
        var kids = c.props.children;
        if (c.props.child) kids = { explicitList: [c.props.child] };
        if (kids && kids.explicitList) {
          kids.explicitList.forEach(function (k) { var n = build(k, data, scope); if (n) node.children.push(n); });
        } else if (kids && kids.template) {
          var items = getPath(data, kids.template.dataBinding) || [];
          var keys = Array.isArray(items) ? items.map(function (_, i) { return i; }) : Object.keys(items);
          keys.slice(0, 500).forEach(function (key) {
            var n = build(kids.template.componentId, items[key], scope + "/" + key);
            if (n) node.children.push(n);
          });
        }
        if (c.props.tabItems) {
          node.tabs = c.props.tabItems.map(function (t) { return { title: resolve(t.title, data), child: build(t.child, data, scope) }; });
        }
        delete seen[id + "@" + scope];
        return node;
      }
      return build(s.root, s.data, "");
    }
    function actionContext(surfaceId, action) {
      var s = surfaces[surfaceId];
      var out = {};
      ((action && action.context) || []).forEach(function (entry) { out[entry.key] = resolve(entry.value, s ? s.data : {}); });
      return out;
    }
    function write(surfaceId, path, value) {
      if (surfaces[surfaceId] && path) setPath(surfaces[surfaceId].data, path, value);
    }
    return {
      surfaces: surfaces,
      apply: apply,
      tree: tree,
      actionContext: actionContext,
      write: write,
      reset: function () { Object.keys(surfaces).forEach(function (k) { delete surfaces[k]; }); },
    };
  }

  function postAction(action) {
    var text = JSON.stringify({ userAction: action });
    var w = root.window || root;
    if (w.webkit && w.webkit.messageHandlers && w.webkit.messageHandlers.openclawCanvasA2UIAction) {
      w.webkit.messageHandlers.openclawCanvasA2UIAction.postMessage(text);
    } else if (w.openclawCanvasA2UIAction && w.openclawCanvasA2UIAction.postMessage) {
      w.openclawCanvasA2UIAction.postMessage(text);
    } else if (w.parent && w.parent !== w) {
      w.parent.postMessage({ type: "a2ui.action", action: action }, "*");
    }
    return text;
  }

  var HEADINGS = { h1: "h1", h2: "h2", h3: "h3", h4: "h4", h5: "h5", caption: "small", body: "p" };

  function paint(doc, store, surfaceId, container, onAction) {
    var node = store.tree(surfaceId);
    while (container.firstChild) container.removeChild(container.firstChild);
    if (!node) return container;
    function el(tag, cls) { var e = doc.createElement(tag); e.className = "a2ui-" + cls; return e; }
    function draw(n) {
      var p = n.props, e;
      switch (n.type) {
        case "Text":
          e = el(HEADINGS[p.usageHint] || "p", "text");
          e.textContent = p.text == null ? "" : String(p.text);
          break;
        case "Image":
          e = el("img", "image"); e.src = p.url || ""; e.alt = p.altText || ""; break;
        case "Icon":
          e = el("span", "icon"); e.textContent = p.name || ""; break;
        case "Video":
          e = el("video", "video"); e.src = p.url || ""; e.controls = true; break;
        case "AudioPlayer":
          e = el("audio", "audio"); e.src = p.url || ""; e.controls = true; break;
        case "Row": case "Column": case "List":
          e = el("div", n.type.toLowerCase());
          e.style.display = "flex";
          e.style.flexDirection = n.type === "Row" || p.direction === "horizontal" ? "row" : "column";
          e.style.gap = "8px";
          break;
        case "Card":
          e = el("div", "card"); e.style.border = "1px solid #ddd"; e.style.borderRadius = "8px"; e.style.padding = "12px"; break;
        case "Divider":
          e = el("hr", "divider"); break;
        case "Button":
          e = el("button", "button");
          e.onclick = function () { onAction(n); };
          break;
        case "CheckBox":
          e = el("label", "checkbox");
          var box = doc.createElement("input"); box.type = "checkbox"; box.checked = !!p.value;
          box.onchange = function () { store.write(surfaceId, p.valuePath, box.checked); };
          e.appendChild(box); e.appendChild(doc.createTextNode(" " + (p.label || "")));
          break;
        case "TextField": case "DateTimeInput":
          e = el("label", "textfield");
          e.appendChild(doc.createTextNode((p.label || "") + " "));
          var input = doc.createElement("input");
          input.type = n.type === "DateTimeInput" ? "datetime-local" : (p.textFieldType === "number" ? "number" : p.textFieldType === "obscured" ? "password" : "text");
          input.value = (n.type === "DateTimeInput" ? p.value : p.text) || "";
          input.onchange = function () { store.write(surfaceId, n.type === "DateTimeInput" ? p.valuePath : p.textPath, input.value); };
          e.appendChild(input);
          break;
        case "Slider":
          e = el("input", "slider"); e.type = "range";
          e.min = p.minValue == null ? 0 : p.minValue; e.max = p.maxValue == null ? 100 : p.maxValue; e.value = p.value == null ? 0 : p.value;
          e.onchange = function () { store.write(surfaceId, p.valuePath, Number(e.value)); };
          break;
        case "MultipleChoice":
          e = el("select", "choice");
          (p.options || []).forEach(function (o) {
            var opt = doc.createElement("option");
            opt.value = o.value; opt.textContent = resolve(o.label, {}) || o.value; e.appendChild(opt);
          });
          e.onchange = function () { store.write(surfaceId, p.selectionsPath, [e.value]); };
          break;
        case "Tabs":
          e = el("div", "tabs");
          (n.tabs || []).forEach(function (t) {
            var section = el("details", "tab"); var summary = doc.createElement("summary");
            summary.textContent = t.title || ""; section.appendChild(summary);
            if (t.child) section.appendChild(draw(t.child));
            e.appendChild(section);
          });
          break;
        case "Modal":
          e = el("details", "modal"); break;
        default:
          e = el("div", "unknown"); e.textContent = "[unsupported component " + n.type + "]";
      }
      n.children.forEach(function (child) { e.appendChild(draw(child)); });
      return e;
    }
    container.appendChild(draw(node));
    return container;
  }

  var api = { createStore: createStore, parseMessages: parseMessages, resolve: resolve, paint: paint, postAction: postAction };

  if (typeof module === "object" && module.exports) module.exports = api;
  if (root.document) {
    var store = createStore();
    var host = function () { return root.document.getElementById("a2ui-root") || root.document.body; };
    var render = function () {
      var box = host();
      while (box.firstChild) box.removeChild(box.firstChild);
      Object.keys(store.surfaces).forEach(function (id) {
        var frame = root.document.createElement("section");
        frame.className = "a2ui-surface"; frame.setAttribute("data-surface", id);
        box.appendChild(paint(root.document, store, id, frame, function (n) {
          postAction({ name: n.action && n.action.name, surfaceId: id, sourceComponentId: n.id, timestamp: new Date().toISOString(), context: store.actionContext(id, n.action) });
        }));
      });
    };
    root.openclawA2UI = {
      applyMessages: function (input) { parseMessages(input).forEach(store.apply); render(); return true; },
      reset: function () { store.reset(); render(); return true; },
      store: store,
    };
    root.addEventListener("message", function (event) {
      var m = event.data || {};
      if (m.type === "a2ui.push") root.openclawA2UI.applyMessages(m.messages || m.jsonl || []);
      else if (m.type === "a2ui.reset") root.openclawA2UI.reset();
    });
  }
})(typeof window !== "undefined" ? window : globalThis);
