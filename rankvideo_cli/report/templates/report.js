(function () {
  "use strict";
  // A Map, not the parsed object: a docid such as "constructor" or "__proto__" must find its own strip or none,
  // never a member every object inherits.
  const thumbs = new Map(Object.entries(JSON.parse(document.getElementById("rankvideo-thumbnails").textContent)));
  const container = document.getElementById("sections");
  const sections = Array.from(container.querySelectorAll("section.query"));
  const shownCount = document.getElementById("shown");
  const controls = document.getElementById("controls");

  function fillThumbnails(root) {
    for (const cell of root.querySelectorAll("td.thumbs[data-video]")) {
      const strip = thumbs.get(cell.dataset.video);
      const holder = cell.querySelector(".strip");
      if (!strip) continue;
      if (strip.problem) {
        const note = document.createElement("span");
        note.className = "problem";
        note.textContent = strip.problem;
        holder.replaceWith(note); // the note takes the strip's place: the whole cell's width, not a frame's
        continue;
      }
      strip.images.forEach(function (source, slot) {
        const image = document.createElement("img");
        image.loading = "lazy";
        image.decoding = "async";
        image.src = source;
        image.alt = "frame " + strip.frames[slot] + " (" + strip.source + ")";
        image.title = image.alt;
        holder.appendChild(image);
      });
    }
  }

  function render(section) {
    if (section.dataset.rendered) return;
    const template = section.querySelector("template");
    const body = section.querySelector(".body");
    body.appendChild(template.content.cloneNode(true));
    fillThumbnails(body);
    section.dataset.rendered = "1";
  }

  const observer = "IntersectionObserver" in window
    ? new IntersectionObserver(function (entries) {
        for (const entry of entries) {
          if (entry.isIntersecting) { render(entry.target); observer.unobserve(entry.target); }
        }
      }, { rootMargin: "1200px 0px" })
    : null;
  sections.forEach(function (section) { observer ? observer.observe(section) : render(section); });

  // data-deltas and data-measures: one number per run, in the runs' order ("nan": none)
  function number(section, key, run, missing) {
    const value = parseFloat((section.dataset[key] || "").split(" ")[run]);
    return isNaN(value) ? missing : value;
  }
  function byQid(a, b) { return a.dataset.qid.localeCompare(b.dataset.qid, undefined, { numeric: true }); }
  function order(key) {
    if (key === "qid") return byQid;
    const parts = key.match(/^(delta-desc|delta-asc|measure-desc)-(\d+)$/);
    const run = parseInt(parts[2], 10);
    const field = parts[1] === "measure-desc" ? "measures" : "deltas";
    const sign = parts[1] === "delta-asc" ? 1 : -1;
    return function (a, b) {
      const missing = sign * Infinity;
      return sign * (number(a, field, run, missing) - number(b, field, run, missing)) ||
        a.dataset.qid.localeCompare(b.dataset.qid);
    };
  }
  function sortBy(key) {
    const ordered = sections.slice().sort(order(key));
    for (const section of ordered) container.appendChild(section);
  }
  function filter(text) {
    const needle = text.trim().toLowerCase();
    let shown = 0;
    for (const section of sections) {
      const hay = (section.dataset.qid + " " + section.dataset.text).toLowerCase();
      section.hidden = needle !== "" && !hay.includes(needle);
      if (!section.hidden) shown += 1;
    }
    shownCount.textContent = shown + " of " + sections.length + " queries";
  }
  function renderAll() { sections.forEach(render); }

  // A deep link (#q-3, or a bar of a chart) lands on its section once the page is laid out: every section above
  // it is rendered first (a section rendered later above it would push it down), and the section stops below
  // the sticky bar (scroll-margin-top: the bar's height), not under it.
  function measureControls() {
    document.documentElement.style.setProperty("--controls", Math.ceil(controls.getBoundingClientRect().height) + "px");
  }
  function reveal(hash) {
    let id;
    try { id = decodeURIComponent(hash.slice(1)); } catch (error) { return false; }
    const target = id ? document.getElementById(id) : null;
    if (!target || !target.classList.contains("query")) return false;
    if (target.hidden) { searchControl.value = ""; filter(""); }
    for (const section of container.children) {
      render(section);
      if (section === target) break;
    }
    measureControls();
    target.scrollIntoView({ block: "start" });
    return true;
  }

  const sortControl = document.getElementById("sort");
  sortControl.addEventListener("change", function () { sortBy(sortControl.value); });
  const searchControl = document.getElementById("search");
  searchControl.addEventListener("input", function () { filter(searchControl.value); });
  document.getElementById("render-all").addEventListener("click", renderAll);
  // links to a section (the charts' bars and labels are SVG links): revealed as above, also when the address
  // already holds that link (no hashchange then)
  document.addEventListener("click", function (event) {
    const link = event.target.closest ? event.target.closest("a") : null;
    if (!link) return;
    const href = link.getAttribute("href") || link.getAttribute("xlink:href") || "";
    if (!href.startsWith("#q-")) return;
    event.preventDefault();
    if (location.hash !== href) history.pushState(null, "", href);
    reveal(href);
  });
  window.addEventListener("hashchange", function () { reveal(location.hash); });
  window.addEventListener("resize", measureControls);
  sortBy(sortControl.value);
  filter("");
  measureControls();
  // the sections of the first screens are there at once; the others when they scroll near
  Array.from(container.children).slice(0, 10).forEach(render);
  if (location.hash) {
    reveal(location.hash);
    // once more when everything has loaded: the browser's own scroll to the fragment comes at that point
    window.addEventListener("load", function () { reveal(location.hash); });
  }
  window.rankvideoReport = { sortBy: sortBy, filter: filter, renderAll: renderAll, reveal: reveal };
})();
