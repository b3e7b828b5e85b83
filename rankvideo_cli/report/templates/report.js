(function () {
  "use strict";
  // A Map, not the parsed object: a docid such as "constructor" or "__proto__" must find its own strip or none,
  // never a member every object inherits.
  const thumbs = new Map(Object.entries(JSON.parse(document.getElementById("rankvideo-thumbnails").textContent)));
  const container = document.getElementById("sections");
  const sections = Array.from(container.querySelectorAll("section.query"));
  const shownCount = document.getElementById("shown");

  function fillThumbnails(root) {
    for (const cell of root.querySelectorAll("td.thumbs[data-video]")) {
      const strip = thumbs.get(cell.dataset.video);
      if (!strip) continue;
      if (strip.problem) {
        const note = document.createElement("span");
        note.className = "problem";
        note.textContent = strip.problem;
        cell.appendChild(note);
        continue;
      }
      strip.images.forEach(function (source, slot) {
        const image = document.createElement("img");
        image.loading = "lazy";
        image.decoding = "async";
        image.src = source;
        image.alt = "frame " + strip.frames[slot] + " (" + strip.source + ")";
        image.title = image.alt;
        cell.appendChild(image);
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

  function number(section, key, missing) {
    const value = section.dataset[key];
    return value === undefined || value === "" ? missing : parseFloat(value);
  }
  const orders = {
    "delta-desc": function (a, b) { return number(b, "delta", -Infinity) - number(a, "delta", -Infinity) || a.dataset.qid.localeCompare(b.dataset.qid); },
    "delta-asc": function (a, b) { return number(a, "delta", Infinity) - number(b, "delta", Infinity) || a.dataset.qid.localeCompare(b.dataset.qid); },
    "qid": function (a, b) { return a.dataset.qid.localeCompare(b.dataset.qid, undefined, { numeric: true }); },
    "measure-desc": function (a, b) { return number(b, "measure", -Infinity) - number(a, "measure", -Infinity) || a.dataset.qid.localeCompare(b.dataset.qid); },
  };
  function sortBy(key) {
    const ordered = sections.slice().sort(orders[key]);
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

  const sortControl = document.getElementById("sort");
  sortControl.addEventListener("change", function () { sortBy(sortControl.value); });
  const searchControl = document.getElementById("search");
  searchControl.addEventListener("input", function () { filter(searchControl.value); });
  document.getElementById("render-all").addEventListener("click", renderAll);
  sortBy(sortControl.value);
  filter("");
  // the sections of the first screens are there at once; the others when they scroll near
  Array.from(container.children).slice(0, 10).forEach(render);
  window.rankvideoReport = { sortBy: sortBy, filter: filter, renderAll: renderAll };
})();
