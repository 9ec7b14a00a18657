// Run by tests/test_a2ui.py under node: checks the A2UI renderer's store, painter and bridge.
"use strict";
const assert = require("assert");
const a2ui = require(process.argv[2]);

// -- store: components, data binding, templates, paths, deletion
const store = a2ui.createStore();
a2ui.parseMessages([
  '{"surfaceUpdate":{"surfaceId":"s","components":[' +
    '{"id":"root","component":{"Column":{"children":{"explicitList":["title","list","name","ok"]}}}},' +
    '{"id":"title","component":{"Text":{"text":{"path":"/title"},"usageHint":"h2"}}},' +
    '{"id":"list","component":{"List":{"children":{"template":{"componentId":"row","dataBinding":"/items"}}}}},' +
    '{"id":"row","component":{"Text":{"text":{"path":"/label"}}}},' +
    '{"id":"name","component":{"TextField":{"label":{"literalString":"Name"},"text":{"path":"/form/name"}}}},' +
    '{"id":"ok","component":{"Button":{"child":"okText","action":{"name":"submit","context":[{"key":"name","value":{"path":"/form/name"}}]}}}},' +
    '{"id":"okText","component":{"Text":{"text":{"literalString":"OK"}}}}]}}',
  '{"dataModelUpdate":{"surfaceId":"s","contents":[{"key":"title","valueString":"Groceries"},' +
    '{"key":"items","valueList":[{"valueMap":[{"key":"label","valueString":"milk"}]},{"valueMap":[{"key":"label","valueString":"eggs"}]}]}]}}',
  '{"dataModelUpdate":{"surfaceId":"s","path":"/form","contents":[{"key":"name","valueString":"Ada"}]}}',
].join("\n")).forEach(store.apply);
assert.strictEqual(store.tree("s"), null, "nothing renders before beginRendering");
store.apply({ beginRendering: { surfaceId: "s", root: "root" } });
const tree = store.tree("s");
assert.strictEqual(tree.children[0].props.text, "Groceries");
assert.deepStrictEqual(tree.children[1].children.map((n) => n.props.text), ["milk", "eggs"]);
assert.strictEqual(tree.children[2].props.text, "Ada");
assert.deepStrictEqual(store.actionContext("s", tree.children[3].action), { name: "Ada" });
assert.throws(() => store.apply({ bogus: {} }), /unknown A2UI message/);

// a component that lists itself as its own child does not loop forever
store.apply({ surfaceUpdate: { surfaceId: "loop", components: [{ id: "a", component: { Card: { child: "a" } } }] } });
store.apply({ beginRendering: { surfaceId: "loop", root: "a" } });
assert.strictEqual(store.tree("loop").children.length, 0);

// -- painter on a minimal DOM
class Node_ {
  constructor(tag) { this.tagName = tag; this.children = []; this.style = {}; this.textContent = ""; this.attrs = {}; }
  appendChild(c) { this.children.push(c); return c; }
  removeChild(c) { this.children.splice(this.children.indexOf(c), 1); }
  get firstChild() { return this.children[0] || null; }
  setAttribute(k, v) { this.attrs[k] = v; }
}
const doc = { createElement: (t) => new Node_(t), createTextNode: (t) => Object.assign(new Node_("#text"), { textContent: t }) };
const actions = [];
const container = a2ui.paint(doc, store, "s", new Node_("section"), (n) => actions.push(n.action.name));
const column = container.children[0];
assert.strictEqual(column.tagName, "div");
assert.strictEqual(column.children[0].tagName, "h2");
assert.strictEqual(column.children[0].textContent, "Groceries");
const button = column.children[3];
assert.strictEqual(button.tagName, "button");
button.onclick();
assert.deepStrictEqual(actions, ["submit"]);
const input = column.children[2].children[1];
input.value = "Grace";
input.onchange();
assert.deepStrictEqual(store.actionContext("s", store.tree("s").children[3].action), { name: "Grace" });

// -- deleteSurface and the native bridges
store.apply({ deleteSurface: { surfaceId: "s" } });
assert.strictEqual(store.tree("s"), null);
const posted = [];
globalThis.webkit = { messageHandlers: { openclawCanvasA2UIAction: { postMessage: (t) => posted.push(JSON.parse(t)) } } };
a2ui.postAction({ name: "submit", surfaceId: "s" });
assert.deepStrictEqual(posted, [{ userAction: { name: "submit", surfaceId: "s" } }]);
console.log("ok");
