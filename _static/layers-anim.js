/* The book's animation player: a still frame that becomes a small player when JavaScript runs.
 *
 * book/_anim.py writes, for each animation,
 *
 *   <div class="layers-anim">
 *     <img class="layers-anim-frame" src="data:image/png;base64,..." alt="...">    the still frame
 *     <script type="application/json" class="layers-anim-data">
 *       {"frames": ["data:...", "", ...], "delays": [400, ...], "still": 1}      "" = the still's own src
 *     </script>
 *   </div>
 *
 * Without JavaScript the reader sees the still frame as an ordinary image. With it, this script
 * adds the controls (first, back, play/pause, forward, last, a frame slider and a counter; the
 * icons are inline SVG: no icon font, nothing fetched) and marks the player ready:
 * data-ready="true", and data-frame holds the frame on show. tools/browser_check.py relies on
 * both, and on the play button's data-action="play".
 */
(function () {
  "use strict";

  // icons drawn inline (SVG), so no icon font or image has to be fetched
  const ICON = {
    first: "<rect x='1' y='2' width='2' height='12'/><path d='M9 2 3 8l6 6zM15 2 9 8l6 6z'/>",
    back: "<rect x='2' y='2' width='2' height='12'/><path d='M14 2 5 8l9 6z'/>",
    play: "<path d='M4 2l10 6-10 6z'/>",
    pause: "<rect x='3' y='2' width='4' height='12'/><rect x='9' y='2' width='4' height='12'/>",
    forward: "<path d='M2 2l9 6-9 6z'/><rect x='12' y='2' width='2' height='12'/>",
    last: "<path d='M1 2l6 6-6 6zM7 2l6 6-6 6z'/><rect x='13' y='2' width='2' height='12'/>",
  };
  const BUTTONS = [["first", "first frame"], ["back", "one frame back"], ["play", "play"],
                   ["forward", "one frame forward"], ["last", "last frame"]];

  function icon(name) {
    return `<svg viewBox='0 0 16 16' width='14' height='14' aria-hidden='true' fill='currentColor'>${ICON[name]}</svg>`;
  }

  function label(b, name, text) {
    b.innerHTML = icon(name);
    b.title = text;
    b.setAttribute("aria-label", text);
  }

  function button(action, text) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "layers-anim-button";
    b.dataset.action = action;
    label(b, action, text);
    return b;
  }

  function setUp(root) {
    if (root.dataset.ready === "true") return;
    const screen = root.querySelector("img.layers-anim-frame");
    const store = root.querySelector("script.layers-anim-data");
    if (!screen || !store) return;
    const data = JSON.parse(store.textContent);
    const frames = data.frames.map((src) => src || screen.getAttribute("src"));
    const last = frames.length - 1;
    const delays = frames.map((_, i) => (data.delays && data.delays[i]) || data.interval || 500);
    let current = Math.min(Math.max(data.still || 0, 0), last);
    let timer = null;

    const bar = document.createElement("div");
    bar.className = "layers-anim-controls";
    const buttons = {};
    for (const [action, text] of BUTTONS) {
      buttons[action] = button(action, text);
      bar.appendChild(buttons[action]);
    }
    const slider = document.createElement("input");
    slider.type = "range";
    slider.min = "0";
    slider.max = String(last);
    slider.step = "1";
    slider.className = "layers-anim-slider";
    slider.setAttribute("aria-label", "frame");
    const counter = document.createElement("span");
    counter.className = "layers-anim-counter";
    bar.append(slider, counter);
    root.appendChild(bar);

    function show(i) {
      current = Math.min(Math.max(i, 0), last);
      if (screen.getAttribute("src") !== frames[current]) screen.setAttribute("src", frames[current]);
      slider.value = String(current);
      counter.textContent = `${current + 1} / ${frames.length}`;
      root.dataset.frame = String(current);
    }

    function stop() {
      if (timer !== null) clearTimeout(timer);
      timer = null;
      root.dataset.playing = "false";
      label(buttons.play, "play", "play");
    }

    function tick() {
      // loops: after the last frame (shown for its own delay) the animation starts again
      show(current === last ? 0 : current + 1);
      timer = setTimeout(tick, delays[current]);
    }

    function play() {
      if (current === last) show(0);
      root.dataset.playing = "true";
      label(buttons.play, "pause", "pause");
      timer = setTimeout(tick, delays[current]);
    }

    bar.addEventListener("click", (event) => {
      const b = event.target.closest("button[data-action]");
      if (!b) return;
      const action = b.dataset.action;
      if (action === "play") {
        if (timer === null) play();
        else stop();
        return;
      }
      stop();
      if (action === "first") show(0);
      else if (action === "back") show(current - 1);
      else if (action === "forward") show(current + 1);
      else if (action === "last") show(last);
    });
    slider.addEventListener("input", () => {
      stop();
      show(Number(slider.value));
    });
    root.addEventListener("keydown", (event) => {
      if (event.target === slider) return; // the slider has its own arrow keys
      if (event.key === "ArrowLeft") { stop(); show(current - 1); event.preventDefault(); }
      else if (event.key === "ArrowRight") { stop(); show(current + 1); event.preventDefault(); }
    });

    stop();
    show(current);
    root.dataset.ready = "true";
  }

  function setUpAll() {
    document.querySelectorAll(".layers-anim").forEach(setUp);
  }

  window.LayersAnim = { setUp, setUpAll };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setUpAll);
  else setUpAll();
})();
