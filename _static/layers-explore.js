/* The book's explorers: figures a reader drives with controls, drawn in the browser (SVG).
 *
 * book/_explore.py writes an explorer as <div class="layers-explorer" data-explorer="conv"> (or
 * "attention", with its weights, computed by torch at build time, in a JSON script element).
 * This script adds the controls and the drawing ([data-view]) and marks it data-ready="true";
 * tools/browser_check.py moves every control and checks that the drawing changes.
 *
 * convArithmetic() is the one place the convolution explorer's sizes come from:
 * tests/book/test_explorers.py runs it in Chromium on a grid of settings and compares it with
 * torch's Conv2d and ConvTranspose2d.
 */
(function () {
  "use strict";

  // --- the arithmetic of one spatial dimension ----------------------------------------------------

  /** Output size of a convolution (or a transposed one) along one dimension, or why there is none.
   *
   * n input size, k kernel size, s stride, p padding, d dilation, op output_padding (transposed
   * only). Returns {ok, size, span, formula, reason, ...}: size is null where torch raises (0 where
   * torch raises or returns an empty tensor, depending on the layer); span is the extent of the kernel's
   * taps, d(k - 1) + 1; for a convolution, padded = n + 2p; for a transposed one, full is the
   * length of all the stamps before the padding is cropped, (n - 1)s + span.
   */
  function convArithmetic({ n, k, s = 1, p = 0, d = 1, transposed = false, op = 0 }) {
    const span = d * (k - 1) + 1;
    if (!transposed) {
      const padded = n + 2 * p;
      const formula = `⌊(n + 2p − d(k − 1) − 1) / s⌋ + 1 = ⌊(${n} + 2·${p} − ${d}·(${k} − 1) − 1) / ${s}⌋ + 1`;
      if (span > padded) {
        return { ok: false, size: null, span, padded, formula,
                 reason: `The kernel's taps span d(k − 1) + 1 = ${span} cells, wider than the padded input ` +
                         `(n + 2p = ${n} + 2·${p} = ${padded} cells): the window fits nowhere. torch raises an ` +
                         `error ("Kernel size can't be greater than actual input size").` };
      }
      const size = Math.floor((padded - span) / s) + 1;
      const read = (size - 1) * s + span;          // the padded cells up to the last window's end
      const starts = Array.from({ length: size }, (_, o) => o * s);
      // rows (and columns) before that end that fall between the taps of every window
      const holes = tapCounts(read, starts, k, d).filter((c) => c === 0).length;
      return { ok: true, size, span, padded, read, dropped: padded - read, holes, formula: `${formula} = ${size}` };
    }
    const full = (n - 1) * s + span;
    const size = full - 2 * p + op;
    const formula = `(n − 1)s − 2p + d(k − 1) + output_padding + 1 = ` +
                    `(${n} − 1)·${s} − 2·${p} + ${d}·(${k} − 1) + ${op} + 1`;
    if (op >= s && op >= d) {
      return { ok: false, size: null, span, full, formula,
               reason: `output_padding (${op}) must be smaller than the stride (${s}) or the dilation (${d}): ` +
                       `it only picks one of the sizes a stride leaves ambiguous. torch raises an error.` };
    }
    if (size < 1) {
      // torch is not consistent at exactly 0: ConvTranspose1d raises, ConvTranspose2d raises or
      // returns an empty tensor depending on the kernel (the backend it picks); below 0 all raise
      const verdict = size === 0 ? "torch raises an error, or (ConvTranspose2d with some kernels) returns an empty tensor."
                                 : "torch raises an error.";
      return { ok: false, size: size === 0 ? 0 : null, span, full, formula: `${formula} = ${size}`,
               reason: `The stamps cover ${full} cells, and padding crops p = ${p} from each end: ` +
                       `${full} − 2·${p}${op ? ` + ${op}` : ""} = ${size} leaves no output. ${verdict}` };
    }
    return { ok: true, size, span, full, formula: `${formula} = ${size}` };
  }

  /** For each index of a line of `length` cells, how many taps land on it (start + d*u). */
  function tapCounts(length, starts, k, d) {
    const counts = new Array(length).fill(0);
    for (const start of starts) {
      for (let u = 0; u < k; u++) if (start + d * u < length) counts[start + d * u] += 1;
    }
    return counts;
  }

  // --- drawing -------------------------------------------------------------------------------------

  const SVG = "http://www.w3.org/2000/svg";
  const COLOUR = { tap: "#f5a65b", chosen: "#f5a65b", input: "#ffffff", pad: "#d9d9d9", cropped: "#d9d9d9",
                   unread: "#f4cccc", out: "#deebf7", extra: "#fff2cc", line: "#666666", text: "#222222" };

  function svg(tag, attrs = {}, text = null) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
    if (text !== null) node.textContent = text;
    return node;
  }

  function html(tag, attrs = {}, text = null) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
    if (text !== null) node.textContent = text;
    return node;
  }

  /** A square grid of `side` cells at (x0, y0): fill(r, c) colours a cell, label(r, c) writes in it
   * (in ink(r, c), dark by default), onClick(r, c) makes the cells pickable. */
  function grid(parent, x0, y0, side, cell, fill, label, onClick, ink = () => COLOUR.text) {
    const g = svg("g");
    for (let r = 0; r < side; r++) {
      for (let c = 0; c < side; c++) {
        const rect = svg("rect", { x: x0 + c * cell, y: y0 + r * cell, width: cell, height: cell,
                                   fill: fill(r, c), stroke: COLOUR.line, "stroke-width": 0.6 });
        if (onClick) {
          rect.style.cursor = "pointer";
          rect.addEventListener("click", () => onClick(r, c));
        }
        g.appendChild(rect);
        const text = label ? label(r, c) : "";
        if (text !== "" && cell >= 13) {
          g.appendChild(svg("text", { x: x0 + (c + 0.5) * cell, y: y0 + (r + 0.5) * cell, "font-size": Math.min(11, cell * 0.5),
                                      "text-anchor": "middle", "dominant-baseline": "central", fill: ink(r, c),
                                      "pointer-events": "none" }, text));
        }
      }
    }
    parent.appendChild(g);
    return g;
  }

  function caption(parent, x, y, text, anchor = "start") {
    parent.appendChild(svg("text", { x, y, "font-size": 12, "text-anchor": anchor, fill: COLOUR.text }, text));
  }

  function legend(parent, x, y, entries) {
    let at = x;
    for (const [colour, text] of entries) {
      parent.appendChild(svg("rect", { x: at, y: y - 9, width: 10, height: 10, fill: colour, stroke: COLOUR.line,
                                       "stroke-width": 0.6 }));
      caption(parent, at + 14, y, text);
      at += 24 + text.length * 6.2;
    }
  }

  // --- controls ------------------------------------------------------------------------------------

  /** A labelled slider, select or checkbox; `onChange` runs on every input. Returns the element. */
  function control(box, spec, onChange) {
    const wrap = html("label", { class: "layers-explorer-control" });
    wrap.appendChild(html("span", { class: "layers-explorer-label" }, spec.label));
    let input;
    if (spec.options) {
      input = html("select", { name: spec.name });
      spec.options.forEach(([value, text]) => input.appendChild(html("option", { value }, text)));
      input.value = String(spec.value);
    } else if (spec.checkbox) {
      input = html("input", { type: "checkbox", name: spec.name });
      input.checked = !!spec.value;
    } else {
      input = html("input", { type: "range", name: spec.name, min: spec.min, max: spec.max, step: 1 });
      input.value = String(spec.value);
    }
    wrap.appendChild(input);
    const shown = html("output", { class: "layers-explorer-value" });
    if (!spec.checkbox) wrap.appendChild(shown);
    const refresh = () => { shown.textContent = spec.options ? "" : (spec.format || String)(Number(input.value)); };
    input.addEventListener("input", () => { refresh(); onChange(); });
    input.addEventListener("change", () => { refresh(); onChange(); });
    input.refresh = refresh;
    refresh();
    box.appendChild(wrap);
    return input;
  }

  function number(input) {
    return input.type === "checkbox" ? input.checked : Number(input.value);
  }

  // --- the convolution-arithmetic explorer ---------------------------------------------------------

  function convExplorer(root) {
    const start = { n: 5, k: 3, s: 1, p: 0, d: 1, op: 0, transposed: false, ...JSON.parse(root.dataset.settings || "{}") };
    const box = html("div", { class: "layers-explorer-controls" });
    const view = html("div", { class: "layers-explorer-view", "data-view": "" });
    root.append(box, view);
    const c = {};
    const redraw = () => draw();
    c.transposed = control(box, { name: "transposed", label: "transposed", checkbox: true, value: start.transposed }, redraw);
    c.n = control(box, { name: "n", label: "input size n", min: 1, max: 12, value: start.n }, redraw);
    c.k = control(box, { name: "k", label: "kernel k", min: 1, max: 7, value: start.k }, redraw);
    c.s = control(box, { name: "s", label: "stride s", min: 1, max: 4, value: start.s }, redraw);
    c.p = control(box, { name: "p", label: "padding p", min: 0, max: 4, value: start.p }, redraw);
    c.d = control(box, { name: "d", label: "dilation d", min: 1, max: 3, value: start.d }, redraw);
    c.op = control(box, { name: "output_padding", label: "output_padding", min: 0, max: 3, value: start.op }, redraw);
    c.pos = control(box, { name: "position", label: "position", min: 0, max: 0, value: 0 }, redraw);

    function draw() {
      const set = {};
      for (const key of ["n", "k", "s", "p", "d", "op", "transposed"]) set[key] = number(c[key]);
      c.op.disabled = !set.transposed;
      c.op.closest("label").classList.toggle("layers-explorer-off", !set.transposed);
      const a = convArithmetic(set);
      // the position slider walks the output cells (convolution) or the input cells (transposed)
      const cells = a.ok ? (set.transposed ? set.n * set.n : a.size * a.size) : 1;
      c.pos.max = String(cells - 1);
      if (Number(c.pos.value) > cells - 1) c.pos.value = String(cells - 1);
      c.pos.disabled = !a.ok || cells < 2;
      const side = set.transposed ? set.n : a.size;
      const pos = Number(c.pos.value), i = Math.floor(pos / Math.max(side, 1)), j = pos % Math.max(side, 1);
      const what = set.transposed ? "input cell" : "output cell";
      c.pos.closest("label").querySelector(".layers-explorer-label").textContent = `${what}`;
      c.pos.nextSibling.textContent = a.ok ? `(${i}, ${j})` : "–";
      const pick = (r, cc) => { c.pos.value = String(r * side + cc); c.pos.refresh(); draw(); };

      view.replaceChildren();
      const width = Math.max(320, Math.min(root.clientWidth || 700, 760));
      const picture = svg("svg", { class: "layers-explorer-svg", width, viewBox: `0 0 ${width} 10` });
      view.appendChild(picture);
      const say = (role, text, cls = "") => view.appendChild(html("p", { class: `layers-explorer-${role} ${cls}`,
                                                                        "data-role": role }, text));
      const shape = a.ok ? `${a.size} × ${a.size}` : "none";
      let height;
      if (!set.transposed) {
        height = drawConv(picture, width, set, a, i, j, pick);
      } else {
        height = drawTransposed(picture, width, set, a, i, j, pick);
      }
      picture.setAttribute("viewBox", `0 0 ${width} ${height}`);
      picture.setAttribute("height", height);
      const layer = set.transposed ? "ConvTranspose2d" : "Conv2d";
      const args = `kernel_size=${set.k}, stride=${set.s}, padding=${set.p}, dilation=${set.d}` +
                   (set.transposed ? `, output_padding=${set.op}` : "");
      say("layer", `nn.${layer}(C_in, C_out, ${args}) on an input of ${set.n} × ${set.n}:`);
      say("formula", `L_out = ${a.formula}`);
      const out = view.appendChild(html("p", { class: "layers-explorer-result" }));
      out.append("output: ", html("strong", { "data-role": "size" }, a.ok ? String(a.size) : "impossible"),
                 a.ok ? ` per side, ${shape}` : "");
      if (!a.ok) say("reason", a.reason, "layers-explorer-impossible");
      else if (!set.transposed && (a.dropped > 0 || a.holes > 0)) {
        const parts = [];
        if (a.dropped > 0) parts.push(`the last ${a.dropped} padded row(s) and column(s), which the floor in the ` +
                                      `formula drops (the stride does not divide what follows the first window)`);
        if (a.holes > 0) parts.push(`${a.holes} row(s) and column(s) between the taps of every window (the stride ` +
                                    `and the dilation share a factor)`);
        say("note", `Never read (red): ${parts.join("; and ")}.`);
      } else if (set.transposed && set.op > 0) {
        say("note", `output_padding adds ${set.op} row(s) and column(s) at the end (yellow), which no stamp reaches: ` +
                    `a convolution with stride ${set.s} maps both ${a.size} and ${a.size - set.op} back to ${set.n}.`);
      }
    }

    function drawConv(picture, width, set, a, i, j, pick) {
      const padded = set.n + 2 * set.p;
      const outSide = a.ok ? a.size : 0;
      const cell = Math.max(6, Math.min(28, Math.floor((width - 90) / (padded + Math.max(outSide, 1) + 1))));
      const top = 22;
      const inside = (r) => r >= set.p && r < set.p + set.n;
      caption(picture, 0, 14, `padded input, ${padded} × ${padded}`);
      if (!a.ok) {
        grid(picture, 0, top, padded, cell, (r, cc) => (inside(r) && inside(cc) ? COLOUR.input : COLOUR.pad), null);
        const y = top + padded * cell + 14;
        caption(picture, 0, y + 10, `the kernel's taps: ${a.span} cells wide`);
        for (let u = 0; u < set.k; u++) {
          picture.appendChild(svg("rect", { x: u * set.d * cell, y: y + 16, width: cell, height: cell, fill: COLOUR.tap,
                                           stroke: COLOUR.line, "stroke-width": 0.6 }));
        }
        return y + 22 + cell;
      }
      const starts = Array.from({ length: a.size }, (_, o) => o * set.s);
      const reads = tapCounts(padded, starts, set.k, set.d);           // per row (and per column)
      const tapsOf = (o) => new Set(Array.from({ length: set.k }, (_, u) => o * set.s + u * set.d));
      const rows = tapsOf(i), cols = tapsOf(j);
      grid(picture, 0, top, padded, cell, (r, cc) => {
        if (rows.has(r) && cols.has(cc)) return COLOUR.tap;
        if (reads[r] === 0 || reads[cc] === 0) return COLOUR.unread;
        return inside(r) && inside(cc) ? COLOUR.input : COLOUR.pad;
      }, (r, cc) => String(reads[r] * reads[cc]));
      // the window's outline: where its first and last taps are
      picture.appendChild(svg("rect", { x: j * set.s * cell, y: top + i * set.s * cell, width: a.span * cell,
                                        height: a.span * cell, fill: "none", stroke: "#d95f02", "stroke-width": 2,
                                        "stroke-dasharray": "4 3" }));
      const x0 = (padded + 1) * cell + 20;
      caption(picture, x0, 14, `output, ${a.size} × ${a.size}`);
      grid(picture, x0, top, a.size, cell, (r, cc) => (r === i && cc === j ? COLOUR.chosen : COLOUR.out), null, pick);
      const bottom = top + Math.max(padded, a.size) * cell + 20;
      legend(picture, 0, bottom, [[COLOUR.tap, "taps of the chosen output"], [COLOUR.pad, "padding"],
                                  [COLOUR.unread, "never read"]]);
      caption(picture, 0, bottom + 18, "numbers: how many windows read the cell");
      return bottom + 26;
    }

    function drawTransposed(picture, width, set, a, i, j, pick) {
      const cell0 = (size) => Math.max(6, Math.min(28, Math.floor((width - 90) / size)));
      if (!a.ok) {
        const cell = cell0(set.n + 2);
        caption(picture, 0, 14, `input, ${set.n} × ${set.n}`);
        grid(picture, 0, 22, set.n, cell, () => COLOUR.input, null);
        return 22 + set.n * cell + 8;
      }
      const extent = Math.max(a.full, set.p + a.size);   // the stamps, and output_padding's extra cells
      const cell = cell0(set.n + extent + 1);
      const top = 22;
      caption(picture, 0, 14, `input, ${set.n} × ${set.n}`);
      grid(picture, 0, top, set.n, cell, (r, cc) => (r === i && cc === j ? COLOUR.chosen : COLOUR.input), null, pick);
      const starts = Array.from({ length: set.n }, (_, t) => t * set.s);
      const counts = tapCounts(extent, starts, set.k, set.d);
      const tapsOf = (t) => new Set(Array.from({ length: set.k }, (_, u) => t * set.s + u * set.d));
      const rows = tapsOf(i), cols = tapsOf(j);
      const kept = (r) => r >= set.p && r < set.p + a.size;
      const x0 = (set.n + 1) * cell + 20;
      caption(picture, x0, 14, `all stamps, ${a.full} × ${a.full}; output ${a.size} × ${a.size} (white)`);
      grid(picture, x0, top, extent, cell, (r, cc) => {
        if (rows.has(r) && cols.has(cc)) return COLOUR.tap;
        if (!kept(r) || !kept(cc)) return COLOUR.cropped;
        if (r >= a.full || cc >= a.full) return COLOUR.extra;
        return COLOUR.input;
      }, (r, cc) => String(counts[r] * counts[cc]));
      picture.appendChild(svg("rect", { x: x0 + set.p * cell, y: top + set.p * cell, width: a.size * cell,
                                        height: a.size * cell, fill: "none", stroke: "#2171b5", "stroke-width": 2 }));
      const bottom = top + Math.max(set.n, extent) * cell + 20;
      legend(picture, 0, bottom, [[COLOUR.tap, "the chosen input's stamp"], [COLOUR.cropped, "cropped by padding"],
                                  [COLOUR.extra, "output_padding"]]);
      caption(picture, 0, bottom + 18, "numbers: how many stamps overlap on the cell (they add up)");
      return bottom + 26;
    }

    draw();
  }

  // --- the attention explorer ----------------------------------------------------------------------

  function attentionExplorer(root) {
    const data = JSON.parse(root.querySelector("script.layers-explorer-data").textContent);
    const box = html("div", { class: "layers-explorer-controls" });
    const view = html("div", { class: "layers-explorer-view", "data-view": "" });
    root.append(box, view);
    const heads = data.heads;
    const c = {};
    const redraw = () => draw();
    if (data.tokens.length > 1) {
      c.seq = control(box, { name: "sequence", label: "input", value: 0,
                             options: data.tokens.map((t, n) => [n, t.join(" ")]) }, redraw);
    }
    c.query = control(box, { name: "query", label: "query position", min: 0, max: data.tokens[0].length - 1,
                             value: data.query || 0 }, redraw);
    const headOptions = Array.from({ length: heads }, (_, h) => [h, `head ${h + 1}`]);
    headOptions.push([heads, "mean of the heads (torch's default)"]);
    c.head = control(box, { name: "head", label: "head", value: data.head ?? heads, options: headOptions }, redraw);

    function draw() {
      const n = c.seq ? Number(c.seq.value) : 0, h = Number(c.head.value);
      const tokens = data.tokens[n], L = tokens.length;
      c.query.max = String(L - 1);
      const q = Math.min(Number(c.query.value), L - 1);
      c.query.nextSibling.textContent = `${q}: ${tokens[q]}`;
      const w = data.weights[n][h];                       // (L, S): rows are queries
      view.replaceChildren();
      const width = Math.max(320, Math.min(root.clientWidth || 700, 760));
      const cell = Math.max(18, Math.min(40, Math.floor((width - 40) / (2 * L + 3))));
      const picture = svg("svg", { class: "layers-explorer-svg", width });
      view.appendChild(picture);
      // left: the weights of the chosen query over the keys, as bars; right: the head's whole matrix
      const barTop = 24, barHeight = 4 * cell;
      caption(picture, 0, 14, `query ${q} (“${tokens[q]}”) over the keys`);
      for (let k = 0; k < L; k++) {
        const x = k * cell, value = w[q][k];
        picture.appendChild(svg("rect", { x: x + 2, y: barTop + barHeight * (1 - value), width: cell - 4,
                                          height: Math.max(barHeight * value, 0.5), fill: "#3b7dd8",
                                          "data-key": k, "data-weight": value.toFixed(4) }));
        picture.appendChild(svg("text", { x: x + cell / 2, y: barTop + barHeight * (1 - value) - 3, "font-size": 9,
                                          "text-anchor": "middle", fill: COLOUR.text }, value.toFixed(2)));
        picture.appendChild(svg("text", { x: x + cell / 2, y: barTop + barHeight + 14, "font-size": 11,
                                          "text-anchor": "middle", fill: COLOUR.text,
                                          "font-weight": k === q ? "bold" : "normal" }, tokens[k]));
      }
      picture.appendChild(svg("line", { x1: 0, x2: L * cell, y1: barTop + barHeight, y2: barTop + barHeight,
                                        stroke: COLOUR.line }));
      caption(picture, 0, barTop + barHeight + 30, "key");
      const x0 = (L + 2) * cell, top = 24;
      caption(picture, x0, 14, h === heads ? "mean of the heads: all queries" : `head ${h + 1}: all queries`);
      grid(picture, x0, top, L, cell, (r, k) => shade(w[r][k]), (r, k) => (r === q ? w[r][k].toFixed(2).replace(/^0/, "") : ""),
           (r) => { c.query.value = String(r); c.query.refresh(); draw(); },
           (r, k) => (w[r][k] > 0.5 ? "#ffffff" : COLOUR.text));
      picture.appendChild(svg("rect", { x: x0, y: top + q * cell, width: L * cell, height: cell, fill: "none",
                                        stroke: "#d95f02", "stroke-width": 2.5 }));
      for (let k = 0; k < L; k++) {
        caption(picture, x0 + (k + 0.5) * cell, top + L * cell + 14, tokens[k], "middle");
        caption(picture, x0 - 6, top + (k + 0.5) * cell + 4, tokens[k], "end");
      }
      const height = Math.max(barTop + barHeight + 36, top + L * cell + 24);
      picture.setAttribute("height", height);
      picture.setAttribute("viewBox", `0 0 ${width} ${height}`);
      const row = w[q].map((v) => v.toFixed(3)).join(", ");
      view.appendChild(html("p", { class: "layers-explorer-result", "data-role": "weights" },
                            `weights of query ${q} over the ${L} keys (they sum to 1): ${row}`));
    }

    function shade(v) {                                  // white (0) to dark blue (1)
      const t = Math.max(0, Math.min(1, v));
      const mix = (a, b) => Math.round(a + (b - a) * t);
      return `rgb(${mix(255, 8)}, ${mix(255, 48)}, ${mix(255, 107)})`;
    }

    draw();
  }

  // --- set-up ----------------------------------------------------------------------------------------

  const KINDS = { conv: convExplorer, attention: attentionExplorer };

  function setUp(root) {
    if (root.dataset.ready === "true" || !KINDS[root.dataset.explorer]) return;
    root.querySelectorAll(".layers-explorer-nojs").forEach((e) => e.remove());
    KINDS[root.dataset.explorer](root);
    root.dataset.ready = "true";
  }

  function setUpAll() {
    document.querySelectorAll("[data-explorer]").forEach(setUp);
  }

  window.LayersExplore = { convArithmetic, setUp, setUpAll };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setUpAll);
  else setUpAll();
})();
