// Modelyard labeling editor: boxes on an SVG over the image (draw, move, resize), class hotkeys, accept a model's
// proposal, next/previous, zoom; classification and text by hotkey. Saves with the seconds spent on the item.
// No inline script (the CSP forbids it): the page hands its data over in the editor element's data-editor.
// Each box is one <rect> built once; a drag updates only the dragged rect and its four handles, so the cost of a
// pointer move does not grow with the number of boxes (window.labelingEditor keeps the figures the browser test reads).
"use strict";
(function () {
  const root = document.getElementById("editor");
  if (!root) return;
  const data = JSON.parse(root.getAttribute("data-editor"));
  const item = data.item;
  const classes = data.classes;
  const task = data.task;
  const SVG = "http://www.w3.org/2000/svg";
  const stats = window.labelingEditor = { renderMs: null, boxes: 0, moves: 0, moveMsMax: 0, moveMsTotal: 0,
    frameMsMax: 0, frameMsTotal: 0, frames: 0, saved: null, ready: false };
  const errorBox = document.getElementById("editor-error");
  const savedBox = document.getElementById("editor-saved");
  let current = 0;  // the chosen class
  let busy = false;

  // seconds on the item: counted only while the page is visible
  let activeMs = 0;
  let since = document.hidden ? null : performance.now();
  document.addEventListener("visibilitychange", function () {
    if (document.hidden && since !== null) { activeMs += performance.now() - since; since = null; }
    else if (!document.hidden && since === null) { since = performance.now(); }
  });
  function secondsSpent() {
    const total = activeMs + (since === null ? 0 : performance.now() - since);
    return Math.round(total) / 1000;
  }

  function showError(message) {
    errorBox.textContent = message;
    errorBox.hidden = false;
    savedBox.hidden = true;
  }

  function save(body) {
    if (busy) return;
    busy = true;
    errorBox.hidden = true;
    body.item = item.item;
    body.seconds = secondsSpent();
    fetch(data.save_url, { method: "POST", credentials: "same-origin", body: JSON.stringify(body),
      headers: { "Content-Type": "application/json", "X-CSRF-Token": data.csrf } })
      .then(function (answer) {
        return answer.text().then(function (text) {
          let parsed = null;
          try { parsed = JSON.parse(text); } catch (e) { parsed = null; }
          if (!answer.ok) {
            const message = parsed && parsed.error ? parsed.error.message : "the server answered " + answer.status;
            throw new Error(message);
          }
          return parsed;
        });
      })
      .then(function (saved) {
        stats.saved = saved;
        savedBox.textContent = "Saved (" + saved.source + ", " + body.seconds + " s).";
        savedBox.hidden = false;
        document.getElementById("item-state").textContent = saved.state;
        if (!root.hasAttribute("data-stay")) window.location.assign(data.after_save_url);
      })
      .catch(function (error) { showError("Not saved: " + error.message); })
      .finally(function () { busy = false; });
  }

  function labelsOf(entry) {
    if (!entry) return [];
    return entry.labels || (entry.label ? [entry.label] : []);
  }

  function classButtons() { return Array.from(document.querySelectorAll("#class-buttons .cls")); }
  function markClass() {
    classButtons().forEach(function (b, i) { b.classList.toggle("current", i === current); });
  }

  const common = {
    accept: function () { if (item.proposal) save({ accept_proposal: true }); },
    next: function () { const a = document.getElementById("next"); if (a) window.location.assign(a.href); },
    prev: function () { const a = document.getElementById("prev"); if (a) window.location.assign(a.href); },
  };

  // -- classification, multilabel, text ---------------------------------------------------------------------------
  function setupChoice() {
    const chosen = new Set(labelsOf(item.annotation || item.proposal || item.existing));
    function paint() {
      classButtons().forEach(function (b, i) { b.classList.toggle("on", chosen.has(classes[i])); });
    }
    function pick(index) {
      if (index >= classes.length) return;
      if (task === "multilabel") {
        if (chosen.has(classes[index])) chosen.delete(classes[index]); else chosen.add(classes[index]);
        paint();
      } else {
        chosen.clear();
        chosen.add(classes[index]);
        paint();
        save({ labels: [classes[index]] });
      }
    }
    classButtons().forEach(function (b, i) { b.addEventListener("click", function () { pick(i); }); });
    paint();
    return { pick: pick, save: function () {
      if (!chosen.size) { showError("Choose a class first (keys 1-9)."); return; }
      save({ labels: Array.from(chosen) });
    } };
  }

  // -- detection ---------------------------------------------------------------------------------------------------
  function setupBoxes() {
    const svg = document.getElementById("canvas");
    const layer = document.getElementById("box-layer");
    const handles = document.getElementById("handle-layer");
    const proposalLayer = document.getElementById("proposal-layer");
    const counter = document.getElementById("box-count");
    const width = item.width || 1;
    const height = item.height || 1;
    const start = performance.now();
    const source = item.annotation || item.proposal || item.existing;
    const boxes = ((source && source.boxes) || []).map(function (b) {
      return { x1: b[0], y1: b[1], x2: b[2], y2: b[3], label: b[4], el: null };
    });
    let selected = -1;
    let zoom = 1;
    let drag = null;

    function colour(label) { return "box c" + (Math.max(0, classes.indexOf(label)) % 10); }
    function place(box) {
      box.el.setAttribute("x", Math.min(box.x1, box.x2));
      box.el.setAttribute("y", Math.min(box.y1, box.y2));
      box.el.setAttribute("width", Math.abs(box.x2 - box.x1));
      box.el.setAttribute("height", Math.abs(box.y2 - box.y1));
    }
    function make(box, index) {
      box.el = document.createElementNS(SVG, "rect");
      box.el.setAttribute("class", colour(box.label));
      box.el.setAttribute("data-index", index);
      box.el.setAttribute("vector-effect", "non-scaling-stroke");
      const title = document.createElementNS(SVG, "title");
      title.textContent = box.label;
      box.el.appendChild(title);
      place(box);
      return box.el;
    }
    function count() { if (counter) counter.textContent = boxes.length + " boxes"; }
    function renderAll() {
      const fragment = document.createDocumentFragment();
      boxes.forEach(function (box, i) { fragment.appendChild(make(box, i)); });
      layer.replaceChildren(fragment);
      count();
    }
    const corners = ["nw", "ne", "sw", "se"];
    function drawHandles() {
      handles.replaceChildren();
      if (selected < 0) return;
      const box = boxes[selected];
      const size = 8 / zoom;
      corners.forEach(function (corner) {
        const h = document.createElementNS(SVG, "rect");
        const x = corner[1] === "w" ? Math.min(box.x1, box.x2) : Math.max(box.x1, box.x2);
        const y = corner[0] === "n" ? Math.min(box.y1, box.y2) : Math.max(box.y1, box.y2);
        h.setAttribute("x", x - size / 2);
        h.setAttribute("y", y - size / 2);
        h.setAttribute("width", size);
        h.setAttribute("height", size);
        h.setAttribute("class", "handle");
        h.setAttribute("data-corner", corner);
        handles.appendChild(h);
      });
    }
    function select(index) {
      if (selected >= 0 && boxes[selected]) boxes[selected].el.classList.remove("selected");
      selected = index;
      if (selected >= 0) {
        boxes[selected].el.classList.add("selected");
        current = Math.max(0, classes.indexOf(boxes[selected].label));
        markClass();
      }
      drawHandles();
    }
    function setZoom(value) {
      zoom = Math.min(16, Math.max(0.05, value));
      svg.setAttribute("width", Math.round(width * zoom));
      svg.setAttribute("height", Math.round(height * zoom));
      drawHandles();
    }
    function toImage(event) {
      const point = svg.createSVGPoint();
      point.x = event.clientX;
      point.y = event.clientY;
      const p = point.matrixTransform(svg.getScreenCTM().inverse());
      return { x: Math.min(width, Math.max(0, p.x)), y: Math.min(height, Math.max(0, p.y)) };
    }
    function normalise(box) {
      const x1 = Math.min(box.x1, box.x2), x2 = Math.max(box.x1, box.x2);
      const y1 = Math.min(box.y1, box.y2), y2 = Math.max(box.y1, box.y2);
      box.x1 = x1; box.x2 = x2; box.y1 = y1; box.y2 = y2;
    }

    svg.addEventListener("pointerdown", function (event) {
      if (event.button !== 0) return;
      event.preventDefault();
      const p = toImage(event);
      const corner = event.target.getAttribute("data-corner");
      const index = event.target.getAttribute("data-index");
      if (corner && selected >= 0) {
        const box = boxes[selected];
        normalise(box);
        // the dragged corner moves; the opposite one stays
        drag = { mode: "resize", box: box, xKey: corner[1] === "w" ? "x1" : "x2", yKey: corner[0] === "n" ? "y1" : "y2" };
      } else if (index !== null && event.target.parentNode === layer) {
        select(Number(index));
        const box = boxes[selected];
        drag = { mode: "move", box: box, from: p, orig: { x1: box.x1, y1: box.y1, x2: box.x2, y2: box.y2 } };
      } else {
        const box = { x1: p.x, y1: p.y, x2: p.x, y2: p.y, label: classes[current], el: null };
        boxes.push(box);
        layer.appendChild(make(box, boxes.length - 1));
        select(boxes.length - 1);
        drag = { mode: "draw", box: box };
      }
      svg.setPointerCapture(event.pointerId);
    });
    svg.addEventListener("pointermove", function (event) {
      if (!drag) return;
      const t0 = performance.now();
      const p = toImage(event);
      const box = drag.box;
      if (drag.mode === "move") {
        const w = drag.orig.x2 - drag.orig.x1, h = drag.orig.y2 - drag.orig.y1;
        const dx = Math.min(width - drag.orig.x2, Math.max(-drag.orig.x1, p.x - drag.from.x));
        const dy = Math.min(height - drag.orig.y2, Math.max(-drag.orig.y1, p.y - drag.from.y));
        box.x1 = drag.orig.x1 + dx; box.y1 = drag.orig.y1 + dy; box.x2 = box.x1 + w; box.y2 = box.y1 + h;
      } else if (drag.mode === "resize") {
        box[drag.xKey] = p.x; box[drag.yKey] = p.y;
      } else {
        box.x2 = p.x; box.y2 = p.y;
      }
      place(box);
      drawHandles();
      const spent = performance.now() - t0;
      stats.moves += 1; stats.moveMsTotal += spent; stats.moveMsMax = Math.max(stats.moveMsMax, spent);
      const eventTime = event.timeStamp;
      // input-to-next-frame: what a person feels while dragging (style, layout and paint of the change included
      // in the frame after it)
      requestAnimationFrame(function () {
        const latency = performance.now() - eventTime;
        stats.frames += 1; stats.frameMsTotal += latency; stats.frameMsMax = Math.max(stats.frameMsMax, latency);
      });
    });
    function finish() {
      if (!drag) return;
      const box = drag.box;
      normalise(box);
      if (drag.mode === "draw" && (box.x2 - box.x1 < 2 || box.y2 - box.y1 < 2)) {
        remove(boxes.indexOf(box));
      } else {
        place(box);
        drawHandles();
      }
      drag = null;
      count();
    }
    svg.addEventListener("pointerup", finish);
    svg.addEventListener("pointercancel", finish);

    function remove(index) {
      if (index < 0) return;
      boxes[index].el.remove();
      boxes.splice(index, 1);
      // indexes after the removed box shift down by one
      for (let i = index; i < boxes.length; i++) boxes[i].el.setAttribute("data-index", i);
      selected = -1;
      drawHandles();
      count();
    }

    // the model's proposal, faint, under the editable boxes, when the boxes shown are a saved label
    if (item.annotation && item.proposal && item.proposal.boxes) {
      const fragment = document.createDocumentFragment();
      item.proposal.boxes.forEach(function (b) {
        const r = document.createElementNS(SVG, "rect");
        r.setAttribute("x", b[0]); r.setAttribute("y", b[1]);
        r.setAttribute("width", b[2] - b[0]); r.setAttribute("height", b[3] - b[1]);
        r.setAttribute("class", "proposal");
        r.setAttribute("vector-effect", "non-scaling-stroke");
        fragment.appendChild(r);
      });
      proposalLayer.replaceChildren(fragment);
    }
    renderAll();
    const wrap = document.getElementById("canvas-wrap");
    setZoom(Math.min((wrap.clientWidth - 4) / width, Math.max(200, window.innerHeight - 260) / height));
    svg.getBoundingClientRect();  // layout now, so renderMs includes it
    stats.renderMs = performance.now() - start;
    stats.boxes = boxes.length;
    document.getElementById("zoom-in").addEventListener("click", function () { setZoom(zoom * 1.25); });
    document.getElementById("zoom-out").addEventListener("click", function () { setZoom(zoom / 1.25); });

    return {
      pick: function (index) {
        if (index >= classes.length) return;
        current = index;
        markClass();
        if (selected >= 0) {
          const box = boxes[selected];
          box.label = classes[index];
          box.el.setAttribute("class", colour(box.label) + " selected");
          box.el.firstChild.textContent = box.label;
        }
      },
      remove: function () { remove(selected); },
      deselect: function () { select(-1); },
      zoom: function (factor) { setZoom(zoom * factor); },
      save: function () {
        save({ boxes: boxes.map(function (b) {
          return [Math.round(b.x1 * 10) / 10, Math.round(b.y1 * 10) / 10, Math.round(b.x2 * 10) / 10,
            Math.round(b.y2 * 10) / 10, b.label];
        }) });
      },
    };
  }

  const editor = task === "detection" ? setupBoxes() : setupChoice();
  classButtons().forEach(function (b, i) {
    if (task === "detection") b.addEventListener("click", function () { editor.pick(i); });
  });
  markClass();
  document.getElementById("save").addEventListener("click", editor.save);
  const accept = document.getElementById("accept-proposal");
  if (accept) accept.addEventListener("click", common.accept);

  document.addEventListener("keydown", function (event) {
    if (event.target.closest("input, textarea, select") || event.ctrlKey || event.metaKey || event.altKey) return;
    const key = event.key;
    if (key >= "1" && key <= "9") editor.pick(Number(key) - 1);
    else if (key === "a" || key === "A") common.accept();
    else if (key === "s" || key === "S" || key === "Enter") editor.save();
    else if (key === "n" || key === "N" || key === "ArrowRight") common.next();
    else if (key === "p" || key === "P" || key === "ArrowLeft") common.prev();
    else if ((key === "Delete" || key === "Backspace") && editor.remove) editor.remove();
    else if (key === "Escape" && editor.deselect) editor.deselect();
    else if ((key === "+" || key === "=") && editor.zoom) editor.zoom(1.25);
    else if (key === "-" && editor.zoom) editor.zoom(0.8);
    else return;
    event.preventDefault();
  });
  stats.ready = true;
})();
